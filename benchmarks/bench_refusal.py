"""How long refusing a bad option value takes, against a peer: the smallest successful analysis.

The unit tests check *that* a bad value is refused in one line before any work (tests/test_reliability.py)
and *what it costs in memory* (in a fresh child, from a reset VmHWM); how fast it is lives here, not in a
timed unit test. Same process, after one warm-up of every command (imports paid), median of interleaved
repeats; the ratio is refusal time / the peer's time (well below 1: nothing is built or traced).

    nice -n 10 python benchmarks/bench_refusal.py [--repeats 20]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

from graphcost.cli import main

CONV = ["torch.nn:Conv2d", "--param", "in_channels=3", "--param", "out_channels=4", "--param", "kernel_size=1",
        "--input", "8x8"]
PEER = ["analyze", "torch.nn:Identity", "--input", "8x8", "--format", "json"]
REFUSED = {
    "--input=0x-1": ["analyze", "torch.nn:Identity", "--input=0x-1"],
    "--noise=bogus": ["map", *CONV, "--noise=bogus"],
    "--crossbar=0x5": ["map", *CONV, "--crossbar=0x5"],
    "--param=N=" + "-" * 20 + "1": ["analyze", "torch.nn:Identity", "--input", "8x8", "--param=N=" + "-" * 3000 + "1"],
    "--grid N=1..1e8": ["sweep", "itnet", "--grid=N=1..100000000", "--no-store"],
}


def timed(args) -> float:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        start = time.perf_counter()
        main(list(args))
        return time.perf_counter() - start


def main_bench(repeats: int) -> None:
    commands = {"peer: analyze nn.Identity": PEER, **REFUSED}
    for args in commands.values():
        timed(args)  # warm-up: imports and caches
    times = {name: [] for name in commands}
    for _ in range(repeats):  # interleaved: a slow moment of the machine hits every command alike
        for name, args in commands.items():
            times[name].append(timed(args))
    peer = statistics.median(times["peer: analyze nn.Identity"])
    print(f"{'command':32} {'median ms':>10} {'/ peer':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:32} {median * 1e3:10.2f} {median / peer:8.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    main_bench(parser.parse_args().repeats)
