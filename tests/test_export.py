"""Exports carry the analysis (issue 9, item 8): GraphML / DOT nodes hold macs, params, calls and
shapes as typed attributes, DOT labels break lines as Graphviz renders them, and JSON outputs keep
each output's name. Every test reads the written file back."""
import json
import os
import re
import xml.etree.ElementTree as ET

import networkx as nx
import pytest

from clirun import run
from graphcost.export import to_dot

HERE = os.path.dirname(__file__)
GRAPHML = "{http://graphml.graphdrawing.org/xmlns}"


@pytest.fixture(autouse=True)
def _nets_importable(monkeypatch):
    monkeypatch.syspath_prepend(HERE)


def _layers(capsys, model="nets:make_loopnet"):
    rc, out, err = run(capsys, "analyze", model, "--input", "32x32", "--per-layer", "--format", "json")
    assert rc == 0, err
    return json.loads(out)


def _write(capsys, tmp_path, name, *extra):
    path = tmp_path / name
    rc, _, err = run(capsys, "graph", "nets:make_loopnet", "--input", "32x32", "--out", str(path), *extra)
    assert rc == 0, err
    return path


def test_graphml_nodes_carry_typed_costs(capsys, tmp_path):
    path = _write(capsys, tmp_path, "g.graphml")
    types = {key.get("attr.name"): key.get("attr.type") for key in ET.parse(path).getroot().iter(GRAPHML + "key")
             if key.get("for") == "node"}
    assert {types[k] for k in ("macs", "params", "calls", "other_ops")} == {"long"}
    assert types["shapes"] == "string"
    g = nx.read_graphml(path)
    analysis = _layers(capsys)
    for layer in analysis["layers"]:
        node = g.nodes[layer["name"]]
        assert (node["macs"], node["params"], node["calls"]) == (layer["macs"], layer["params"], layer["calls"])
        assert isinstance(node["macs"], int)
    assert g.nodes["blocks.0.c1"]["shapes"] == "1x16x16x16"
    assert g.nodes["stem"]["shapes"] == "1x16x16x16" and g.nodes["head"]["shapes"] == "1x5x16x16"


def test_dag_view_has_one_call_per_node_and_the_total(capsys, tmp_path):
    g = nx.read_graphml(_write(capsys, tmp_path, "dag.graphml", "--view", "dag"))
    assert {d["calls"] for _, d in g.nodes(data=True)} == {1}
    assert sum(d["macs"] for _, d in g.nodes(data=True)) == _layers(capsys)["macs"]


# --------------------------------------------------------------------------- DOT, read as Graphviz reads it
_STRING = r'"(?:[^"\\]|\\.)*"'
_NODE = re.compile(rf'^  ({_STRING}) \[(.*)\];$', re.M)
_ATTR = re.compile(rf'(\w+)=({_STRING}|[^,\]]+)')


def _unescape(text: str) -> str:
    """A quoted DOT label as Graphviz renders it: \\" a quote, \\\\ a backslash, \\n a line break."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text[1:-1])


def _dot_nodes(text: str) -> dict:
    return {_unescape(name): {key: _unescape(value) if value.startswith('"') else int(value) if value.isdigit()
                              else value
                              for key, value in _ATTR.findall(attrs)}
            for name, attrs in _NODE.findall(text)}


def test_dot_labels_break_lines_and_nodes_carry_costs(capsys, tmp_path):
    nodes = _dot_nodes(_write(capsys, tmp_path, "g.dot").read_text())
    conv = nodes["blocks.0.c1"]
    assert conv["label"].split("\n")[:2] == ["blocks.0.c1", "conv2d x3"], conv["label"]
    assert "\\" not in conv["label"]  # no escape left for Graphviz to print verbatim
    layer = next(x for x in _layers(capsys)["layers"] if x["name"] == "blocks.0.c1")
    assert (conv["macs"], conv["params"], conv["calls"]) == (layer["macs"], layer["params"], 3)
    assert conv["shapes"] == "1x16x16x16"


def test_dot_label_escapes_quotes_and_backslashes():
    g = nx.DiGraph()
    g.add_node('odd "name" \\ here', op="conv2d", calls=2, macs=5, params=0, shapes="1x2")
    label = _dot_nodes(to_dot(g))['odd "name" \\ here']["label"]
    assert label.split("\n") == ['odd "name" \\ here', "conv2d x2", "5 MACs, 0 params", "1x2"]


# --------------------------------------------------------------------------- JSON output names
@pytest.mark.parametrize("model, names", [
    ("nets:make_dict_heads", ["out", "aux.0", "aux.1"]),
    ("nets:make_anytime", ["0", "1", "2"]),
    ("nets:make_loopnet", ["output"]),
])
def test_json_outputs_keep_their_names(capsys, model, names):
    outputs = _layers(capsys, model)["outputs"]
    assert [o["name"] for o in outputs] == names
    assert [o["index"] for o in outputs] == list(range(1, len(names) + 1))
