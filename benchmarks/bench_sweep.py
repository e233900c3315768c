"""Benchmark: sweeps on the memoised path against the plain path (every point, and every call within a
trace, on its own: ``run_sweep(memoise=False)``), same process.

1. The ItNet paper's grid search (Sec. III-A): 5 x 4 x 3 = 60 points (N=1,2,4,8,16; L=1,2,3,4;
   K=1,2,3) on CamVid (360x480), each with a width search for the widest f whose last output needs
   <= 2.2e9 MACs, shared and independent weights; both paths on the local pool; rows compared.
2. The co-design grid (issue 22): those 60 architectures x hw.crossbar=64x64,128x128,256x256,512x512
   x hw.adc_bits=4,5,6,8 x hw.tech=rram-22nm,pcm-14nm,sram-22nm x hw.arrays=1024,4096,16384,65536
   = 11,520 points, shared weights, on the local pool with a progress bar (points/s, ETA). The plain
   path (one trace and mapping per point) would take about an hour here; it is timed on the first
   architecture's 192 points and compared row by row with the memoised rows of the same points.
3. A result store of those 11,520 rows: open it, read it as a DataFrame, filter, export CSV and
   parquet (pandas + pyarrow).
4. The sweep explorer (index.html) of those rows opened in Chromium (playwright): time until drawn.
5. (``--parts width`` only) the width search's fit, predict, verify against real probes only: analyses.
6. (``--baseline REF``) the 60-point grid on the code of git commit REF against this checkout, each in
   its own process (the same Python and packages), alternating: wall and CPU seconds, ratios, rows compared.
   ``--paired``: also one pool worker of each checkout running the grid's items in lockstep, item by item (the
   machine's drift cancels): the sums of each item's fastest CPU time, and their ratio.

No store in 1 and 2, so everything is computed. Other load on the machine slows the pool: the
free cores are measured first and printed.

    python benchmarks/bench_sweep.py                    # all three parts
    python benchmarks/bench_sweep.py --parts 60         # only the 60-point grid
    python benchmarks/bench_sweep.py --parts codesign,store,explorer
    python benchmarks/bench_sweep.py --parts width     # the width search: estimates vs real probes only
    python benchmarks/bench_sweep.py --parts none --baseline f6a14a1   # this code against commit f6a14a1
    python benchmarks/bench_sweep.py --parts none --baseline f6a14a1 --paired   # and item by item, in lockstep
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from graphcost.explore import SweepSpec, parse_grid, run_sweep  # noqa: E402
from graphcost.runtime.executor import ProgressBar, cpu_count, make_executor  # noqa: E402

GRID = ("N=1,2,4,8,16", "L=1,2,3,4", "K=1,2,3")
HW_GRID = ("hw.crossbar=64x64,128x128,256x256,512x512", "hw.adc_bits=4,5,6,8", "hw.tech=rram-22nm,pcm-14nm,sram-22nm",
           "hw.arrays=1024,4096,16384,65536")
BUDGET = 2.2e9
BOOKKEEPING = ("analyses", "seconds")


def _spec(grid, shared: bool) -> SweepSpec:
    return SweepSpec(model="itnet", grid=parse_grid(list(grid)), dataset="camvid", shared=shared, macs_budget=BUDGET)


def _stable(rows):
    return [[(k, v) for k, v in r.items() if k not in BOOKKEEPING] for r in rows]


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers, joined at shutdown)."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def timed(spec: SweepSpec, memoise: bool, workers, progress=None):
    """One sweep on the local pool: (wall seconds, result); pool start-up and shutdown included.
    ``timed.cpu`` keeps its CPU seconds (workers included): a ratio other jobs' load does not move."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    with make_executor("local", workers=workers) as ex:
        result = run_sweep(spec, ex, memoise=memoise, max_points=None, progress=progress)
    timed.cpu = _cpu_seconds() - cpu
    return time.perf_counter() - start, result


def sixty(workers) -> None:
    print("60-point CamVid grid (graphcost sweep itnet --grid N=1,2,4,8,16 --grid L=1..4 --grid K=1,2,3 "
          "--macs-budget 2.2e9 --dataset camvid --no-store)")
    for shared in (True, False):
        variant = "shared" if shared else "independent"
        plain_s, plain = timed(_spec(GRID, shared), False, workers)
        plain_cpu = timed.cpu
        memo_s, memo = timed(_spec(GRID, shared), True, workers)
        same = _stable(plain.rows) == _stable(memo.rows)
        print(f"  {variant:<11} plain {plain_s:6.2f} s ({plain.analyses} analyses)   memoised {memo_s:6.2f} s "
              f"({memo.analyses} analyses)   speed-up {plain_s / memo_s:4.2f}x   identical rows: {same}\n"
              f"  {'':<11} CPU seconds (workers included): plain {plain_cpu:6.1f}, memoised {timed.cpu:6.1f}, "
              f"ratio {plain_cpu / timed.cpu:4.2f}x", flush=True)


def codesign(workers, progress: bool):
    spec = _spec(GRID + HW_GRID, True)
    print(f"co-design grid: {spec.size:,} points = 60 architectures x {spec.size // 60} hardware points "
          f"(--grid {' --grid '.join(GRID + HW_GRID)} --macs-budget 2.2e9 --dataset camvid --shared --yes)")
    first = _spec(("N=1", "L=1", "K=1") + HW_GRID, True)
    plain_s, plain = timed(first, False, workers)
    memo_s, memo = timed(first, True, workers)
    print(f"  first architecture ({first.size} points): plain {plain_s:6.2f} s, memoised {memo_s:6.2f} s, "
          f"speed-up {plain_s / memo_s:5.1f}x, identical rows: {_stable(plain.rows) == _stable(memo.rows)}",
          flush=True)
    with ProgressBar("co-design sweep", spec.size, enabled=progress, unit="points") as bar:
        wall, result = timed(spec, True, workers, progress=bar)
    print(f"  memoised, all {len(result.rows):,} points: {wall:6.1f} s wall, {len(result.rows) / wall:6.1f} points/s, "
          f"{result.analyses} analyses, {len(result.failed)} failed; target <= 300 s: "
          f"{'met' if wall <= 300 else 'MISSED'}", flush=True)
    print(f"  plain path, extrapolated from the first architecture: about "
          f"{plain_s / first.size * spec.size / 60:.0f} min", flush=True)
    return result


def width_part() -> None:
    """The width search with estimates (fit, predict, verify) against the real-probe search, inline, same process,
    on the 60-point grid, shared and independent: analyses (traces) and wall time; the rows must be equal."""
    from graphcost.explore import sweep as sweep_module

    real_only = sweep_module._Probe.estimate
    for shared in (True, False):
        runs = {}
        for name in ("real probes only", "fit, predict, verify"):
            sweep_module._Probe.estimate = (lambda self, width: None) if name == "real probes only" else real_only
            start = time.perf_counter()
            result = run_sweep(_spec(GRID, shared), max_points=None)
            runs[name] = (time.perf_counter() - start, result)
        sweep_module._Probe.estimate = real_only
        (plain_s, plain), (fit_s, fit) = runs.values()
        print(f"  width search, {'shared' if shared else 'independent'}: real probes only {plain.analyses} analyses "
              f"{plain_s:6.1f} s; fit, predict, verify {fit.analyses} analyses {fit_s:6.1f} s; identical rows: "
              f"{_stable(plain.rows) == _stable(fit.rows)}", flush=True)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: One 60-point sweep on the local pool with the graphcost of the checkout in argv[1] (its sibling folders mapped
#: into graphcost as its setup.cfg says, as an editable install does): one JSON line of wall and CPU seconds,
#: analyses and rows. Plain API of every version since the grid existed, so it runs on old commits too.
_DRIVER = r"""
import configparser, importlib.util, json, os, resource, sys, time
root, shared = sys.argv[1], sys.argv[2] == "shared"
config = configparser.ConfigParser()
config.read(os.path.join(root, "setup.cfg"))
folders = {k.strip(): os.path.join(root, v.strip()) for k, v in
           (line.split("=") for line in config.get("options", "package_dir", fallback="").splitlines() if "=" in line)}
class Folders:
    @staticmethod
    def find_spec(name, path=None, target=None):
        folder = folders.get(name)
        return folder and importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                                 submodule_search_locations=[folder])
sys.meta_path.insert(0, Folders)
sys.path.insert(0, root)
from graphcost.explore import SweepSpec, parse_grid, run_sweep
from graphcost.runtime.executor import make_executor
import graphcost.models
assert all(m.__file__.startswith(root) for m in (sys.modules["graphcost"], graphcost.models)), "not the checkout's code"
spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,2,4,8,16", "L=1,2,3,4", "K=1,2,3"]), dataset="camvid",
                 shared=shared, macs_budget=2.2e9)
def cpu():
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))
wall, used = time.perf_counter(), cpu()
with make_executor("local") as ex:
    result = run_sweep(spec, ex, max_points=None)
wall, used = time.perf_counter() - wall, cpu() - used
rows = [[(k, v) for k, v in r.items() if k not in ("analyses", "seconds")] for r in result.rows]
print(json.dumps({"wall": wall, "cpu": used, "analyses": result.analyses, "rows": rows}))
"""


#: One pool worker of the checkout in argv[1] (its own worker set-up, ``_init_pool_worker``, and item wrapper,
#: ``_run_and_freeze`` where it has one), answering "run item i" on stdin with the item's CPU seconds: the 60-point
#: grid's work items in the order that checkout hands them out, for :func:`paired_part`.
_PAIRED_WORKER = _DRIVER.split("def cpu():")[0] + r"""
import gc, graphcost.runtime.executor as executor
from graphcost.explore import sweep
spec = sweep.resolve_spec(spec, max_points=None)
tasks = [sweep.point_task(spec, point) for point in spec.points()]
items = sorted(sweep.architecture_tasks(tasks, range(len(tasks))), key=lambda item: item[1][0])  # grid order
executor._init_pool_worker(os.getppid())
wrap = getattr(executor, "_run_and_freeze", None)
print(len(items), flush=True)
for line in sys.stdin:
    item, start = items[int(line)][0], time.process_time()
    rows = wrap(sweep.evaluate_architecture, item) if wrap else sweep.evaluate_architecture(item)
    print(json.dumps([time.process_time() - start, [[(k, v) for k, v in r.items() if k not in ("analyses", "seconds")]
                                                    for r in rows]]), flush=True)
"""


def paired_part(tree: str, shared: bool, rounds: int) -> None:
    """The 60-point grid's work items run by a worker of the baseline checkout at ``tree`` and one of this checkout,
    in lockstep: item by item, each item by both (in alternating order) before the next, ``rounds`` times. The
    machine's speed drifts by a fifth within minutes; two items run a second apart see the same machine, so the
    sum of each item's fastest CPU time is a steadier ratio than whole runs minutes apart (one core, no pool)."""
    workers = [subprocess.Popen([sys.executable, "-c", _PAIRED_WORKER, root, "shared" if shared else "independent"],
                                env={**os.environ, "PYTHONPATH": root}, cwd=root, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for root in (tree, ROOT)]
    try:
        count = [int(w.stdout.readline()) for w in workers][0]
        best, rows, totals = [[float("inf")] * count for _ in workers], [{}, {}], [[0.0] * rounds for _ in workers]
        for r in range(rounds):
            for i in range(count):
                for k in ((0, 1) if (i + r) % 2 == 0 else (1, 0)):
                    workers[k].stdin.write(f"{i}\n")
                    workers[k].stdin.flush()
                    seconds, rows[k][i] = json.loads(workers[k].stdout.readline())
                    best[k][i], totals[k][r] = min(best[k][i], seconds), totals[k][r] + seconds
    finally:
        for w in workers:
            w.stdin.close()
            w.wait()
    per_round, same = " ".join(f"{a / b:4.2f}x" for a, b in zip(*totals)), rows[0] == rows[1]
    print(f"  {'shared' if shared else 'independent':<11} paired, item by item ({rounds} rounds, one core): "
          f"baseline {sum(best[0]):6.2f} s CPU, current {sum(best[1]):6.2f} s CPU (sums of each item's fastest), "
          f"speed-up {sum(best[0]) / sum(best[1]):4.2f}x (per round {per_round})   identical rows: {same}", flush=True)


def _grid_in_process(root: str, shared: bool) -> dict:
    """The 60-point grid with the code of the checkout at ``root``, in a fresh process: :data:`_DRIVER`'s answer."""
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run([sys.executable, "-c", _DRIVER, root, "shared" if shared else "independent"], env=env,
                         capture_output=True, text=True, check=True, cwd=root)
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_part(ref: str, rounds: int = 3, paired: bool = False) -> None:
    """The 60-point grid with the code of commit ``ref`` (a temporary git worktree, removed afterwards) and with
    this checkout, alternating, ``rounds`` times each, shared and independent: medians of wall and CPU seconds
    (``paired``: also :func:`paired_part`)."""
    from statistics import median

    folder = tempfile.mkdtemp(prefix="graphcost-baseline-")
    tree = os.path.join(folder, "tree")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, ref], check=True, capture_output=True)
    try:
        print(f"60-point grid: commit {ref} against this checkout, each in its own process, {rounds} alternating "
              f"rounds (medians)", flush=True)
        for shared in (True, False):
            runs = {"baseline": [], "current": []}
            for _ in range(rounds):
                runs["baseline"].append(_grid_in_process(tree, shared))
                runs["current"].append(_grid_in_process(ROOT, shared))
            medians = {(name, k): median(r[k] for r in done) for name, done in runs.items() for k in ("wall", "cpu")}
            (b_wall, b_cpu), (c_wall, c_cpu) = ((medians[name, "wall"], medians[name, "cpu"])
                                                for name in ("baseline", "current"))
            same = all(r["rows"] == runs["baseline"][0]["rows"] for r in runs["baseline"] + runs["current"])
            print(f"  {'shared' if shared else 'independent':<11} {ref}: {b_wall:6.2f} s wall, {b_cpu:6.1f} s CPU "
                  f"({runs['baseline'][0]['analyses']} analyses)   current: {c_wall:6.2f} s wall, {c_cpu:6.1f} s CPU "
                  f"({runs['current'][0]['analyses']} analyses)   speed-up {b_wall / c_wall:4.2f}x wall, "
                  f"{b_cpu / c_cpu:4.2f}x CPU   identical rows: {same}", flush=True)
            if paired:
                paired_part(tree, shared, rounds)
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], capture_output=True)
        subprocess.run(["git", "-C", ROOT, "worktree", "prune"], capture_output=True)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _store_round(path: str, folder: str):
    """One open / read / filter / export of the store at ``path``: {step: (wall s, CPU s)}, the rows, the
    selection and the row-wise reader's (wall, CPU) as the peer."""
    import pandas as pd

    from graphcost.runtime.store import _arrow_columns, open_store

    times = {}

    def step(name, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        times[name] = (time.perf_counter() - wall, time.process_time() - cpu)
        return value

    def read():
        with open_store(path) as store:
            return store.frame("sweep-point")

    frame = step("open + read", read)
    chosen = step("filter", lambda: frame[(frame["fits"]) & (frame["energy_j"] < frame["energy_j"].median())])
    scalar = [c for c in frame.columns if not isinstance(frame[c].iloc[0], (list, dict))]
    step("CSV", lambda: frame[scalar].to_csv(os.path.join(folder, "rows.csv"), index=False))
    step("parquet", lambda: frame[scalar].to_parquet(os.path.join(folder, "rows.parquet")))
    assert len(pd.read_parquet(os.path.join(folder, "rows.parquet"))) == len(frame)
    with open_store(path) as store:  # the peer: the row-by-row reader (one dict per row), same process
        wall, cpu = time.perf_counter(), time.process_time()
        raw = store._query("SELECT key, kind, model, meta, result, version, created FROM results WHERE kind = ?",
                           ("sweep-point",))
        rows = store._frame_by_rows(raw, store._decode_all([r[3] for r in raw]))
        peer = (time.perf_counter() - wall, time.process_time() - cpu)
    assert rows.shape == frame.shape
    assert _arrow_columns([r[4] for r in raw]) is not None, "the store was read row by row, not column-wise"
    return times, frame, chosen, peer


def store_part(result, rounds: int = 5) -> None:
    """Open, read, filter and export (CSV, parquet) a store of the co-design grid's rows; medians of
    ``rounds``, wall and CPU seconds (CPU time is what the machine's other load does not inflate)."""
    from statistics import median

    from graphcost.explore.sweep import point_task
    from graphcost.runtime.store import open_store

    if result is None:  # store part alone: rows of the right shape without running the sweep
        result = _fake_result()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "results.sqlite")
        tasks = [point_task(result.spec, {k: r[k] for k in result.spec.grid_keys}) for r in result.rows]
        with open_store(path) as store:
            store.put_many([(t.key(), t.meta(), r) for t, r in zip(tasks, result.rows)])
        runs = [_store_round(path, folder) for _ in range(rounds)]
    frame, chosen = runs[-1][1], runs[-1][2]
    steps = {name: tuple(median(r[0][name][k] for r in runs) for k in (0, 1)) for name in runs[0][0]}
    peer = tuple(median(r[3][k] for r in runs) for k in (0, 1))
    wall, cpu = sum(v[0] for v in steps.values()), sum(v[1] for v in steps.values())
    print(f"store of {len(frame):,} rows ({len(chosen):,} selected), median of {rounds}, wall / CPU ms: "
          + ", ".join(f"{k} {v[0] * 1e3:.0f} / {v[1] * 1e3:.0f}" for k, v in steps.items())
          + f"; total {wall:.2f} s wall, {cpu:.2f} s CPU, target < 1 s: {'met' if wall < 1 else 'MISSED'}; "
          f"read row by row (the reader before issue 22): {peer[0] * 1e3:.0f} / {peer[1] * 1e3:.0f} ms, "
          f"column-wise {peer[0] / steps['open + read'][0]:.1f}x faster", flush=True)


def explorer_part(result, opens: int = 5) -> None:
    """Time from opening the explorer of every row to the page being drawn, in Chromium (playwright): wall
    time seen by the driver and the page's own time since navigation began (median of ``opens``)."""
    import shutil
    from statistics import median

    from playwright.sync_api import sync_playwright

    from graphcost.reports.sweep_explorer import write_explorer

    result = result if result is not None else _fake_result()
    with tempfile.TemporaryDirectory() as folder:
        page_path = write_explorer(folder, result.spec, result.rows)
        chromium = os.environ.get("GRAPHCOST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            times, inside = [], []
            for _ in range(opens):
                start = time.perf_counter()
                page.goto("file://" + page_path)
                page.wait_for_selector("body[data-ready=true]", timeout=120_000)
                times.append(time.perf_counter() - start)
                inside.append(page.evaluate("graphcostSweep.readyMs") / 1e3)
            points = page.evaluate("graphcostSweep.pointCount()")
            browser.close()
        size = os.path.getsize(page_path)
    best = median(times)
    print(f"explorer of {points:,} points ({size / 1e6:.1f} MB): opened and drawn in {best:.2f} s "
          f"(page's own clock {median(inside):.2f} s; median of {opens}); target < 2 s: "
          f"{'met' if best < 2 else 'MISSED'}", flush=True)


def _fake_result():
    """The co-design grid's rows with one computed architecture's values repeated (for --parts store alone)."""
    from graphcost.explore.sweep import SweepResult, resolve_spec

    spec = resolve_spec(_spec(GRID + HW_GRID, True), None)
    one = run_sweep(_spec(("N=1", "L=1", "K=1") + HW_GRID, True), max_points=None).rows
    rows = []
    for point in spec.points():
        row = dict(one[len(rows) % len(one)])
        row.update(point)
        rows.append(row)
    return SweepResult(spec, rows)


def _free_cores(seconds: float = 1.0) -> float:
    """Cores this machine gives us right now: CPU time of spinning processes over wall time."""
    import multiprocessing as mp
    import resource

    def spin(stop):
        while time.perf_counter() < stop:
            pass

    def used():
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return kids.ru_utime + kids.ru_stime

    stop = time.perf_counter() + seconds
    cpu0 = used()
    procs = [mp.get_context("fork").Process(target=spin, args=(stop,)) for _ in range(cpu_count())]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return (used() - cpu0) / seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="60,codesign,store,explorer")
    parser.add_argument("--workers", type=int, default=None, help="local pool size (default: all cores)")
    parser.add_argument("--baseline", metavar="REF", default=None,
                        help="also run the 60-point grid on the code of git commit REF, alternating with this code")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of --baseline (default 3)")
    parser.add_argument("--paired", action="store_true",
                        help="with --baseline: also the grid's items run by both checkouts in lockstep (CPU time)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar of the co-design sweep (default: when stderr is a terminal)")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    print(f"{cpu_count()} cores; {_free_cores():.2f} free right now (other load slows the pool)", flush=True)
    if "60" in parts:
        sixty(args.workers)
    result = codesign(args.workers, args.progress) if "codesign" in parts else None
    if "width" in parts:
        width_part()
    if "store" in parts:
        store_part(result)
    if "explorer" in parts:
        explorer_part(result)
    if args.baseline:
        baseline_part(args.baseline, args.rounds, args.paired)
    return 0


if __name__ == "__main__":
    sys.exit(main())
