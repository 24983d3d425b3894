"""Convolution helpers: padded NHWC staging, receptive-field sums, depthwise rows.

A regular (or grouped) convolution runs on the GEMM tile driver directly
over a padded NHWC copy of the input: for one output pixel and one kernel
row, the ``kW * C`` input values are a contiguous run, and neighbouring
pixels are a fixed stride apart, so the microkernel reads them in place
(no im2col buffer). Depthwise convolution has no reduction over channels,
so it gets its own loops: :mod:`edgeai.kernels.depthwise` (float32, up to 258
taps) and the int16 loop here beyond that.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from edgeai.kernels.requant import requantize_fixed_point, requantize_float
from edgeai.kernels.transpose import transpose_bytes

__all__ = [
    "depthwise_rows",
    "depthwise_stage",
    "nhwc_stage",
    "pixel_sums",
    "stage_from_nchw",
    "stage_from_nhwc",
    "window_sums",
]


def nhwc_stage(x, n, c0, cg, pt, pl, fill, flip, buf, channels_last):  # type: ignore[no-untyped-def]
    """Copy channels ``c0:c0+cg`` of image ``n`` into ``buf`` [Hp, Wp, C4] (uint8), padded with ``fill``.

    ``x`` is NCHW bytes, or NHWC when ``channels_last``; every byte is XORed with ``flip`` (0x80
    turns int8 into uint8). Only the padding border (and the channels cg..C4) is filled; the image
    goes over in contiguous runs: whole rows from NHWC when the channels are all of them, else
    ``cg`` bytes per pixel; from NCHW, 16x16 byte-block transposes (long rows) or four channel rows
    at a time packed into 32-bit words. Two numba functions, :func:`stage_from_nhwc` and
    :func:`stage_from_nchw`, so that a kernel compiles only the one its layout needs.
    """
    stage = stage_from_nhwc if channels_last else stage_from_nchw
    stage(x, n, c0, cg, pt, pl, fill, flip, buf)


@njit(cache=True)
def _fill_border(buf, pt, pl, h_in, w_in, cg, f8, channels):  # type: ignore[no-untyped-def]
    # the padding rows and columns of buf [Hp, Wp, C4], and (with channels) the channels cg..C4 of the
    # image's pixels; plain loops (a slice assignment costs numba more to compile)
    hp, wp, c4 = buf.shape
    row = wp * c4
    flat = buf.reshape(-1)
    for k in range(pt * row):
        flat[k] = f8
    for k in range((pt + h_in) * row, hp * row):
        flat[k] = f8
    for h in range(pt, pt + h_in):
        base = h * row
        for k in range(pl * c4):
            flat[base + k] = f8
        for k in range((pl + w_in) * c4, row):
            flat[base + k] = f8
        if channels and cg < c4:
            for w in range(pl, pl + w_in):
                for c in range(cg, c4):
                    flat[base + w * c4 + c] = f8


@njit(cache=True, inline="always")
def _rgb_pixels(src, h_in, w_in, d0, wp, flip, fill, flat):  # type: ignore[no-untyped-def]
    # 3-channel pixels into 4-byte ones, a row of bytes at a time over views (no index wraparound): LLVM
    # vectorizes the 3 -> 4 byte interleave; 96x96: 18 us for a 32-bit word built per pixel, 6.5 us for
    # words split from whole 12-byte groups, 3.5 us here
    f8, fl = np.uint8(flip), np.uint8(fill)
    for h in range(h_in):
        d = (d0 + h * wp) * 4
        s = src[h * w_in * 3 : (h + 1) * w_in * 3]
        o = flat[d : d + w_in * 4]
        for j in range(w_in):
            o[4 * j] = s[3 * j] ^ f8
            o[4 * j + 1] = s[3 * j + 1] ^ f8
            o[4 * j + 2] = s[3 * j + 2] ^ f8
            o[4 * j + 3] = fl


@njit(cache=True)
def stage_from_nhwc(x, n, c0, cg, pt, pl, fill, flip, buf):  # type: ignore[no-untyped-def]
    """:func:`nhwc_stage` of NHWC input."""
    wp, c4 = buf.shape[1], buf.shape[2]
    h_in, w_in, cx = x.shape[1], x.shape[2], x.shape[3]
    words = c4 == 4 and cg == cx  # 1 to 4 channels, all of them: one 32-bit word per pixel, fill included
    _fill_border(buf, pt, pl, h_in, w_in, cg, np.uint8(fill), not words)
    flat = buf.reshape(-1)
    src = x[n].reshape(-1)
    if words and cg == 3:  # an RGB image's first convolution
        _rgb_pixels(src, h_in, w_in, pt * wp + pl, wp, flip, fill, flat)
        return
    if words and cg < 4:  # 1 or 2 channels: one 32-bit word per pixel (byte runs would cost a loop per pixel)
        wd = flat.view(np.uint32)
        fillw, flipw = np.uint32(0), np.uint32(0)
        for c in range(4):
            if c < cg:
                flipw |= np.uint32(flip) << np.uint32(8 * c)
            else:
                fillw |= np.uint32(fill) << np.uint32(8 * c)
        for h in range(h_in):
            d = (pt + h) * wp + pl
            s0 = h * w_in * cx
            for w in range(w_in):
                v = np.uint32(0)
                for c in range(cg):
                    v |= np.uint32(src[s0 + w * cx + c]) << np.uint32(8 * c)
                wd[d + w] = (v ^ flipw) | fillw
        return
    f8 = np.uint8(flip)  # a byte: XOR with an int64 would widen the vector lanes eightfold
    if cg == c4 and cg == cx:  # the rows are contiguous runs in x and in buf
        run = w_in * cx
        for h in range(h_in):
            d = ((pt + h) * wp + pl) * c4
            dst, sr = flat[d : d + run], src[h * run : (h + 1) * run]
            for k in range(run):
                dst[k] = sr[k] ^ f8
        return
    for h in range(h_in):
        for w in range(w_in):
            d = ((pt + h) * wp + pl + w) * c4
            s0 = (h * w_in + w) * cx + c0
            dst, sr = flat[d : d + cg], src[s0 : s0 + cg]
            for c in range(cg):
                dst[c] = sr[c] ^ f8


@njit(cache=True)
def stage_from_nchw(x, n, c0, cg, pt, pl, fill, flip, buf):  # type: ignore[no-untyped-def]
    """:func:`nhwc_stage` of NCHW input."""
    wp, c4 = buf.shape[1], buf.shape[2]
    h_in, w_in = x.shape[2], x.shape[3]
    _fill_border(buf, pt, pl, h_in, w_in, cg, np.uint8(fill), True)
    flat = buf.reshape(-1)
    if flip == 0 and w_in >= 64:  # long rows: per input row, [cg, W] transposed in 16x16 blocks
        src = x.reshape(-1)
        hw = h_in * w_in
        for h in range(h_in):
            soff = (n * x.shape[1] + c0) * hw + h * w_in
            transpose_bytes(src, soff, cg, w_in, hw, flat, ((pt + h) * wp + pl) * c4, c4)
        return
    # a word of four channels per pixel, each read along a contiguous input row (measured: faster than
    # the block transpose on rows below ~64 pixels)
    words = flat.view(np.uint32)
    wc = c4 // 4
    flip4 = np.uint32(flip) * np.uint32(0x01010101)
    for g in range(cg // 4):
        p0, p1, p2, p3 = x[n, c0 + 4 * g], x[n, c0 + 4 * g + 1], x[n, c0 + 4 * g + 2], x[n, c0 + 4 * g + 3]
        for h in range(h_in):
            d = ((pt + h) * wp + pl) * wc + g
            r0, r1, r2, r3 = p0[h], p1[h], p2[h], p3[h]
            for w in range(w_in):
                v = (
                    np.uint32(r0[w])
                    | (np.uint32(r1[w]) << np.uint32(8))
                    | (np.uint32(r2[w]) << np.uint32(16))
                    | (np.uint32(r3[w]) << np.uint32(24))
                )
                words[d + w * wc] = v ^ flip4
    for c in range(cg // 4 * 4, cg):  # the last channels, byte by byte
        pc = x[n, c0 + c]
        for h in range(h_in):
            d = ((pt + h) * wp + pl) * c4 + c
            for w in range(w_in):
                flat[d + w * c4] = pc[h, w] ^ flip


@njit(cache=True)
def window_sums(buf, cg, kh, kw, sh, sw, dh, dw, oh, ow, out):  # type: ignore[no-untyped-def]
    """For each output pixel, the sum of its receptive field (input values, padding included)."""
    hp, wp = buf.shape[0], buf.shape[1]
    s = np.zeros((hp, wp), np.int64)
    for h in range(hp):
        for w in range(wp):
            t = 0
            for c in range(cg):
                t += buf[h, w, c]
            s[h, w] = t
    for y in range(oh):
        for x in range(ow):
            t = 0
            for i in range(kh):
                for j in range(kw):
                    t += s[y * sh + i * dh, x * sw + j * dw]
            out[y * ow + x] = t  # int32: < 2**31 for receptive fields below 2**23 values


@njit(cache=True)
def pixel_sums(a, c, sh, sw, w_in, oh, ow, out):  # type: ignore[no-untyped-def]
    """For a 1x1 convolution read in place from NHWC bytes ``a`` (C = ``c``): each output pixel's channel sum."""
    for y in range(oh):
        for x in range(ow):
            o = ((y * sh) * w_in + x * sw) * c
            t = 0
            px = a[o : o + c]
            for k in range(c):
                t += np.int32(px[k])
            out[y * ow + x] = t


@njit(cache=True)
def depthwise_stage(x, n, pt, pl, xzp, flip, buf, channels_last):  # type: ignore[no-untyped-def]
    """``buf`` [Hp, Wp, C] int16 = x - x_zp in NHWC, zero in the padding (so padding adds nothing)."""
    buf[:] = 0
    if channels_last:  # x is NHWC
        for h in range(x.shape[1]):
            for w in range(x.shape[2]):
                for c in range(x.shape[3]):
                    buf[pt + h, pl + w, c] = np.int16(np.int32(x[n, h, w, c] ^ flip) - xzp)
        return
    c_in, h_in, w_in = x.shape[1], x.shape[2], x.shape[3]
    for h in range(h_in):
        for w in range(w_in):
            for c in range(c_in):
                buf[pt + h, pl + w, c] = np.int16(np.int32(x[n, c, h, w] ^ flip) - xzp)


@njit(cache=True, inline="always")
def _depthwise_row(
    buf, w, sh, sw, dh, dw, ow_n, oy, bias, mode, scale, mult, shift, zp, qmin, qmax, out, obase, plane, acc
):  # type: ignore[no-untyped-def]
    kh, kw, C = w.shape
    for x in range(ow_n):
        for c in range(C):
            acc[x, c] = bias[c]
    for i in range(kh):
        ih = oy * sh + i * dh
        for j in range(kw):
            for x in range(ow_n):
                iw = x * sw + j * dw
                for c in range(C):
                    acc[x, c] += np.int32(buf[ih, iw, c]) * np.int32(w[i, j, c])
    base = obase + oy * ow_n
    for c in range(C):
        o = base + c * plane
        if mode == 0:
            for x in range(ow_n):
                out[o + x] = acc[x, c]
        elif mode == 1:
            for x in range(ow_n):
                out[o + x] = requantize_float(acc[x, c], scale[c], zp, qmin, qmax)
        else:
            for x in range(ow_n):
                out[o + x] = requantize_fixed_point(acc[x, c], mult[c], shift[c], zp, qmin, qmax)


@njit(cache=True)
def depthwise_rows(buf, w, sh, sw, dh, dw, oh_n, ow_n, bias, mode, scale, mult, shift, zp, qmin, qmax, out, obase):  # type: ignore[no-untyped-def]
    """Depthwise convolution of one staged image, every output row, on the calling thread."""
    acc = np.empty((ow_n, w.shape[2]), np.int32)
    for oy in range(oh_n):
        _depthwise_row(
            buf,
            w,
            sh,
            sw,
            dh,
            dw,
            ow_n,
            oy,
            bias,
            mode,
            scale,
            mult,
            shift,
            zp,
            qmin,
            qmax,
            out,
            obase,
            oh_n * ow_n,
            acc,
        )


@njit(cache=True, parallel=True)
def depthwise_rows_parallel(
    buf, w, sh, sw, dh, dw, oh_n, ow_n, bias, mode, scale, mult, shift, zp, qmin, qmax, out, obase, nchunks
):  # type: ignore[no-untyped-def]
    """As :func:`depthwise_rows`, output rows split into ``nchunks`` parallel chunks (one region)."""
    for t in prange(nchunks):
        acc = np.empty((ow_n, w.shape[2]), np.int32)
        for oy in range(t * oh_n // nchunks, (t + 1) * oh_n // nchunks):
            _depthwise_row(
                buf,
                w,
                sh,
                sw,
                dh,
                dw,
                ow_n,
                oy,
                bias,
                mode,
                scale,
                mult,
                shift,
                zp,
                qmin,
                qmax,
                out,
                obase,
                oh_n * ow_n,
                acc,
            )
