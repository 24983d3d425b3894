"""edgeai.Session.run against raw onnxruntime.InferenceSession.run, interleaved in one process.

Two models: a tiny one (a single Relu on 1x4 floats, where per-call overhead
dominates) and the shipped demo CNN at batch 1. For each, rounds alternate
between the two callers (ABAB...), each round timing ``--calls`` back-to-back
runs; the report gives the median per-call time of each, the ratio of the
medians and the absolute overhead per call.

    python benchmarks/bench_session_overhead.py [--rounds 31] [--calls 2000] [--json]

Both sessions use one intra-op thread so that thread-pool scheduling noise
does not swamp a microsecond-scale difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import edgeai
from edgeai.benchmarking import time_calls


def _tiny_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def compare(name: str, model: Any, feeds: dict[str, np.ndarray], rounds: int, calls: int) -> dict[str, Any]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    raw_arg = str(model) if not isinstance(model, bytes) else model
    raw = ort.InferenceSession(raw_arg, so, providers=["CPUExecutionProvider"])
    sess = edgeai.Session(model, device="cpu", threads=1)
    np.testing.assert_array_equal(raw.run(None, feeds)[0], next(iter(sess.run(feeds).values())))

    def raw_call() -> Any:
        return raw.run(None, feeds)

    def edge_call() -> Any:
        return sess.run(feeds)

    for fn in (raw_call, edge_call):  # warm-up
        time_calls(fn, calls // 4 + 1)
    raw_t: list[float] = []
    edge_t: list[float] = []
    for r in range(rounds):
        order = (raw_call, edge_call) if r % 2 == 0 else (edge_call, raw_call)
        for fn in order:
            (raw_t if fn is raw_call else edge_t).append(time_calls(fn, calls))
    raw_med = statistics.median(raw_t)
    edge_med = statistics.median(edge_t)
    return {
        "model": name,
        "raw_us": raw_med * 1e6,
        "edgeai_us": edge_med * 1e6,
        "ratio": edge_med / raw_med,
        "overhead_us": (edge_med - raw_med) * 1e6,
        "rounds": rounds,
        "calls_per_round": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [
        compare("tiny Relu 1x4", _tiny_model(), {"x": np.ones((1, 4), np.float32)}, args.rounds, args.calls),
        compare(
            "demo digits CNN, batch 1",
            edgeai.demo.model_path(),
            {"image": edgeai.demo.samples()[0][:1]},
            args.rounds,
            max(args.calls // 10, 10),
        ),
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"onnxruntime {ort.__version__}, edgeai {edgeai.__version__}; median of {args.rounds} interleaved rounds")
    print(f"{'model':28} {'raw ORT us':>11} {'edgeai us':>10} {'ratio':>7} {'overhead us':>12}")
    for r in results:
        print(f"{r['model']:28} {r['raw_us']:11.2f} {r['edgeai_us']:10.2f} {r['ratio']:7.3f} {r['overhead_us']:12.2f}")


if __name__ == "__main__":
    main()
