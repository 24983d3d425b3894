"""INT8 convolution: edgeai's kernels against ONNX Runtime's QLinearConv, one thread.

    python benchmarks/bench_qlinearconv.py [--paths auto,vnni,avx2,portable] [--rounds 9] [--json]
        [--layers 3x3,dw,1x1,dws2,first] [--layout NCHW|NHWC]

Layers of MobileNet-like networks, uint8 activations, int8 per-channel
weights, int32 bias, uint8 output (requantization "onnx" mode fused into the
kernel's store): 3x3 32->32 at 56x56, depthwise 3x3 at 112x112x32, 1x1 32->64 at
56x56, and two of MobileNetV2 (width 0.5, 96x96 input): depthwise 3x3 stride 2 at
48x48x48 and the first convolution, 3x3 stride 2 3->16 at 96x96 (batch 1, "same"
padding). Weights are packed once (``prepare_conv``);
ONNX Runtime runs a single-node QLinearConv model (one intra-op thread,
spinning off). Rounds interleave the engines in one process; the report gives
the median per-call time and the ratio ORT time / edgeai time (above 1: edgeai
is faster). Outputs are checked byte-equal before timing.

``--layout NHWC`` times edgeai's channels-last kernels (``layout="NHWC"``, NHWC input and
output, as the native engine runs them) against the same NCHW ONNX Runtime node: ONNX
Runtime's own time includes its NCHW <-> NHWC transposes, edgeai's none.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeai.benchmarking import ort_peer_session

# key, name, C, H=W, M, k, group, stride
LAYERS = [
    ("3x3", "3x3 32->32 @56x56", 32, 56, 32, 3, 1, 1),
    ("dw", "depthwise 3x3 @112x112x32", 32, 112, 32, 3, 32, 1),
    ("1x1", "1x1 32->64 @56x56", 32, 56, 64, 1, 1, 1),
    ("dws2", "depthwise 3x3 s2 @48x48x48", 48, 48, 48, 3, 48, 2),
    ("first", "3x3 s2 3->16 @96x96", 3, 96, 16, 3, 1, 2),
]


def _ort_qlinear_conv(
    w: np.ndarray,
    w_scale: np.ndarray,
    bias: np.ndarray,
    x_scale: float,
    x_zp: int,
    y_scale: float,
    y_zp: int,
    pads: list[int],
    group: int,
    stride: int = 1,
) -> Callable[[np.ndarray], Any]:
    from onnx import TensorProto, helper, numpy_helper

    def t(name: str, v: Any, dt: Any) -> Any:
        return numpy_helper.from_array(np.asarray(v, dt), name)

    node = helper.make_node(
        "QLinearConv",
        ["X", "XS", "XZ", "W", "WS", "WZ", "YS", "YZ", "B"],
        ["Y"],
        pads=pads,
        group=group,
        strides=[stride, stride],
    )
    inits = [
        t("XS", x_scale, np.float32),
        t("XZ", x_zp, np.uint8),
        t("W", w, np.int8),
        t("WS", w_scale, np.float32),
        t("WZ", np.zeros(w.shape[0]), np.int8),
        t("YS", y_scale, np.float32),
        t("YZ", y_zp, np.uint8),
        t("B", bias, np.int32),
    ]
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("X", TensorProto.UINT8, None)],
        [helper.make_tensor_value_info("Y", TensorProto.UINT8, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort_peer_session(model.SerializeToString())
    return lambda x: sess.run(None, {"X": x})[0]


def main() -> None:
    from edgeai.benchmarking import time_calls
    from edgeai.kernels.api import Requant, prepare_conv
    from edgeai.kernels.cpu import available_paths, cpu_features, kernel_path, set_kernel_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", default="auto", help="comma-separated: auto, amx, vnni, avx2, portable")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--layers", default="3x3,dw,1x1,dws2,first", help="comma-separated: 3x3, dw, 1x1, dws2, first")
    ap.add_argument("--layout", default="NCHW", choices=["NCHW", "NHWC"], help="edgeai's kernel layout")
    args = ap.parse_args()
    paths = [kernel_path() if p == "auto" else p for p in args.paths.split(",")]
    paths = [p for p in dict.fromkeys(paths) if p in available_paths()]
    rng = np.random.default_rng(0)
    rows = []
    wanted = set(args.layers.split(","))
    nhwc = args.layout == "NHWC"
    for key, name, c, hw, m, k, group, stride in LAYERS:
        x = rng.integers(0, 256, (1, c, hw, hw)).astype(np.uint8)
        if key not in wanted:
            continue
        xk = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x
        w = rng.integers(-127, 128, (m, c // group, k, k)).astype(np.int8)
        w_scale = rng.uniform(0.002, 0.01, m).astype(np.float32)
        bias = rng.integers(-2000, 2000, m).astype(np.int32)
        x_scale, x_zp, y_scale, y_zp = np.float32(0.02), 120, np.float32(0.5), 100
        pads = [k // 2] * 4
        ort_fn = _ort_qlinear_conv(w, w_scale, bias, float(x_scale), x_zp, float(y_scale), y_zp, pads, group, stride)
        scale = (x_scale * w_scale / y_scale).astype(np.float32)
        rq = Requant("onnx", scale, None, None, y_zp, np.dtype(np.uint8))
        kernels = {}
        for p in paths:
            set_kernel_path(p)
            kernels[p] = prepare_conv(
                w,
                0,
                x_dtype=np.uint8,
                strides=(stride, stride),
                pads=pads,
                dilations=(1, 1),
                group=group,
                bias=bias,
                requant=rq,
                layout=args.layout,
            )
        set_kernel_path(None)
        want = ort_fn(x)
        for p, f in kernels.items():
            got = f(xk, x_zp)
            if not np.array_equal(got.transpose(0, 3, 1, 2) if nhwc else got, want):
                raise SystemExit(f"{p}: result differs from ONNX Runtime on {name}")
        calls = 10
        times: dict[str, list[float]] = {"ort": [], **{p: [] for p in kernels}}
        for _ in range(args.rounds):
            times["ort"].append(time_calls(lambda o=ort_fn, v=x: o(v), calls))
            for p, f in kernels.items():
                times[p].append(time_calls(lambda f=f, v=xk, z=x_zp: f(v, z), calls))
        med = {key: statistics.median(v) for key, v in times.items()}
        row: dict[str, Any] = {"layer": name, "layout": args.layout, "ort_ms": med["ort"] * 1e3}
        for p in kernels:
            row[f"{p}_ms"] = med[p] * 1e3
            row[f"{p}_ratio"] = med["ort"] / med[p]
        rows.append(row)
    if args.json:
        print(json.dumps({"features": cpu_features(), "rows": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    title = f"INT8 conv, one thread: edgeai ({args.layout}) vs ONNX Runtime QLinearConv (u8 x s8 -> u8)"
    table = Table(title=title)
    table.add_column("layer")
    table.add_column("ORT ms", justify="right")
    for p in paths:
        table.add_column(f"{p} ms", justify="right")
        table.add_column(f"{p} ratio", justify="right")
    for r in rows:
        cells = [r["layer"], f"{r['ort_ms']:.3f}"]
        for p in paths:
            cells += [f"{r[p + '_ms']:.3f}", f"{r[p + '_ratio']:.2f}"]
        table.add_row(*cells)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
