"""INT8 GEMM: edgeai's kernels against ONNX Runtime's MatMulInteger (uint8 x int8), one thread.

    python benchmarks/bench_int8_gemm.py [--paths auto,vnni,avx2,portable] [--rounds 9] [--weight-bits 8|7] [--json]

For each M x N x K shape the weights are packed once (``prepare_gemm``) and ONNX
Runtime gets the same weights as an initializer of a single-node model (one
intra-op thread, spinning off). Every round times a batch of calls of each
engine back to back (interleaved in one process, so load changes hit all
alike); the report gives the median per-call time, GOPS (2*M*N*K / time) and
the ratio ORT time / edgeai time (above 1: edgeai is faster). Outputs are
checked equal before timing. ``--paths`` lists the kernel paths to time
(``auto`` = the one this CPU gets by default); paths this CPU lacks are skipped.
``--weight-bits 7`` draws weights in [-64, 63] (``reduce_range`` quantization), where
the AVX2 path may use ``vpmaddubsw``; with 8-bit weights it uses its exact int16 kernel.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import numpy as np

SHAPES = [(1, 1000, 1280), (196, 128, 1152), (3136, 32, 288), (256, 256, 256), (1024, 1024, 1024)]


def _ort_matmul_integer(b: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, n = b.shape
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, ["M", n])],
        [numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda a: sess.run(None, {"A": a})[0]


def main() -> None:
    from edgeai.benchmarking import time_calls
    from edgeai.kernels.api import prepare_gemm
    from edgeai.kernels.cpu import available_paths, cpu_features, kernel_path, set_kernel_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", default="auto", help="comma-separated: auto, amx, vnni, avx2, portable")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--weight-bits", type=int, choices=(7, 8), default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    wlo, whi = (-64, 64) if args.weight_bits == 7 else (-128, 128)
    paths = [kernel_path() if p == "auto" else p for p in args.paths.split(",")]
    paths = [p for p in dict.fromkeys(paths) if p in available_paths()]
    rng = np.random.default_rng(0)
    rows = []
    for m, n, k in SHAPES:
        a = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b = rng.integers(wlo, whi, (k, n)).astype(np.int8)
        ort_fn = _ort_matmul_integer(b)
        kernels = {}
        for p in paths:
            set_kernel_path(p)
            kernels[p] = prepare_gemm(b, 0, a_dtype=np.uint8)
        set_kernel_path(None)
        want = ort_fn(a)
        for p, f in kernels.items():
            if not np.array_equal(f(a, 0), want):
                raise SystemExit(f"{p}: result differs from ONNX Runtime on {m}x{n}x{k}")
        calls = max(3, int(3e8 / (2 * m * n * k)))
        times: dict[str, list[float]] = {"ort": [], **{p: [] for p in kernels}}
        for _ in range(args.rounds):
            times["ort"].append(time_calls(lambda o=ort_fn, x=a: o(x), calls))
            for p, f in kernels.items():
                times[p].append(time_calls(lambda f=f, x=a: f(x, 0), calls))
        med = {key: statistics.median(v) for key, v in times.items()}
        ops = 2 * m * n * k
        row = {"shape": f"{m}x{n}x{k}", "ort_gops": ops / med["ort"] / 1e9}
        for p in kernels:
            row[f"{p}_gops"] = ops / med[p] / 1e9
            row[f"{p}_ratio"] = med["ort"] / med[p]
        rows.append(row)
    if args.json:
        print(json.dumps({"features": cpu_features(), "rows": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"INT8 GEMM, one thread: edgeai vs ONNX Runtime MatMulInteger (u8 x s8, {args.weight_bits}-bit weights)"
    )
    table.add_column("M x N x K")
    table.add_column("ORT GOPS", justify="right")
    for p in paths:
        table.add_column(f"{p} GOPS", justify="right")
        table.add_column(f"{p} ratio", justify="right")
    for r in rows:
        cells = [r["shape"], f"{r['ort_gops']:.1f}"]
        for p in paths:
            cells += [f"{r[p + '_gops']:.1f}", f"{r[p + '_ratio']:.2f}"]
        table.add_row(*cells)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
