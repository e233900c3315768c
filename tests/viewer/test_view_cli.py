"""``graphcost view``: the page embeds the numbers of ``--format json``; bad input writes nothing."""
import json
import os

import pytest

from clirun import run
from graphcost.viewer import read_blocks

SMALL_ITNET = ("itnet", "--shared", "--param", "N=3", "--param", "f=12", "--input", "64x96")


@pytest.fixture(scope="module")
def page_path(tmp_path_factory):
    """One page of a small shared ItNet, mapped on 64x64 arrays (written once for the module)."""
    from graphcost.cli import main

    path = tmp_path_factory.mktemp("view") / "itnet.html"
    assert main(["view", *SMALL_ITNET, "--crossbar", "64x64", "--arrays", "40", "--out", str(path)]) == 0
    return path


def test_page_embeds_the_numbers_of_analyze_json(capsys, page_path):
    rc, out, err = run(capsys, "analyze", *SMALL_ITNET, "--format", "json")
    assert rc == 0, err
    blocks = read_blocks(page_path.read_text())
    assert blocks["analysis"] == json.loads(out)


def test_page_embeds_the_numbers_of_map_json(capsys, page_path):
    rc, out, err = run(capsys, "map", *SMALL_ITNET, "--crossbar", "64x64", "--arrays", "40", "--format", "json")
    assert rc == 0, err
    assert read_blocks(page_path.read_text())["map"] == json.loads(out)


def test_graph_block_is_the_loop_graph_and_the_dag(page_path):
    import graphcost
    from graphcost.models import get_model
    from graphcost.passes.anytime import needed_calls

    graph = read_blocks(page_path.read_text())["graph"]
    t = graphcost.trace(get_model("itnet", dataset="camvid", shared=True, N=3, f=12), (1, 3, 64, 96))
    assert sorted(n["id"] for n in graph["loop"]["nodes"]) == sorted(t.loop_graph.nodes)
    assert len(graph["loop"]["edges"]) == t.loop_graph.number_of_edges()
    assert sorted(n["id"] for n in graph["dag"]["nodes"]) == sorted(t.dag.nodes)
    assert any(e[3] for e in graph["loop"]["edges"]), "a shared loop has back edges"
    dag_ids = [n["id"] for n in graph["dag"]["nodes"]]
    for out, node in zip(graph["outputs"], t.outputs):
        assert {dag_ids[i] for i in out["needed"]} == needed_calls(t, node)
    # the longest path to the last output holds exactly latency_layers weight layers
    a = read_blocks(page_path.read_text())["analysis"]
    last = graph["outputs"][-1]
    assert sum(graph["dag"]["nodes"][i]["weight"] for i in last["critical"]) == a["latency_layers"]


def test_page_is_self_contained_and_under_the_size_limit(page_path):
    text = page_path.read_text()
    assert "default-src 'none'" in text          # the page may not fetch anything
    assert "sourceMappingURL" not in text
    assert "<script src" not in text and "<link" not in text
    assert page_path.stat().st_size < 5e6


@pytest.mark.parametrize("args, message", [
    (("--out", "/nonexistent-folder/x.html"), "does not exist or is not writable"),
    (("--out", "report.txt"), "must be a .html file"),
    (("nets:no_such_builder", "--out", "OUT"), "no_such_builder"),
    (("viewnets:make_untraceable", "--tracer", "fx", "--out", "OUT"), "cannot trace"),  # auto: runs it eagerly
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(__file__)))
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    monkeypatch.chdir(tmp_path)
    args = tuple(str(tmp_path / "x.html") if a == "OUT" else a for a in args)
    if args[0].startswith("--"):
        args = ("nets:make_loopnet", "--input", "16x16") + args
    rc, out, err = run(capsys, "view", *args)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert os.listdir(tmp_path) == [] or os.listdir(tmp_path) == ["store.sqlite"]


def test_out_is_checked_before_the_model_is_built(capsys, tmp_path, monkeypatch):
    import graphcost.crossbar.run  # noqa: F401 - imported first, so it keeps the real build for later tests
    built = []
    monkeypatch.setattr("graphcost.resolve.build", lambda spec: built.append(spec))
    rc, _, err = run(capsys, "view", "itnet", "--out", str(tmp_path / "missing" / "x.html"))
    assert rc == 2 and "not writable" in err and built == []


def test_view_shares_every_hardware_option_of_map():
    from graphcost.crossbar.cli import map_command
    from graphcost.viewer.cli import MAP_OPTIONS, view

    shared = {p.name: p for p in view.params if p.name in MAP_OPTIONS}
    assert set(shared) == set(MAP_OPTIONS)
    assert all(any(p is q for q in map_command.params) for p in shared.values())
    # the hardware spec groups both declare: the same options, defaults alike but view's --crossbar (none)
    from graphcost.viewer.cli import SPEC_OPTIONS

    assert {"crossbar", "weight_bits", "arrays", "arrays_per_chip", "noise", "tech", "generate", "attention"} \
        <= set(SPEC_OPTIONS)
    mine, theirs = ({p.name: p for p in cmd.params if p.name in SPEC_OPTIONS} for cmd in (view, map_command))
    assert [n for n in SPEC_OPTIONS if mine[n].default != theirs[n].default] == ["crossbar"]
