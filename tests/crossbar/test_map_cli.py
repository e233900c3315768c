"""``graphcost map``: JSON contract, table, CSV, and one clear line + exit 2 for bad specs."""
import json

import pytest
import torch

from graphcost.cli import main

CONV = ["torch.nn:Conv2d", "--param", "in_channels=3", "--param", "out_channels=16", "--param", "kernel_size=3",
        "--input", "32x32"]


def run(capsys, args):
    rc = main(["map", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_contract(capsys):
    rc, out, err = run(capsys, CONV + ["--crossbar", "256x256", "--format", "json"])
    assert rc == 0, err
    d = json.loads(out)
    assert {"arrays_used", "utilization", "fits", "throughput_fps", "latency_s", "layers", "outputs"} <= set(d)
    assert d["arrays_used"] == 1 and d["fits"] is True and d["crossbar"] == "256x256"
    (layer,) = d["layers"]
    assert {"name": layer["name"], "rows": layer["rows"], "cols": layer["cols"], "tiles": layer["tiles"],
            "mvms": layer["mvms"]} == {"name": "model", "rows": 27, "cols": 128, "tiles": 1, "mvms": 30 * 30}
    assert layer["utilization"] == pytest.approx(27 * 128 / 65536)
    assert d["throughput_fps"] == pytest.approx(1 / (900 * 100e-9))
    assert d["latency_s"] == pytest.approx(900 * 100e-9)
    assert "accuracy" not in d


def test_spec_options_reach_the_mapping(capsys):
    rc, out, _ = run(capsys, CONV + ["--crossbar", "16x64", "--weight-bits", "4", "--cell-bits", "1",
                                     "--no-differential", "--analog-bias", "--mvm-latency-ns", "50", "--format",
                                     "json"])
    assert rc == 0
    d = json.loads(out)
    layer = d["layers"][0]
    assert (layer["rows"], layer["cols"], layer["tiles"]) == (28, 64, 2 * 1)
    assert d["array"]["analog_bias"] is True and d["chip"]["mvm_latency_ns"] == 50
    assert d["latency_s"] == pytest.approx(900 * 50e-9)


def test_too_few_arrays_does_not_fit(capsys):
    rc, out, _ = run(capsys, ["torch.nn:Conv2d", "--param", "in_channels=64", "--param", "out_channels=64",
                              "--param", "kernel_size=3", "--input", "64x8x8", "--arrays", "2", "--format", "json"])
    assert rc == 0
    d = json.loads(out)
    assert d["arrays_needed"] == 3 * 2 and d["fits"] is False and d["rewrite_s"] > 0
    assert d["throughput_fps"] < d["resident_fps"] / 10


def test_table_prints_arrays_fit_throughput_and_latency_in_seconds(capsys):
    rc, out, _ = run(capsys, CONV + ["--arrays", "1", "--per-layer"])
    assert rc == 0
    for needle in ("arrays used", "fits", "throughput", "frames/s", "latency", "9e-05 s", "layers"):
        assert needle in out


def test_csv(capsys):
    rc, out, _ = run(capsys, CONV + ["--format", "csv", "--per-layer"])
    assert rc == 0
    header, row = out.strip().splitlines()
    assert header.startswith("name,op,kind,rows,cols,tiles") and row.startswith("model,conv2d,conv,27,128,1")


def test_replicate_target_fps(capsys):
    rc, out, _ = run(capsys, CONV + ["--replicate", "--target-fps", "50000", "--format", "json"])
    assert rc == 0
    d = json.loads(out)
    assert d["arrays_for_target"] == 5 and d["throughput_fps"] >= 50000  # 90 us / 20 us -> 5 copies


@pytest.mark.parametrize("extra, needle", [
    (["--crossbar", "256x"], "--crossbar"),
    (["--crossbar", "0x256"], "--crossbar"),
    (["--weight-bits", "-1"], "--weight-bits"),
    (["--cell-bits", "-2"], "--cell-bits"),
    (["--weight-bits", "2", "--cell-bits", "4"], "cannot exceed"),
    (["--arrays", "0"], "--arrays"),
    (["--noise", "bogus=1"], "Invalid value for '--noise': unknown noise key"),
    (["--target-fps", "10"], "needs replication"),
    (["--replicate"], "replication (replicate) needs a chip size"),
    (["--weights", "/nonexistent/weights.pt"], "--weights"),
    (["--accuracy", "--data", "camvid:/nonexistent/camvid"], "does not exist"),
    (["--accuracy", "--data", "cityscapes:"], "needs a path"),
    (["--accuracy", "--data", "imagenet"], "--data"),
    (["--depthwise", "zigzag"], "depthwise"),
    (["--address", "auto"], "ray executor"),
])
def test_bad_specs_are_one_line_and_exit_2(capsys, extra, needle):
    rc, out, err = run(capsys, CONV + extra)
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphcost: error:") and needle in lines[0], err


def test_map_itnet_as_written(capsys):
    """`graphcost map --crossbar 256x256` maps the default ItNet (CamVid)."""
    rc, out, err = run(capsys, ["--crossbar", "256x256", "--format", "json"])
    assert rc == 0, err
    d = json.loads(out)
    assert d["model"] == "itnet" and d["input_shape"] == [1, 3, 360, 480]
    assert d["arrays_used"] > 0 and d["throughput_fps"] > 0 and d["latency_s"] > 0
    assert len(d["outputs"]) > 1  # one per iteration
    latencies = [o["latency_s"] for o in d["outputs"]]
    assert latencies == sorted(latencies)


def test_shared_itnet_needs_fewer_arrays_on_the_cli(capsys):
    small = ["itnet", "--param", "N=4", "--param", "f=16", "--input", "64x96", "--format", "json"]
    _, shared, _ = run(capsys, small + ["--shared"])
    _, independent, _ = run(capsys, small + ["--independent"])
    assert json.loads(independent)["arrays_used"] > 2 * json.loads(shared)["arrays_used"]


def test_accuracy_json(capsys):
    rc, out, err = run(capsys, ["itnet", "--param", "N=2", "--input", "32x48", "--accuracy", "--samples", "2",
                                "--trials", "2", "--noise", "pcm", "--format", "json"])
    assert rc == 0, err
    acc = json.loads(out)["accuracy"]
    assert {"miou", "fidelity_miou", "std", "outputs"} <= set(acc)
    assert 0 <= acc["miou"] <= 1 and 0 <= acc["fidelity_miou"] <= 1 and acc["std"] >= 0
    assert len(acc["outputs"]) == 2 and acc["miou"] == acc["outputs"][-1]["miou"]  # headline: the last output
    # The float forward is the reference every trial is compared with: it does not depend on the noise
    # model; noiseless devices (quantisation only, so not the float score) are the same in every trial.
    torch.manual_seed(1234)  # the untrained ItNet's initial weights come from --seed, not the global generator
    rc, out, err = run(capsys, ["itnet", "--param", "N=2", "--input", "32x48", "--accuracy", "--samples", "2",
                                "--trials", "2", "--noise", "none", "--format", "json"])
    assert rc == 0, err
    ideal = json.loads(out)["accuracy"]
    for o, i in zip(acc["outputs"], ideal["outputs"]):
        assert i["float_miou"] == o["float_miou"]
    assert ideal["std"] == 0.0 and ideal["fidelity_std"] == 0.0
    rc, out, err = run(capsys, ["itnet", "--param", "N=2", "--input", "32x48", "--accuracy", "--samples", "2",
                                "--trials", "2", "--noise", "none", "--seed", "1", "--format", "json"])
    assert rc == 0, err
    assert json.loads(out)["accuracy"]["float_miou"] != ideal["float_miou"]  # another seed, other initial weights


def test_unreadable_dataset_is_one_line_and_exit_2(capsys, tmp_path):
    rc, out, err = run(capsys, CONV + ["--accuracy", "--data", f"camvid:{tmp_path}"])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphcost: error:") and "CamVid" in lines[0]


def test_bad_weights_file_is_one_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    rc, out, err = run(capsys, CONV + ["--weights", str(bad)])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot read weights file" in lines[0]
