"""The numba loops behind the fast paths of the TFLite ops.

Each loop does in one pass what the op module's numpy reference
(:func:`~edgeai.ops.tflite.pooling.average_pool_int8`,
:func:`~edgeai.ops.tflite._common.requant`, ...) does in several, with the
same integer arithmetic: the tests compare every loop with its reference, and
the ``tflite_kernels=False`` session option runs the references instead.
Int8 tensors arrive viewed as uint8 where a loop indexes a table with them.

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.loops import mbqm_double
    >>> int(mbqm_double(1000, 1 << 30, -5))   # 1000 * 0.5 / 32 = 15.6 -> 16
    16
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgeai.kernels.requant import multiply_by_quantized_multiplier_branchless

__all__ = [
    "add_table",
    "fully_connected_rows",
    "mbqm_double",
    "mbqm_single",
    "mul_table",
    "pair_lookup",
    "pool_nhwc",
    "quantize_float_loop",
    "requant_rows",
]

# TFLite's gemmlowp MultiplyByQuantizedMultiplier (double rounding), branch-free: the kernels' own
mbqm_double = multiply_by_quantized_multiplier_branchless


@njit(cache=True, inline="always")
def mbqm_single(acc: int, m: int, shift: int) -> int:
    """TFLite's single-rounding ``MultiplyByQuantizedMultiplier``: ``(acc * m + 2**(30 - shift)) >> (31 - shift)``."""
    total = np.int64(31) - np.int64(shift)
    return (np.int64(acc) * np.int64(m) + (np.int64(1) << (total - 1))) >> total


@njit(cache=True)
def requant_rows(
    acc: np.ndarray,
    m: np.ndarray,
    shift: np.ndarray,
    zp: int,
    lo: int,
    hi: int,
    single: bool,
    out: np.ndarray,
) -> None:
    """``out[i, j] = clamp(MBQM(acc[i, j], m[j], shift[j]) + zp, lo, hi)`` for 2-D int32 ``acc``."""
    rows, cols = acc.shape
    for i in range(rows):
        for j in range(cols):
            if single:
                v = mbqm_single(acc[i, j], m[j], shift[j])
            else:
                v = mbqm_double(acc[i, j], m[j], shift[j])
            out[i, j] = min(max(v + zp, lo), hi)


@njit(cache=True)
def fully_connected_rows(
    x: np.ndarray,
    x_zp: int,
    w: np.ndarray,
    w_sum: np.ndarray,
    bias: np.ndarray,
    m: np.ndarray,
    shift: np.ndarray,
    zp: int,
    lo: int,
    hi: int,
    single: bool,
    out: np.ndarray,
) -> None:
    """int8 FULLY_CONNECTED of ``x`` [M, K] with ``w`` [N, K] (int16, its zero point taken off).

    ``acc = x . w - x_zp * w_sum + bias`` is ``(x - x_zp) . w + bias`` exactly: the dot
    product of int8 and int16 values stays in int32 for K below 65536 (the caller's bound),
    the rest is int64. Double rounding takes ``acc`` wrapped to int32, as the reference does.
    """
    rows, k = x.shape
    units = w.shape[0]
    for i in range(rows):
        for j in range(units):
            dot = np.int32(0)
            for t in range(k):
                dot += np.int32(x[i, t]) * np.int32(w[j, t])
            acc = np.int64(dot) - np.int64(x_zp) * w_sum[j] + bias[j]
            if single:
                v = mbqm_single(acc, m[j], shift[j])
            else:
                v = mbqm_double(np.int64(np.int32(acc)), m[j], shift[j])
            out[i, j] = min(max(v + zp, lo), hi)


@njit(cache=True)
def add_table(
    za: int, zb: int, m1: int, s1: int, m2: int, s2: int, mo: int, so: int, zy: int, lo: int, hi: int, out: np.ndarray
) -> None:
    """TFLite int8 ADD for every pair of int8 values: ``out[(a & 0xFF) << 8 | (b & 0xFF)]``.

    ``MBQM(MBQM((a - za) << 20, m1, s1) + MBQM((b - zb) << 20, m2, s2), mo, so) + zy``, clamped.
    """
    for i in range(256):
        x1 = mbqm_double((np.int64(i - 256 if i > 127 else i) - za) << 20, m1, s1)
        for j in range(256):
            x2 = mbqm_double((np.int64(j - 256 if j > 127 else j) - zb) << 20, m2, s2)
            out[(i << 8) | j] = min(max(mbqm_double(x1 + x2, mo, so) + zy, lo), hi)


@njit(cache=True)
def mul_table(za: int, zb: int, m: int, shift: int, zy: int, lo: int, hi: int, out: np.ndarray) -> None:
    """TFLite int8 MUL for every pair of int8 values: ``MBQM((a - za) * (b - zb), m, shift) + zy``, clamped."""
    for i in range(256):
        a = np.int64(i - 256 if i > 127 else i) - za
        for j in range(256):
            prod = a * (np.int64(j - 256 if j > 127 else j) - zb)
            out[(i << 8) | j] = min(max(mbqm_double(prod, m, shift) + zy, lo), hi)


@njit(cache=True)
def pair_lookup(a: np.ndarray, b: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = table[a[i] * 256 + b[i]]`` over flat uint8 views of two int8 tensors."""
    for i in range(a.size):
        out[i] = table[(np.int32(a[i]) << 8) | np.int32(b[i])]


@njit(cache=True)
def pool_nhwc(
    x: np.ndarray,
    fh: int,
    fw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    average: bool,
    lo: int,
    hi: int,
    out: np.ndarray,
) -> None:
    """TFLite int8 AVERAGE_POOL_2D (``average``) or MAX_POOL_2D over the in-bounds taps of each window.

    The average divides the int32 sum by the number of in-bounds taps, rounding half away
    from zero (C's truncating division of ``sum +- count / 2``).
    """
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    acc = np.empty(c, np.int32)
    for b in range(n):
        for oy in range(oh):
            y0 = oy * sh - pt
            ys, ye = max(y0, 0), min(y0 + fh, h)
            for ox in range(ow):
                x0 = ox * sw - pl
                xs, xe = max(x0, 0), min(x0 + fw, w)
                count = max(ye - ys, 0) * max(xe - xs, 0)
                if average:
                    acc[:] = 0
                    for yy in range(ys, ye):
                        for xx in range(xs, xe):
                            for ch in range(c):
                                acc[ch] += np.int32(x[b, yy, xx, ch])
                    if count == 0:  # no in-bounds tap (not reachable with TFLite's paddings)
                        for ch in range(c):
                            out[b, oy, ox, ch] = min(max(0, lo), hi)
                        continue
                    half = count // 2
                    for ch in range(c):
                        num = acc[ch] + half if acc[ch] > 0 else acc[ch] - half
                        q = num // count if num >= 0 else -((-num) // count)
                        out[b, oy, ox, ch] = min(max(q, lo), hi)
                else:
                    acc[:] = -(2**15)
                    for yy in range(ys, ye):
                        for xx in range(xs, xe):
                            for ch in range(c):
                                acc[ch] = max(acc[ch], np.int32(x[b, yy, xx, ch]))
                    for ch in range(c):
                        out[b, oy, ox, ch] = min(max(acc[ch], lo), hi)


@njit(cache=True)
def quantize_float_loop(x: np.ndarray, scale: np.float32, zp: int, out: np.ndarray) -> None:
    """float32 -> int8: ``clamp(TfLiteRound(x / scale) + zp)``, the division and rounding in float32."""
    half = np.float32(0.5)
    for i in range(x.size):
        v = x[i] / scale
        r = np.floor(np.abs(v) + half)
        if v < 0:
            r = -r
        f = np.float64(r) + zp
        out[i] = np.int8(min(max(f, -128.0), 127.0))
