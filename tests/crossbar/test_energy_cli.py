"""``graphcost map`` energy and area: the JSON contract, --tech / --preset, bad input."""
import json

import pytest

from graphcost.cli import main
from graphcost.crossbar.energy import AREA_COMPONENTS, ENERGY_COMPONENTS

LINEAR = ["torch.nn:Conv2d", "--param", "in_channels=3", "--param", "out_channels=16", "--param", "kernel_size=3",
          "--input", "32x32"]


def run(capsys, *args):
    rc = main(["map", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_energy_and_area_keys(capsys):
    rc, out, err = run(capsys, *LINEAR, "--crossbar", "128x128", "--format", "json")
    assert rc == 0, err
    d = json.loads(out)
    e, a = d["energy"], d["area"]
    assert {"per_frame_j", "per_output_j", "breakdown_j", "tops_per_w", "power_w"} <= set(e)
    assert set(e["breakdown_j"]) == set(ENERGY_COMPONENTS) and set(a["breakdown_mm2"]) == set(AREA_COMPONENTS)
    assert {"total_mm2", "breakdown_mm2"} <= set(a)
    assert e["per_frame_j"] == pytest.approx(sum(e["breakdown_j"].values()))
    assert d["layers"][0]["energy_j"] == pytest.approx(e["per_frame_j"])
    assert e["per_output_j"] == [pytest.approx(e["per_frame_j"])]
    assert e["power_w"] == pytest.approx(e["per_frame_j"] * d["throughput_fps"])


def test_tech_changes_energy_not_mapping(capsys, tmp_path):
    _, out_rram, _ = run(capsys, *LINEAR, "--format", "json")
    _, out_sram, _ = run(capsys, *LINEAR, "--tech", "sram-22nm", "--format", "json")
    rram, sram = json.loads(out_rram), json.loads(out_sram)
    assert rram["arrays_used"] == sram["arrays_used"]
    assert sram["energy"]["tech"] == "sram-22nm"  # 280 F² SRAM cells against 48 F² 1T1R cells
    assert sram["area"]["breakdown_mm2"]["arrays"] == pytest.approx(280 / 48 * rram["area"]["breakdown_mm2"]["arrays"])
    toml = tmp_path / "fast.toml"
    toml.write_text('base = "rram-22nm"\nadc_power_w_per_step = 0.0\nadc_power_w_static = 0.0\n'
                    'adc_column_power_w_per_siemens = 0.0\n')
    _, out, _ = run(capsys, *LINEAR, "--tech", str(toml), "--format", "json")
    assert json.loads(out)["energy"]["breakdown_j"]["adc"] == 0


def test_preset_sets_array_and_timing(capsys):
    rc, out, err = run(capsys, *LINEAR, "--preset", "neurosim-v1.3", "--format", "json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["crossbar"] == "128x128" and d["array"]["adc_bits"] == 5 and d["array"]["differential"] is False
    # synchronous: 8 input bits x (8 sensing + 8 weight shift-add + 8/4 input shift-add cycles) x 1.4 ns
    assert d["chip"]["mvm_latency_ns"] == pytest.approx(8 * (8 + 8 + 2) * 1.4)
    assert d["chip"]["layer_by_layer"] is True and d["chip"]["tile_side_arrays"] == 4
    assert d["throughput_fps"] == pytest.approx(1 / d["latency_s"])  # one image at a time


@pytest.mark.parametrize("args, flag", [
    (["--preset", "neurosim-v9"], "--preset"),
    (["--tech", "tpu-7nm"], "--tech"),
    (["--tech", "/nonexistent/chip.toml"], "--tech"),
])
def test_bad_tech_is_one_line_exit_2(capsys, args, flag):
    rc, out, err = run(capsys, *LINEAR, *args, "--format", "json")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and flag in err


def test_bad_toml_is_one_line_exit_2(capsys, tmp_path):
    for text in ("adc_energy = 1e-12\n", "leakage_w_per_array = -1.0\n", "node_nm = nan\n", "x = = 1\n"):
        path = tmp_path / "bad.toml"
        path.write_text(text)
        rc, out, err = run(capsys, *LINEAR, "--tech", str(path), "--format", "json")
        assert rc == 2 and out == "" and err.count("\n") == 1 and "--tech" in err, (text, err)
