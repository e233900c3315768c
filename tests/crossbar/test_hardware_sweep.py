"""``hw.`` keys in sweep grids (co-design), and the Pareto front."""
import json

import pytest

from graphcost import UserError
from graphcost.explore import SweepSpec, pareto_front, parse_grid, run_sweep
from clirun import run

SHAPE = (1, 3, 32, 48)


def spec(*axes, **kw):
    return SweepSpec(model="itnet", grid=parse_grid(list(axes)), fixed=(("L", 1), ("K", 1), ("f", 8)),
                     input_shape=SHAPE, shared=True, **kw)


def test_hardware_axes_reach_the_mapping_and_energy(capsys):
    result = run_sweep(spec("N=1,2", "hw.crossbar=64x64,128x128", "hw.adc_bits=4,6"))
    assert len(result.rows) == 8 and not result.failed
    by = {(r["N"], r["hw.crossbar"], r["hw.adc_bits"]): r for r in result.rows}
    # The reference is `graphcost map` with the same hardware given as its own flags: a separate entry
    # point, so a sweep that dropped or misparsed an hw. axis would differ (the sweep's own
    # hardware()/hardware_columns are not used to compute the expectation).
    rc, stdout, err = run(capsys, "map", "itnet", "--shared", "--param", "N=2", "--param", "L=1", "--param", "K=1",
                          "--param", "f=8", "--input", "32x48", "--crossbar", "64x64", "--adc-bits", "6",
                          "--format", "json")
    assert rc == 0, err
    mapped = json.loads(stdout)
    row = by[(2, "64x64", 6)]
    assert [row[k] for k in ("arrays_used", "arrays_needed", "fits", "throughput_fps", "latency_s")] == \
        [mapped[k] for k in ("arrays_used", "arrays_needed", "fits", "throughput_fps", "latency_s")]
    assert row["utilization"] == round(mapped["utilization"], 6)  # the sweep's table rounds it to 6 places
    assert (row["energy_j"], row["power_w"], row["tops_per_w"], row["area_mm2"]) == (
        mapped["energy"]["per_frame_j"], mapped["energy"]["power_w"], mapped["energy"]["tops_per_w"],
        mapped["area"]["total_mm2"])
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
    # The front by its definition, written out here (not by pareto_front): a row is on it when no other
    # row has energy <= and throughput >= with one of the two strictly better.
    def dominates(o, r):
        return (o["energy_j"] <= r["energy_j"] and o["throughput_fps"] >= r["throughput_fps"]
                and (o["energy_j"], o["throughput_fps"]) != (r["energy_j"], r["throughput_fps"]))
    assert [r["pareto"] for r in rows] == [not any(dominates(o, r) for o in rows) for r in rows]
    best = [r for r in rows if r["pareto"]]
    assert best and all(r["hw.adc_bits"] == 4 for r in best)  # 8-bit ADCs only cost energy here
    assert (out / "sweep-itnet-shared-pareto.png").exists() and (out / "sweep-itnet-shared-pareto.svg").exists()


def test_pareto_front_of_hand_made_rows():
    """Worked by hand: (energy, fps) = A (1, 10), B (2, 30), C (3, 20), D (1, 5), E (2, 30), F (-, 40).
    D loses to A (same energy, fewer fps), C to B (more energy, fewer fps); B and E tie (neither is
    strictly better), so both stay; F lacks energy_j, so it is never on the front."""
    rows = [{"energy_j": 1, "fps": 10}, {"energy_j": 2, "fps": 30}, {"energy_j": 3, "fps": 20},
            {"energy_j": 1, "fps": 5}, {"energy_j": 2, "fps": 30}, {"fps": 40}]
    assert pareto_front(rows, (("energy_j", True), ("fps", False))) == [True, True, False, False, True, False]


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


# --------------------------------------------------------------------------- map's hardware options on sweep
SWEEP = ["sweep", "itnet", "--shared", "--input", "32x48", "--param", "L=1", "--param", "K=1", "--param", "f=8",
         "--grid", "N=1,2", "--no-store", "--workers", "1", "--format", "json"]


def test_map_hardware_options_set_every_point_as_the_same_hw_keys_do(capsys, tmp_path):
    """``--adc-bits 6 --mvm-latency-ns 50 --tech FILE.toml`` (map's option groups) give the rows of the one-value
    ``hw.`` axes they stand for: the options reach the mapping, energy and area."""
    toml = tmp_path / "tech.toml"
    toml.write_text('base = "pcm-14nm"\ncolumns_per_adc = 4\n')
    rc, stdout, err = run(capsys, *SWEEP, "--crossbar", "64x64", "--adc-bits", "6", "--mvm-latency-ns", "50",
                          "--tech", str(toml))
    assert rc == 0, err
    by_options = json.loads(stdout)["rows"]
    rc, stdout, err = run(capsys, *SWEEP, "--crossbar", "64x64", "--grid", "hw.adc_bits=6", "--grid",
                          "hw.mvm_latency_ns=50", "--grid", "hw.tech=pcm-14nm", "--grid", "hw.columns_per_adc=4")
    assert rc == 0, err
    by_axes = json.loads(stdout)["rows"]
    drop = ("seconds", "analyses")
    assert [{k: v for k, v in r.items() if k not in drop} for r in by_options] == \
        [{k: v for k, v in r.items() if k not in drop} for r in by_axes]
    rc, stdout, _ = run(capsys, *SWEEP, "--crossbar", "64x64")
    plain = json.loads(stdout)["rows"]
    assert plain[0]["energy_j"] != by_options[0]["energy_j"] and plain[0]["tech"] == "rram-22nm"
    assert by_options[0]["tech"] == "pcm-14nm"


@pytest.mark.parametrize("extra, needle", [
    (["--replicate"], "--replicate is not part of a sweep point's hardware"),
    (["--chip-arrays", "4"], "--chip-arrays is not part"),
    (["--preset", "neurosim-v1.3"], "--preset is not part"),
    (["--adc-bits", "6", "--grid", "hw.adc_bits=4,8"], "hw.adc_bits is set by its option and swept by --grid"),
    (["--adc-bits", "0"], "--adc-bits"),
    (["--grid", "N=1..2000", "--grid", "hw.adc_bits=1..1000"], "with --yes"),
])
def test_sweep_hardware_options_refused_in_one_line_before_any_point(capsys, extra, needle, monkeypatch):
    import graphcost.explore.sweep as sweep_module

    monkeypatch.setattr(sweep_module, "evaluate_point", lambda task: pytest.fail("evaluated a point"))
    args = [a for a in SWEEP if a not in ("N=1,2",)]
    args.remove("--grid")
    rc, _, err = run(capsys, *args, *extra)
    assert rc == 2 and err.count("\n") == 1 and needle in err, err
