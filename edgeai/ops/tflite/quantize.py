"""TFLite QUANTIZE (float32 -> int8, or int8 -> int8 requantization) and DEQUANTIZE (int8 -> float32).

QUANTIZE from float: ``clamp(round(x / scale) + zp)`` with float32 division
and rounding half away from zero. From int8: ``MultiplyByQuantizedMultiplier(
x - x_zp, m, shift) + y_zp`` with ``x_scale / y_scale`` as multiplier.
DEQUANTIZE: ``float32(scale * (q - zp))``.

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.quantize import quantize_float
    >>> quantize_float(np.array([0.25, -0.25, 100.0], np.float32), 0.5, 0)
    array([  1,  -1, 127], dtype=int8)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.tflite._common import bad_model, quant_of, unsupported
from edgeai.quant.requant import quantize_multiplier, requantize_tflite

__all__ = ["Dequantize", "Quantize", "quantize_float"]


def quantize_float(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    v = np.asarray(x, np.float32) / np.float32(scale)
    r = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))  # TfLiteRound: ties away from zero
    return np.clip(r.astype(np.float64) + zp, -128, 127).astype(np.int8)


@register("QUANTIZE", domain="tflite", since=1)
class Quantize(Op):
    """QUANTIZE to per-tensor int8 (from float32 or int8)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        yq = quant_of(ctx, ctx.output_values[0], "output")
        if not yq.per_tensor:
            raise unsupported(ctx, "per-channel QUANTIZE")
        x = ctx.input_values[0]
        self.scale, self.zp = yq.scale[0], int(yq.zero_point[0])
        self.from_int = x is not None and x.dtype == np.dtype(np.int8)
        if self.from_int:
            xq = quant_of(ctx, x, "input")
            self.x_zp = int(xq.zero_point[0])
            self.m, self.shift = quantize_multiplier(float(np.float32(xq.scale[0])) / float(np.float32(self.scale)))
        elif x is None or x.dtype != np.dtype(np.float32):
            raise unsupported(ctx, f"QUANTIZE from {getattr(x, 'dtype', None)} (implemented: float32, int8)")

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if self.from_int:
            acc = x.astype(np.int32) - self.x_zp
            return (requantize_tflite(acc, self.m, self.shift, self.zp, -128, 127, dtype=np.int8),)
        return (quantize_float(x, self.scale, self.zp),)


@register("DEQUANTIZE", domain="tflite", since=1)
class Dequantize(Op):
    """DEQUANTIZE from int8 (per tensor or per channel) to float32."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        q = quant_of(ctx, ctx.input_values[0], "input")
        if ctx.output_values[0].dtype != np.dtype(np.float32):
            raise bad_model(ctx, f"DEQUANTIZE to {ctx.output_values[0].dtype} (implemented: float32)")
        self.q = q

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        scale = np.asarray(self.q.scale, np.float32)
        zp = np.asarray(self.q.zero_point, np.int32)
        if self.q.axis is not None and scale.size > 1:
            shape = [1] * x.ndim
            shape[self.q.axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return ((x.astype(np.int32) - zp).astype(np.float32) * scale,)
