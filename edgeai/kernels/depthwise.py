"""Depthwise INT8 convolution on exact float32 vectors, requantization fused into the same loop.

Why float32: ``x - x_zp`` and ``w - w_zp`` are integers of at most 9 bits, so every product is
below ``2**16`` and a sum of up to :data:`MAX_TAPS` of them below ``2**24``; float32 holds every
partial sum exactly (a fused multiply-add rounds nothing either). Its multiply-add vectorizes
without the widening shuffles an int32 product of bytes needs, and the staging that converts the
input once also applies the zero point, so padding is plain zeros.

Two loop shapes, both reading contiguous runs in their innermost loop:

* NHWC (:func:`depthwise_nhwc`): a band of input rows is staged in float32, split into ``sw``
  column phases, so that for every kernel tap the (pixel, channel) values of ``B`` consecutive
  output pixels are one contiguous run, at any stride. Weights and per-channel parameters are
  tiled ``B`` times, so the inner loop is elementwise over ``B * C`` values.
* NCHW (:func:`depthwise_nchw`): one channel plane at a time (phase-split the same way), each
  output row a contiguous run, the channel's weights scalars.

Output modes: 0 int32, 1 ONNX float requantization, 2 TFLite fixed point, 3 as 1 with the bias
added to the float32 sum (exact when ``|bias| + taps * 255 * 255 < 2**24``, which the caller
checks; it saves the int32 round trip).

Taps go in chunks of nine (a 3x3 kernel is one chunk): a chunk's nine products are summed in
registers; more than one chunk sums through a small float32 buffer. The requantization
(:func:`float_lane`, :func:`fixed_point_lane`) is written without branches that depend on the lane, so it vectorizes; it
is bit-exact with :mod:`edgeai.kernels.requant`'s scalar functions.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["CHUNK", "MAX_TAPS", "WROW", "depthwise_nchw", "depthwise_nhwc", "fixed_point_lane", "float_lane"]

CHUNK = 9
WROW = 512  # NHWC: elements per weight row (bpx pixels of C <= WROW channels, or one block of WROW channels)
MAX_TAPS = 258  # 258 * 255 * 255 < 2**24: every float32 partial sum is an exact integer


@njit(cache=True, inline="always")
def fixed_point_lane(a, mult, shift, zp, qmin, qmax):  # type: ignore[no-untyped-def]
    """:func:`edgeai.kernels.requant.requantize_fixed_point` without lane-dependent branches.

    ``mult`` is in ``[0, 2**31)`` (checked when the kernel is prepared), so the one saturating
    case of SaturatingRoundingDoublingHighMul (both operands ``-2**31``) cannot occur.
    """
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    x = np.int64(np.int32(np.int64(a) << left))  # the left shift wraps in int32, as in TFLite's C++
    ab = x * np.int64(mult)
    t = ab + (np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30)))
    q = (t + ((t >> 63) & np.int64(0x7FFFFFFF))) >> 31  # divide by 2**31 rounding towards zero
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (np.int64(1) if q < 0 else np.int64(0))
    r = (q >> right) + (np.int64(1) if (q & mask) > threshold else np.int64(0)) + zp
    r = r if r > qmin else np.int64(qmin)
    return np.int32(r if r < qmax else np.int64(qmax))


@njit(cache=True, inline="always")
def _round_clamp(f, zp, lo, hi):  # type: ignore[no-untyped-def]
    f = f if f > lo else lo
    f = f if f < hi else hi
    magic = np.float32(12582912.0)  # round half to even, as requantize_float
    return np.int32(np.int32((f + magic) - magic) + zp)


@njit(cache=True, inline="always")
def float_lane(a, scale, zp, lo, hi):  # type: ignore[no-untyped-def]
    """:func:`edgeai.kernels.requant.requantize_float` on an int32 lane; ``lo``/``hi`` are
    ``float32(qmin - zp)``/``float32(qmax - zp)``."""
    return _round_clamp(np.float32(a) * scale, zp, lo, hi)


@njit(cache=True, inline="always")
def _acc32(s, bias):  # type: ignore[no-untyped-def]
    # the exact float32 sum plus bias, wrapped in int32 as the GEMM kernels' store does
    return np.int32(np.int32(s) + bias)


@njit(cache=True, inline="always")
def _taps(x, b, o, w, wb, k):  # type: ignore[no-untyped-def]
    # nine products of one chunk; offsets o are loop-invariant, the runs x[b + o[t]:] contiguous; the
    # weight rows are WROW apart (a constant: one pointer reaches all nine, none spill)
    return (
        x[np.uint64(b + o[0])] * w[np.uint64(wb + k)]
        + x[np.uint64(b + o[1])] * w[np.uint64(wb + WROW + k)]
        + x[np.uint64(b + o[2])] * w[np.uint64(wb + 2 * WROW + k)]
        + x[np.uint64(b + o[3])] * w[np.uint64(wb + 3 * WROW + k)]
        + x[np.uint64(b + o[4])] * w[np.uint64(wb + 4 * WROW + k)]
        + x[np.uint64(b + o[5])] * w[np.uint64(wb + 5 * WROW + k)]
        + x[np.uint64(b + o[6])] * w[np.uint64(wb + 6 * WROW + k)]
        + x[np.uint64(b + o[7])] * w[np.uint64(wb + 7 * WROW + k)]
        + x[np.uint64(b + o[8])] * w[np.uint64(wb + 8 * WROW + k)]
    )


@njit(cache=True, inline="always")
def _taps_scalar(x, b, o, w):  # type: ignore[no-untyped-def]
    # w: a tuple of nine float32 weights, held in registers across the loop
    return (
        x[np.uint64(b + o[0])] * w[0]
        + x[np.uint64(b + o[1])] * w[1]
        + x[np.uint64(b + o[2])] * w[2]
        + x[np.uint64(b + o[3])] * w[3]
        + x[np.uint64(b + o[4])] * w[4]
        + x[np.uint64(b + o[5])] * w[5]
        + x[np.uint64(b + o[6])] * w[6]
        + x[np.uint64(b + o[7])] * w[7]
        + x[np.uint64(b + o[8])] * w[8]
    )


@njit(cache=True, inline="always")
def _chunk(offs, ci):  # type: ignore[no-untyped-def]
    return (
        offs[ci, 0],
        offs[ci, 1],
        offs[ci, 2],
        offs[ci, 3],
        offs[ci, 4],
        offs[ci, 5],
        offs[ci, 6],
        offs[ci, 7],
        offs[ci, 8],
    )


@njit(cache=True, inline="always")
def _segment(x, base, L, offs, wt, wb, acc, bias, mode, scale, mult, shift, pb, zp, qmin, qmax, out, ob):  # type: ignore[no-untyped-def]
    # out[ob + k] = requant(sum over taps t of x[base + offs[t] + k] * w_t[k]), k < L, with the weights
    # of chunk ci at wt[wb + (9 * ci + t) * WROW:] and the per-channel parameters at [pb:]. Chunks
    # before the last sum into acc; one loop per requant mode, so each vectorizes without the others.
    last = offs.shape[0] - 1
    for ci in range(last):
        o = _chunk(offs, ci)
        wc = wb + ci * 9 * WROW
        if ci == 0:
            for k in range(L):
                acc[k] = _taps(x, base + k, o, wt, wc, k)
        else:
            for k in range(L):
                acc[k] += _taps(x, base + k, o, wt, wc, k)
    o = _chunk(offs, last)
    wc = wb + last * 9 * WROW
    if mode == 1:
        lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
        if last == 0:
            for k in range(L):
                a = _acc32(_taps(x, base + k, o, wt, wc, k), bias[np.uint64(pb + k)])
                out[np.uint64(ob + k)] = float_lane(a, scale[np.uint64(pb + k)], zp, lo, hi)
        else:
            for k in range(L):
                a = _acc32(acc[k] + _taps(x, base + k, o, wt, wc, k), bias[np.uint64(pb + k)])
                out[np.uint64(ob + k)] = float_lane(a, scale[np.uint64(pb + k)], zp, lo, hi)
    elif mode == 3:  # mode 1 with the bias added in float32 (exact: the caller checked the range)
        lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
        if last == 0:
            for k in range(L):
                f = _taps(x, base + k, o, wt, wc, k) + np.float32(bias[np.uint64(pb + k)])
                out[np.uint64(ob + k)] = _round_clamp(f * scale[np.uint64(pb + k)], zp, lo, hi)
        else:
            for k in range(L):
                f = acc[k] + _taps(x, base + k, o, wt, wc, k) + np.float32(bias[np.uint64(pb + k)])
                out[np.uint64(ob + k)] = _round_clamp(f * scale[np.uint64(pb + k)], zp, lo, hi)
    elif mode == 2 and last == 0:
        for k in range(L):
            a = _acc32(_taps(x, base + k, o, wt, wc, k), bias[np.uint64(pb + k)])
            out[np.uint64(ob + k)] = fixed_point_lane(
                a, mult[np.uint64(pb + k)], shift[np.uint64(pb + k)], zp, qmin, qmax
            )
    elif mode == 2:
        for k in range(L):
            a = _acc32(acc[k] + _taps(x, base + k, o, wt, wc, k), bias[np.uint64(pb + k)])
            out[np.uint64(ob + k)] = fixed_point_lane(
                a, mult[np.uint64(pb + k)], shift[np.uint64(pb + k)], zp, qmin, qmax
            )
    else:
        for k in range(L):
            out[np.uint64(ob + k)] = _acc32(acc[k] + _taps(x, base + k, o, wt, wc, k), bias[np.uint64(pb + k)])


@njit(cache=True, inline="always")
def _pair_sums(x, b, d, c0, c1, c2, wt, k):  # type: ignore[no-untyped-def]
    w0, w1, w2 = wt[np.uint64(k)], wt[np.uint64(WROW + k)], wt[np.uint64(2 * WROW + k)]
    w3, w4, w5 = wt[np.uint64(3 * WROW + k)], wt[np.uint64(4 * WROW + k)], wt[np.uint64(5 * WROW + k)]
    w6, w7, w8 = wt[np.uint64(6 * WROW + k)], wt[np.uint64(7 * WROW + k)], wt[np.uint64(8 * WROW + k)]
    a0, a1, a2 = x[np.uint64(b + c0)], x[np.uint64(b + c1)], x[np.uint64(b + c2)]
    b0, b1, b2 = x[np.uint64(b + d + c0)], x[np.uint64(b + d + c1)], x[np.uint64(b + d + c2)]
    e0, e1, e2 = x[np.uint64(b + 2 * d + c0)], x[np.uint64(b + 2 * d + c1)], x[np.uint64(b + 2 * d + c2)]
    g0, g1, g2 = x[np.uint64(b + 3 * d + c0)], x[np.uint64(b + 3 * d + c1)], x[np.uint64(b + 3 * d + c2)]
    s = a0 * w0 + a1 * w1 + a2 * w2 + b0 * w3 + b1 * w4 + b2 * w5 + e0 * w6 + e1 * w7 + e2 * w8
    t = b0 * w0 + b1 * w1 + b2 * w2 + e0 * w3 + e1 * w4 + e2 * w5 + g0 * w6 + g1 * w7 + g2 * w8
    return s, t


@njit(cache=True, inline="always")
def _pair_sums_scalar(x, b, d, c0, c1, c2, w):  # type: ignore[no-untyped-def]
    # as _pair_sums with the nine weights scalars (an NCHW plane)
    a0, a1, a2 = x[np.uint64(b + c0)], x[np.uint64(b + c1)], x[np.uint64(b + c2)]
    b0, b1, b2 = x[np.uint64(b + d + c0)], x[np.uint64(b + d + c1)], x[np.uint64(b + d + c2)]
    e0, e1, e2 = x[np.uint64(b + 2 * d + c0)], x[np.uint64(b + 2 * d + c1)], x[np.uint64(b + 2 * d + c2)]
    g0, g1, g2 = x[np.uint64(b + 3 * d + c0)], x[np.uint64(b + 3 * d + c1)], x[np.uint64(b + 3 * d + c2)]
    s = a0 * w[0] + a1 * w[1] + a2 * w[2] + b0 * w[3] + b1 * w[4] + b2 * w[5] + e0 * w[6] + e1 * w[7] + e2 * w[8]
    t = b0 * w[0] + b1 * w[1] + b2 * w[2] + e0 * w[3] + e1 * w[4] + e2 * w[5] + g0 * w[6] + g1 * w[7] + g2 * w[8]
    return s, t


@njit(cache=True, inline="always")
def _segment_pair(x, base, L, d, c0, c1, c2, wt, bias, mode, scale, mult, shift, zp, qmin, qmax, out, ob, ob2):  # type: ignore[no-untyped-def]
    # two output rows of a 3x3 kernel whose row step equals the output row step (d elements): the four
    # input rows' runs and the nine weights are loaded once for both rows (a quarter fewer loads)
    lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
    if mode == 3:
        for k in range(L):
            s, t = _pair_sums(x, base + k, d, c0, c1, c2, wt, k)
            fb, sc = np.float32(bias[k]), scale[k]
            out[np.uint64(ob + k)] = _round_clamp((s + fb) * sc, zp, lo, hi)
            out[np.uint64(ob2 + k)] = _round_clamp((t + fb) * sc, zp, lo, hi)
    elif mode == 1:
        for k in range(L):
            s, t = _pair_sums(x, base + k, d, c0, c1, c2, wt, k)
            out[np.uint64(ob + k)] = float_lane(_acc32(s, bias[k]), scale[k], zp, lo, hi)
            out[np.uint64(ob2 + k)] = float_lane(_acc32(t, bias[k]), scale[k], zp, lo, hi)
    elif mode == 2:
        for k in range(L):
            s, t = _pair_sums(x, base + k, d, c0, c1, c2, wt, k)
            out[np.uint64(ob + k)] = fixed_point_lane(_acc32(s, bias[k]), mult[k], shift[k], zp, qmin, qmax)
            out[np.uint64(ob2 + k)] = fixed_point_lane(_acc32(t, bias[k]), mult[k], shift[k], zp, qmin, qmax)
    else:
        for k in range(L):
            s, t = _pair_sums(x, base + k, d, c0, c1, c2, wt, k)
            out[np.uint64(ob + k)] = _acc32(s, bias[k])
            out[np.uint64(ob2 + k)] = _acc32(t, bias[k])


@njit(cache=True, inline="always")
def _stage_nhwc_band(x, n, r0, rows, rstride, pt, pl, xzp, flip, sw, wq, band):  # type: ignore[no-untyped-def]
    # band[((p * rstride + r) * wq + q) * C + c] = x[n, r0 + r - pt, q * sw + p - pl, c] - x_zp (0 outside)
    h_in, w_in, C = x.shape[1], x.shape[2], x.shape[3]
    fzp = np.float32(xzp)
    for p in range(sw):
        for r in range(rows):
            ih = r0 + r - pt
            dst = ((p * rstride + r) * wq) * C
            if ih < 0 or ih >= h_in:
                for k in range(wq * C):
                    band[np.uint64(dst + k)] = 0
                continue
            src = x[n, ih].reshape(-1)
            if sw == 1:  # one contiguous run between the zero borders
                lead = pl * C
                for k in range(lead):
                    band[np.uint64(dst + k)] = 0
                for k in range(w_in * C):
                    band[np.uint64(dst + lead + k)] = np.float32(np.int32(src[k] ^ flip)) - fzp
                for k in range((pl + w_in) * C, wq * C):
                    band[np.uint64(dst + k)] = 0
                continue
            for q in range(wq):
                iw = q * sw + p - pl
                d = dst + q * C
                if iw < 0 or iw >= w_in:
                    for c in range(C):
                        band[np.uint64(d + c)] = 0
                else:
                    s0 = iw * C
                    for c in range(C):
                        band[np.uint64(d + c)] = np.float32(np.int32(src[s0 + c] ^ flip)) - fzp


@njit(cache=True, fastmath={"contract"})
def _nhwc_band(
    x, n, y0, y1, pt, pl, xzp, flip, sh, sw, span_h, rstride, wq, bpx, pair, offs, wt, bias, mode, scale, mult, shift,
    zp, qmin, qmax, out, obase, ow, band, acc,
):  # type: ignore[no-untyped-def]  # fmt: skip
    # output rows y0:y1 from a band of (y1 - 1 - y0) * sh + span_h staged input rows
    C = x.shape[3]
    _stage_nhwc_band(x, n, y0 * sh, (y1 - 1 - y0) * sh + span_h, rstride, pt, pl, xzp, flip, sw, wq, band)
    nblk = (C + WROW - 1) // WROW  # channel blocks of WROW (one when bpx > 1)
    wblk = offs.shape[0] * 9 * WROW
    y = y0
    if pair and nblk == 1:  # 3x3, row step = output row step: two output rows per pass
        y = _rows_pair(band, y0, y1, sh, wq, C, ow, bpx, offs, wt, bias, mode, scale, mult, shift, zp, qmin, qmax, out,
                       obase)  # fmt: skip
    if nblk == 1:
        _rows(band, y, y1, y0, sh, wq, C, ow, bpx, offs, wt, acc, bias, mode, scale, mult, shift, zp, qmin, qmax, out,
              obase)  # fmt: skip
    else:
        _rows_blocked(band, y, y1, y0, sh, wq, C, ow, bpx, nblk, wblk, offs, wt, acc, bias, mode, scale, mult, shift,
                      zp, qmin, qmax, out, obase)  # fmt: skip


# The row loops are separate functions (not inlined): each is optimized once and shared by the
# serial and parallel drivers; one function holding all three took LLVM over a minute to compile.
@njit(cache=True, fastmath={"contract"})
def _rows_pair(band, y0, y1, sh, wq, C, ow, bpx, offs, wt, bias, mode, scale, mult, shift, zp, qmin, qmax, out, obase):  # type: ignore[no-untyped-def]
    d = offs[0, 3] - offs[0, 0]
    c0, c1, c2 = offs[0, 0], offs[0, 1], offs[0, 2]
    y = y0
    while y + 1 < y1:
        for ox0 in range(0, ow, bpx):
            base = ((y - y0) * sh * wq + ox0) * C
            ob = obase + (y * ow + ox0) * C
            _segment_pair(
                band, base, min(bpx, ow - ox0) * C, d, c0, c1, c2, wt, bias, mode, scale, mult, shift, zp, qmin,
                qmax, out, ob, ob + ow * C,
            )  # fmt: skip
        y += 2
    return y


@njit(cache=True, fastmath={"contract"})
def _rows(
    band, y, y1, y0, sh, wq, C, ow, bpx, offs, wt, acc, bias, mode, scale, mult, shift, zp, qmin, qmax, out, obase
):  # type: ignore[no-untyped-def]  # fmt: skip
    for oy in range(y, y1):
        for ox0 in range(0, ow, bpx):
            base = ((oy - y0) * sh * wq + ox0) * C
            ob = obase + (oy * ow + ox0) * C
            L = min(bpx, ow - ox0) * C
            _segment(band, base, L, offs, wt, 0, acc, bias, mode, scale, mult, shift, 0, zp, qmin, qmax, out, ob)


@njit(cache=True, fastmath={"contract"})
def _rows_blocked(
    band, y, y1, y0, sh, wq, C, ow, bpx, nblk, wblk, offs, wt, acc, bias, mode, scale, mult, shift, zp, qmin, qmax,
    out, obase,
):  # type: ignore[no-untyped-def]  # fmt: skip
    for oy in range(y, y1):
        for ox0 in range(0, ow, bpx):
            base = ((oy - y0) * sh * wq + ox0) * C
            ob = obase + (oy * ow + ox0) * C
            for cb in range(nblk):
                L = min(WROW, C - cb * WROW)
                c0 = cb * WROW
                _segment(
                    band, base + c0, L, offs, wt, cb * wblk, acc, bias, mode, scale, mult, shift, c0, zp, qmin, qmax,
                    out, ob + c0,
                )  # fmt: skip


@njit(cache=True, fastmath={"contract"})
def depthwise_nhwc(
    x, n, pt, pl, xzp, flip, sh, sw, span_h, rb, rstride, wq, oh, ow, bpx, pair, offs, wt, bias, mode, scale, mult,
    shift, zp, qmin, qmax, out, obase, band, acc,
):  # type: ignore[no-untyped-def]  # fmt: skip
    """Depthwise convolution of NHWC image ``n`` into ``out[obase:]`` (NHWC), bands of ``rb`` output rows.

    ``band`` holds ``sw * rstride * wq * C`` float32 (``rstride`` input rows of ``wq`` phase
    columns per phase), ``acc`` :data:`WROW` float32; ``offs`` [chunks, 9] are the taps' offsets
    in ``band``. With C <= WROW, ``wt`` [chunks * 9, WROW] holds the weights tiled over
    ``bpx = WROW // C`` pixels, and ``bias``, ``scale``, ``mult``, ``shift`` are tiled the same way;
    with more channels (``bpx`` 1), ``wt`` is [C / WROW blocks, chunks * 9, WROW] and the
    parameters are per channel. Weights of the padding taps of the last chunk are zero. With
    ``pair`` (a 3x3 kernel whose dilation equals its stride, C <= WROW), two output rows per pass.
    """
    for y0 in range(0, oh, rb):
        _nhwc_band(
            x, n, y0, min(y0 + rb, oh), pt, pl, xzp, flip, sh, sw, span_h, rstride, wq, bpx, pair, offs, wt, bias, mode,
            scale, mult, shift, zp, qmin, qmax, out, obase, ow, band, acc,
        )  # fmt: skip


@njit(cache=True, parallel=True, fastmath={"contract"})
def depthwise_nhwc_parallel(
    x, n, pt, pl, xzp, flip, sh, sw, span_h, rb, rstride, wq, oh, ow, bpx, pair, offs, wt, bias, mode, scale, mult,
    shift, zp, qmin, qmax, out, obase, band, acc,
):  # type: ignore[no-untyped-def]  # fmt: skip
    """As :func:`depthwise_nhwc`, bands in parallel (``band`` and ``acc`` carry one row per band)."""
    nbands = (oh + rb - 1) // rb
    for bi in prange(nbands):
        y0 = bi * rb
        _nhwc_band(
            x, n, y0, min(y0 + rb, oh), pt, pl, xzp, flip, sh, sw, span_h, rstride, wq, bpx, pair, offs, wt, bias, mode,
            scale, mult, shift, zp, qmin, qmax, out, obase, ow, band[bi], acc[bi],
        )  # fmt: skip


@njit(cache=True, fastmath={"contract"})
def _nchw_channel(
    x, n, c, pt, pl, xzp, flip, sh, sw, hp, wq, oh, ow, pair, offs, wsc, bias, mode, scale, mult, shift, zp, qmin, qmax,
    out, obase, plane, acc,
):  # type: ignore[no-untyped-def]  # fmt: skip
    h_in, w_in = x.shape[2], x.shape[3]
    fzp = np.float32(xzp)
    # stage plane[(p * hp + r) * wq + q] = x[n, c, r - pt, q * sw + p - pl] - x_zp; the padding
    # around it is zero from the caller and never written
    src = x[n, c].reshape(-1)
    for p in range(sw):
        s0 = p - pl
        q_lo = min(max(-(s0 // sw), 0), wq)  # first q with q * sw + p - pl >= 0
        q_hi = min(max((w_in - 1 - s0) // sw + 1, q_lo), wq)  # past the last one < w_in
        for ih in range(h_in):
            dst = (p * hp + ih + pt) * wq
            row = ih * w_in + s0
            if sw == 1:
                for q in range(q_lo, q_hi):
                    plane[np.uint64(dst + q)] = np.float32(np.int32(src[np.uint64(row + q)] ^ flip)) - fzp
            else:
                for q in range(q_lo, q_hi):
                    plane[np.uint64(dst + q)] = np.float32(np.int32(src[np.uint64(row + q * sw)] ^ flip)) - fzp
    b, sc, mu, sf = bias[c], scale[c], mult[c], shift[c]
    fb = np.float32(b)
    lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
    last = offs.shape[0] - 1
    wc = wsc[c].reshape(last + 1, 9)
    y = 0
    if pair and last == 0:  # 3x3, row step = output row step: two output rows per pass
        d = offs[0, 3] - offs[0, 0]
        c0, c1, c2 = offs[0, 0], offs[0, 1], offs[0, 2]
        w = _chunk(wc, 0)
        while y + 1 < oh:
            base = y * sh * wq
            ob = obase + (c * oh + y) * ow
            ob2 = ob + ow
            if mode == 3:
                for k in range(ow):
                    s, t = _pair_sums_scalar(plane, base + k, d, c0, c1, c2, w)
                    out[np.uint64(ob + k)] = _round_clamp((s + fb) * sc, zp, lo, hi)
                    out[np.uint64(ob2 + k)] = _round_clamp((t + fb) * sc, zp, lo, hi)
            elif mode == 1:
                for k in range(ow):
                    s, t = _pair_sums_scalar(plane, base + k, d, c0, c1, c2, w)
                    out[np.uint64(ob + k)] = float_lane(_acc32(s, b), sc, zp, lo, hi)
                    out[np.uint64(ob2 + k)] = float_lane(_acc32(t, b), sc, zp, lo, hi)
            elif mode == 2:
                for k in range(ow):
                    s, t = _pair_sums_scalar(plane, base + k, d, c0, c1, c2, w)
                    out[np.uint64(ob + k)] = fixed_point_lane(_acc32(s, b), mu, sf, zp, qmin, qmax)
                    out[np.uint64(ob2 + k)] = fixed_point_lane(_acc32(t, b), mu, sf, zp, qmin, qmax)
            else:
                for k in range(ow):
                    s, t = _pair_sums_scalar(plane, base + k, d, c0, c1, c2, w)
                    out[np.uint64(ob + k)] = _acc32(s, b)
                    out[np.uint64(ob2 + k)] = _acc32(t, b)
            y += 2
    for oy in range(y, oh):
        base = oy * sh * wq
        ob = obase + (c * oh + oy) * ow
        for ci in range(last):
            o, w = _chunk(offs, ci), _chunk(wc, ci)
            if ci == 0:
                for k in range(ow):
                    acc[k] = _taps_scalar(plane, base + k, o, w)
            else:
                for k in range(ow):
                    acc[k] += _taps_scalar(plane, base + k, o, w)
        o, w = _chunk(offs, last), _chunk(wc, last)
        if mode == 1:
            for k in range(ow):
                a = _acc32(acc[k] + _taps_scalar(plane, base + k, o, w), b)
                out[np.uint64(ob + k)] = float_lane(a, sc, zp, lo, hi)
        elif mode == 3:  # mode 1 with the bias added in float32 (exact: the caller checked the range)
            for k in range(ow):
                f = acc[k] + _taps_scalar(plane, base + k, o, w) + fb
                out[np.uint64(ob + k)] = _round_clamp(f * sc, zp, lo, hi)
        elif mode == 2:
            for k in range(ow):
                a = _acc32(acc[k] + _taps_scalar(plane, base + k, o, w), b)
                out[np.uint64(ob + k)] = fixed_point_lane(a, mu, sf, zp, qmin, qmax)
        else:
            for k in range(ow):
                out[np.uint64(ob + k)] = _acc32(acc[k] + _taps_scalar(plane, base + k, o, w), b)


@njit(cache=True, fastmath={"contract"})
def depthwise_nchw(
    x, n, pt, pl, xzp, flip, sh, sw, hp, wq, oh, ow, pair, offs, wsc, bias, mode, scale, mult, shift, zp, qmin, qmax,
    out, obase, plane, acc,
):  # type: ignore[no-untyped-def]  # fmt: skip
    """Depthwise convolution of NCHW image ``n`` into ``out[obase:]`` (NCHW), one channel plane at a time.

    ``plane`` holds ``sw * hp * wq`` float32 (the padded plane split into ``sw`` column phases),
    zero on entry (only the image part is written, the padding stays zero),
    ``acc`` ``ow`` float32; ``offs`` [chunks, 9] are the taps' offsets in ``plane``, ``wsc``
    [M, chunks * 9] the weights ``w - w_zp`` (zero for the padding taps of the last chunk). With
    ``pair`` (a 3x3 kernel whose dilation equals its stride), two output rows per pass.
    """
    for c in range(x.shape[1]):
        _nchw_channel(
            x, n, c, pt, pl, xzp, flip, sh, sw, hp, wq, oh, ow, pair, offs, wsc, bias, mode, scale, mult, shift, zp,
            qmin, qmax, out, obase, plane, acc,
        )  # fmt: skip


@njit(cache=True, parallel=True, fastmath={"contract"})
def depthwise_nchw_parallel(
    x, n, pt, pl, xzp, flip, sh, sw, hp, wq, oh, ow, pair, offs, wsc, bias, mode, scale, mult, shift, zp, qmin, qmax,
    out, obase, plane, acc,
):  # type: ignore[no-untyped-def]  # fmt: skip
    """As :func:`depthwise_nchw`, channels in parallel (``plane`` and ``acc`` carry one row per chunk of channels)."""
    nt = plane.shape[0]
    C = x.shape[1]
    for t in prange(nt):
        for c in range(t * C // nt, (t + 1) * C // nt):
            _nchw_channel(
                x, n, c, pt, pl, xzp, flip, sh, sw, hp, wq, oh, ow, pair, offs, wsc, bias, mode, scale, mult, shift, zp,
                qmin, qmax, out, obase, plane[t], acc[t],
            )  # fmt: skip
