"""Convolution helpers: padded NHWC staging, receptive-field sums, depthwise rows.

A regular (or grouped) convolution runs on the GEMM tile driver directly
over a padded NHWC copy of the input: for one output pixel and one kernel
row, the ``kW * C`` input values are a contiguous run, and neighbouring
pixels are a fixed stride apart, so the microkernel reads them in place
(no im2col buffer). Depthwise convolution has no reduction over channels,
so it gets its own loop over channels (contiguous in NHWC).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from edgeai.kernels.requant import requantize_fixed_point, requantize_float

__all__ = ["depthwise_rows", "depthwise_stage", "nhwc_stage", "window_sums"]


@njit(cache=True)
def nhwc_stage(x, n, c0, cg, pt, pl, fill, flip, buf, channels_last):  # type: ignore[no-untyped-def]
    """Copy channels ``c0:c0+cg`` of image ``n`` (NCHW bytes) into ``buf`` [Hp, Wp, C4], padded."""
    buf[:] = fill
    if channels_last:  # x is NHWC
        for h in range(x.shape[1]):
            for w in range(x.shape[2]):
                for c in range(cg):
                    buf[pt + h, pl + w, c] = x[n, h, w, c0 + c] ^ flip
        return
    h_in, w_in = x.shape[2], x.shape[3]
    for h in range(h_in):  # contiguous writes; the cg input rows being read stay in L1
        for w in range(w_in):
            for c in range(cg):
                buf[pt + h, pl + w, c] = x[n, c0 + c, h, w] ^ flip


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
