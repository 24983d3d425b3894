"""Requantization of int32 accumulators, callable from Python and from numba kernels.

Two modes, each bit-exact with the runtime that defines it:

* ONNX (:func:`requantize_float`): ``q = clamp(rint(float32(acc) * scale) + zp)``
  in float32 with round half to even, as ONNX Runtime's MLAS
  (``MlasRequantizeOutput``) does: the product is clamped to
  ``[qmin - zp, qmax - zp]`` in float, then rounded, then shifted by ``zp``.
* TFLite (:func:`requantize_fixed_point`): gemmlowp's
  ``SaturatingRoundingDoublingHighMul`` and ``RoundingDivideByPOT``
  (``MultiplyByQuantizedMultiplier``). ``shift`` follows TFLite's sign
  convention: positive shifts left (multiply by ``2**shift`` before the
  high multiply), negative shifts right (rounding divide by ``2**-shift``).
  The left shift wraps in int32, as TFLite's C++ does on two's-complement
  hardware.

Example:
    >>> import numpy as np
    >>> int(requantize_float(np.int32(1000), np.float32(0.0125), 3, 0, 255))  # 12.5 rounds to even
    15
    >>> int(requantize_fixed_point(1000, 1 << 30, -5, 3, 0, 255))  # 1000 * 0.5 / 32 = 15.6 -> 16, + 3
    19
"""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

__all__ = [
    "multiply_by_quantized_multiplier_branchless",
    "requantize_fixed_point",
    "requantize_fixed_point_branchless",
    "requantize_float",
    "rounding_divide_by_pot",
    "srdhm",
]

_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1


@register_jitable
def wrap_i32(x: int) -> int:
    """Two's-complement wrap of an integer into int32."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@register_jitable
def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul of two int32 values."""
    if a == _I32_MIN and b == _I32_MIN:
        return _I32_MAX
    ab = np.int64(a) * np.int64(b)
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    x = ab + nudge
    # C++ integer division truncates towards zero
    if x >= 0:
        return np.int64(x >> 31)
    return -np.int64((-x) >> 31)


@register_jitable
def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: x / 2**exponent, rounded half away from zero."""
    mask = np.int64((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@register_jitable
def requantize_fixed_point(acc: int, multiplier: int, shift: int, zp: int, qmin: int, qmax: int) -> int:
    """TFLite MultiplyByQuantizedMultiplier, plus zero point, clamped to [qmin, qmax]."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    x = wrap_i32(np.int64(acc) << left)
    v = rounding_divide_by_pot(srdhm(x, multiplier), right) + zp
    return min(max(v, qmin), qmax)


@register_jitable
def multiply_by_quantized_multiplier_branchless(acc: int, multiplier: int, shift: int) -> int:
    """TFLite's ``MultiplyByQuantizedMultiplier`` (gemmlowp double rounding) without branches.

    The same integers as :func:`rounding_divide_by_pot` of :func:`srdhm` for every int32 ``acc``
    and ``multiplier`` and ``shift`` in [-31, 30] (the tests compare both over the edge cases),
    so that a loop over it vectorizes. int64 arithmetic throughout:

    * the left shift wraps in int32 as in TFLite (``int32(acc << left)``);
    * SaturatingRoundingDoublingHighMul: the nudge is chosen by the sign mask, the division by
      ``2**31`` truncates towards zero by adding ``2**31 - 1`` to negative values before the
      arithmetic shift, and the one overflow (``INT32_MIN * INT32_MIN``) is the one result
      above ``INT32_MAX``: a ``min`` saturates it;
    * RoundingDivideByPOT: the threshold gains 1 for negative values through the sign bit.

    Example:
        >>> int(multiply_by_quantized_multiplier_branchless(1000, 1 << 30, -5))  # 1000 * 0.5 / 32
        16
    """
    s = np.int64(shift)
    left = s & ~(s >> 63)  # max(shift, 0)
    ns = -s
    right = ns & ~(ns >> 63)  # max(-shift, 0)
    x = np.int64(np.int32(np.int64(acc) << left))  # wraps in int32, as TFLite's C++
    ab = x * np.int64(multiplier)
    t = ab + (np.int64(1 << 30) - ((ab >> 63) & np.int64(_I32_MAX)))  # nudge 2**30 or 1 - 2**30
    q = (t + ((t >> 63) & np.int64(_I32_MAX))) >> 31  # truncating division by 2**31
    q = min(q, np.int64(_I32_MAX))
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + ((q >> 63) & 1)
    return (q >> right) + np.int64((q & mask) > threshold)


@register_jitable
def requantize_fixed_point_branchless(acc: int, multiplier: int, shift: int, zp: int, qmin: int, qmax: int) -> int:
    """:func:`requantize_fixed_point` without branches, so that a loop over it vectorizes.

    :func:`multiply_by_quantized_multiplier_branchless` plus the zero point, clamped.

    Example:
        >>> int(requantize_fixed_point_branchless(1000, 1 << 30, -5, 3, 0, 255))
        19
    """
    v = multiply_by_quantized_multiplier_branchless(acc, multiplier, shift) + zp
    return min(max(v, qmin), qmax)


@register_jitable
def requantize_float(acc: int, scale: np.float32, zp: int, qmin: int, qmax: int) -> int:
    """MLAS float requantization: float32 product, clamp, round half to even, add zp."""
    f = np.float32(acc) * scale
    lo = np.float32(qmin - zp)
    hi = np.float32(qmax - zp)
    f = min(max(f, lo), hi)
    # round half to even by the float32 "magic number" (1.5 * 2**23): exact because |f| <= 2**9
    # here, and unlike a libm rint call it vectorizes
    magic = np.float32(12582912.0)
    return np.int64((f + magic) - magic) + zp
