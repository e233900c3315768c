import json
import os

import networkx as nx
import pytest

from clirun import run

HERE = os.path.dirname(__file__)


def test_analyze_json_has_the_contract_keys(capsys, monkeypatch):
    monkeypatch.syspath_prepend(HERE)
    rc, out, err = run(capsys, "analyze", "nets:make_loopnet", "--param", "n=3", "--input", "64x64", "--format", "json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["model"] == "nets:make_loopnet"
    assert d["input_shape"] == [1, 3, 64, 64]
    assert d["graph_size_bytes"] == 475_156
    assert d["latency_layers"] == 8
    assert [o["index"] for o in d["outputs"]] == [1]
    assert {"index", "macs", "latency_layers", "graph_size_bytes"} <= set(d["outputs"][0])
    conv = next(layer for layer in d["layers"] if layer["name"] == "blocks.0.c1")
    assert conv["calls"] == 3 and conv["params"] == 16 * 16 * 9
    assert {"name", "op", "calls", "params", "macs", "in_bytes", "out_bytes"} <= set(conv)


def test_analyze_table_and_csv(capsys, monkeypatch):
    monkeypatch.syspath_prepend(HERE)
    rc, out, _ = run(capsys, "analyze", "nets:make_loopnet", "--input", "32x32", "--per-layer")
    assert rc == 0 and "MACs" in out and "not FLOPs" in out and "blocks.0.c1" in out
    rc, out, _ = run(capsys, "analyze", "nets:make_loopnet", "--input", "32x32", "--per-layer", "--format", "csv")
    assert rc == 0 and out.splitlines()[0].startswith("name,op,kind,calls,params,macs")


def test_analyze_torchvision_never_downloads(capsys):
    rc, out, err = run(capsys, "analyze", "torchvision:resnet18", "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["macs"] == 1_814_073_344


@pytest.mark.parametrize("args,needle", [
    (["analyze", "no-such-model"], "unknown model"),
    (["analyze", "no_such_pkg.mod:build"], "cannot import"),
    (["analyze", "torchvision:resnet18", "--input", "256x"], "--input"),
    (["analyze", "torchvision:resnet18", "--input", "0x256"], "positive"),
    (["analyze", "torchvision:resnet18", "--param", "bogus=1"], "bogus"),
    (["analyze", "torchvision:resnet18", "--param", "novalue"], "KEY=VALUE"),
    (["analyze", "enet", "--param", "bogus=1"], "no parameter 'bogus'"),
    (["analyze", "enet", "--dataset", "mars"], "mars"),
    (["analyze", "enet", "--format", "xml"], "xml"),
    (["analyze", "enet", "--shared"], "shared"),
    (["analyze", "torchvision:no_such_net"], "no model"),
    (["analyze", "--no-such-flag"], "no-such-flag"),
    (["analyze"], "give a MODEL"),
    (["analyze", "--input", "64x64"], "give a MODEL"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, needle):
    rc, out, err = run(capsys, *args)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err and "Traceback" not in err


def test_untraceable_model_names_the_module(capsys, monkeypatch):
    monkeypatch.syspath_prepend(HERE)
    rc, _, err = run(capsys, "analyze", "nets:DataDependent", "--input", "8x8", "--tracer", "fx")
    assert rc == 2 and "DataDependent" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("ext", [".graphml", ".dot"])
def test_graph_export(capsys, monkeypatch, tmp_path, ext):
    monkeypatch.syspath_prepend(HERE)
    path = tmp_path / f"g{ext}"
    rc, out, err = run(capsys, "graph", "nets:make_loopnet", "--input", "32x32", "--out", str(path))
    assert rc == 0, err
    text = path.read_text()
    if ext == ".graphml":
        g = nx.read_graphml(path)
        assert g.has_edge("add", "blocks.0.c1")
        assert g.nodes["blocks.0.c1"]["calls"] == 3
    else:
        assert text.startswith("digraph") and "style=dashed" in text


def test_graph_export_bad_path_writes_nothing(capsys, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(HERE)
    rc, _, err = run(capsys, "graph", "nets:make_loopnet", "--out", str(tmp_path / "nope" / "g.graphml"))
    assert rc == 2 and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, "graph", "nets:make_loopnet", "--out", str(tmp_path / "g.png"))
    assert rc == 2 and not (tmp_path / "g.png").exists()


def test_models_lists_the_zoo(capsys):
    rc, out, _ = run(capsys, "models")
    assert rc == 0 and "enet" in out


def test_graph_size_counts_each_tensor_at_its_own_dtype(capsys, monkeypatch):
    """A float32 model given int64 token ids: ids 8 bytes an element, weights and activations 4."""
    monkeypatch.syspath_prepend(HERE)
    rc, out, err = run(capsys, "analyze", "nets:make_two_inputs", "--input", "1x16:int64", "--per-layer",
                       "--all-layers", "--format", "json")
    assert rc == 0, err
    embed = next(layer for layer in json.loads(out)["layers"] if layer["name"] == "embed")
    assert embed["in_bytes"] == 16 * 8  # the ids
    assert embed["param_bytes"] == 50 * 16 * 4 and embed["out_bytes"] == 16 * 16 * 4
    assert embed["graph_size_bytes"] == 16 * 8 + 50 * 16 * 4 + 16 * 16 * 4


def test_a_signal_during_a_plugin_import_arrives_after_it(tmp_path, monkeypatch):
    """A plugin command's module imports torch; a Ctrl-C inside a C extension's start would abort the process
    (SIGABRT), so it is held while the module imports and raised as the import ends: the module is whole."""
    import sys

    import click

    from graphcost.cli import LazyGroup

    (tmp_path / "slow_plugin.py").write_text(
        "import os, signal, click\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "whole = True\n"
        "command = click.Command('slow', callback=lambda: None)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    group = LazyGroup(lazy={"slow": ("slow_plugin", "command", "a plugin")})
    with pytest.raises(KeyboardInterrupt):
        group.get_command(click.Context(group), "slow")
    assert sys.modules["slow_plugin"].whole
    sys.modules.pop("slow_plugin", None)
