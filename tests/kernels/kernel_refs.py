"""Independent oracles for the kernel tests: int64 numpy arithmetic and ONNX Runtime single-node models."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

_ONNX_TYPE = {np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int32): 6, np.dtype(np.float32): 1}


def gemm_ref(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: Any, bias: np.ndarray | None) -> np.ndarray:
    """(a - a_zp) @ (b - b_zp) + bias in int64 (exact), then wrapped to int32."""
    acc = (a.astype(np.int64) - a_zp) @ (b.astype(np.int64) - np.asarray(b_zp, np.int64))
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return (((acc + 2**31) % 2**32) - 2**31).astype(np.int32)


def fixed_point_exact(acc: int, multiplier: int, shift: int, zp: int, qmin: int, qmax: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier from its definition, in exact rationals.

    The left shift wraps in int32; the doubling high multiply is round(x * m / 2**31) with ties
    toward +infinity, saturated; the right shift is round(v / 2**right) with ties away from zero.
    """
    left, right = max(shift, 0), max(-shift, 0)
    x = ((acc * 2**left + 2**31) % 2**32) - 2**31
    high = min(math.floor(Fraction(x * multiplier, 2**31) + Fraction(1, 2)), 2**31 - 1)
    q = Fraction(high, 2**right)
    v = int(math.copysign(math.floor(abs(q) + Fraction(1, 2)), q)) + zp
    return min(max(v, qmin), qmax)


def conv_ref(
    x: np.ndarray,
    x_zp: int,
    w: np.ndarray,
    w_zp: Any,
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    group: int,
    bias: np.ndarray | None,
) -> np.ndarray:
    """Direct NCHW convolution in int64, one kernel tap at a time."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    pt, pl, pb, pr = pads
    xp = np.full((n, c, h + pt + pb, wd + pl + pr), x_zp, np.int64)
    xp[:, :, pt : pt + h, pl : pl + wd] = x
    xp -= x_zp
    wq = w.astype(np.int64) - np.broadcast_to(np.asarray(w_zp, np.int64), (m,))[:, None, None, None]
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, m, oh, ow), np.int64)
    mg = m // group
    for g in range(group):
        xs = xp[:, g * cg : (g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
                out[:, g * mg : (g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, wq[g * mg : (g + 1) * mg, :, i, j])
    if bias is not None:
        out += bias.astype(np.int64)[None, :, None, None]
    return out.astype(np.int32)


def _session(nodes: list, inputs: list, outputs: list, inits: list, opset: int = 21) -> Any:
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _tensor(name: str, arr: Any, dtype: Any = None) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def ort_matmul_integer(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: Any) -> np.ndarray:
    from onnx import helper

    b_zp = np.asarray(b_zp, b.dtype)
    sess = _session(
        [helper.make_node("MatMulInteger", ["A", "B", "AZ", "BZ"], ["Y"])],
        [helper.make_tensor_value_info("A", _ONNX_TYPE[a.dtype], list(a.shape))],
        [helper.make_tensor_value_info("Y", 6, None)],
        [_tensor("B", b), _tensor("AZ", np.asarray(a_zp, a.dtype)), _tensor("BZ", b_zp)],
    )
    return sess.run(None, {"A": a})[0]


def ort_qlinear_matmul(
    a: np.ndarray,
    a_scale: float,
    a_zp: int,
    b: np.ndarray,
    b_scale: Any,
    b_zp: Any,
    y_scale: float,
    y_zp: int,
    y_dtype: Any,
) -> np.ndarray:
    from onnx import helper

    sess = _session(
        [helper.make_node("QLinearMatMul", ["A", "AS", "AZ", "B", "BS", "BZ", "YS", "YZ"], ["Y"])],
        [helper.make_tensor_value_info("A", _ONNX_TYPE[a.dtype], list(a.shape))],
        [helper.make_tensor_value_info("Y", _ONNX_TYPE[np.dtype(y_dtype)], None)],
        [
            _tensor("AS", a_scale, np.float32),
            _tensor("AZ", a_zp, a.dtype),
            _tensor("B", b),
            _tensor("BS", b_scale, np.float32),
            _tensor("BZ", b_zp, b.dtype),
            _tensor("YS", y_scale, np.float32),
            _tensor("YZ", y_zp, y_dtype),
        ],
    )
    return sess.run(None, {"A": a})[0]


def ort_conv_integer(
    x: np.ndarray, x_zp: int, w: np.ndarray, w_zp: Any, strides: Any, pads: Any, dilations: Any, group: int
) -> np.ndarray:
    from onnx import helper

    # ONNX pads order for 2-D: [top, left, bottom, right] == [x1_begin, x2_begin, x1_end, x2_end]
    node = helper.make_node(
        "ConvInteger",
        ["X", "W", "XZ", "WZ"],
        ["Y"],
        strides=list(strides),
        pads=list(pads),
        dilations=list(dilations),
        group=group,
    )
    sess = _session(
        [node],
        [helper.make_tensor_value_info("X", _ONNX_TYPE[x.dtype], list(x.shape))],
        [helper.make_tensor_value_info("Y", 6, None)],
        [_tensor("W", w), _tensor("XZ", x_zp, x.dtype), _tensor("WZ", w_zp, w.dtype)],
    )
    return sess.run(None, {"X": x})[0]


def ort_qlinear_conv(
    x: np.ndarray,
    x_scale: float,
    x_zp: int,
    w: np.ndarray,
    w_scale: Any,
    w_zp: Any,
    y_scale: float,
    y_zp: int,
    bias: np.ndarray | None,
    strides: Any,
    pads: Any,
    dilations: Any,
    group: int,
    y_dtype: Any,
) -> np.ndarray:
    from onnx import helper

    names = ["X", "XS", "XZ", "W", "WS", "WZ", "YS", "YZ"] + (["B"] if bias is not None else [])
    node = helper.make_node(
        "QLinearConv", names, ["Y"], strides=list(strides), pads=list(pads), dilations=list(dilations), group=group
    )
    inits = [
        _tensor("XS", x_scale, np.float32),
        _tensor("XZ", x_zp, x.dtype),
        _tensor("W", w),
        _tensor("WS", w_scale, np.float32),
        _tensor("WZ", w_zp, w.dtype),
        _tensor("YS", y_scale, np.float32),
        _tensor("YZ", y_zp, y_dtype),
    ]
    if bias is not None:
        inits.append(_tensor("B", bias, np.int32))
    sess = _session(
        [node],
        [helper.make_tensor_value_info("X", _ONNX_TYPE[x.dtype], list(x.shape))],
        [helper.make_tensor_value_info("Y", _ONNX_TYPE[np.dtype(y_dtype)], None)],
        inits,
    )
    return sess.run(None, {"X": x})[0]
