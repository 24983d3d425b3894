"""com.microsoft QLinearSoftmax, as ONNX Runtime computes it.

A float32 table ``t[i] = exp((i - 255) * x_scale + b)`` (computed in double,
``b = log(FLT_MAX / D) - 5`` keeps the row sum finite), indexed by each
element's distance from its row maximum; the row sum is accumulated in
float32 left to right; ``y = rint(t * (floor(1 / y_scale) / sum)) + y_zp``,
saturated (``floor(1 / y_scale) / sum`` first, which cannot overflow). The
zero points of ``x`` do not matter (softmax is shift invariant). ``opset``
< 13 flattens the input to 2-D at ``axis``; 13 and later reduce over the
single ``axis``.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.qlinear_softmax import QLinearSoftmax
    >>> op = QLinearSoftmax(OpContext("s", "QLinearSoftmax", "com.microsoft", attrs={"axis": -1, "opset": 13}))
    >>> x = np.array([[0, 0, 0, 0]], np.uint8)
    >>> op.run(x, np.float32(0.1), np.uint8(0), np.float32(1 / 256), np.uint8(0))[0]
    array([[64, 64, 64, 64]], dtype=uint8)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.quantized._common import check_int_dtype, onnx_mode_only, scalar, zero_point_or_default
from edgeai.quant.params import normalize_axis, qrange

__all__ = ["QLinearSoftmax"]

_F = np.float32
_FLT_MAX = float(np.finfo(np.float32).max)


def _exp_table(x_scale: float, reduce_len: int) -> np.ndarray:
    shift = math.log(_FLT_MAX / reduce_len)
    shift = shift - 5.0 if shift > 5.0 else 0.0
    i = np.arange(256, dtype=np.float64)
    return np.exp((i - 255.0 + shift / x_scale) * x_scale).astype(_F)


@register("QLinearSoftmax", domain="com.microsoft", since=1)
class QLinearSoftmax(Op):
    """Softmax over ``axis`` of a uint8/int8 tensor."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        onnx_mode_only(ctx)
        self.opset = int(ctx.attr("opset", 13))
        self.axis = int(ctx.attr("axis", -1 if self.opset >= 13 else 1))
        self._tables: dict[tuple[float, int], np.ndarray] = {}

    def run(self, x: np.ndarray, x_scale: Any, x_zp: Any, y_scale: Any, y_zp: Any = None) -> tuple[Any, ...]:
        ctx = self.ctx
        x = np.asarray(x)
        check_int_dtype(ctx, x, "X", ("int8", "uint8"))
        xs = float(scalar(ctx, x_scale, "x_scale").astype(_F))
        ys = float(scalar(ctx, y_scale, "y_scale").astype(_F))
        yz = scalar(ctx, zero_point_or_default(y_zp, x.dtype), "y_zero_point")
        axis = normalize_axis(self.axis, x.ndim)
        if self.opset < 13:
            rows = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
        else:
            rows = np.moveaxis(x, axis, -1)
        d = rows.shape[-1]
        key = (xs, d)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = _exp_table(xs, d)
        xi = rows.astype(np.int32)
        vt = table[xi - xi.max(axis=-1, keepdims=True) + 255]
        vsum = np.cumsum(vt, axis=-1, dtype=_F)[..., -1:]  # cumsum: float32, left to right
        c = np.floor(_F(1.0) / _F(ys))  # 1 / y_scale in float32, then floor
        q = np.rint((vt * (c / vsum).astype(_F)).astype(_F)).astype(np.int64) + int(yz)
        qmin, qmax = qrange(x.dtype)
        y = np.clip(q, qmin, qmax).astype(x.dtype)
        y = y.reshape(x.shape) if self.opset < 13 else np.moveaxis(y, -1, axis)
        return (y,)
