"""Benchmark: the ItNet paper's full grid search (Sec. III-A) as one ``graphcost sweep``.

5 x 4 x 3 = 60 grid points (N=1,2,4,8,16; L=1,2,3,4; K=1,2,3) on CamVid (360x480), each with a
width search for the widest f whose last output needs <= 2.2e9 MACs (exact traces, no forward
pass). Run with the local executor (a process pool sized to the cores) and, as the peer in the
same process, the inline executor (one process, no pool); no result store, so everything is
computed. Target: under 60 s per variant on 2 cores.

    python benchmarks/bench_sweep.py                      # shared and independent, local + inline
    python benchmarks/bench_sweep.py --variants shared --no-peer
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from graphcost.explore import SweepSpec, parse_grid, run_sweep  # noqa: E402
from graphcost.runtime.executor import cpu_count, make_executor  # noqa: E402

GRID = ("N=1,2,4,8,16", "L=1,2,3,4", "K=1,2,3")
BUDGET = 2.2e9


def one(variant: str, kind: str, workers):
    spec = SweepSpec(model="itnet", grid=parse_grid(GRID), dataset="camvid", shared=(variant == "shared"),
                     macs_budget=BUDGET)
    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    with make_executor(kind, workers=workers) as ex:
        result = run_sweep(spec, ex)
        where = ex.describe()
    wall = time.perf_counter() - start  # includes pool start-up and shutdown
    cpu = _cpu_seconds() - cpu0  # this process and its (joined) workers
    failed = len(result.failed)
    n = max(result.analyses, 1)
    print(f"  {variant:<11} {where:<28} {wall:7.2f} s wall  {len(result.rows)} points, {result.analyses} analyses, "
          f"{wall / n * 1e3:6.1f} ms wall/analysis, {cpu / n * 1e3:6.1f} ms CPU/analysis, "
          f"{cpu / wall:4.2f} cores busy" + (f", {failed} failed" if failed else ""), flush=True)
    return wall, result


def _cpu_seconds() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _free_cores(seconds: float = 1.0) -> float:
    """Cores this machine gives us right now: CPU time of two spinning processes over wall time."""
    import multiprocessing as mp

    def spin(stop):
        while time.perf_counter() < stop:
            pass

    stop = time.perf_counter() + seconds
    cpu0 = _cpu_seconds()
    procs = [mp.get_context("fork").Process(target=spin, args=(stop,)) for _ in range(cpu_count())]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return (_cpu_seconds() - cpu0) / seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="shared,independent")
    parser.add_argument("--workers", type=int, default=None, help="local pool size (default: all cores)")
    parser.add_argument("--no-peer", action="store_true", help="skip the inline (sequential) peer run")
    args = parser.parse_args(argv)
    print(f"graphcost sweep itnet --grid {' --grid '.join(GRID)} --macs-budget {BUDGET:g} --dataset camvid "
          f"--no-store  ({cpu_count()} cores; {_free_cores():.2f} free right now -- other load slows the pool)")
    for variant in args.variants.split(","):
        local_s, local = one(variant, "local", args.workers)
        if not args.no_peer:
            inline_s, inline = one(variant, "inline", None)
            same = [{k: v for k, v in r.items() if k != "seconds"} for r in local.rows] == \
                   [{k: v for k, v in r.items() if k != "seconds"} for r in inline.rows]
            print(f"  {variant:<11} speed-up local/inline: {inline_s / local_s:.2f}x; identical rows: {same}")
        print(f"  {variant:<11} target < 60 s: {'met' if local_s < 60 else 'MISSED'} ({local_s:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
