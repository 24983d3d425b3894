"""TFLite QUANTIZE (float32 -> int8, or int8 -> int8 requantization) and DEQUANTIZE (int8 -> float32).

QUANTIZE from float: ``clamp(round(x / scale) + zp)`` with float32 division
and rounding half away from zero. From int8: ``MultiplyByQuantizedMultiplier(
x - x_zp, m, shift) + y_zp`` with ``x_scale / y_scale`` as multiplier.
DEQUANTIZE: ``float32(scale * (q - zp))``. From int8 (and DEQUANTIZE per
tensor) the output is a function of the input byte: the ops look it up in a
256-entry table computed once with the functions here; from float one numba
loop (:func:`edgeai.ops.tflite.loops.quantize_float_loop`) does
:func:`quantize_float`'s arithmetic (``tflite_kernels=False`` runs the numpy).

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
from edgeai.ops.tflite.loops import quantize_float_loop
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
        self.fast = bool(ctx.options.get("tflite_kernels", True))
        self.table = self._requantize(np.arange(256, dtype=np.uint8).view(np.int8)) if self.from_int else None

    def _requantize(self, x: np.ndarray) -> np.ndarray:
        acc = x.astype(np.int32) - self.x_zp
        return requantize_tflite(acc, self.m, self.shift, self.zp, -128, 127, dtype=np.int8)

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if not self.fast:
            return (self._requantize(x) if self.from_int else quantize_float(x, self.scale, self.zp),)
        if self.from_int:  # a function of the input byte: the table of its 256 values
            return (self.table[x.view(np.uint8)],)
        out = np.empty(x.shape, np.int8)
        quantize_float_loop(np.ascontiguousarray(x, np.float32).reshape(-1), np.float32(self.scale), self.zp,
                            out.reshape(-1))  # fmt: skip
        return (out,)


@register("DEQUANTIZE", domain="tflite", since=1)
class Dequantize(Op):
    """DEQUANTIZE from int8 (per tensor or per channel) to float32."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        q = quant_of(ctx, ctx.input_values[0], "input")
        if ctx.output_values[0].dtype != np.dtype(np.float32):
            raise bad_model(ctx, f"DEQUANTIZE to {ctx.output_values[0].dtype} (implemented: float32)")
        self.q = q
        self.table = None
        if ctx.options.get("tflite_kernels", True) and np.asarray(q.scale).size == 1:
            self.table = self._dequantize(np.arange(256, dtype=np.uint8).view(np.int8))

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if self.table is not None:  # per tensor: the table of the 256 int8 values
            return (self.table[x.view(np.uint8)],)
        return (self._dequantize(x),)

    def _dequantize(self, x: np.ndarray) -> np.ndarray:
        scale = np.asarray(self.q.scale, np.float32)
        zp = np.asarray(self.q.zero_point, np.int32)
        if self.q.axis is not None and scale.size > 1:
            shape = [1] * x.ndim
            shape[self.q.axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return (x.astype(np.int32) - zp).astype(np.float32) * scale
