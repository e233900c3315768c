"""The viewer's docstring examples run as written."""
import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["graphcost.viewer", "graphcost.viewer.data"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
