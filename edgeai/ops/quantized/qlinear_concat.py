"""com.microsoft QLinearConcat: concatenate quantized tensors into one output quantization.

Inputs are ``Y_scale, Y_zero_point`` then ``(X, X_scale, X_zero_point)`` per
tensor. An input quantized like the output is copied; any other goes
through a 256-entry table ``quantize(dequantize(q))`` (float32 arithmetic,
as ONNX Runtime).

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.qlinear_concat import QLinearConcat
    >>> op = QLinearConcat(OpContext("c", "QLinearConcat", "com.microsoft", attrs={"axis": 0}))
    >>> f = np.float32
    >>> op.run(f(1.0), np.uint8(0), np.array([1, 2], np.uint8), f(1.0), np.uint8(0),
    ...        np.array([10], np.uint8), f(0.5), np.uint8(0))[0]
    array([1, 2, 5], dtype=uint8)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.quantized._common import bad_model, check_int_dtype, onnx_mode_only, scalar
from edgeai.ops.quantized.quantize_linear import quantize_onnx
from edgeai.quant.params import normalize_axis, qrange

__all__ = ["QLinearConcat"]

_F = np.float32


@register("QLinearConcat", domain="com.microsoft", since=1)
class QLinearConcat(Op):
    """Concatenate along ``axis`` (negative counts from the end)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        onnx_mode_only(ctx)
        if ctx.attr("axis") is None:
            raise bad_model(ctx, "the axis attribute is required")
        self.axis = int(ctx.attr("axis"))

    def run(self, y_scale: Any, y_zp: Any, *triples: Any) -> tuple[Any, ...]:
        ctx = self.ctx
        if not triples or len(triples) % 3:
            raise bad_model(ctx, "inputs must be Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) triples")
        ys = scalar(ctx, y_scale, "Y_scale").astype(_F)
        yz = scalar(ctx, y_zp, "Y_zero_point")
        dtype = yz.dtype
        qmin, qmax = qrange(dtype)
        parts = []
        for i in range(0, len(triples), 3):
            x = np.asarray(triples[i])
            check_int_dtype(ctx, x, f"input {i // 3}", ("int8", "uint8"))
            if x.dtype != dtype:
                raise bad_model(ctx, f"input {i // 3} is {x.dtype} but the output is {dtype}")
            xs = scalar(ctx, triples[i + 1], "X_scale").astype(_F)
            xz = scalar(ctx, triples[i + 2], "X_zero_point")
            if xs == ys and int(xz) == int(yz):
                parts.append(x)
                continue
            q = np.arange(qmin, qmax + 1, dtype=np.int32)
            table = quantize_onnx(((q - np.int32(xz)).astype(_F) * xs).astype(_F), ys, yz, dtype)
            parts.append(table[x.astype(np.int32) - qmin])
        axis = normalize_axis(self.axis, parts[0].ndim)
        return (np.concatenate(parts, axis=axis),)
