import doctest
import importlib

import pytest

MODULES = ["", ".augment", ".datasets", ".dirs", ".loader", ".preprocess", ".readers", ".sources",
           ".splits", ".stream"]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"grownet.data{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
