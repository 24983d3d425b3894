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

__all__ = ["requantize_fixed_point", "requantize_float", "rounding_divide_by_pot", "srdhm"]

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
