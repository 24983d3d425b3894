"""edgeai's native engine in TFLite mode against LiteRT on the same int8 CNN, one thread.

The model is ``tests/tflite_builder.int8_mobile_cnn`` (MobileNet-like: a 3x3
stride-2 conv, depthwise + pointwise blocks, ADD, global average pool, fully
connected; per-channel int8 weights), at ``--size`` pixels square. Three
engines run it, rounds interleaved (A B C A B C ...) in one process, each
round timing ``--calls`` calls; the report gives the median per-call time
of each and its ratio to LiteRT with XNNPACK:

* LiteRT with XNNPACK (its default CPU path), ``num_threads=1``;
* LiteRT with its reference kernels (``OpResolverType.BUILTIN_REF``), whose
  arithmetic the native engine reproduces bit for bit;
* edgeai's native engine (importer -> IR -> ``tflite`` ops on the numba
  INT8 kernels), ``threads=1``.

It also says whether each engine's output equals the reference kernels'.
``--profile`` adds the native engine's median time per node
(``CompiledGraph.run_profiled``) and what the ops do not account for.

    python benchmarks/bench_tflite_native.py [--size 64] [--rounds 15] [--calls 20] [--json] [--profile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _profile(exe: Any, feeds: dict[str, np.ndarray], runs: int) -> dict[str, Any]:
    """Median seconds per node over ``runs`` profiled runs, and the median of a whole plain run."""
    compiled = exe._compiled
    for _ in range(3):
        compiled.run_profiled(feeds)
    per_node: dict[tuple[str, str], list[float]] = {}
    whole = []
    clock = time.perf_counter
    for _ in range(runs):
        _, timings = compiled.run_profiled(feeds)
        for name, op_type, seconds in timings:
            per_node.setdefault((name, op_type), []).append(seconds)
        t0 = clock()
        exe.run(feeds)
        whole.append(clock() - t0)
    nodes = [
        {"node": name, "op": op_type, "median_us": statistics.median(ts) * 1e6}
        for (name, op_type), ts in per_node.items()
    ]
    return {"nodes": nodes, "run_median_us": statistics.median(whole) * 1e6}


def _engines(model: bytes, x: np.ndarray) -> tuple[dict[str, Callable[[], np.ndarray]], Callable[[int], dict]]:
    """The three engines as calls, and the native engine's per-node profiler."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeai.backends.native import BACKEND
    from edgeai.formats.tflite_format import import_tflite

    def litert(kind: Any) -> Callable[[], np.ndarray]:
        it = Interpreter(model_content=model, num_threads=1, experimental_op_resolver_type=kind)
        it.allocate_tensors()
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

        def call() -> np.ndarray:
            it.set_tensor(i, x)
            it.invoke()
            return it.get_tensor(o)

        return call

    graph = import_tflite(model)
    exe = BACKEND.compile(graph, BACKEND.devices()[0], {"graph_passes": (), "threads": 1})
    feeds = {graph.inputs[0]: x}
    engines = {
        "litert_xnnpack": litert(OpResolverType.AUTO),
        "litert_reference": litert(OpResolverType.BUILTIN_REF),
        "edgeai_native": lambda: exe.run(feeds)[0],
    }
    return engines, lambda runs: _profile(exe, feeds, runs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also time every node of the native engine")
    args = parser.parse_args(argv)

    from tests.tflite_builder import int8_mobile_cnn

    model = int8_mobile_cnn(size=args.size)
    x = np.random.default_rng(0).integers(-128, 128, (1, args.size, args.size, 3)).astype(np.int8)
    engines, profile = _engines(model, x)
    reference = engines["litert_reference"]().copy()
    equal = {name: bool(np.array_equal(fn(), reference)) for name, fn in engines.items()}
    for fn in engines.values():  # warm up (numba compiles, XNNPACK packs weights)
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in engines}
    clock = time.perf_counter
    for _ in range(args.rounds):
        for name, fn in engines.items():
            t0 = clock()
            for _ in range(args.calls):
                fn()
            times[name].append((clock() - t0) / args.calls)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    base = median["litert_xnnpack"]
    result = {
        "model": f"int8_mobile_cnn {args.size}x{args.size}",
        "threads": 1,
        "rounds": args.rounds,
        "calls": args.calls,
        "median_ms": {k: v * 1e3 for k, v in median.items()},
        "ratio_to_xnnpack": {k: v / base for k, v in median.items()},
        "equals_reference_kernels": equal,
    }
    if args.profile:
        result["native_profile"] = profile(args.rounds * args.calls)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['model']}, one thread, median of {args.rounds} rounds x {args.calls} calls")
        for name in engines:
            print(
                f"  {name:18s} {median[name] * 1e3:9.3f} ms  x{median[name] / base:7.2f} vs XNNPACK  "
                f"output == reference kernels: {equal[name]}"
            )
        if args.profile:
            prof = result["native_profile"]
            total = sum(n["median_us"] for n in prof["nodes"])
            print(f"native engine per node (median of {args.rounds * args.calls} profiled runs):")
            for n in prof["nodes"]:
                print(f"  {n['node']:28s} {n['op']:18s} {n['median_us']:8.1f} us")
            print(f"  {'sum of nodes':47s} {total:8.1f} us; a whole run {prof['run_median_us']:.1f} us")
    return result


if __name__ == "__main__":
    main()
