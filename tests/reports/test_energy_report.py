"""``graphcost report energy``: files, numbers equal to the library's, and bad input before any work."""
import json
import os

import pandas as pd
import pytest

from graphcost.crossbar.energy import ENERGY_COMPONENTS, energy
from graphcost.crossbar.mapping import map_model
from graphcost.crossbar.perf import performance
from graphcost.crossbar.specs import ArraySpec, ChipSpec
from graphcost.crossbar.tech import TECH_PRESETS
from graphcost.models import get_model
from clirun import run

MODELS = ("itnet@shared=True,N=3,f=16", "itnet@shared=False,N=3,f=16")


def test_energy_report_writes_figures_and_matches_the_library(capsys, tmp_path):
    out_dir = tmp_path / "energy"
    rc, out, err = run(capsys, "report", "energy", *MODELS, "--input", "64x96", "--tech", "sram-22nm",
                       "--out", str(out_dir), "--no-store", "--format", "json")
    assert rc == 0, err
    assert sorted(os.listdir(out_dir)) == ["energy.csv", "energy.png", "energy.svg", "energy_breakdown.csv",
                                           "index.html"]
    data = json.loads(out)
    page = (out_dir / "index.html").read_text()
    assert "<svg" in page and "energy_breakdown.csv" in page and "<?xml" not in page
    assert all(f"{m['energy_j']:.6g}" in page for m in data["models"])  # the summary table holds the JSON's numbers
    labels = ["itnet (shared) N=3,f=16", "itnet (independent) N=3,f=16"]
    assert data["tech"] == "sram-22nm" and [m["model"] for m in data["models"]] == labels
    model = get_model("itnet", dataset="camvid", shared=True, N=3, f=16)
    perf = performance(map_model(model, (1, 3, 64, 96), ArraySpec(256, 256)), ChipSpec())
    expected = energy(perf, TECH_PRESETS["sram-22nm"])
    assert data["models"][0]["energy_j"] == pytest.approx(expected.per_frame_j)
    breakdown = pd.read_csv(out_dir / "energy_breakdown.csv")
    assert list(breakdown.columns[-len(ENERGY_COMPONENTS):]) == [f"{k}_j" for k in ENERGY_COMPONENTS]
    assert breakdown["adc_j"][0] == pytest.approx(expected.breakdown_j["adc"])
    points = pd.read_csv(out_dir / "energy.csv")
    # below the arrays it needs, the independent network pays rewrites every frame
    small = points[(points["label"] == labels[1]) & (~points["fits"])]
    assert len(small) and (small["write_j"] > 0).all()
    assert (points[points["fits"]]["write_j"] == 0).all()


def test_bad_tech_fails_before_any_work(capsys, tmp_path):
    out_dir = tmp_path / "never"
    rc, out, err = run(capsys, "report", "energy", *MODELS, "--tech", "tpu", "--out", str(out_dir), "--no-store")
    assert rc == 2 and err.count("\n") == 1 and "--tech" in err
    assert not out_dir.exists()
