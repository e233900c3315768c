import math
import os

import pandas as pd
import pytest

import graphcost
from graphcost.models import get_model
from graphcost.reports import fig5
from clirun import run


def test_literature_table_cites_every_number():
    table = fig5.load_accuracy_table()
    assert set(fig5.LITERATURE_COLUMNS) <= set(table.columns)
    with_value = table[table["miou"].notna()]
    assert len(with_value) >= 10
    assert with_value["source"].str.len().min() > 10  # every number names its paper
    assert set(with_value["split"]) <= {"test", "val"}
    enet = with_value[(with_value["model"] == "enet") & (with_value["dataset"] == "camvid")]
    assert list(enet["miou"]) == [51.3]
    itnet = with_value[(with_value["model"] == "itnet") & (with_value["dataset"] == "camvid")
                       & (with_value["split"] == "test")]
    assert sorted(itnet["variant"]) == ["independent", "shared"] and set(itnet["miou"]) == {64.2}
    # every zoo model of the figure has a row, with or without a number
    assert {"itnet", "enet", "espnetv2", "cgnet", "recunet"} <= set(table["model"])


def test_fig5_camvid_row_writes_png_svg_csv_matching_analyze(capsys, tmp_path):
    out_dir = tmp_path / "fig"
    acc = tmp_path / "acc.csv"
    # per-output mIoU for the shared ItNet: the figure draws its anytime curve from them
    acc.write_text("model,variant,dataset,output,miou,split\n"
                   + "".join(f"itnet,shared,camvid,{n},{50 + n},test\n" for n in range(1, 17)))
    rc, out, err = run(capsys, "report", "fig5", "--dataset", "camvid", "--out", str(out_dir),
                       "--accuracy-table", str(acc))
    assert rc == 0, err
    assert sorted(os.listdir(out_dir)) == ["fig5.csv", "fig5.png", "fig5.svg", "index.html"]
    assert (out_dir / "fig5.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (out_dir / "fig5.svg").read_text()[:500]
    points = pd.read_csv(out_dir / "fig5.csv")
    assert set(points["dataset"]) == {"camvid"}

    enet = points[points["model"] == "enet"].iloc[0]
    ref = graphcost.analyze(get_model("enet", dataset="camvid"), (1, 3, 360, 480))
    assert (enet["macs"], enet["params"], enet["graph_size_bytes"], enet["latency_layers"]) == (
        ref.macs, ref.params, ref.graph_size_bytes, ref.latency_layers)
    assert enet["miou"] == 51.3 and enet["plotted_as"] == "point"

    shared = points[(points["model"] == "itnet") & (points["variant"] == "shared")].sort_values("output")
    ref = graphcost.analyze(get_model("itnet", dataset="camvid", shared=True, N=16, L=3, K=1, f=51),
                            (1, 3, 360, 480))
    assert list(shared["macs"]) == [o.macs for o in ref.outputs]
    assert list(shared["graph_size_bytes"]) == [o.graph_size_bytes for o in ref.outputs]
    assert list(shared["latency_layers"]) == [o.latency_layers for o in ref.outputs]
    assert list(shared["params"]) == [o.params for o in ref.outputs]  # output n skips the other classifiers
    assert shared["params"].max() < ref.params
    assert set(shared["plotted_as"]) == {"anytime"} and list(shared["miou"]) == [50 + n for n in range(1, 17)]

    independent = points[(points["model"] == "itnet") & (points["variant"] == "independent")]
    last = independent[independent["output"] == 16].iloc[0]
    assert last["miou"] == 64.2 and last["plotted_as"] == "point"  # literature value on the last output
    assert (independent[independent["output"] < 16]["plotted_as"] == "cost-only").all()
    assert math.isnan(points[points["model"] == "recunet"]["miou"].iloc[0])
    assert len(points[points["model"] == "espnetv2"]) == 4  # every width s


def test_fig5_bad_inputs_are_one_line(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, out, err = run(capsys, "report", "fig5", "--out", str(blocker))
    assert rc == 2 and err.count("\n") == 1 and "--out" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("model,miou\nenet,50\n")
    rc, out, err = run(capsys, "report", "fig5", "--out", str(tmp_path / "o"), "--accuracy-table", str(bad))
    assert rc == 2 and err.count("\n") == 1 and "variant, dataset" in err
    assert not (tmp_path / "o").exists()  # nothing written, not even the folder
