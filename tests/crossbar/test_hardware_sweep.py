"""``hw.`` keys in sweep grids (co-design), and the Pareto front."""
import json

import pytest

from graphcost import UserError, trace
from graphcost.crossbar.hardware import hardware, hardware_columns
from graphcost.explore import SweepSpec, pareto_front, parse_grid, run_sweep
from graphcost.models import get_model
from clirun import run

SHAPE = (1, 3, 32, 48)


def spec(*axes, **kw):
    return SweepSpec(model="itnet", grid=parse_grid(list(axes)), fixed=(("L", 1), ("K", 1), ("f", 8)),
                     input_shape=SHAPE, shared=True, **kw)


def test_hardware_axes_reach_the_mapping_and_energy():
    result = run_sweep(spec("N=1,2", "hw.crossbar=64x64,128x128", "hw.adc_bits=4,6"))
    assert len(result.rows) == 8 and not result.failed
    by = {(r["N"], r["hw.crossbar"], r["hw.adc_bits"]): r for r in result.rows}
    t = trace(get_model("itnet", dataset="camvid", shared=True, N=2, L=1, K=1, f=8), SHAPE)
    expected = hardware_columns(t, *hardware({"hw.crossbar": "64x64", "hw.adc_bits": 6}))
    row = by[(2, "64x64", 6)]
    assert {k: row[k] for k in expected} == pytest.approx(expected)
    assert row["crossbar"] == "64x64" and by[(2, "128x128", 6)]["crossbar"] == "128x128"
    # same model and array, more ADC bits: more energy, same MVMs and throughput
    assert by[(2, "64x64", 6)]["energy_j"] > by[(2, "64x64", 4)]["energy_j"]
    assert by[(2, "64x64", 6)]["throughput_fps"] == by[(2, "64x64", 4)]["throughput_fps"]
    assert by[(2, "64x64", 4)]["arrays_used"] > by[(2, "128x128", 4)]["arrays_used"]


def test_hardware_points_have_their_own_store_keys():
    from graphcost.explore import point_task, resolve_spec

    resolved = resolve_spec(spec("N=1", "hw.adc_bits=4,6"))
    keys = {point_task(resolved, p).key() for p in resolved.points()}
    assert len(keys) == 2


@pytest.mark.parametrize("axis, message", [
    ("hw.adc_bit=4,6", "unknown hardware key 'hw.adc_bit'"),
    ("hw.crossbar=0x5", "hw.crossbar"),
    ("hw.adc_bits=0", "hw.adc_bits"),
    ("hw.tech=tpu", "unknown tech"),
    ("hw.leakage_w_per_array=-1", "hw.leakage_w_per_array"),
])
def test_bad_hardware_axes_fail_before_any_work(axis, message):
    with pytest.raises(UserError, match=message):
        run_sweep(spec("N=1", axis), evaluate=lambda task: pytest.fail("evaluated a point"))


def test_cli_hardware_sweep_with_pareto(capsys, tmp_path):
    out = tmp_path / "sweep"
    rc, stdout, err = run(capsys, "sweep", "itnet", "--shared", "--input", "32x48", "--param", "L=1",
                          "--param", "K=1", "--param", "f=8", "--grid", "N=1,2", "--grid", "hw.adc_bits=4,8",
                          "--grid", "hw.mvm_latency_ns=50,200", "--pareto", "energy_j,throughput_fps",
                          "--out", str(out), "--no-store", "--format", "json")
    assert rc == 0, err
    rows = json.loads(stdout)["rows"]
    assert len(rows) == 8 and all("pareto" in r for r in rows)
    assert [r["pareto"] for r in rows] == pareto_front(rows, (("energy_j", True), ("throughput_fps", False)))
    best = [r for r in rows if r["pareto"]]
    assert best and all(r["hw.adc_bits"] == 4 for r in best)  # 8-bit ADCs only cost energy here
    assert (out / "sweep-itnet-shared-pareto.png").exists() and (out / "sweep-itnet-shared-pareto.svg").exists()


def test_cli_unknown_hardware_key_is_one_line_exit_2(capsys, tmp_path):
    out = tmp_path / "never"
    rc, stdout, err = run(capsys, "sweep", "itnet", "--grid", "N=1,2", "--grid", "hw.bogus=1", "--out", str(out),
                          "--no-store")
    assert rc == 2 and stdout == "" and err.count("\n") == 1 and "hw.bogus" in err


def test_bad_pareto_is_one_line_exit_2(capsys):
    rc, _, err = run(capsys, "sweep", "itnet", "--grid", "N=1", "--pareto", "energy_j", "--no-store")
    assert rc == 2 and err.count("\n") == 1 and "--pareto" in err


def test_pareto_of_accuracy_and_energy_matches_the_table_on_model_keys(capsys, tmp_path):
    table = tmp_path / "acc.csv"
    table.write_text("N,output,miou\n1,1,40\n2,1,42\n2,2,50\n")
    rc, stdout, err = run(capsys, "sweep", "itnet", "--shared", "--input", "32x48", "--param", "L=1", "--param",
                          "K=1", "--param", "f=8", "--grid", "N=1,2", "--grid", "hw.adc_bits=4,8",
                          "--accuracy-table", str(table), "--pareto", "energy_j,auc", "--no-store", "--format", "json")
    assert rc == 0, err
    rows = {(r["N"], r["hw.adc_bits"]): r for r in json.loads(stdout)["rows"]}
    assert rows[(1, 4)]["auc"] == rows[(1, 8)]["auc"] < rows[(2, 4)]["auc"]  # mIoU is the model's, not the ADC's
    assert [k for k, r in sorted(rows.items()) if r["pareto"]] == [(1, 4), (2, 4)]


# --------------------------------------------------------------------------- memoised vs plain (issue 22)
EQUALITY_GRID = ("N=1,2", "K=1,2,3", "hw.crossbar=64x64,128x128", "hw.adc_bits=3,4,5,6,8")  # 60 points
BOOKKEEPING = ("analyses", "seconds")


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "independent"])
def test_memoised_sweep_equals_the_plain_path_row_by_row(shared):
    """Each architecture traced, width-searched and analysed once, each array geometry tiled once, every hardware
    point re-mapping that work: the 60 rows equal the plain path's (every point on its own), value for value."""
    sweep = SweepSpec(model="itnet", grid=parse_grid(list(EQUALITY_GRID)), fixed=(("L", 1),), input_shape=SHAPE,
                      shared=shared, macs_budget=2e6, crossbar=(256, 256), chip_arrays=64)
    memoised, plain = run_sweep(sweep), run_sweep(sweep, memoise=False)
    assert len(memoised.rows) == 60 and not memoised.failed
    strip = [[{k: v for k, v in r.items() if k not in BOOKKEEPING} for r in result.rows]
             for result in (memoised, plain)]
    for mine, theirs in zip(*strip):
        assert list(mine.items()) == list(theirs.items())  # same values, same column order
    assert memoised.analyses * 10 == plain.analyses  # 6 architectures, 10 hardware points each
