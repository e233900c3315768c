"""``graphcost map --format json`` with the energy and area passes vs without, same process.

    python benchmarks/bench_energy.py                 # default ItNet, 11 interleaved repeats
    python benchmarks/bench_energy.py --repeats 21 --arrays 148

Both runs do what ``graphcost map --format json`` does (build the zoo model, trace it, map it,
time it on the chip, serialise the JSON); one also runs :func:`graphcost.crossbar.energy.energy`
and :func:`~graphcost.crossbar.energy.area` and adds their keys. Runs are interleaved after a
warm-up; the script prints the median (and minimum) wall time of each and their ratio. The
target is energy within 1.5x of the map without it. Timings are printed, never asserted.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time


def main(argv=None) -> int:
    from graphcost.crossbar.energy import area, energy
    from graphcost.crossbar.mapping import map_trace
    from graphcost.crossbar.perf import performance
    from graphcost.crossbar.specs import ArraySpec, ChipSpec
    from graphcost.crossbar.tech import TECH_PRESETS
    from graphcost.resolve import ModelSpec, build
    from graphcost.tracing import trace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="itnet")
    parser.add_argument("--arrays", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)
    tech, array, chip = TECH_PRESETS["rram-22nm"], ArraySpec(256, 256), ChipSpec(arrays=args.arrays)

    def plain(with_energy: bool = False) -> str:
        built = build(ModelSpec(args.model))
        perf = performance(map_trace(trace(built.module, built.input_shape), array, name=built.label), chip)
        result = perf.to_dict()
        if with_energy:
            result["energy"], result["area"] = energy(perf, tech).to_dict(), area(perf, tech).to_dict()
        return json.dumps(result)

    for _ in range(2):
        plain(), plain(True)
    without, with_ = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        plain()
        without.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain(True)
        with_.append(time.perf_counter() - t)
    a, b = statistics.median(without), statistics.median(with_)
    print(f"{args.model}: map {a * 1e3:.1f} ms (min {min(without) * 1e3:.1f}), map + energy {b * 1e3:.1f} ms "
          f"(min {min(with_) * 1e3:.1f}); ratio {b / a:.3f}x (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
