"""Requantization: int32 accumulators back to 8/16-bit integers, two ways.

**ONNX mode** (what ONNX Runtime's MLAS does): the accumulator is converted
to float32, multiplied by a float32 scale (``x_scale * w_scale / y_scale``),
rounded half to even and saturated after adding the output zero point.

**TFLite mode** (gemmlowp / TFLite reference kernels): the real multiplier
is stored as an int32 Q31 fixed-point multiplier and a power-of-two shift;
the accumulator is multiplied with gemmlowp's *saturating rounding doubling
high multiply* (nearest, ties toward +infinity) and divided by a power of
two with *rounding divide by POT* (nearest, ties away from zero).

Every scalar helper is a numba ``register_jitable`` function: callable from
plain Python and from ``@njit`` kernels, so the fast kernels and this
reference share one definition of the arithmetic.

Example:
    >>> import numpy as np
    >>> from edgeai.quant.requant import quantize_multiplier, requantize_onnx, requantize_tflite
    >>> acc = np.array([-1000, 0, 37, 100000], dtype=np.int32)
    >>> requantize_onnx(acc, np.float32(0.01), 128, 0, 255)
    array([118, 128, 128, 255], dtype=uint8)
    >>> m, s = quantize_multiplier(0.01)
    >>> requantize_tflite(acc, m, s, 128, 0, 255)
    array([118, 128, 128, 255], dtype=uint8)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba.extending import register_jitable

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "multiply_by_quantized_multiplier",
    "quantize_multiplier",
    "requantize_onnx",
    "requantize_onnx_scalar",
    "requantize_tflite",
    "requantize_tflite_scalar",
    "round_half_even",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _out_dtype(qmin: int, qmax: int) -> np.dtype[Any]:
    for dt in (np.uint8, np.int8, np.uint16, np.int16):
        info = np.iinfo(dt)
        if info.min == qmin and info.max == qmax:
            return np.dtype(dt)
    return np.dtype(np.int32)


# --------------------------------------------------------------------- ONNX


@register_jitable
def round_half_even(x: float) -> float:
    """Round to the nearest integer, ties to even (IEEE default, ``nearbyint``)."""
    r = np.floor(x)
    d = x - r
    if d > 0.5 or (d == 0.5 and (r % 2) != 0):
        r += 1.0
    return r


@register_jitable
def requantize_onnx_scalar(acc: int, scale: float, zero_point: int, qmin: int, qmax: int) -> int:
    """One accumulator, ONNX Runtime's way: ``sat(rint(float32(acc) * float32(scale)) + zp)``.

    ``scale`` must already be float32 (numba keeps float32 arithmetic in
    float32 when both operands are float32).
    """
    v = np.float32(acc) * np.float32(scale)
    lo = np.float32(qmin - zero_point)
    hi = np.float32(qmax - zero_point)
    # clamp before rounding, as MLAS does (also keeps huge values out of int range)
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return int(round_half_even(v)) + zero_point


def requantize_onnx(
    acc: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    qmin: int,
    qmax: int,
    *,
    dtype: Any = None,
) -> np.ndarray:
    """Vectorised ONNX-mode requantization of int32 accumulators.

    ``scale`` and ``zero_point`` broadcast against ``acc`` (per-channel: shape
    them for the channel axis). The multiply happens in float32, as in MLAS.
    """
    v = np.asarray(acc, dtype=np.int32).astype(np.float32) * np.asarray(scale, dtype=np.float32)
    zp = np.asarray(zero_point, dtype=np.int32)
    v = np.clip(v, (qmin - zp).astype(np.float32), (qmax - zp).astype(np.float32))
    q = np.rint(v).astype(np.int32) + zp
    return q.astype(dtype if dtype is not None else _out_dtype(qmin, qmax))


# ------------------------------------------------------------------- TFLite


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """Split a positive real multiplier into (Q31 int32 multiplier, shift), as TFLite's ``QuantizeMultiplier``.

    ``real ≈ multiplier * 2**(shift - 31)``; a positive shift is a left shift.
    """
    if real_multiplier == 0.0:
        return 0, 0
    if not (real_multiplier > 0.0 and math.isfinite(real_multiplier)):
        raise ValueError(f"requantization multiplier must be positive and finite, got {real_multiplier!r}")
    q, shift = math.frexp(real_multiplier)  # real = q * 2**shift, q in [0.5, 1)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # TfLiteRound: half away from zero (q > 0)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


@register_jitable
def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp ``SaturatingRoundingDoublingHighMul``: round(a*b / 2**31), ties toward +infinity.

    (The nudge is +2**30 for a non-negative product and 1 - 2**30 for a
    negative one, then C's truncating division: -1.5 becomes -1, 1.5 becomes 2.)
    """
    if a == -2147483648 and b == -2147483648:
        return 2147483647
    ab = np.int64(a) * np.int64(b)
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero
    q = s // np.int64(1 << 31)
    if q < 0 and q * np.int64(1 << 31) != s:
        q += 1
    return int(q)


@register_jitable
def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp ``RoundingDivideByPOT``: round(x / 2**exponent), ties away from zero."""
    mask = (np.int64(1) << exponent) - 1
    remainder = np.int64(x) & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return int((np.int64(x) >> exponent) + (1 if remainder > threshold else 0))


@register_jitable
def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLite ``MultiplyByQuantizedMultiplier`` (gemmlowp double rounding)."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    xl = np.int64(x) * (np.int64(1) << left)
    # the left-shifted value wraps to int32 in TFLite's arithmetic
    xl = ((xl + 2147483648) % 4294967296) - 2147483648
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(int(xl), multiplier), right)


@register_jitable
def requantize_tflite_scalar(acc: int, multiplier: int, shift: int, zero_point: int, qmin: int, qmax: int) -> int:
    """One accumulator, TFLite's way: ``clamp(MBQM(acc, m, shift) + zp)``."""
    v = multiply_by_quantized_multiplier(acc, multiplier, shift) + zero_point
    return min(max(v, qmin), qmax)


def _tflite_vec(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Vectorised :func:`multiply_by_quantized_multiplier` in int64 (same arithmetic)."""
    x = x.astype(np.int64)
    m = m.astype(np.int64)
    shift = shift.astype(np.int64)
    left = np.where(shift > 0, shift, 0)
    right = np.where(shift > 0, 0, -shift)
    xl = x << left
    xl = ((xl + 2**31) % 2**32) - 2**31
    overflow = (xl == INT32_MIN) & (m == INT32_MIN)
    ab = xl * m  # |ab| <= 2**62: fits int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    high = np.where(s >= 0, s >> 31, -((-s) >> 31))  # truncating division by 2**31
    high = np.where(overflow, INT32_MAX, high)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def requantize_tflite(
    acc: np.ndarray,
    multiplier: np.ndarray | int,
    shift: np.ndarray | int,
    zero_point: np.ndarray | int,
    qmin: int,
    qmax: int,
    *,
    dtype: Any = None,
) -> np.ndarray:
    """Vectorised TFLite-mode requantization (multiplier/shift per tensor or broadcast per channel)."""
    acc = np.asarray(acc, dtype=np.int32)
    m = np.broadcast_to(np.asarray(multiplier, dtype=np.int64), acc.shape)
    s = np.broadcast_to(np.asarray(shift, dtype=np.int64), acc.shape)
    v = _tflite_vec(acc, m, s) + np.asarray(zero_point, dtype=np.int64)
    return np.clip(v, qmin, qmax).astype(dtype if dtype is not None else _out_dtype(qmin, qmax))
