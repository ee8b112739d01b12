import doctest
import importlib

import pytest

MODULES = ["dropin", "gated", "norm", "pad", "resize", "width"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    # import_module, because the package re-exports functions under the module names.
    module = importlib.import_module(f"grownet.layers.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
