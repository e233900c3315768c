"""The package's import graph: one-way, as DESIGN.md draws it.

Every ``import`` / ``from ... import`` in the installed package's source (``graphcost/``, and
``models/``, ``crossbar/``, ``reports/``, installed as ``graphcost.models`` etc.), at module level
or inside a function, is an edge; the graph must have no cycle, and library rooms must not
import the CLI's rendering room.
"""
import ast
import os

import networkx as nx
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: installed package -> source folder (setup.cfg's package_dir)
ROOTS = {"graphcost": "graphcost", "graphcost.models": "models", "graphcost.crossbar": "crossbar",
         "graphcost.reports": "reports"}
#: the modules of the CLI room (and the plugin commands of the other rooms)
CLI = {"graphcost.cli", "graphcost.cli_options", "graphcost.render", "graphcost.export", "graphcost.viewer.cli",
       "graphcost.crossbar.cli", "graphcost.crossbar.cli_specs", "graphcost.crossbar.train_cli",
       "graphcost.crossbar.adaptive_cli", "graphcost.reports.cli"}


def _modules():
    found = {}
    for package, folder in ROOTS.items():
        for directory, subdirs, files in os.walk(os.path.join(REPO, folder)):
            subdirs[:] = [d for d in subdirs if d not in ("__pycache__", "static", "vendor")]
            for file in files:
                if file.endswith(".py"):
                    rel = os.path.relpath(os.path.join(directory, file), os.path.join(REPO, folder))[:-3]
                    parts = [p for p in rel.split(os.sep) if p != "__init__"]
                    found[".".join([package, *parts])] = os.path.join(directory, file)
    return found


def _imported(name, path, modules):
    """The package modules ``name`` (at ``path``) imports, resolved to the deepest module that exists."""
    here = name.split(".") if path.endswith("__init__.py") else name.split(".")[:-1]
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                yield target


@pytest.fixture(scope="module")
def import_graph():
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in _imported(name, path, modules))
    return graph


def test_the_walk_sees_the_core_imports(import_graph):
    """The walk finds what it must (else an empty graph would pass the cycle test)."""
    assert import_graph.has_edge("graphcost.tracing", "graphcost.capture_fx")
    assert import_graph.has_edge("graphcost.viewer", "graphcost.analysis")
    assert import_graph.has_edge("graphcost.crossbar.training", "graphcost.fileio")  # an import inside a function
    assert import_graph.number_of_nodes() > 70


def test_no_import_cycle(import_graph):
    cycles = list(nx.simple_cycles(import_graph))
    assert cycles == [], f"import cycles: {cycles}"


def test_only_cli_modules_import_the_cli_room(import_graph):
    offenders = sorted((user, cli) for cli in ("graphcost.render", "graphcost.cli_options")
                       for user in import_graph.predecessors(cli) if user not in CLI)
    assert offenders == []


def test_the_core_does_not_import_other_rooms(import_graph):
    """DESIGN.md: the core never imports explore/, runtime/, crossbar/ or reports/ (nor the model resolver)."""
    core = {m for m in import_graph if m.count(".") == 1 and m not in CLI and m not in (
        "graphcost.resolve", "graphcost.models", "graphcost.crossbar", "graphcost.reports", "graphcost.explore",
        "graphcost.runtime", "graphcost.viewer")} | {m for m in import_graph if m.startswith("graphcost.passes")}
    rooms = ("graphcost.explore", "graphcost.runtime", "graphcost.crossbar", "graphcost.reports", "graphcost.resolve")
    assert sorted((m, t) for m in core for t in import_graph.successors(m) if t.startswith(rooms)) == []


def test_tracing_keeps_trace_and_trace_only():
    """The capture paths and the graph builders live in their own modules (capture_*.py, graphs.py)."""
    source = open(os.path.join(REPO, "graphcost", "tracing.py")).read()
    assert len(source.splitlines()) <= 300
    tree = ast.parse(source)
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert classes == ["Trace"]


def test_message_helpers_are_written_once():
    """An exception's first line and a shape's text have one helper each (graphcost.errors)."""
    copies = []
    for name, path in _modules().items():
        if name == "graphcost.errors":
            continue
        text = open(path).read()
        if "splitlines() or [" in text or "splitlines()[0] if str(exc)" in text or '"x".join(str(' in text:
            copies.append(name)
    assert copies == []


def test_design_lists_every_core_module():
    """DESIGN.md's rooms table names every module of graphcost/ (the core, the resolver and the CLI room)."""
    design = open(os.path.join(REPO, "DESIGN.md")).read()
    files = sorted(f for f in os.listdir(os.path.join(REPO, "graphcost")) if f.endswith(".py"))
    assert [f for f in files if f not in design] == []
