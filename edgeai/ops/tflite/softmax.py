"""TFLite int8 SOFTMAX, bit-exact with LiteRT (reference resolver and XNNPACK alike).

LiteRT's int8 softmax works in float32 over a 256-entry table: at prepare
time ``table[255 - v] = expf(-x_scale * beta * v)``; per row, the table
entries of ``max - x`` are summed in float32 (in order), ``inv = 1 /
(sum * y_scale)``, and each output is ``round(entry * inv) + y_zp``
(rounding half away from zero), saturated. The table uses the C library's
``expf`` (through ctypes) so that it is LiteRT's table to the last bit; where
no C library is found, ``float32(exp(float64))`` (correctly rounded) stands in.

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.softmax import softmax_int8, softmax_table
    >>> softmax_int8(np.array([[0, 0]], np.int8), softmax_table(0.1, 1.0), 1 / 256, -128)   # one half each
    array([[0, 0]], dtype=int8)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Any

import numpy as np
from numba import njit

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.tflite._common import quant_of

__all__ = ["Softmax", "softmax_int8", "softmax_table"]


def _c_expf() -> Any:
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).expf
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return fn


def softmax_table(x_scale: float, beta: float) -> np.ndarray:
    """TFLite's ``PopulateSoftmaxLookupTable``: ``table[255 - v] = expf(-x_scale * beta * v)``, float32."""
    scale = -np.float32(x_scale) * np.float32(beta)
    expf = _c_expf()
    table = np.empty(256, np.float32)
    for v in range(256):
        arg = np.float32(scale * np.float32(v))
        table[255 - v] = expf(float(arg)) if expf is not None else np.float32(math.exp(float(arg)))
    return table


def _rows(x, table, y_scale, y_zp, out):  # type: ignore[no-untyped-def]
    rows, depth = x.shape
    for i in range(rows):
        top = -128
        for c in range(depth):
            top = max(top, np.int32(x[i, c]))
        base = 255 - top
        total = np.float32(0.0)
        for c in range(depth):
            total += table[base + np.int32(x[i, c])]
        inv = np.float32(1.0) / (total * y_scale)
        for c in range(depth):
            p = table[base + np.int32(x[i, c])] * inv
            r = np.floor(p)
            if p - r >= np.float32(0.5):  # std::round: half away from zero (p >= 0)
                r += np.float32(1.0)
            out[i, c] = min(max(np.int32(r) + y_zp, -128), 127)


_rows_jit = njit(cache=True)(_rows)


def softmax_int8(x: np.ndarray, table: np.ndarray, y_scale: float, y_zp: int) -> np.ndarray:
    """int8 softmax over the last axis with the float32 table of :func:`softmax_table`."""
    flat = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = np.empty(flat.shape, np.int8)
    _rows_jit(flat, table, np.float32(y_scale), np.int32(y_zp), out)
    return out.reshape(x.shape)


@register("SOFTMAX", domain="tflite", since=1)
class Softmax(Op):
    """int8 SOFTMAX over the last axis."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        xq = quant_of(ctx, ctx.input_values[0], "input")
        yq = quant_of(ctx, ctx.output_values[0], "output")
        self.table = softmax_table(xq.scale[0], float(ctx.attr("beta", 1.0)))
        self.y_scale, self.y_zp = float(np.float32(yq.scale[0])), int(yq.zero_point[0])

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        return (softmax_int8(x, self.table, self.y_scale, self.y_zp),)
