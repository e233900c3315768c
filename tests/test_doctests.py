"""The examples in the docstrings are part of the documentation: they must run as written.

Every module of every package setup.cfg installs is collected (no hand-kept list to forget a new module):
each runs at least one example and none fails, except the modules in ``NO_EXAMPLES``, which have none,
and that list is exact (a module that gains an example, or disappears, must leave it).
"""
import configparser
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Modules without a docstring example: package markers, CLI command bodies, model builders (their tests
#: build them), report writers. Exact: test_no_examples_list_is_exact checks both directions.
NO_EXAMPLES = {
    "graphcost.cli", "graphcost.passes", "graphcost.passes.anytime", "graphcost.viewer.cli", "graphcost.viewer.page",
    "graphcost.runtime", "graphcost.runtime.executor", "graphcost.runtime.store", "graphcost.explore",
    "graphcost.models", "graphcost.models.cgnet", "graphcost.models.enet", "graphcost.models.espnetv2",
    "graphcost.models.manifest",
    "graphcost.models.recunet", "graphcost.models.recurrent_seg",
    "graphcost.crossbar", "graphcost.crossbar.cli", "graphcost.crossbar.run", "graphcost.crossbar.train_cli",
    "graphcost.crossbar.adaptive_cli", "graphcost.crossbar.adaptive_run", "graphcost.crossbar.cli_specs",
    "graphcost.crossbar.sim", "graphcost.crossbar.data.camvid", "graphcost.crossbar.data.cityscapes",
    "graphcost.crossbar.data.imagefolder", "graphcost.crossbar.data.images", "graphcost.crossbar.data.pydoc",
    "graphcost.crossbar.data.random",
    "graphcost.reports", "graphcost.reports.anytime", "graphcost.reports.common", "graphcost.reports.crossbar_report",
    "graphcost.reports.drift", "graphcost.reports.energy", "graphcost.reports.fig5", "graphcost.reports.heatmap",
    "graphcost.reports.index_page", "graphcost.reports.pareto", "graphcost.reports.adaptive",
    "graphcost.reports.llm",
}


def _packages():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg["options"]["packages"].split()


def _modules():
    """Every installed module: each package of setup.cfg and the modules directly in it (``__main__`` aside)."""
    names = []
    for package in _packages():
        names.append(package)
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
            if not info.ispkg and info.name != "__main__":
                names.append(f"{package}.{info.name}")
    return sorted(names)


MODULES = _modules()


def _examples(module) -> int:
    return sum(len(test.examples) for test in doctest.DocTestFinder().find(module))


def test_every_package_folder_is_installed():
    """A sub-package folder missing from setup.cfg would be neither installed nor collected here."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    folders = {"graphcost": ROOT / "graphcost"}
    for line in cfg["options"]["package_dir"].strip().splitlines():
        name, folder = (part.strip() for part in line.split("="))
        folders[name] = ROOT / folder
    found = {name + "".join("." + part for part in init.parent.relative_to(folder).parts)
             for name, folder in folders.items() for init in folder.rglob("__init__.py")}
    assert found == set(_packages())


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name not in NO_EXAMPLES:
        assert result.attempted >= 1, f"{name} ran no docstring example: add one, or list it in NO_EXAMPLES"


def test_no_examples_list_is_exact():
    without = {name for name in MODULES if _examples(importlib.import_module(name)) == 0}
    assert NO_EXAMPLES == without, ("add the first set to NO_EXAMPLES, drop the second from it",
                                    without - NO_EXAMPLES, NO_EXAMPLES - without)
