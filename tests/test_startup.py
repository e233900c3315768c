"""Start-up (issue 9, item 9): ``graphcost --help``, ``graphcost models`` and ``--version`` import no
torch, ``import graphcost`` neither until a name is used, and ``analyze`` imports none of ray,
matplotlib or pandas unless its output needs them. Checked on ``sys.modules`` in a fresh
interpreter (not by timing: speed lives in benchmarks/); the tables that keep start-up light
(zoo manifest, plugin help lines, graph option choices) are checked against what they mirror.
"""
import importlib
import json
import pkgutil
import subprocess
import sys

import click
import pytest

HEAVY = {"ray", "matplotlib", "pandas"}


def _modules_after(args):
    """(exit code, stdout, sys.modules) after running the command line ``args`` in a fresh interpreter."""
    code = ("import json, sys\nfrom graphcost.cli import main\nrc = main(%r)\n"
            "print(json.dumps([rc, sorted(sys.modules)]))" % (list(args),))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    *out, last = done.stdout.splitlines()
    rc, modules = json.loads(last)
    return rc, "\n".join(out), set(modules)


@pytest.mark.parametrize("args, shows", [(["--help"], "analyze"), (["models"], "itnet"), (["--version"], "0.1.0")])
def test_light_commands_import_no_torch(args, shows):
    rc, out, modules = _modules_after(args)
    assert rc == 0 and shows in out
    assert "torch" not in modules and not HEAVY & modules


def test_help_lists_plugin_commands_without_importing_them():
    rc, out, modules = _modules_after(["--help"])
    assert {"map", "train", "report", "sweep", "view"} <= {line.split()[0] for line in out.splitlines()
                                                           if line.startswith("  ") and line.split()}
    assert "graphcost.crossbar" not in modules and "graphcost.reports" not in modules


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_analyze_imports_no_ray_matplotlib_or_pandas(fmt):
    rc, out, modules = _modules_after(["analyze", "itnet", "--param", "N=1", "--input", "32x32", "--format", fmt])
    assert rc == 0 and "torch" in modules
    assert not HEAVY & modules, HEAVY & modules


def test_import_graphcost_is_lazy():
    code = ("import sys, graphcost\nassert 'torch' not in sys.modules\n"
            "assert graphcost.analyze.__module__ == 'graphcost.analysis' and 'torch' in sys.modules\n"
            "assert graphcost.ops.OpCost is graphcost.OpCost\n"
            "print(sorted(set(graphcost.__all__) - set(dir(graphcost))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    import graphcost
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        graphcost.nonexistent


# --------------------------------------------------------------------------- the tables start-up reads
def test_zoo_manifest_equals_the_registered_builders():
    from graphcost import models
    from graphcost.models.manifest import ZOO, ZooItem

    for module in pkgutil.iter_modules(models.__path__):  # every family file, listed in the manifest or not
        importlib.import_module(f"{models.__name__}.{module.name}")
    registered = {name: ZooItem(entry.builder.__module__.rsplit(".", 1)[-1], entry.default_dataset, entry.description)
                  for name, entry in models.list_models().items()
                  if entry.builder.__module__.startswith(models.__name__ + ".")}
    wrong = {name: item for name, item in registered.items() if ZOO.get(name) != item}
    assert not wrong, "models/manifest.py ZOO must hold: " + "; ".join(f"{n!r}: {i!r}" for n, i in wrong.items())
    assert set(ZOO) == set(registered)


def test_plugin_help_lines_are_the_commands_own():
    from graphcost.cli import PLUGINS

    for name, (module, attribute, help_line) in PLUGINS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        for limit in (40, 80, 10 ** 6):
            assert click.Command(name, help=help_line).get_short_help_str(limit) == command.get_short_help_str(limit)


def test_graph_choices_are_the_exporters():
    from graphcost import cli, export

    assert cli.GRAPH_VIEWS == tuple(export.VIEWS) and cli.GRAPH_FORMATS == export.FORMATS
