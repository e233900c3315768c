import json
import os

import pandas as pd
import pytest

import graphcost
from graphcost.crossbar.mapping import map_model
from graphcost.crossbar.specs import ArraySpec
from graphcost.models import get_model
from clirun import run


def test_anytime_report_matches_the_anytime_pass(capsys, tmp_path):
    acc = tmp_path / "acc.csv"
    acc.write_text("output,miou\n1,40.0\n4,55.5\n")
    out_dir = tmp_path / "any"
    rc, out, err = run(capsys, "report", "anytime", "itnet", "--shared", "--param", "N=4", "--param", "f=16",
                       "--input", "64x96", "--out", str(out_dir), "--accuracy-table", str(acc), "--format", "json")
    assert rc == 0, err
    data = json.loads(out)
    ref = graphcost.analyze(get_model("itnet", dataset="camvid", shared=True, N=4, f=16), (1, 3, 64, 96))
    assert [o["macs"] for o in data["outputs"]] == [o.macs for o in ref.outputs]
    assert [o["latency_layers"] for o in data["outputs"]] == [o.latency_layers for o in ref.outputs]
    assert [o["graph_size_bytes"] for o in data["outputs"]] == [o.graph_size_bytes for o in ref.outputs]
    assert [o["miou"] for o in data["outputs"]] == [40.0, None, None, 55.5]
    assert sorted(os.listdir(out_dir)) == ["anytime-itnet-shared.csv", "anytime-itnet-shared.png",
                                           "anytime-itnet-shared.svg"]
    csv = pd.read_csv(out_dir / "anytime-itnet-shared.csv")
    assert list(csv["macs"]) == [o.macs for o in ref.outputs]
    rc, out, err = run(capsys, "report", "anytime", "itnet", "--param", "N=2", "--param", "f=8", "--input", "64x96",
                       "--out", str(tmp_path / "t"))
    assert rc == 0 and "cost per output" in out


def test_crossbar_report_several_models_in_one_plot(capsys, tmp_path):
    out_dir = tmp_path / "xb"
    rc, out, err = run(capsys, "report", "crossbar", "itnet@shared=True,N=4,f=16", "itnet@shared=False,N=4,f=16",
                       "enet", "--input", "64x96", "--crossbar", "128x128", "--out", str(out_dir), "--format", "json",
                       "--workers", "1")
    assert rc == 0, err
    data = json.loads(out)
    needed = {m["model"]: m["arrays_needed"] for m in data["models"]}
    shared_ref = map_model(get_model("itnet", dataset="camvid", shared=True, N=4, f=16), (1, 3, 64, 96),
                           ArraySpec(128, 128))
    assert needed["itnet (shared) N=4,f=16"] == shared_ref.arrays_used
    # the loop-keeping graph needs fewer arrays than the unrolled one: the paper's point
    assert needed["itnet (shared) N=4,f=16"] < needed["itnet (independent) N=4,f=16"]
    assert sorted(os.listdir(out_dir)) == ["crossbar.csv", "crossbar.png", "crossbar.svg", "index.html"]
    points = pd.read_csv(out_dir / "crossbar.csv")
    for label, part in points.groupby("label"):
        fits = part[part["arrays"] >= part["arrays_needed"]]
        assert fits["fits"].all() and not part[part["arrays"] < part["arrays_needed"]]["fits"].any()
        assert (part[~part["fits"]]["rewritten_arrays"] > 0).all()


@pytest.mark.parametrize("args,needle", [
    (["report", "crossbar", "enet", "--crossbar", "0x4"], "--crossbar"),
    (["report", "crossbar", "enet@"], "KEY=VALUE"),
    (["report", "crossbar", "enet@shared=True"], "no shared"),
    (["report", "anytime", "itnet", "--accuracy-table", "/no/such.csv"], "does not exist"),
])
def test_report_bad_input_is_one_line_exit_2(capsys, tmp_path, args, needle):
    rc, out, err = run(capsys, *args, "--out", str(tmp_path / "o"))
    assert rc == 2 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "o").exists() or os.listdir(tmp_path / "o") == []  # nothing half-written
