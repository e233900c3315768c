"""graphcost report adaptive: histogram, accuracy vs mean cost over the threshold sweep, thumbnails."""
import json
import os

import pandas as pd

from tests.clirun import run


def test_report_adaptive_halting(tmp_path, capsys):
    out = tmp_path / "rep"
    rc, stdout, err = run(capsys, "report", "adaptive", "iterative-resnet", "--data", "digits", "--samples", "40",
                          "--out", str(out), "--format", "json")
    assert rc == 0, err
    names = set(os.listdir(out))
    assert {"adaptive-iterative-resnet.png", "adaptive-iterative-resnet.svg", "adaptive-iterative-resnet.csv",
            "adaptive-iterative-resnet-inputs.csv", "index.html"} <= names
    payload = json.loads(stdout)
    sweep = pd.read_csv(out / "adaptive-iterative-resnet.csv")
    # a lower ACT threshold halts earlier: mean MACs never rise as it falls, and stay within the fixed cost
    by_threshold = sweep.sort_values("threshold")
    assert by_threshold["mean_macs"].is_monotonic_increasing
    assert (sweep["mean_macs"] <= payload["adaptive"]["fixed_macs"]).all()
    # the sweep's point at the model's own threshold is the run itself
    own = sweep[sweep["threshold"] == 0.99].iloc[0]
    assert own["mean_macs"] == payload["adaptive"]["macs"]["mean"]
    assert own["score"] == payload["adaptive"]["top1"]
    per_input = pd.read_csv(out / "adaptive-iterative-resnet-inputs.csv")
    assert len(per_input) == 40 and per_input["macs"].mean() == payload["adaptive"]["macs"]["mean"]


def test_report_adaptive_bad_out(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    rc, stdout, err = run(capsys, "report", "adaptive", "iterative-resnet", "--data", "digits", "--out", str(target))
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_adaptive_figure_keeps_its_labels_off_the_other_plot():
    """The sweep plot's y label ("top-1") lies right of the histogram, which it used to overlap; no two
    axes of the figure overlap."""
    import matplotlib

    matplotlib.use("Agg")
    from graphcost.crossbar.adaptive_run import AdaptiveRequest, run_adaptive
    from graphcost.reports import adaptive
    from graphcost.resolve import ModelSpec

    result = run_adaptive(AdaptiveRequest(ModelSpec("iterative-resnet"), data="digits", samples=12))
    fig = adaptive.adaptive_figure(result, adaptive.sweep_frame(result, (0.5, 0.99)), "iterative-resnet")
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    left, right = fig.axes[:2]
    label = right.yaxis.label.get_window_extent(renderer)
    assert right.get_ylabel() == "top-1"
    assert label.x0 > left.get_tightbbox(renderer).x1
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
