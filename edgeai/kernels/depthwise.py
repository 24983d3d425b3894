"""Depthwise INT8 convolution on exact float32 vectors, requantization fused into the same loop.

Why float32: ``x - x_zp`` and ``w - w_zp`` are integers of at most 9 bits, so every product is
below ``2**16`` and a sum of up to :data:`MAX_TAPS` of them below ``2**24``; float32 holds every
partial sum exactly (a fused multiply-add rounds nothing either). Its multiply-add vectorizes
without the widening shuffles an int32 product of bytes needs, and the staging that converts the
input once (uint8 or int8, in its own dtype) also applies the zero point, so padding is plain zeros.

Two loop shapes, both reading contiguous runs in their innermost loop:

* NHWC (:func:`depthwise_nhwc`, :func:`depthwise_nhwc_pairs`): a band of input rows is staged in
  float32, split into ``sw`` column phases, so that for every kernel tap the (pixel, channel)
  values of ``B`` consecutive output pixels are one contiguous run, at any stride. Weights and
  per-channel parameters are tiled ``B`` times, so the inner loop is elementwise over ``B * C``
  values (or over blocks of :data:`WROW` channels of one pixel).
* NCHW (:func:`depthwise_nchw`): one channel plane at a time (phase-split the same way), each
  output row a contiguous run, the channel's weights scalars.

The output mode is chosen by which parameter arrays are given; the others are ``None``, and numba
compiles one specialization per combination with the branches of the other modes pruned, so a
call compiles only the loop it runs:

* int32 accumulators: ``bias`` only;
* ONNX float requantization: ``bias`` and ``scale``;
* the same with the bias added to the exact float32 sum: ``fbias`` (float32) and ``scale``
  (exact when ``|bias| + taps * 255 * 255 < 2**24``, which the caller checks; it saves the int32
  round trip);
* TFLite fixed point: ``bias``, ``mult`` and ``shift``
  (:func:`edgeai.kernels.requant.requantize_fixed_point_branchless`).

``acc`` is ``None`` for kernels of at most nine taps (one chunk, summed in registers); larger
ones sum their chunks of nine through ``acc``. A 3x3 kernel whose row step equals the output row
step computes two output rows per pass (:func:`depthwise_nhwc_pairs`; NCHW: ``pair`` in its
geometry), a quarter fewer loads.

The helpers are separate numba functions (not inlined into numba's IR: LLVM inlines them), so
that each is typed and optimized once: the IR-level inlining of an earlier version took numba
half a minute per kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from edgeai.kernels.requant import requantize_fixed_point_branchless

__all__ = [
    "CHUNK",
    "MAX_TAPS",
    "WROW",
    "depthwise_nchw",
    "depthwise_nchw_parallel",
    "depthwise_nhwc",
    "depthwise_nhwc_pairs",
    "depthwise_nhwc_pairs_parallel",
    "depthwise_nhwc_parallel",
    "float_lane",
]

CHUNK = 9
WROW = 512  # NHWC: elements per weight row (bpx pixels of C <= WROW channels, or one block of WROW channels)
MAX_TAPS = 258  # 258 * 255 * 255 < 2**24: every float32 partial sum is an exact integer

_FM = {"contract"}  # fused multiply-add: exact here (every partial sum is an integer below 2**24)


@njit(cache=True, fastmath=_FM)
def _round_clamp(f, zp, lo, hi):  # type: ignore[no-untyped-def]
    f = f if f > lo else lo
    f = f if f < hi else hi
    magic = np.float32(12582912.0)  # round half to even, as requantize_float
    return np.int32(np.int32((f + magic) - magic) + zp)


@njit(cache=True, fastmath=_FM)
def float_lane(a, scale, zp, lo, hi):  # type: ignore[no-untyped-def]
    """:func:`edgeai.kernels.requant.requantize_float` on an int32 lane; ``lo``/``hi`` are
    ``float32(qmin - zp)``/``float32(qmax - zp)``."""
    return _round_clamp(np.float32(a) * scale, zp, lo, hi)


@njit(cache=True, fastmath=_FM)
def _acc32(s, bias):  # type: ignore[no-untyped-def]
    # the exact float32 sum plus bias, wrapped in int32 as the GEMM kernels' store does
    return np.int32(np.int32(s) + bias)


@njit(cache=True, fastmath=_FM)
def _store(out, i, s, k, bias, fbias, scale, mult, shift, zp, qmin, qmax, lo, hi):  # type: ignore[no-untyped-def]
    # out[i] = the requantized exact float32 sum s of lane k. The mode is fixed by which parameters are
    # None; the tests are ordered so that numba prunes every branch that uses a None parameter (only a
    # test of a None argument is pruned), and the rest are constants LLVM folds away.
    if fbias is not None:
        out[np.uint64(i)] = _round_clamp((s + fbias[np.uint64(k)]) * scale[np.uint64(k)], zp, lo, hi)
    elif mult is not None:
        a = _acc32(s, bias[np.uint64(k)])
        out[np.uint64(i)] = requantize_fixed_point_branchless(
            a, mult[np.uint64(k)], shift[np.uint64(k)], zp, qmin, qmax
        )
    elif bias is not None:
        if scale is not None:
            out[np.uint64(i)] = float_lane(_acc32(s, bias[np.uint64(k)]), scale[np.uint64(k)], zp, lo, hi)
        else:
            out[np.uint64(i)] = _acc32(s, bias[np.uint64(k)])


def _item(a, i):  # type: ignore[no-untyped-def]
    """``a[i]``, or None where ``a`` is None (a parameter the output mode does not use, a single chunk's
    ``acc``); chosen by type when compiled, so the result is never an optional numba has to test."""
    return None if a is None else a[i]


@overload(_item, jit_options={"cache": True})
def _item_typed(a, i):  # type: ignore[no-untyped-def]
    if isinstance(a, types.NoneType):
        return lambda a, i: None
    return lambda a, i: a[i]


@njit(cache=True, fastmath=_FM)
def _store_scalar(out, i, s, b, fb, sc, mu, sf, zp, qmin, qmax, lo, hi):  # type: ignore[no-untyped-def]
    # _store with one channel's parameters as scalars held in registers (an NCHW plane); a load of them
    # inside the loop would have to be repeated after every store to out
    if fb is not None:
        out[np.uint64(i)] = _round_clamp((s + fb) * sc, zp, lo, hi)
    elif mu is not None:
        out[np.uint64(i)] = requantize_fixed_point_branchless(_acc32(s, b), mu, sf, zp, qmin, qmax)
    elif b is not None:
        if sc is not None:
            out[np.uint64(i)] = float_lane(_acc32(s, b), sc, zp, lo, hi)
        else:
            out[np.uint64(i)] = _acc32(s, b)


@njit(cache=True, fastmath=_FM)
def _taps(x, b, o, w, wb, k):  # type: ignore[no-untyped-def]
    # nine products of one chunk; offsets o are loop-invariant, the runs x[b + o[t]:] contiguous; the
    # weight rows are WROW apart (a constant: one pointer reaches all nine, none spill)
    # three independent chains of three multiply-adds, then two adds: a third of the latency of one
    # chain of nine (every partial sum is an exact integer, so the order changes no result)
    r0 = (
        x[np.uint64(b + o[0])] * w[np.uint64(wb + k)]
        + x[np.uint64(b + o[1])] * w[np.uint64(wb + WROW + k)]
        + x[np.uint64(b + o[2])] * w[np.uint64(wb + 2 * WROW + k)]
    )
    r1 = (
        x[np.uint64(b + o[3])] * w[np.uint64(wb + 3 * WROW + k)]
        + x[np.uint64(b + o[4])] * w[np.uint64(wb + 4 * WROW + k)]
        + x[np.uint64(b + o[5])] * w[np.uint64(wb + 5 * WROW + k)]
    )
    r2 = (
        x[np.uint64(b + o[6])] * w[np.uint64(wb + 6 * WROW + k)]
        + x[np.uint64(b + o[7])] * w[np.uint64(wb + 7 * WROW + k)]
        + x[np.uint64(b + o[8])] * w[np.uint64(wb + 8 * WROW + k)]
    )
    return (r0 + r1) + r2


@njit(cache=True, fastmath=_FM)
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


@njit(cache=True)
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


@njit(cache=True, fastmath=_FM)
def _plus(acc, k, s):  # type: ignore[no-untyped-def]
    # the earlier chunks' sum (in acc) plus this one's; with a single chunk acc is None
    if acc is None:
        return s
    return acc[np.uint64(k)] + s


@njit(cache=True, fastmath=_FM)
def _segment(x, base, L, offs, wt, wb, acc, bias, fbias, scale, mult, shift, pb, zp, qmin, qmax, out, ob):  # type: ignore[no-untyped-def]
    # out[ob + k] = requant(sum over taps t of x[base + offs[t] + k] * w_t[k]), k < L, with the weights
    # of chunk ci at wt[wb + (9 * ci + t) * WROW:] and the per-channel parameters at [pb:]. Chunks
    # before the last sum into acc (None with a single chunk).
    last = offs.shape[0] - 1
    if acc is not None:
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
    lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
    for k in range(L):
        s = _plus(acc, k, _taps(x, base + k, o, wt, wc, k))
        _store(out, ob + k, s, pb + k, bias, fbias, scale, mult, shift, zp, qmin, qmax, lo, hi)


@njit(cache=True, fastmath=_FM)
def _pair_sums(x, b, d, c0, c1, c2, wt, wb, k):  # type: ignore[no-untyped-def]
    w0, w1, w2 = wt[np.uint64(wb + k)], wt[np.uint64(wb + WROW + k)], wt[np.uint64(wb + 2 * WROW + k)]
    w3, w4, w5 = wt[np.uint64(wb + 3 * WROW + k)], wt[np.uint64(wb + 4 * WROW + k)], wt[np.uint64(wb + 5 * WROW + k)]
    w6, w7, w8 = wt[np.uint64(wb + 6 * WROW + k)], wt[np.uint64(wb + 7 * WROW + k)], wt[np.uint64(wb + 8 * WROW + k)]
    a0, a1, a2 = x[np.uint64(b + c0)], x[np.uint64(b + c1)], x[np.uint64(b + c2)]
    b0, b1, b2 = x[np.uint64(b + d + c0)], x[np.uint64(b + d + c1)], x[np.uint64(b + d + c2)]
    e0, e1, e2 = x[np.uint64(b + 2 * d + c0)], x[np.uint64(b + 2 * d + c1)], x[np.uint64(b + 2 * d + c2)]
    g0, g1, g2 = x[np.uint64(b + 3 * d + c0)], x[np.uint64(b + 3 * d + c1)], x[np.uint64(b + 3 * d + c2)]
    # per output row three independent chains (one per kernel row), as _taps
    s = ((a0 * w0 + a1 * w1 + a2 * w2) + (b0 * w3 + b1 * w4 + b2 * w5)) + (e0 * w6 + e1 * w7 + e2 * w8)
    t = ((b0 * w0 + b1 * w1 + b2 * w2) + (e0 * w3 + e1 * w4 + e2 * w5)) + (g0 * w6 + g1 * w7 + g2 * w8)
    return s, t


@njit(cache=True, fastmath=_FM)
def _pair_sums_scalar(x, b, d, c0, c1, c2, w):  # type: ignore[no-untyped-def]
    # as _pair_sums with the nine weights scalars (an NCHW plane)
    a0, a1, a2 = x[np.uint64(b + c0)], x[np.uint64(b + c1)], x[np.uint64(b + c2)]
    b0, b1, b2 = x[np.uint64(b + d + c0)], x[np.uint64(b + d + c1)], x[np.uint64(b + d + c2)]
    e0, e1, e2 = x[np.uint64(b + 2 * d + c0)], x[np.uint64(b + 2 * d + c1)], x[np.uint64(b + 2 * d + c2)]
    g0, g1, g2 = x[np.uint64(b + 3 * d + c0)], x[np.uint64(b + 3 * d + c1)], x[np.uint64(b + 3 * d + c2)]
    s = a0 * w[0] + a1 * w[1] + a2 * w[2] + b0 * w[3] + b1 * w[4] + b2 * w[5] + e0 * w[6] + e1 * w[7] + e2 * w[8]
    t = b0 * w[0] + b1 * w[1] + b2 * w[2] + e0 * w[3] + e1 * w[4] + e2 * w[5] + g0 * w[6] + g1 * w[7] + g2 * w[8]
    return s, t


@njit(cache=True, fastmath=_FM)
def _segment_pair(
    x, base, L, d, c0, c1, c2, wt, wb, bias, fbias, scale, mult, shift, pb, zp, qmin, qmax, out, ob, out2, ob2
):  # type: ignore[no-untyped-def]  # fmt: skip
    # two output rows of a 3x3 kernel whose row step equals the output row step (d elements): the four
    # input rows' runs and the nine weights are loaded once for both rows
    lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
    for k in range(L):
        s, t = _pair_sums(x, base + k, d, c0, c1, c2, wt, wb, k)
        _store(out, ob + k, s, pb + k, bias, fbias, scale, mult, shift, zp, qmin, qmax, lo, hi)
        _store(out2, ob2 + k, t, pb + k, bias, fbias, scale, mult, shift, zp, qmin, qmax, lo, hi)


@njit(cache=True)
def _stage_nhwc_band(x, n, r0, rows, rstride, pt, pl, xzp, sw, wq, band):  # type: ignore[no-untyped-def]
    # band[((p * rstride + r) * wq + q) * C + c] = x[n, r0 + r - pt, q * sw + p - pl, c] - x_zp (0 outside)
    h_in, w_in, C = x.shape[1], x.shape[2], x.shape[3]
    fzp = np.float32(xzp)
    for r in range(rows):
        ih = r0 + r - pt
        inside = 0 <= ih < h_in
        src = x[n, min(max(ih, 0), h_in - 1)].reshape(-1)
        # input column iw lands in phase (iw + pl) % sw at column (iw + pl) // sw; every other slot is padding
        for p in range(sw):
            dst = ((p * rstride + r) * wq) * C
            q_lo = min((pl - p + sw - 1) // sw, wq) if pl > p else 0  # first q with q * sw + p - pl >= 0
            q_hi = min(max((w_in - 1 + pl - p) // sw + 1, q_lo), wq) if inside else q_lo  # past the last < w_in
            for k in range(q_lo * C):  # plain loops: a slice assignment costs numba more to compile
                band[np.uint64(dst + k)] = 0
            if sw == 1:  # one contiguous run
                d = dst + q_lo * C
                for k in range((q_hi - q_lo) * C):
                    band[np.uint64(d + k)] = np.float32(src[np.uint64(k)]) - fzp
            else:
                for q in range(q_lo, q_hi):
                    d, s0 = dst + q * C, (q * sw + p - pl) * C
                    for c in range(C):
                        band[np.uint64(d + c)] = np.float32(src[np.uint64(s0 + c)]) - fzp
            for k in range(q_hi * C, wq * C):
                band[np.uint64(dst + k)] = 0


@njit(cache=True, fastmath=_FM)
def _rows(band, y0, y1, sh, wq, C, ow, bpx, offs, wt, acc, bias, fbias, scale, mult, shift, zp, qmin, qmax, out, obase):  # type: ignore[no-untyped-def]
    # output rows y0:y1, the band's (it starts at output row y0); each run of bpx pixels' channels goes
    # in blocks of WROW (one block when C <= WROW: the parameters are tiled over the pixels)
    wblk = offs.shape[0] * 9 * WROW
    for oy in range(y0, y1):
        for ox0 in range(0, ow, bpx):
            base = ((oy - y0) * sh * wq + ox0) * C
            ob = obase + (oy * ow + ox0) * C
            run = min(bpx, ow - ox0) * C
            for c0 in range(0, run, WROW):
                _segment(
                    band, base + c0, min(WROW, run - c0), offs, wt, (c0 // WROW) * wblk, acc, bias, fbias, scale,
                    mult, shift, c0, zp, qmin, qmax, out, ob + c0,
                )  # fmt: skip


@njit(cache=True, fastmath=_FM)
def _rows_pair(
    band, y0, y1, sh, wq, C, ow, bpx, offs, wt, bias, fbias, scale, mult, shift, zp, qmin, qmax, out, obase, spare
):  # type: ignore[no-untyped-def]
    # output rows y0:y1 two at a time; the second row of an odd last pair goes to spare (the band holds
    # sh more staged rows for it)
    d = offs[0, 3] - offs[0, 0]
    c0, c1, c2 = offs[0, 0], offs[0, 1], offs[0, 2]
    wblk = 9 * WROW
    for y in range(y0, y1, 2):
        second = y + 1 < y1
        for ox0 in range(0, ow, bpx):
            base = ((y - y0) * sh * wq + ox0) * C
            ob = obase + (y * ow + ox0) * C
            run = min(bpx, ow - ox0) * C
            for cb in range(0, run, WROW):
                L = min(WROW, run - cb)
                out2, ob2 = (out, ob + ow * C + cb) if second else (spare, 0)
                _segment_pair(
                    band, base + cb, L, d, c0, c1, c2, wt, (cb // WROW) * wblk, bias, fbias, scale, mult, shift, cb,
                    zp, qmin, qmax, out, ob + cb, out2, ob2,
                )  # fmt: skip


@njit(cache=True)
def depthwise_nhwc(x, n, geo, xzp, offs, wt, bias, fbias, scale, mult, shift, out, obase, band, acc):  # type: ignore[no-untyped-def]
    """Depthwise convolution of NHWC image ``n`` into ``out[obase:]`` (NHWC), bands of ``rb`` output rows.

    ``geo`` (int64) is ``[pt, pl, sh, sw, span_h, rb, rstride, wq, oh, ow, bpx, zp, qmin, qmax]``.
    ``band`` holds ``sw * rstride * wq * C`` float32 (``rstride`` input rows of ``wq`` phase
    columns per phase); ``offs`` [chunks, 9] are the taps' offsets in ``band``. With C <= WROW,
    ``wt`` [chunks * 9, WROW] holds the weights tiled over ``bpx = WROW // C`` pixels, and the
    per-channel parameters are tiled the same way; with more channels (``bpx`` 1), ``wt`` is
    [C / WROW blocks, chunks * 9, WROW] and the parameters are per channel. Weights of the padding
    taps of the last chunk are zero. ``acc`` (:data:`WROW` float32) is None for a single chunk.
    Parameters the output mode does not use are None (see the module docstring).
    """
    # the band loop is written out in each driver (no shared band function): one level less of
    # functions that LLVM inlines and optimizes again, a quarter of a cold compile
    pt, pl, sh, sw, span_h, rb, rstride = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    wq, oh, ow, bpx, zp, qmin, qmax = geo[7], geo[8], geo[9], geo[10], geo[11], geo[12], geo[13]
    for y0 in range(0, oh, rb):
        y1 = min(y0 + rb, oh)
        _stage_nhwc_band(x, n, y0 * sh, (y1 - 1 - y0) * sh + span_h, rstride, pt, pl, xzp, sw, wq, band)
        _rows(band, y0, y1, sh, wq, x.shape[3], ow, bpx, offs, wt, acc, bias, fbias, scale, mult, shift, zp, qmin,
              qmax, out, obase)  # fmt: skip


@njit(cache=True)
def depthwise_nhwc_pairs(x, n, geo, xzp, offs, wt, bias, fbias, scale, mult, shift, out, obase, band, spare):  # type: ignore[no-untyped-def]
    """:func:`depthwise_nhwc` of a 3x3 kernel whose dilation equals its stride, two output rows per pass.

    The second row of an odd last pair goes to ``spare`` (:data:`WROW` of the output dtype); the
    band has room for the ``sh`` input rows it needs past ``rb`` (even, but in the last band) rows.
    """
    pt, pl, sh, sw, span_h, rb, rstride = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    wq, oh, ow, bpx, zp, qmin, qmax = geo[7], geo[8], geo[9], geo[10], geo[11], geo[12], geo[13]
    for y0 in range(0, oh, rb):
        y1 = min(y0 + rb, oh)
        rows = (y1 - 1 - y0 + ((y1 - y0) & 1)) * sh + span_h  # an odd last row's partner needs sh more
        _stage_nhwc_band(x, n, y0 * sh, rows, rstride, pt, pl, xzp, sw, wq, band)
        _rows_pair(band, y0, y1, sh, wq, x.shape[3], ow, bpx, offs, wt, bias, fbias, scale, mult, shift, zp, qmin,
                   qmax, out, obase, spare)  # fmt: skip


@njit(cache=True, parallel=True)
def depthwise_nhwc_parallel(x, n, geo, xzp, offs, wt, bias, fbias, scale, mult, shift, out, obase, band, acc):  # type: ignore[no-untyped-def]
    """As :func:`depthwise_nhwc`, bands in parallel (``band`` and ``acc`` carry one row per band)."""
    pt, pl, sh, sw, span_h, rb, rstride = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    wq, oh, ow, bpx, zp, qmin, qmax = geo[7], geo[8], geo[9], geo[10], geo[11], geo[12], geo[13]
    for bi in prange((oh + rb - 1) // rb):
        y0 = bi * rb
        y1 = min(y0 + rb, oh)
        _stage_nhwc_band(x, n, y0 * sh, (y1 - 1 - y0) * sh + span_h, rstride, pt, pl, xzp, sw, wq, band[bi])
        _rows(band[bi], y0, y1, sh, wq, x.shape[3], ow, bpx, offs, wt, _item(acc, bi), bias, fbias, scale,
              mult, shift, zp, qmin, qmax, out, obase)  # fmt: skip


@njit(cache=True, parallel=True)
def depthwise_nhwc_pairs_parallel(
    x, n, geo, xzp, offs, wt, bias, fbias, scale, mult, shift, out, obase, band, spare
):  # type: ignore[no-untyped-def]  # fmt: skip
    """As :func:`depthwise_nhwc_pairs`, bands in parallel (``band`` and ``spare`` carry one row per band)."""
    pt, pl, sh, sw, span_h, rb, rstride = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    wq, oh, ow, bpx, zp, qmin, qmax = geo[7], geo[8], geo[9], geo[10], geo[11], geo[12], geo[13]
    for bi in prange((oh + rb - 1) // rb):
        y0 = bi * rb
        y1 = min(y0 + rb, oh)
        rows = (y1 - 1 - y0 + ((y1 - y0) & 1)) * sh + span_h
        _stage_nhwc_band(x, n, y0 * sh, rows, rstride, pt, pl, xzp, sw, wq, band[bi])
        _rows_pair(band[bi], y0, y1, sh, wq, x.shape[3], ow, bpx, offs, wt, bias, fbias, scale, mult, shift, zp,
                   qmin, qmax, out, obase, spare[bi])  # fmt: skip


@njit(cache=True, fastmath=_FM)
def _nchw_channel(
    x, n, c, geo, xzp, offs, wsc, bias, fbias, scale, mult, shift, out, obase, plane, acc
):  # type: ignore[no-untyped-def]  # fmt: skip
    pt, pl, sh, sw, hp, wq, oh, ow = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]
    pair, zp, qmin, qmax = geo[8], geo[9], geo[10], geo[11]
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
                    plane[np.uint64(dst + q)] = np.float32(src[np.uint64(row + q)]) - fzp
            else:
                for q in range(q_lo, q_hi):
                    plane[np.uint64(dst + q)] = np.float32(src[np.uint64(row + q * sw)]) - fzp
    lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
    b, fb, sc = _item(bias, c), _item(fbias, c), _item(scale, c)
    mu, sf = _item(mult, c), _item(shift, c)
    last = offs.shape[0] - 1
    wc = wsc[c].reshape(last + 1, 9)
    y = 0
    if pair:  # 3x3, row step = output row step: two output rows per pass (an odd last one below)
        d = offs[0, 3] - offs[0, 0]
        c0, c1, c2 = offs[0, 0], offs[0, 1], offs[0, 2]
        w = _chunk(wc, 0)
        while y + 1 < oh:
            base = y * sh * wq
            ob = obase + (c * oh + y) * ow
            for k in range(ow):
                s, t = _pair_sums_scalar(plane, base + k, d, c0, c1, c2, w)
                _store_scalar(out, ob + k, s, b, fb, sc, mu, sf, zp, qmin, qmax, lo, hi)
                _store_scalar(out, ob + ow + k, t, b, fb, sc, mu, sf, zp, qmin, qmax, lo, hi)
            y += 2
    for oy in range(y, oh):
        base = oy * sh * wq
        ob = obase + (c * oh + oy) * ow
        if acc is not None:
            for ci in range(last):
                o, w = _chunk(offs, ci), _chunk(wc, ci)
                if ci == 0:
                    for k in range(ow):
                        acc[k] = _taps_scalar(plane, base + k, o, w)
                else:
                    for k in range(ow):
                        acc[k] += _taps_scalar(plane, base + k, o, w)
        o, w = _chunk(offs, last), _chunk(wc, last)
        for k in range(ow):
            s = _plus(acc, k, _taps_scalar(plane, base + k, o, w))
            _store_scalar(out, ob + k, s, b, fb, sc, mu, sf, zp, qmin, qmax, lo, hi)


@njit(cache=True)
def depthwise_nchw(x, n, geo, xzp, offs, wsc, bias, fbias, scale, mult, shift, out, obase, plane, acc):  # type: ignore[no-untyped-def]
    """Depthwise convolution of NCHW image ``n`` into ``out[obase:]`` (NCHW), one channel plane at a time.

    ``geo`` (int64) is ``[pt, pl, sh, sw, hp, wq, oh, ow, pair, zp, qmin, qmax]``, ``hp`` the rows
    per phase of ``plane`` (``sw * hp * wq`` float32, the padded plane split into ``sw`` column
    phases), zero on entry (only the image part is written, the padding stays zero); ``acc``
    ``ow`` float32 (None for a single chunk of taps); ``offs`` [chunks, 9] are the taps' offsets
    in ``plane``, ``wsc`` [M, chunks * 9] the weights ``w - w_zp`` (zero for the padding taps of
    the last chunk). With ``pair`` (a 3x3 kernel whose dilation equals its stride), two output
    rows per pass.
    """
    for c in range(x.shape[1]):
        _nchw_channel(x, n, c, geo, xzp, offs, wsc, bias, fbias, scale, mult, shift, out, obase, plane, acc)


@njit(cache=True, parallel=True)
def depthwise_nchw_parallel(x, n, geo, xzp, offs, wsc, bias, fbias, scale, mult, shift, out, obase, plane, acc):  # type: ignore[no-untyped-def]
    """As :func:`depthwise_nchw`, channels in parallel (``plane`` and ``acc`` carry one row per chunk of
    channels)."""
    nt = plane.shape[0]
    C = x.shape[1]
    for t in prange(nt):
        for c in range(t * C // nt, (t + 1) * C // nt):
            _nchw_channel(
                x, n, c, geo, xzp, offs, wsc, bias, fbias, scale, mult, shift, out, obase, plane[t],
                _item(acc, t),
            )  # fmt: skip
