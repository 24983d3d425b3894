"""Shared pieces of the TFLite ops: quantization parameters, fused activations, padding.

All arithmetic follows TFLite's reference kernels: multipliers are computed
in double from the float32 scales, split with ``QuantizeMultiplier``, and
fused activations clamp at ``zero_point + round(bound / scale)`` (rounding
half away from zero).

Example:
    >>> from edgeai.ops.tflite._common import same_padding
    >>> same_padding(7, 3, 2, 1)   # (output size, pad before)
    (4, 1)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeai.errors import ModelFormatError, UnsupportedOpError
from edgeai.ops._base import OpContext
from edgeai.quant.requant import quantize_multiplier, requantize_tflite
from edgeai.specs import QuantParams

__all__ = [
    "activation_range",
    "bad_model",
    "multipliers",
    "output_size",
    "quant_of",
    "requant",
    "requant_single_rounding",
    "round_away",
    "same_padding",
    "unsupported",
]

# ActivationFunctionType in the TFLite schema
NONE, RELU, RELU_N1_TO_1, RELU6 = 0, 1, 2, 3
SAME, VALID = 0, 1


def unsupported(ctx: OpContext, what: str) -> UnsupportedOpError:
    return UnsupportedOpError(
        f"node {ctx.node_name!r} (tflite {ctx.op_type}): the native engine does not implement {what}",
        op_type=ctx.op_type,
        domain=ctx.domain,
        node=ctx.node_name,
    )


def bad_model(ctx: OpContext, what: str) -> ModelFormatError:
    return ModelFormatError(f"node {ctx.node_name!r} (tflite {ctx.op_type}): {what}")


def round_away(x: float) -> int:
    """TfLiteRound: nearest integer, ties away from zero."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def quant_of(ctx: OpContext, value: Any, what: str, dtypes: tuple[str, ...] = ("int8",)) -> QuantParams:
    """The quantization of an input/output ``Value``; refuses other dtypes clearly."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or np.dtype(dtype).name not in dtypes:
        raise unsupported(ctx, f"{what} of dtype {dtype} (implemented: {', '.join(dtypes)})")
    if value.quant is None:
        raise bad_model(ctx, f"{what} is {dtype} but has no quantization parameters")
    return value.quant


def activation_range(ctx: OpContext, q: QuantParams, qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """TFLite ``CalculateActivationRangeQuantized`` for the node's fused activation."""
    act = int(ctx.attr("fusedActivationFunction", NONE) or NONE)
    scale, zp = np.float32(q.scale[0]), int(q.zero_point[0])

    def quantize(f: float) -> int:
        return zp + round_away(float(np.float32(f) / scale))

    if act == NONE:
        return qmin, qmax
    if act == RELU:
        return max(qmin, quantize(0.0)), qmax
    if act == RELU6:
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if act == RELU_N1_TO_1:
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise unsupported(ctx, f"fused activation {act} on quantized tensors")


def multipliers(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per entry of ``real`` (double): TFLite's ``QuantizeMultiplier`` -> (int32 multipliers, shifts)."""
    pairs = [quantize_multiplier(float(r)) for r in np.atleast_1d(real)]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def requant(acc: np.ndarray, m: np.ndarray, shift: np.ndarray, zp: int, lo: int, hi: int) -> np.ndarray:
    """``clamp(MultiplyByQuantizedMultiplier(acc, m, shift) + zp, lo, hi)`` as int8 (m, shift broadcast)."""
    return requantize_tflite(acc, m, shift, zp, lo, hi, dtype=np.int8)


def requant_single_rounding(acc: np.ndarray, m: np.ndarray, shift: np.ndarray, zp: int, lo: int, hi: int) -> np.ndarray:
    """TFLite's single-rounding ``MultiplyByQuantizedMultiplier`` (``TFLITE_SINGLE_ROUNDING``):
    ``(acc * m + 2**(30 - shift)) >> (31 - shift)``, then ``+ zp`` and clamp, as int8."""
    total = 31 - np.asarray(shift, np.int64)
    v = (np.asarray(acc, np.int64) * np.asarray(m, np.int64) + (np.int64(1) << (total - 1))) >> total
    return np.clip(v + zp, lo, hi).astype(np.int8)


def output_size(padding: int, size: int, filt: int, stride: int, dilation: int = 1) -> int:
    eff = (filt - 1) * dilation + 1
    if padding == SAME:
        return (size + stride - 1) // stride
    return (size - eff + stride) // stride


def same_padding(size: int, filt: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(output size, padding before) with TFLite's SAME rule (the odd pixel goes after)."""
    out = output_size(SAME, size, filt, stride, dilation)
    eff = (filt - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2


def pad_and_out(padding: int, size: int, filt: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(output size, padding before) for SAME or VALID."""
    if padding == SAME:
        return same_padding(size, filt, stride, dilation)
    return output_size(VALID, size, filt, stride, dilation), 0
