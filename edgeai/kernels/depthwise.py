"""Depthwise INT8 convolution on exact float32 vectors, requantization fused into the same loop.

Why float32: ``x - x_zp`` and ``w - w_zp`` are integers of at most 9 bits, so every product is
below ``2**16`` and a sum of up to :data:`MAX_TAPS` of them below ``2**24``; float32 holds every
partial sum exactly (a fused multiply-add rounds nothing either). Its multiply-add vectorizes
without the widening shuffles an int32 product of bytes needs, and the staging that converts the
input once (uint8 or int8, in its own dtype) also applies the zero point, so padding is plain zeros.

Two loop shapes:

* NHWC: a band of input rows is staged in float32 channel blocks of
  :data:`edgeai.kernels.dwvec.LANES` (``[C / LANES, rows, padded width, LANES]``), so that every
  tap and pixel step inside a block is a constant displacement, and each block's taps are summed
  in one vector loop whose weights stay in registers (:mod:`edgeai.kernels.dwvec`).
  :func:`depthwise_nhwc3`: a 3x3 kernel of horizontal dilation 1 and stride 1 or 2, whole channel blocks and
  the ONNX requantization, all in that loop (four neighbouring pixels share the columns they
  read; every row of the band in one call per block). :func:`depthwise_nhwc`: everything else,
  nine taps at a time into a row of float sums, then requantized.
* NCHW (:func:`depthwise_nchw`): one channel plane at a time (split into ``sw`` column phases),
  each output row a contiguous run, the channel's weights scalars.

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

Kernels of more than nine taps sum their chunks of nine through ``acc``. NCHW: a 3x3 kernel whose
row step equals the output row step computes two output rows per pass (``pair`` in its
geometry), a quarter fewer loads.

The helpers are separate numba functions (not inlined into numba's IR: LLVM inlines them), so
that each is typed and optimized once: the IR-level inlining of an earlier version took numba
half a minute per kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from edgeai.kernels.dwvec import LANES, taps3x3, taps3x3_requant, taps9, widen
from edgeai.kernels.requant import requantize_fixed_point_branchless

__all__ = [
    "CHUNK",
    "MAX_TAPS",
    "depthwise_nchw",
    "depthwise_nchw_parallel",
    "depthwise_nhwc",
    "depthwise_nhwc3",
    "depthwise_nhwc3_parallel",
    "depthwise_nhwc_parallel",
    "float_lane",
]

CHUNK = 9
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
def _pair_sums_scalar(x, b, d, c0, c1, c2, w):  # type: ignore[no-untyped-def]
    # two output rows of a 3x3 kernel whose row step equals the output row step, the nine weights scalars
    a0, a1, a2 = x[np.uint64(b + c0)], x[np.uint64(b + c1)], x[np.uint64(b + c2)]
    b0, b1, b2 = x[np.uint64(b + d + c0)], x[np.uint64(b + d + c1)], x[np.uint64(b + d + c2)]
    e0, e1, e2 = x[np.uint64(b + 2 * d + c0)], x[np.uint64(b + 2 * d + c1)], x[np.uint64(b + 2 * d + c2)]
    g0, g1, g2 = x[np.uint64(b + 3 * d + c0)], x[np.uint64(b + 3 * d + c1)], x[np.uint64(b + 3 * d + c2)]
    s = a0 * w[0] + a1 * w[1] + a2 * w[2] + b0 * w[3] + b1 * w[4] + b2 * w[5] + e0 * w[6] + e1 * w[7] + e2 * w[8]
    t = b0 * w[0] + b1 * w[1] + b2 * w[2] + e0 * w[3] + e1 * w[4] + e2 * w[5] + g0 * w[6] + g1 * w[7] + g2 * w[8]
    return s, t


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


@njit(cache=True)
def _stage_blocks(x, n, r0, rows, cap, pt, pl, xzp, wp, band, zero_rows):  # type: ignore[no-untyped-def]
    # band[((b * cap + r) * wp + q) * LANES + l] = x[n, r0 + r - pt, q - pl, b * LANES + l] - x_zp: channel blocks
    # of LANES, each a plane of cap padded rows. Only the image's values are written, and the rows outside the
    # image where zero_rows (a band buffer that holds other rows in another band): the padding columns are never
    # written, zero since the band was allocated. The lanes past C of a partial block are zero or, where it is
    # staged by whole vectors, the next pixel's values: either way they meet zero weights
    h_in, w_in, C = x.shape[1], x.shape[2], x.shape[3]
    fzp = np.float32(xzp)
    nblk = (C + LANES - 1) // LANES
    full = C // LANES  # blocks of LANES real channels; a last partial one has C % LANES
    plane = cap * wp * LANES
    for r in range(rows):
        ih = r0 + r - pt
        d0 = r * wp * LANES + pl * LANES
        if ih < 0 or ih >= h_in:  # a padding row: zeroed when another band may have left image values in its slot
            if not zero_rows:
                continue
            for b in range(nblk):
                for k in range(w_in * LANES):
                    band[np.uint64(d0 + b * plane + k)] = 0
            continue
        src = x[n, ih].reshape(-1)
        for b in range(full):  # each block's row written in order
            for q in range(w_in):
                widen(src, q * C + b * LANES, fzp, band, d0 + b * plane + q * LANES)
        if full < nblk:  # the last block's C % LANES channels; its other lanes meet zero weights
            c0 = full * LANES
            for q in range(w_in):
                if q * C + c0 + LANES <= w_in * C:  # one vector that stays in the row (it reads the next pixel)
                    widen(src, q * C + c0, fzp, band, d0 + full * plane + q * LANES)
                else:
                    for c in range(c0, C):
                        band[np.uint64(d0 + full * plane + q * LANES + c - c0)] = (
                            np.float32(src[np.uint64(q * C + c)]) - fzp
                        )


@njit(cache=True, fastmath=_FM)
def _vrows3(band, y0, y1, cap, geo, C, wt, bias, fbias, scale, out, obase):  # type: ignore[no-untyped-def]
    # output rows y0:y1 of the band (staged from input row y0 * sh) of a 3x3 kernel of horizontal stride 1 or 2
    # (k3) and horizontal dilation 1, C a multiple of LANES, ONNX requantization: each channel block's rows in
    # one call of its fused loop
    sh, span_h, wp, ow, k3 = geo[2], geo[4], geo[6], geo[9], geo[10]
    zp, qmin, qmax = geo[11], geo[12], geo[13]
    lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
    dh = (span_h - 1) // 2  # the vertical dilation (any; the horizontal one is 1)
    rows2 = (dh * wp * LANES, 2 * dh * wp * LANES)  # the kernel's rows 1 and 2
    bstride, xrow, orow = cap * wp * LANES, sh * wp * LANES, ow * C
    for b in range(C // LANES):
        xb, ob, wb, pb = b * bstride, obase + y0 * ow * C + b * LANES, b * 9 * LANES, b * LANES
        if fbias is not None:  # the float32 bias (mode 3); a test of a None argument, pruned when compiled
            taps3x3_requant(band, xb, rows2, wt, wb, out, ob, C, ow, k3, fbias, scale, pb, zp, lo, hi, y1 - y0,
                            xrow, orow)  # fmt: skip
        elif bias is not None:  # the int32 bias (mode 1)
            taps3x3_requant(band, xb, rows2, wt, wb, out, ob, C, ow, k3, bias, scale, pb, zp, lo, hi, y1 - y0,
                            xrow, orow)  # fmt: skip


@njit(cache=True, fastmath=_FM)
def _vrows(band, y0, y1, cap, geo, C, offs, wt, acc, bias, fbias, scale, mult, shift, out, obase):  # type: ignore[no-untyped-def]
    # output rows y0:y1 of the band (staged from input row y0 * sh): per row, each block of LANES channels
    # sums its taps over the whole row into acc (edgeai.kernels.dwvec), then the row is requantized
    sh, sw, wp, ow, k3 = geo[2], geo[3], geo[6], geo[9], geo[10]
    zp, qmin, qmax = geo[11], geo[12], geo[13]
    nchunks, nblk = offs.shape[0], (C + LANES - 1) // LANES
    lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
    bstride, cp = cap * wp * LANES, nblk * LANES
    rows2 = (offs[0, 3], offs[0, 6])  # a 3x3 kernel's rows 1 and 2
    for oy in range(y0, y1):
        rowb = (oy - y0) * sh * wp * LANES
        for b in range(nblk):
            xb, ab = b * bstride + rowb, b * LANES  # acc: [ow, cp] (cp = nblk * LANES)
            if k3 > 0:  # 3x3 of horizontal stride 1 or 2 (dilation 1): neighbouring pixels share columns
                taps3x3(band, xb, rows2, wt, b * 9 * LANES, acc, ab, cp, ow, k3)
            else:
                for ci in range(nchunks):
                    taps9(band, xb, sw * LANES, _chunk(offs, ci), wt, ((b * nchunks + ci) * 9) * LANES, acc, ab, cp,
                          ow, ci > 0)  # fmt: skip
        ob = obase + oy * ow * C
        for p in range(ow):
            for c in range(C):
                _store(out, ob + p * C + c, acc[np.uint64(p * cp + c)], c, bias, fbias, scale, mult, shift, zp, qmin,
                       qmax, lo, hi)  # fmt: skip


@njit(cache=True)
def depthwise_nhwc(x, n, geo, xzp, offs, wt, bias, fbias, scale, mult, shift, out, obase, band, acc):  # type: ignore[no-untyped-def]
    """Depthwise convolution of NHWC image ``n`` into ``out[obase:]`` (NHWC), bands of ``rb`` output rows.

    ``geo`` (int64) is ``[pt, pl, sh, sw, span_h, rb, wp, cap, oh, ow, k3, zp, qmin, qmax]``: ``band``
    (all zeros when first used: its padding columns are never written, and the lanes past C of a partial
    block meet zero weights) holds
    ``cap = (rb - 1) * sh + span_h`` padded input rows of ``wp`` columns in channel blocks of
    :data:`LANES` (float32, ``[C / LANES, cap, wp, LANES]``), ``acc`` ``[ow, C]`` (C rounded up to LANES)
    float32; ``offs`` [chunks, 9] are the taps' offsets in a block (0 for the padding taps of the last
    chunk, whose weights are zero). ``wt`` [C / LANES, chunks, 9, LANES] holds the weights
    ``w - w_zp``. The per-channel parameters the output mode does not use are None (see the module
    docstring).
    """
    pt, pl, sh, span_h, rb, wp, cap, oh = geo[0], geo[1], geo[2], geo[4], geo[5], geo[6], geo[7], geo[8]
    for y0 in range(0, oh, rb):
        y1 = min(y0 + rb, oh)
        _stage_blocks(x, n, y0 * sh, (y1 - 1 - y0) * sh + span_h, cap, pt, pl, xzp, wp, band, rb < oh)
        _vrows(band, y0, y1, cap, geo, x.shape[3], offs, wt, acc, bias, fbias, scale, mult, shift, out, obase)


@njit(cache=True, parallel=True)
def depthwise_nhwc_parallel(x, n, geo, xzp, offs, wt, bias, fbias, scale, mult, shift, out, obase, band, acc):  # type: ignore[no-untyped-def]
    """As :func:`depthwise_nhwc`, bands in parallel (``band`` and ``acc`` carry one row per band)."""
    pt, pl, sh, span_h, rb, wp, cap, oh = geo[0], geo[1], geo[2], geo[4], geo[5], geo[6], geo[7], geo[8]
    for bi in prange((oh + rb - 1) // rb):
        y0 = bi * rb
        y1 = min(y0 + rb, oh)
        _stage_blocks(x, n, y0 * sh, (y1 - 1 - y0) * sh + span_h, cap, pt, pl, xzp, wp, band[bi], False)
        _vrows(band[bi], y0, y1, cap, geo, x.shape[3], offs, wt, acc[bi], bias, fbias, scale, mult, shift, out,
               obase)  # fmt: skip


@njit(cache=True)
def depthwise_nhwc3(x, n, geo, xzp, wt, bias, fbias, scale, out, obase, band):  # type: ignore[no-untyped-def]
    """:func:`depthwise_nhwc` of a 3x3 kernel of horizontal dilation 1 and stride 1 or 2 (``k3`` in ``geo``; any
    vertical ones), whose channels
    are a multiple of :data:`LANES`, with the ONNX requantization (``bias`` int32 or ``fbias`` float32, the
    other None): the requantization runs in the taps loop's store and no ``acc`` is needed. A separate
    function so that such a model (MobileNet's depthwise layers) compiles only this loop."""
    pt, pl, sh, span_h, rb, wp, cap, oh = geo[0], geo[1], geo[2], geo[4], geo[5], geo[6], geo[7], geo[8]
    for y0 in range(0, oh, rb):
        y1 = min(y0 + rb, oh)
        _stage_blocks(x, n, y0 * sh, (y1 - 1 - y0) * sh + span_h, cap, pt, pl, xzp, wp, band, rb < oh)
        _vrows3(band, y0, y1, cap, geo, x.shape[3], wt, bias, fbias, scale, out, obase)


@njit(cache=True, parallel=True)
def depthwise_nhwc3_parallel(x, n, geo, xzp, wt, bias, fbias, scale, out, obase, band):  # type: ignore[no-untyped-def]
    """As :func:`depthwise_nhwc3`, bands in parallel (``band`` carries one row per band)."""
    pt, pl, sh, span_h, rb, wp, cap, oh = geo[0], geo[1], geo[2], geo[4], geo[5], geo[6], geo[7], geo[8]
    for bi in prange((oh + rb - 1) // rb):
        y0 = bi * rb
        y1 = min(y0 + rb, oh)
        _stage_blocks(x, n, y0 * sh, (y1 - 1 - y0) * sh + span_h, cap, pt, pl, xzp, wp, band[bi], False)
        _vrows3(band[bi], y0, y1, cap, geo, x.shape[3], wt, bias, fbias, scale, out, obase)
