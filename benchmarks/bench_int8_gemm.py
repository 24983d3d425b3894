"""INT8 GEMM: edgeai's kernels against ONNX Runtime's MatMulInteger (uint8 x int8), one thread.

    python benchmarks/bench_int8_gemm.py [--paths auto,vnni,avx2,portable] [--rounds 9] [--weight-bits 8|7]
        [--mode int32|onnx|tflite] [--shapes default|mobilenet|mbv2-half|MxNxK,...] [--ort-op matmul|conv] [--json]

For each M x N x K shape the weights are packed once (``prepare_gemm``) and ONNX
Runtime gets the same weights as an initializer of a single-node model (one
intra-op thread, spinning off). Every round times a batch of calls of each
engine back to back (interleaved in one process, so load changes hit all
alike); the report gives the median per-call time, GOPS (2*M*N*K / time) and
the ratio ORT time / edgeai time (above 1: edgeai is faster; "rounds": the lowest and
highest ratio within one round, which shows how far the machine's changing load moved the
comparison during the run). Outputs are checked equal before timing. ``--paths`` lists the kernel paths to time
(``auto`` = the one this CPU gets by default); paths this CPU lacks are skipped.
``--weight-bits 7`` draws weights in [-64, 63] (``reduce_range`` quantization), where
the AVX2 path may use ``vpmaddubsw``; with 8-bit weights it uses its exact int16 kernel.
``--mode onnx`` / ``--mode tflite`` time the GEMM with the requantization fused into its store
(uint8 output; ``Requant`` mode "onnx" or "tflite" with the same real scale) against ONNX
Runtime's QLinearMatMul (uint8 x int8 -> uint8). The "onnx" outputs are checked equal to ONNX
Runtime's; the "tflite" ones against edgeai's numpy reference (TFLite's fixed-point rounding
may differ from ONNX Runtime's float rounding by one step). ``--ort-op conv`` (with ``--mode onnx``)
times ONNX Runtime's 1x1 QLinearConv over M pixels instead (what a native 1x1 convolution replaces;
ONNX Runtime's time includes its NCHW <-> NHWC transposes). ``--shapes mobilenet`` times the 1x1
convolutions of MobileNetV2 (small K); ``--shapes mbv2-half`` those of bench_native_int8's model (width 0.5,
96x96) and its classifier.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import numpy as np

from edgeai.benchmarking import ort_peer_session

SHAPES = [(1, 1000, 1280), (196, 128, 1152), (3136, 32, 288), (256, 256, 256), (1024, 1024, 1024)]
# --shapes mobilenet: 1x1 convolutions of MobileNetV2 as GEMMs (M pixels x N out channels x K in
# channels): small K, where the per-row cost of the store decides, and the fixed cost of a small call
MOBILENET = [(2304, 48, 8), (2304, 96, 16), (3136, 64, 32), (576, 144, 24), (196, 384, 64), (36, 16, 96), (36, 80, 480)]
# --shapes mbv2-half: the 1x1 layers and the classifier of bench_native_int8's model (width 0.5, 96x96), one of each
MBV2_HALF = [
    (2304, 8, 16), (2304, 48, 8), (576, 16, 48), (576, 96, 16), (144, 16, 96), (144, 96, 16), (36, 32, 96),
    (36, 192, 32), (36, 32, 192), (36, 48, 192), (36, 288, 48), (36, 48, 288), (9, 80, 288), (9, 480, 80),
    (9, 80, 480), (9, 160, 480), (9, 1280, 160), (1, 100, 1280),
]  # fmt: skip
A_SCALE, B_SCALE, Y_SCALE, Y_ZP = 0.02, 0.01, 4.0, 128


def _ort_matmul_integer(b: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
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
    sess = ort_peer_session(model.SerializeToString())
    return lambda a: sess.run(None, {"A": a})[0]


def _ort_qlinear_matmul(b: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    from onnx import TensorProto, helper, numpy_helper

    k, n = b.shape
    inits = [
        numpy_helper.from_array(np.array(A_SCALE, np.float32), "AS"),
        numpy_helper.from_array(np.array(0, np.uint8), "AZ"),
        numpy_helper.from_array(b, "B"),
        numpy_helper.from_array(np.array(B_SCALE, np.float32), "BS"),
        numpy_helper.from_array(np.array(0, np.int8), "BZ"),
        numpy_helper.from_array(np.array(Y_SCALE, np.float32), "YS"),
        numpy_helper.from_array(np.array(Y_ZP, np.uint8), "YZ"),
    ]
    graph = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["A", "AS", "AZ", "B", "BS", "BZ", "YS", "YZ"], ["Y"])],
        "qgemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.UINT8, ["M", n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort_peer_session(model.SerializeToString())
    return lambda a: sess.run(None, {"A": a})[0]


def _ort_qlinear_conv1x1(b: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """ONNX Runtime's QLinearConv with the 1x1 kernel ``b.T``, called on ``a`` [M, K] as an NCHW image
    [1, K, 1, M] (the layout ONNX Runtime takes; its time includes its own layout transposes)."""
    from onnx import TensorProto, helper, numpy_helper

    k, n = b.shape
    inits = [
        numpy_helper.from_array(np.array(A_SCALE, np.float32), "AS"),
        numpy_helper.from_array(np.array(0, np.uint8), "AZ"),
        numpy_helper.from_array(np.ascontiguousarray(b.T).reshape(n, k, 1, 1), "W"),
        numpy_helper.from_array(np.array(B_SCALE, np.float32), "BS"),
        numpy_helper.from_array(np.array(0, np.int8), "BZ"),
        numpy_helper.from_array(np.array(Y_SCALE, np.float32), "YS"),
        numpy_helper.from_array(np.array(Y_ZP, np.uint8), "YZ"),
    ]
    graph = helper.make_graph(
        [helper.make_node("QLinearConv", ["X", "AS", "AZ", "W", "BS", "BZ", "YS", "YZ"], ["Y"])],
        "qconv",
        [helper.make_tensor_value_info("X", TensorProto.UINT8, [1, k, 1, "M"])],
        [helper.make_tensor_value_info("Y", TensorProto.UINT8, [1, n, 1, "M"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort_peer_session(model.SerializeToString())
    cache: dict[int, np.ndarray] = {}

    def run(a: np.ndarray) -> np.ndarray:
        x = cache.get(id(a))
        if x is None:  # the NCHW image of a, made once (not timed)
            x = cache[id(a)] = np.ascontiguousarray(a.T)[None, :, None, :]
        return sess.run(None, {"X": x})[0][0, :, 0, :].T

    return run


def _requant(mode: str) -> tuple:
    """(Requant for edgeai, numpy reference of the requantized output from int32 accumulators)."""
    from edgeai.kernels.api import Requant
    from edgeai.quant.requant import quantize_multiplier, requantize_tflite

    scale = np.float32(A_SCALE) * np.float32(B_SCALE) / np.float32(Y_SCALE)
    if mode == "onnx":
        return Requant("onnx", scale, None, None, Y_ZP, np.dtype(np.uint8)), None
    mult, shift = quantize_multiplier(float(scale))
    rq = Requant("tflite", None, np.int32(mult), np.int32(shift), Y_ZP, np.dtype(np.uint8))
    return rq, lambda acc: requantize_tflite(acc, mult, shift, Y_ZP, 0, 255, dtype=np.uint8)


def main() -> None:
    from edgeai.benchmarking import time_calls
    from edgeai.kernels.api import prepare_gemm
    from edgeai.kernels.cpu import available_paths, cpu_features, kernel_path, set_kernel_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", default="auto", help="comma-separated: auto, amx, vnni, avx2, portable")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--weight-bits", type=int, choices=(7, 8), default=8)
    ap.add_argument("--mode", choices=("int32", "onnx", "tflite"), default="int32")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--ort-op",
        choices=("matmul", "conv"),
        default="matmul",
        help="with --mode onnx: time ONNX Runtime's QLinearMatMul (default) or a 1x1 QLinearConv over M pixels",
    )
    ap.add_argument(
        "--shapes",
        default="default",
        help="'default', 'mobilenet', 'mbv2-half' or comma-separated MxNxK (e.g. 2304x48x8)",
    )
    args = ap.parse_args()
    if args.shapes == "default":
        shapes = SHAPES
    elif args.shapes == "mobilenet":
        shapes = MOBILENET
    elif args.shapes == "mbv2-half":
        shapes = MBV2_HALF
    else:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    wlo, whi = (-64, 64) if args.weight_bits == 7 else (-128, 128)
    paths = [kernel_path() if p == "auto" else p for p in args.paths.split(",")]
    paths = [p for p in dict.fromkeys(paths) if p in available_paths()]
    rng = np.random.default_rng(0)
    rows = []
    for m, n, k in shapes:
        a = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b = rng.integers(wlo, whi, (k, n)).astype(np.int8)
        requant, reference = (None, None) if args.mode == "int32" else _requant(args.mode)
        if requant is None:
            ort_fn = _ort_matmul_integer(b)
        elif args.ort_op == "conv" and args.mode == "onnx":
            ort_fn = _ort_qlinear_conv1x1(b)
        else:
            ort_fn = _ort_qlinear_matmul(b)
        kernels = {}
        for p in paths:
            set_kernel_path(p)
            kernels[p] = prepare_gemm(b, 0, a_dtype=np.uint8, requant=requant)
        set_kernel_path(None)
        want = ort_fn(a)
        if reference is not None:
            want = reference(a.astype(np.int64) @ b.astype(np.int64))
        for p, f in kernels.items():
            if not np.array_equal(f(a, 0), want):
                raise SystemExit(f"{p}: result differs from the reference on {m}x{n}x{k}")
        calls = min(2000, max(3, int(3e8 / (2 * m * n * k))))
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
            # the ratio within each round (the two engines timed back to back): its spread shows how far the
            # machine's changing load moved the comparison
            per_round = [o / t for o, t in zip(times["ort"], times[p], strict=True)]
            row[f"{p}_ratio_min"], row[f"{p}_ratio_max"] = min(per_round), max(per_round)
        rows.append(row)
    if args.json:
        print(json.dumps({"features": cpu_features(), "mode": args.mode, "rows": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    ort_op = "MatMulInteger" if args.mode == "int32" else "QLinearMatMul"
    if args.mode == "onnx" and args.ort_op == "conv":
        ort_op = "1x1 QLinearConv"
    table = Table(
        title=f"INT8 GEMM ({args.mode}), one thread: edgeai vs ONNX Runtime "
        f"{ort_op} (u8 x s8, {args.weight_bits}-bit weights)"
    )
    table.add_column("M x N x K")
    table.add_column("ORT GOPS", justify="right")
    for p in paths:
        table.add_column(f"{p} GOPS", justify="right")
        table.add_column(f"{p} ratio", justify="right")
        table.add_column("rounds", justify="right")
    for r in rows:
        cells = [r["shape"], f"{r['ort_gops']:.1f}"]
        for p in paths:
            cells += [
                f"{r[p + '_gops']:.1f}",
                f"{r[p + '_ratio']:.2f}",
                f"{r[p + '_ratio_min']:.2f}-{r[p + '_ratio_max']:.2f}",
            ]
        table.add_row(*cells)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
