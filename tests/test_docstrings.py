"""Every docstring example in the package runs and gives what it shows."""

import doctest
import importlib
import pkgutil

import pytest

import grownet

# import_module by dotted path: some packages re-export functions under their module's name.
# __main__ runs the command line on import, so it is not a module to import here.
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(grownet.__path__, "grownet.")
    if m.name != "grownet.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0


def test_most_modules_have_examples():
    finder = doctest.DocTestFinder()
    with_examples = [
        name
        for name in MODULES
        if any(test.examples for test in finder.find(importlib.import_module(name)))
    ]
    assert len(with_examples) >= 0.6 * len(MODULES)
