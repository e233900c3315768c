"""``graphcost map hf:llama --generate 128+128`` against ``graphcost analyze hf:llama``, same process.

    python benchmarks/bench_llm.py                       # Llama-7B from its default config, 3 interleaved repeats
    python benchmarks/bench_llm.py --model hf:gpt2:causal-lm --repeats 5

The map builds the model on the meta device, traces the 128-token prefill and two decode steps
(a KV cache of 128 and of 255 tokens on meta tensors), maps and costs the three; the peer traces
and analyses the prefill once. Runs are interleaved after a warm-up; the script prints the median
CPU time (user + sys of this process) of each, their ratio, and the process's maximum RSS. The
targets (issue 19): under 30 s and under 4 GB. Timings are printed, never asserted.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time


def main(argv=None) -> int:
    import graphcost
    from graphcost.crossbar.generation import GenerateSpec
    from graphcost.crossbar.run import MapRequest, run_map
    from graphcost.crossbar.specs import ArraySpec, ChipSpec
    from graphcost.resolve import ModelSpec, build_for_shapes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hf:llama")
    parser.add_argument("--chip-arrays", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    spec = ModelSpec(args.model)
    request = MapRequest(spec, ArraySpec(256, 256), chip=ChipSpec(arrays_per_chip=args.chip_arrays),
                         generate=GenerateSpec(128, 128))

    def generate() -> None:
        run_map(request).to_dict()

    def analyze() -> None:
        built = build_for_shapes(spec)
        graphcost.analyze(built.module, {"input_ids": graphcost.InputSpec((1, 128), __import__("torch").int64)})

    def cpu(fn) -> float:
        start = time.process_time()
        fn()
        return time.process_time() - start

    cpu(generate), cpu(analyze)  # warm-up: imports, first-call caches
    times = {"map --generate 128+128": [], "analyze": []}
    for _ in range(args.repeats):
        times["map --generate 128+128"].append(cpu(generate))
        times["analyze"].append(cpu(analyze))
    for name, values in times.items():
        print(f"{name:>24}: median {statistics.median(values):.2f} s CPU (min {min(values):.2f} s)")
    ratio = statistics.median(times["map --generate 128+128"]) / statistics.median(times["analyze"])
    print(f"{'ratio':>24}: {ratio:.2f}x analyze")
    print(f"{'max RSS':>24}: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
