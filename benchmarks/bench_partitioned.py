"""Partitioned execution and planning cost (issue 5).

1. MobileNetV2-style INT8 (QDQ) model: ``edgeai.Session`` with one op type
   pinned to the native engine in the middle of the graph (ONNX Runtime
   before and after it) against ONNX Runtime alone, interleaved, batch 1.
2. Planning time of a 1,000-node model: ``plan_graph`` with cold capability
   probes (first plan in the process) and warm (probe answers cached).

    python benchmarks/bench_partitioned.py [--rounds 15] [--pin Add]

Needs torch (the test extra) to build the MobileNetV2 model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import edgeai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _chain_model(n: int) -> onnx.ModelProto:
    ops = ["Relu", "Sigmoid", "Tanh", "Neg"]
    nodes = [helper.make_node(ops[i % 4], [f"v{i}"], [f"v{i + 1}"], name=f"n{i}") for i in range(n)]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("v0", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info(f"v{n}", TensorProto.FLOAT, ["N", 64])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def bench_planning(n: int = 1000, repeats: int = 7) -> None:
    from edgeai.graph.onnx_import import import_model_proto
    from edgeai.hardware import devices_for_format
    from edgeai.placement import plan_graph
    from edgeai.placement.capability import Capability

    graph = import_model_proto(_chain_model(n))
    devs = devices_for_format("onnx")
    t0 = time.perf_counter()
    plan_graph(graph, devs, capability=Capability(graph))
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan_graph(graph, devs, capability=Capability(graph))
        warm.append(time.perf_counter() - t0)
    print(f"planning a {n}-node model: cold {cold * 1e3:.1f} ms, warm median {statistics.median(warm) * 1e3:.1f} ms")


def bench_partitioned(rounds: int, pin: str) -> None:
    from models import calibration_data, export_mobilenetv2, quantize_mobilenetv2

    tmp = Path(tempfile.mkdtemp())
    qdq = quantize_mobilenetv2(export_mobilenetv2(tmp / "f.onnx"), tmp / "qdq.onnx")
    x = calibration_data(1)[0]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    raw = ort.InferenceSession(str(qdq), so, providers=["CPUExecutionProvider"])
    split = edgeai.Session(qdq, pin={pin: "native"}, threads=1)
    parts = split.placement.partitions
    print(f"partitions: {[(p.device, len(p.nodes)) for p in parts]}")
    ref = raw.run(None, x)[0]
    out = split.run(x)["logits"]
    print(f"max |split - ORT| = {float(np.abs(out - ref).max()):.3g} (bit-exact: {np.array_equal(out, ref)})")
    calls = 20
    for _ in range(3):
        raw.run(None, x)
        split.run(x)
    a, b = [], []
    for r in range(rounds):
        for which in (0, 1) if r % 2 == 0 else (1, 0):
            t0 = time.perf_counter()
            for _ in range(calls):
                (raw.run(None, x) if which == 0 else split.run(x))
            (a if which == 0 else b).append((time.perf_counter() - t0) / calls)
    ra, rb = statistics.median(a), statistics.median(b)
    print(
        f"ONNX Runtime alone: {ra * 1e3:.3f} ms; ORT + native partition ({pin}): {rb * 1e3:.3f} ms; ratio {rb / ra:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--pin", default="/features/features.10/Add", help="op type or node name pinned to the native engine"
    )
    args = parser.parse_args()
    bench_planning()
    bench_partitioned(args.rounds, args.pin)


if __name__ == "__main__":
    main()
