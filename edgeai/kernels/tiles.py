"""The tile loop shared by GEMM and convolution: microkernel, then a fused store.

One driver walks blocks of output rows and packed weight panels; for each
register tile it calls the path's microkernel (int32 tile into an L1 scratch)
and then :func:`_store_tile`, which applies the zero-point correction, bias
and requantization while writing the output: there is no separate pass over
an int32 result.

The kernel kind is a compile-time literal (``numba.literally``), so only
the microkernels of the chosen path are ever compiled, and each path's
driver is cached on disk separately (``cache=True``).

Output addressing is ``out[obase + row * ors + col * ocs]`` on a flat array,
so the same driver writes a row-major GEMM result and an NCHW convolution
output (rows are pixels, columns are channels).
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from edgeai.kernels.requant import requantize_fixed_point_branchless, requantize_float

__all__ = ["KIND_CODES", "KIND_TILE", "ROWS_ENTRIES", "aligned_empty", "row_sums", "rows_operands"]

# kind code -> (microkernel kind name or "portable", MR, NR)
KIND_CODES = {"vnni": 0, "avx2_7bit": 1, "avx2_i16": 2, "portable": 3, "amx": 4}
KIND_TILE = {0: (8, 32), 1: (6, 16), 2: (6, 16), 3: (4, 16), 4: (32, 32)}
_NAMES = {v: k for k, v in KIND_CODES.items()}

MODE_INT32, MODE_FLOAT, MODE_FIXED = 0, 1, 2

# The tile loops (`_nrt=False` below) and everything they call run without numba's reference
# counting: each array view or argument of a non-inlined call otherwise costs an atomic
# incref/decref pair, which was most of the per-row and per-tile time of small-K GEMMs. Their
# scratch comes from the entry points. The per-tile calls (microkernel, store) are inlined by
# LLVM: an out-of-line call passes every array as its seven fields on the stack, ~70 words a call.
_INLINE = {"_nrt": False, "forceinline": True}


@functools.cache
def _microkernel(code: int, rows: int) -> Any:
    from edgeai.kernels.x86 import make_microkernel

    return make_microkernel(_NAMES[code], rows)


@njit(cache=True, _nrt=False)
def _tile_portable(
    rows: int,
    a: np.ndarray,
    rowoff: np.ndarray,
    segoff: np.ndarray,
    nseg: int,
    seglen: int,
    bp: np.ndarray,
    boff: int,
    c: np.ndarray,
) -> None:
    # weights packed as int16 [K, 16]; plain loops that any LLVM target vectorizes
    for r in range(rows):
        for j in range(16):
            c[r, j] = 0
    kb = boff // 2
    for s in range(nseg):
        so = segoff[s]
        for k in range(seglen * 4):
            for r in range(rows):
                av = np.int32(a[rowoff[r] + so + k])
                for j in range(16):
                    c[r, j] += av * np.int32(bp[kb + j])
            kb += 16


def _tile(
    code: int,
    rows: int,
    a: np.ndarray,
    rowoff: np.ndarray,
    segoff: np.ndarray,
    nseg: int,
    seglen: int,
    bp: np.ndarray,
    boff: int,
    c: np.ndarray,
) -> None:
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_tile, prefer_literal=True, jit_options=_INLINE)
def _tile_overload(code, rows, a, rowoff, segoff, nseg, seglen, bp, boff, c):  # type: ignore[no-untyped-def]
    # (no annotations: numba compares the overload's parameters with the implementation's)
    if not isinstance(code, types.IntegerLiteral) or not isinstance(rows, types.IntegerLiteral):
        return None
    kcode, nrows = code.literal_value, rows.literal_value
    mr = KIND_TILE[kcode][0]
    nrows = nrows or mr
    if kcode == KIND_CODES["portable"]:

        def impl_portable(code, rows, a, rowoff, segoff, nseg, seglen, bp, boff, c):  # type: ignore[no-untyped-def]
            _tile_portable(nrows, a, rowoff, segoff, nseg, seglen, bp, boff, c)

        return impl_portable
    mk = _microkernel(kcode, nrows)

    def impl(code, rows, a, rowoff, segoff, nseg, seglen, bp, boff, c):  # type: ignore[no-untyped-def]
        mk(a, rowoff, segoff, nseg, seglen, bp, boff, c)

    return impl


@njit(cache=True, _nrt=False)
def row_sums(a: np.ndarray, m: int, k: int, lda: int, out: np.ndarray) -> None:
    """``out[i] = sum(a[i * lda : i * lda + k])`` in int32 (exact for K < 2**23): the row term of the
    zero-point correction. A widening reduction LLVM vectorizes; numpy's ``sum(axis=1, dtype=int32)``
    over uint8 rows was 4-6x slower here (3136 x 288: 279 -> 49 us)."""
    for i in range(m):
        row = a[i * lda : i * lda + k]
        s = np.int32(0)
        for j in range(k):
            s += np.int32(row[j])
        out[i] = s


@njit(cache=True)
def aligned_empty(m: int, n: int, dtype: Any) -> np.ndarray:
    """``np.empty((m, n), dtype)`` starting on a 64-byte boundary (large numpy arrays start 16 bytes past one
    as often as not, and a zmm store that straddles two cache lines writes both). A view of a slightly larger
    array; about 1 us more than ``np.empty`` through numba's dispatcher (``buf.ctypes.data`` alone costs 2 us in
    Python)."""
    buf = np.empty(m * n + 64, dtype)
    s = ((-buf.ctypes.data) % 64) // buf.itemsize
    return buf[s : s + m * n].reshape((m, n))


@njit(cache=True, inline="always")
def _store_value(v, n, mode, scale, mult, shift, zp, qmin, qmax):  # type: ignore[no-untyped-def]
    if mode == 1:
        return requantize_float(v, scale[n], zp, qmin, qmax)
    return requantize_fixed_point_branchless(v, mult[n], shift[n], zp, qmin, qmax)


@njit(cache=True, inline="always")
def _store_rows(c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors):  # type: ignore[no-untyped-def]
    # Contiguous output rows (GEMM, pixel-major convolution). Every array is sliced to a view
    # first: an index ``out[base + j]`` with a run-time base makes numba emit its negative-index
    # wraparound per element, which stops LLVM from vectorizing; ``o[j]`` over ``range`` does not.
    cz = coloff[col0 : col0 + nr]
    bzz = bz[col0 : col0 + nr]
    if mode == 0:
        for r in range(mr):
            rs = rowsum[r0 + r]
            s = obase + (r0 + r) * ors + col0
            o = out[s : s + nr]
            cr = c[r]
            for j in range(nr):
                o[j] = cr[j] + cz[j] - bzz[j] * rs
    elif mode == 1:
        sc = scale[col0 : col0 + nr]
        lo = np.float32(qmin - zp)
        hi = np.float32(qmax - zp)
        magic = np.float32(12582912.0)  # round half to even, as requantize_float
        zp32 = np.int32(zp)
        for r in range(mr):
            rs = rowsum[r0 + r]
            s = obase + (r0 + r) * ors + col0
            o = out[s : s + nr]
            cr = c[r]
            for j in range(nr):
                v = np.int32(cr[j] + cz[j] - bzz[j] * rs)
                f = min(max(np.float32(v) * sc[j], lo), hi)
                o[j] = np.int32((f + magic) - magic) + zp32
    else:
        mu = mult[col0 : col0 + nr]
        sh = shift[col0 : col0 + nr]
        for r in range(mr):
            rs = rowsum[r0 + r]
            s = obase + (r0 + r) * ors + col0
            o = out[s : s + nr]
            cr = c[r]
            for j in range(nr):
                v = np.int32(cr[j] + cz[j] - bzz[j] * rs)
                o[j] = requantize_fixed_point_branchless(v, mu[j], sh[j], zp, qmin, qmax)


@njit(cache=True, inline="always")
def _store_tile(
    c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors, ocs
):  # type: ignore[no-untyped-def]
    # int32 arithmetic wraps like the int32 accumulators do, and keeps the loops vectorizable.
    # Two loop orders so that the inner loop writes contiguous memory: row-major (GEMM) or
    # column-major (NCHW convolution output, rows are pixels).
    if ocs == 1:
        _store_rows(c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors)
        return
    _store_strided(
        c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors, ocs
    )


@njit(cache=True, inline="always")
def _store_strided(
    c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors, ocs
):  # type: ignore[no-untyped-def]
    # Any output strides (correct for ocs == 1 too, but _store_rows vectorizes that case). The AVX-512
    # kinds' IR stores take every contiguous tile of a valid mode, so they fall back to this alone: without
    # _store_rows's three vectorized mode loops, which made most of the store's cold compile time.
    if ors == 1:
        rsum = rowsum[r0 : r0 + mr]
        for j in range(nr):
            n = col0 + j
            s = obase + r0 + n * ocs
            o = out[s : s + mr]
            co = coloff[n]
            bzn = bz[n]
            for r in range(mr):
                v = np.int32(c[r, j] + co - bzn * rsum[r])
                if mode == 0:
                    o[r] = v
                else:
                    o[r] = _store_value(v, n, mode, scale, mult, shift, zp, qmin, qmax)
        return
    for r in range(mr):
        rs = rowsum[r0 + r]
        base = obase + (r0 + r) * ors + col0 * ocs
        for j in range(nr):
            v = np.int32(c[r, j] + coloff[col0 + j] - bz[col0 + j] * rs)
            if mode == 0:
                out[base + j * ocs] = v
            else:
                out[base + j * ocs] = _store_value(v, col0 + j, mode, scale, mult, shift, zp, qmin, qmax)


@functools.cache
def _store_rows_kernel(nr: int, mode: int) -> Any:
    from edgeai.kernels.x86 import make_store_rows

    return make_store_rows(nr, mode)


def _store_fast(
    code, c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors, ocs
):  # type: ignore[no-untyped-def]
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_store_fast, prefer_literal=True, jit_options=_INLINE)
def _store_fast_overload(
    code, c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors, ocs
):  # type: ignore[no-untyped-def]
    # On the AVX-512 kinds (VNNI, AMX) a tile into contiguous rows is stored by an IR kernel
    # (16-lane vectors, masked for a narrow last panel, column terms loaded once per tile); everything else by
    # _store_tile. The output dtype tells the mode: int32 only without requantization.
    if not isinstance(code, types.IntegerLiteral):
        return None
    i32, f32 = types.int32, types.float32
    simd = (
        code.literal_value in (KIND_CODES["vnni"], KIND_CODES["amx"])
        and rowsum.dtype == i32
        and bz.dtype == i32
        and coloff.dtype == i32
        and scale.dtype == f32
        and mult.dtype == i32
        and shift.dtype == i32
        and c.dtype == i32
        and c.layout == "C"
    )
    if not simd:

        def impl_generic(
            code,
            c,
            mr,
            nr,
            r0,
            col0,
            rowsum,
            bz,
            coloff,
            mode,
            scale,
            mult,
            shift,
            zp,
            qmin,
            qmax,
            out,
            obase,
            ors,
            ocs,
        ):  # type: ignore[no-untyped-def]
            _store_tile(
                c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors, ocs
            )

        return impl_generic
    NR = 32
    if out.dtype == i32:  # no requantization
        store_int32 = _store_rows_kernel(NR, 0)

        def impl_int32(
            code,
            c,
            mr,
            nr,
            r0,
            col0,
            rowsum,
            bz,
            coloff,
            mode,
            scale,
            mult,
            shift,
            zp,
            qmin,
            qmax,
            out,
            obase,
            ors,
            ocs,
        ):  # type: ignore[no-untyped-def]
            if ocs == 1 and mode == 0:
                store_int32(
                    c, mr, nr, r0, col0, rowsum, bz, coloff, scale, mult, shift, zp, qmin, qmax, out, obase, ors
                )
            else:
                _store_strided(
                    c,
                    mr,
                    nr,
                    r0,
                    col0,
                    rowsum,
                    bz,
                    coloff,
                    mode,
                    scale,
                    mult,
                    shift,
                    zp,
                    qmin,
                    qmax,
                    out,
                    obase,
                    ors,
                    ocs,
                )

        return impl_int32
    store_float = _store_rows_kernel(NR, 1)
    store_fixed = _store_rows_kernel(NR, 2)

    def impl(
        code, c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors, ocs
    ):  # type: ignore[no-untyped-def]
        if ocs == 1 and mode == 1:
            store_float(c, mr, nr, r0, col0, rowsum, bz, coloff, scale, mult, shift, zp, qmin, qmax, out, obase, ors)
        elif ocs == 1 and mode == 2:
            store_fixed(c, mr, nr, r0, col0, rowsum, bz, coloff, scale, mult, shift, zp, qmin, qmax, out, obase, ors)
        else:
            _store_strided(
                c, mr, nr, r0, col0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax, out, obase, ors, ocs
            )

    return impl


@njit(cache=True, _nrt=False)
def _drive_block(
    code,
    c,
    ro,
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    m_lo,
    m_hi,
    p_lo,
    p_hi,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    numba.literally(code)
    MR, NR = _tile_shape(code)
    for mb in range(m_lo, m_hi, mc):
        me = min(mb + mc, m_hi)
        for p in range(p_lo, p_hi):
            col0 = p * NR
            nr = min(NR, N - col0)
            boff = p * panel_bytes
            for i0 in range(mb, me, MR):
                mr = min(MR, me - i0)
                for r in range(MR):
                    ro[r] = rowoffs[i0 + min(r, mr - 1)]
                if mr > 4:
                    _tile(code, 0, a, ro, segoff, nseg, seglen, bp, boff, c)
                elif mr > 2:
                    _tile(code, 4, a, ro, segoff, nseg, seglen, bp, boff, c)
                elif mr == 2:
                    _tile(code, 2, a, ro, segoff, nseg, seglen, bp, boff, c)
                else:
                    _tile(code, 1, a, ro, segoff, nseg, seglen, bp, boff, c)
                _store_fast(
                    code,
                    c,
                    mr,
                    nr,
                    i0,
                    col0,
                    rowsum,
                    bz,
                    coloff,
                    mode,
                    scale,
                    mult,
                    shift,
                    zp,
                    qmin,
                    qmax,
                    out,
                    obase,
                    ors,
                    ocs,
                )


def _tile_shape(code):  # type: ignore[no-untyped-def]
    raise NotImplementedError


@overload(_tile_shape, prefer_literal=True)
def _tile_shape_overload(code):  # type: ignore[no-untyped-def]
    if not isinstance(code, types.IntegerLiteral):
        return None
    mr, nr = KIND_TILE[code.literal_value]
    return lambda code: (mr, nr)


# Entry points with the kind as a constant: a Python call then dispatches on plain types
# (fast path) and only the chosen kind's code is compiled.


@njit(cache=True)
def serial_vnni(
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # the block driver called directly (not through drive_serial): every jitted layer re-optimizes the
    # whole linked driver in LLVM (~2 s cold each)
    MR, NR = _tile_shape(0)
    _drive_block(
        0,
        np.empty((MR, NR), np.int32),
        np.empty(MR, np.int64),
        a,
        rowoffs,
        segoff,
        nseg,
        seglen,
        bp,
        panel_bytes,
        N,
        0,
        M,
        0,
        (N + NR - 1) // NR,
        mc,
        rowsum,
        bz,
        coloff,
        mode,
        scale,
        mult,
        shift,
        zp,
        qmin,
        qmax,
        out,
        obase,
        ors,
        ocs,
    )


@njit(cache=True, parallel=True)
def parallel_vnni(
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # the prange loop here, not through drive_parallel (one jitted layer less to re-optimize)
    MR, NR = _tile_shape(0)
    npanels = (N + NR - 1) // NR
    nmb = (M + mc - 1) // mc
    for item in prange(nmb * npanels):
        it = np.int64(item)
        mb = it // npanels
        p = it - mb * npanels
        _drive_block(
            0,
            np.empty((MR, NR), np.int32),
            np.empty(MR, np.int64),
            a,
            rowoffs,
            segoff,
            nseg,
            seglen,
            bp,
            panel_bytes,
            N,
            mb * mc,
            min(M, (mb + 1) * mc),
            p,
            p + 1,
            mc,
            rowsum,
            bz,
            coloff,
            mode,
            scale,
            mult,
            shift,
            zp,
            qmin,
            qmax,
            out,
            obase,
            ors,
            ocs,
        )


@njit(cache=True)
def serial_avx2_7bit(
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # the block driver called directly (not through drive_serial): every jitted layer re-optimizes the
    # whole linked driver in LLVM (~2 s cold each)
    MR, NR = _tile_shape(1)
    _drive_block(
        1,
        np.empty((MR, NR), np.int32),
        np.empty(MR, np.int64),
        a,
        rowoffs,
        segoff,
        nseg,
        seglen,
        bp,
        panel_bytes,
        N,
        0,
        M,
        0,
        (N + NR - 1) // NR,
        mc,
        rowsum,
        bz,
        coloff,
        mode,
        scale,
        mult,
        shift,
        zp,
        qmin,
        qmax,
        out,
        obase,
        ors,
        ocs,
    )


@njit(cache=True, parallel=True)
def parallel_avx2_7bit(
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # the prange loop here, not through drive_parallel (one jitted layer less to re-optimize)
    MR, NR = _tile_shape(1)
    npanels = (N + NR - 1) // NR
    nmb = (M + mc - 1) // mc
    for item in prange(nmb * npanels):
        it = np.int64(item)
        mb = it // npanels
        p = it - mb * npanels
        _drive_block(
            1,
            np.empty((MR, NR), np.int32),
            np.empty(MR, np.int64),
            a,
            rowoffs,
            segoff,
            nseg,
            seglen,
            bp,
            panel_bytes,
            N,
            mb * mc,
            min(M, (mb + 1) * mc),
            p,
            p + 1,
            mc,
            rowsum,
            bz,
            coloff,
            mode,
            scale,
            mult,
            shift,
            zp,
            qmin,
            qmax,
            out,
            obase,
            ors,
            ocs,
        )


@njit(cache=True)
def serial_avx2_i16(
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # the block driver called directly (not through drive_serial): every jitted layer re-optimizes the
    # whole linked driver in LLVM (~2 s cold each)
    MR, NR = _tile_shape(2)
    _drive_block(
        2,
        np.empty((MR, NR), np.int32),
        np.empty(MR, np.int64),
        a,
        rowoffs,
        segoff,
        nseg,
        seglen,
        bp,
        panel_bytes,
        N,
        0,
        M,
        0,
        (N + NR - 1) // NR,
        mc,
        rowsum,
        bz,
        coloff,
        mode,
        scale,
        mult,
        shift,
        zp,
        qmin,
        qmax,
        out,
        obase,
        ors,
        ocs,
    )


@njit(cache=True, parallel=True)
def parallel_avx2_i16(
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # the prange loop here, not through drive_parallel (one jitted layer less to re-optimize)
    MR, NR = _tile_shape(2)
    npanels = (N + NR - 1) // NR
    nmb = (M + mc - 1) // mc
    for item in prange(nmb * npanels):
        it = np.int64(item)
        mb = it // npanels
        p = it - mb * npanels
        _drive_block(
            2,
            np.empty((MR, NR), np.int32),
            np.empty(MR, np.int64),
            a,
            rowoffs,
            segoff,
            nseg,
            seglen,
            bp,
            panel_bytes,
            N,
            mb * mc,
            min(M, (mb + 1) * mc),
            p,
            p + 1,
            mc,
            rowsum,
            bz,
            coloff,
            mode,
            scale,
            mult,
            shift,
            zp,
            qmin,
            qmax,
            out,
            obase,
            ors,
            ocs,
        )


@njit(cache=True)
def serial_portable(
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # the block driver called directly (not through drive_serial): every jitted layer re-optimizes the
    # whole linked driver in LLVM (~2 s cold each)
    MR, NR = _tile_shape(3)
    _drive_block(
        3,
        np.empty((MR, NR), np.int32),
        np.empty(MR, np.int64),
        a,
        rowoffs,
        segoff,
        nseg,
        seglen,
        bp,
        panel_bytes,
        N,
        0,
        M,
        0,
        (N + NR - 1) // NR,
        mc,
        rowsum,
        bz,
        coloff,
        mode,
        scale,
        mult,
        shift,
        zp,
        qmin,
        qmax,
        out,
        obase,
        ors,
        ocs,
    )


@njit(cache=True, parallel=True)
def parallel_portable(
    a,
    rowoffs,
    segoff,
    nseg,
    seglen,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # the prange loop here, not through drive_parallel (one jitted layer less to re-optimize)
    MR, NR = _tile_shape(3)
    npanels = (N + NR - 1) // NR
    nmb = (M + mc - 1) // mc
    for item in prange(nmb * npanels):
        it = np.int64(item)
        mb = it // npanels
        p = it - mb * npanels
        _drive_block(
            3,
            np.empty((MR, NR), np.int32),
            np.empty(MR, np.int64),
            a,
            rowoffs,
            segoff,
            nseg,
            seglen,
            bp,
            panel_bytes,
            N,
            mb * mc,
            min(M, (mb + 1) * mc),
            p,
            p + 1,
            mc,
            rowsum,
            bz,
            coloff,
            mode,
            scale,
            mult,
            shift,
            zp,
            qmin,
            qmax,
            out,
            obase,
            ors,
            ocs,
        )


# --------------------------------------------------------------------------- VNNI row blocks


@functools.cache
def _rows_kernel(nv: int, rows: int, quant: int) -> Any:
    from edgeai.kernels.x86 import make_rows_kernel

    return make_rows_kernel(nv, rows, quant)


def _rows_tile(
    nv, rows, quant, a, rowoffs, i0, nrows, segoff, nseg, seglen, bp, boff, panel_bytes, width, col0, coloff, scale,
    mult, shift, mode, zp, qmin, qmax, out, obase, ors,
):  # type: ignore[no-untyped-def]  # fmt: skip
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_rows_tile, prefer_literal=True, jit_options=_INLINE)
def _rows_tile_overload(
    nv, rows, quant, a, rowoffs, i0, nrows, segoff, nseg, seglen, bp, boff, panel_bytes, width, col0, coloff, scale,
    mult, shift, mode, zp, qmin, qmax, out, obase, ors,
):  # type: ignore[no-untyped-def]  # fmt: skip
    if not all(isinstance(v, types.IntegerLiteral) for v in (nv, rows, quant)):
        return None
    kernel = _rows_kernel(nv.literal_value, rows.literal_value, quant.literal_value)

    def impl(
        nv, rows, quant, a, rowoffs, i0, nrows, segoff, nseg, seglen, bp, boff, panel_bytes, width, col0, coloff,
        scale, mult, shift, mode, zp, qmin, qmax, out, obase, ors,
    ):  # type: ignore[no-untyped-def]  # fmt: skip
        kernel(
            a, rowoffs, i0, nrows, segoff, nseg, seglen, bp, boff, panel_bytes, width, col0, coloff, scale, mult,
            shift, mode, zp, qmin, qmax, out, obase, ors,
        )  # fmt: skip

    return impl


ROWS_HEAD = 11  # the row entries' geo: 11 scalars, then segoff [nseg], then rowoffs [M]


def rows_operands(
    nseg: int, seglen: int, panel_bytes: int, n: int, ep: Any, coloff: np.ndarray, obase: int, ors: int,
    segoff: np.ndarray, rowoffs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(consts, geo) of a :data:`ROWS_ENTRIES` call (:func:`serial_rows_float`): ``consts`` int32 [4 N] =
    coloff, the bits of the float32 scales, multipliers, shifts; ``geo`` int64 = nseg, seglen, panel_bytes,
    N, M, mode, zp, qmin, qmax, obase, ors, then segoff and rowoffs. Five array arguments in all: each array
    a numba entry unboxes costs about 55 ns here, a third of a small GEMM's fixed cost with the 9 arrays of
    separate operands."""
    consts = np.concatenate(
        [
            np.asarray(coloff, np.int32),
            np.ascontiguousarray(ep.scale, np.float32).view(np.int32),
            np.asarray(ep.mult, np.int32),
            np.asarray(ep.shift, np.int32),
        ]
    )
    m = len(rowoffs)
    head = [nseg, seglen, panel_bytes, n, m, ep.mode, ep.zp, ep.qmin, ep.qmax, obase, ors]
    geo = np.concatenate([np.array(head, np.int64), np.asarray(segoff, np.int64), np.asarray(rowoffs, np.int64)])
    return consts, geo


def _rows_drive(quant, a, bp, consts, geo, out):  # type: ignore[no-untyped-def]
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_rows_drive, prefer_literal=True, jit_options=_INLINE)
def _rows_drive_overload(quant, a, bp, consts, geo, out):  # type: ignore[no-untyped-def]
    if not isinstance(quant, types.IntegerLiteral):
        return None
    q = quant.literal_value

    def impl(quant, a, bp, consts, geo, out):  # type: ignore[no-untyped-def]
        nseg, seglen, panel_bytes, N, M = geo[0], geo[1], geo[2], geo[3], geo[4]
        mode, zp, qmin, qmax, obase, ors = geo[5], geo[6], geo[7], geo[8], geo[9], geo[10]
        segoff = geo[ROWS_HEAD : ROWS_HEAD + nseg]
        rowoffs = geo[ROWS_HEAD + nseg : ROWS_HEAD + nseg + M]
        coloff = consts[:N]
        scale = consts[N : 2 * N].view(np.float32)
        mult = consts[2 * N : 3 * N]
        shift = consts[3 * N : 4 * N]
        for col0 in range(0, N, 64):
            width = min(64, N - col0)
            boff = (col0 // 32) * panel_bytes
            if width > 48:
                for i0 in range(0, M, 4):
                    _rows_tile(
                        4, 4, q, a, rowoffs, i0, min(4, M - i0), segoff, nseg, seglen, bp, boff, panel_bytes, width,
                        col0, coloff, scale, mult, shift, mode, zp, qmin, qmax, out, obase, ors,
                    )  # fmt: skip
            elif width > 32:
                for i0 in range(0, M, 6):
                    _rows_tile(
                        3, 6, q, a, rowoffs, i0, min(6, M - i0), segoff, nseg, seglen, bp, boff, panel_bytes, width,
                        col0, coloff, scale, mult, shift, mode, zp, qmin, qmax, out, obase, ors,
                    )  # fmt: skip
            elif width > 16:
                for i0 in range(0, M, 8):
                    _rows_tile(
                        2, 8, q, a, rowoffs, i0, min(8, M - i0), segoff, nseg, seglen, bp, boff, panel_bytes, width,
                        col0, coloff, scale, mult, shift, mode, zp, qmin, qmax, out, obase, ors,
                    )  # fmt: skip
            else:
                for i0 in range(0, M, 8):
                    _rows_tile(
                        1, 8, q, a, rowoffs, i0, min(8, M - i0), segoff, nseg, seglen, bp, boff, panel_bytes, width,
                        col0, coloff, scale, mult, shift, mode, zp, qmin, qmax, out, obase, ors,
                    )  # fmt: skip

    return impl


@njit(cache=True, _nrt=False)
def serial_rows_float(a, bp, consts, geo, out):  # type: ignore[no-untyped-def]
    """VNNI GEMM of weights without a zero point, the store fused into the register tile.

    ``a``: uint8 rows (``rowoffs``, K in ``nseg`` runs as :func:`edgeai.kernels.x86.make_microkernel` reads
    them); ``bp``: weights packed for "vnni" or "amx" (the same 32-column panels); ``out``: the output,
    element ``obase + row * ors + col`` of its flat layout; ``consts`` and ``geo`` from :func:`rows_operands`.
    ``a`` and ``out`` are read and written through their data pointers: 2-D C-contiguous arrays (as a GEMM
    has them, no reshape per call) are what callers pass, so that one compiled version serves them all.

    Column blocks of up to 64 (4 vectors of 16; the last block takes 1 to 4), each over blocks of 4, 6 or
    8 rows (for 4, 3, or 1-2 vectors: the accumulators fill about half the vector registers). A
    narrow N is no longer padded to 32-column panels, and no int32 tile goes through a scratch: the small
    GEMMs of a mobile network (K <= 16, N <= 96, or a few hundred thousand MACs) spend most of their time
    in that per-tile overhead.
    """
    _rows_drive(1, a, bp, consts, geo, out)


@njit(cache=True, _nrt=False)
def serial_rows_fixed(a, bp, consts, geo, out):  # type: ignore[no-untyped-def]
    """:func:`serial_rows_float` with TFLite's fixed-point requantization (a separate entry: a model compiles
    the store of its own requantization alone)."""
    _rows_drive(2, a, bp, consts, geo, out)


@njit(cache=True, _nrt=False)
def serial_rows_int32(a, bp, consts, geo, out):  # type: ignore[no-untyped-def]
    """:func:`serial_rows_float` storing the int32 accumulators (no requantization)."""
    _rows_drive(0, a, bp, consts, geo, out)


# the entry for each requantization mode (0: int32 out, 1: ONNX float, 2: TFLite fixed point)
ROWS_ENTRIES = {0: serial_rows_int32, 1: serial_rows_float, 2: serial_rows_fixed}


# --------------------------------------------------------------------------- AMX

# Tile configuration (palette 1): tiles 0-3 C (16 rows x 64 bytes), 4-5 A, 6-7 B, all 16 x 64.
AMX_CONFIG = np.zeros(64, np.uint8)
AMX_CONFIG[0] = 1
AMX_CONFIG[16:32] = np.array([64, 0] * 8, np.uint8)  # colsb (uint16) of tiles 0-7
AMX_CONFIG[48:56] = 16  # rows of tiles 0-7


@functools.cache
def _amx_microkernel() -> Any:
    from edgeai.kernels.x86 import make_amx_microkernel

    return make_amx_microkernel(prefetch_b=32, prefetch_a=0)


def _amx_tile(cfg, a, a_off, lda, segoff, nseg, seglen, bp, boff, c):  # type: ignore[no-untyped-def]
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_amx_tile, jit_options=_INLINE)
def _amx_tile_overload(cfg, a, a_off, lda, segoff, nseg, seglen, bp, boff, c):  # type: ignore[no-untyped-def]
    mk = _amx_microkernel()[0]

    def impl(cfg, a, a_off, lda, segoff, nseg, seglen, bp, boff, c):  # type: ignore[no-untyped-def]
        mk(cfg, a, a_off, lda, segoff, nseg, seglen, bp, boff, c)

    return impl


def _amx_compute(cfg, a, a_off, lda, segoff, nseg, seglen, bp, boff):  # type: ignore[no-untyped-def]
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_amx_compute, jit_options=_INLINE)
def _amx_compute_overload(cfg, a, a_off, lda, segoff, nseg, seglen, bp, boff):  # type: ignore[no-untyped-def]
    mk = _amx_microkernel()[2]

    def impl(cfg, a, a_off, lda, segoff, nseg, seglen, bp, boff):  # type: ignore[no-untyped-def]
        mk(cfg, a, a_off, lda, segoff, nseg, seglen, bp, boff)

    return impl


def _amx_save(c):  # type: ignore[no-untyped-def]
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_amx_save, jit_options=_INLINE)
def _amx_save_overload(c):  # type: ignore[no-untyped-def]
    save = _amx_microkernel()[3]

    def impl(c):  # type: ignore[no-untyped-def]
        save(c)

    return impl


def _amx_release():  # type: ignore[no-untyped-def]
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_amx_release, jit_options=_INLINE)
def _amx_release_overload():  # type: ignore[no-untyped-def]
    rel = _amx_microkernel()[1]

    def impl():  # type: ignore[no-untyped-def]
        rel()

    return impl


# Outputs of at least this many bytes are written with non-temporal stores where the driver can (int32, aligned
# rows of whole 32-column AMX tiles): an output beyond L2 otherwise costs a read for ownership of every line, and
# its lines evict the weight panels the next row block reads again.
_STREAM_MIN_BYTES = 2 << 20


@njit(cache=True, inline="always")
def _stream_ok(out, mode, ocs, obase, ors):  # type: ignore[no-untyped-def]
    return (
        mode == 0
        and ocs == 1
        and out.itemsize == 4
        and out.size * 4 >= _STREAM_MIN_BYTES
        and (out.ctypes.data + obase * 4) % 64 == 0
        and ors % 16 == 0
    )


@functools.cache
def _stream_kernels() -> tuple:
    """(store, fence) ``@intrinsic``: ``store(c, r0, col0, rowsum, bz, coloff, out, obase, ors)`` writes the
    int32 [32, 32] tile ``c`` plus the column terms (and ``- bz * rowsum`` where a column has a weight zero
    point) to ``out[obase + (r0 + r) * ors + col0 + j]`` with non-temporal 64-byte stores (``c`` and every
    output row 64-byte aligned); ``fence()`` is the ``sfence`` that orders them before the driver returns."""
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic

    from edgeai.kernels.x86 import _V16I32, _data_addr, _splat_any

    i16, i32, i64 = ir.IntType(16), ir.IntType(32), ir.IntType(64)
    v16 = _V16I32

    def k64(n: int) -> ir.Constant:
        return ir.Constant(i64, n)

    @intrinsic
    def stream_store(typingctx, c, r0, col0, rowsum, bz, coloff, out, obase, ors):  # type: ignore[no-untyped-def]
        ip = types.intp
        sig = types.void(c, ip, ip, rowsum, bz, coloff, out, ip, ip)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            sa = signature.args
            r0_v, col0_v, obase_v, ors_v = args[1], args[2], args[7], args[8]

            def addr(k: int) -> ir.Value:
                return _data_addr(context, builder, sa[k], args[k])

            def vload(a: ir.Value, align: int) -> ir.Value:
                return builder.load(builder.inttoptr(a, v16.as_pointer()), align=align)

            coff = builder.mul(col0_v, k64(4))
            cov = [vload(builder.add(builder.add(addr(5), coff), k64(64 * j)), 4) for j in range(2)]
            bzv = [vload(builder.add(builder.add(addr(4), coff), k64(64 * j)), 4) for j in range(2)]
            rs_addr = builder.add(addr(3), builder.mul(r0_v, k64(4)))
            c_addr = addr(0)
            first = builder.add(obase_v, builder.add(builder.mul(r0_v, ors_v), col0_v))
            o_addr = builder.add(addr(6), builder.mul(first, k64(4)))
            o_step = builder.mul(ors_v, k64(4))
            nontemporal = builder.module.add_metadata([ir.Constant(i32, 1)])
            anybz = builder.or_(bzv[0], bzv[1])
            has_bz = builder.icmp_unsigned(
                "!=",
                builder.bitcast(builder.icmp_signed("!=", anybz, ir.Constant(v16, [0] * 16)), i16),
                ir.Constant(i16, 0),
            )

            def rows(with_bz: bool) -> None:
                for r in range(32):
                    if with_bz:
                        rs = builder.load(builder.inttoptr(builder.add(rs_addr, k64(4 * r)), i32.as_pointer()))
                        rsv = _splat_any(builder, rs, v16)
                    orow = builder.add(o_addr, builder.mul(o_step, k64(r)))
                    for j in range(2):
                        v = builder.add(vload(builder.add(c_addr, k64(128 * r + 64 * j)), 64), cov[j])
                        if with_bz:
                            v = builder.sub(v, builder.mul(bzv[j], rsv))
                        dst = builder.inttoptr(builder.add(orow, k64(64 * j)), v16.as_pointer())
                        builder.store(v, dst, align=64).set_metadata("nontemporal", nontemporal)

            with builder.if_else(has_bz) as (then, otherwise):
                with then:
                    rows(True)
                with otherwise:
                    rows(False)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def fence(typingctx):  # type: ignore[no-untyped-def]
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence"
            )
            builder.call(fn, [])
            return context.get_dummy_value()

        return types.void(), codegen

    return stream_store, fence


def _stream_store(c, r0, col0, rowsum, bz, coloff, out, obase, ors):  # type: ignore[no-untyped-def]
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_stream_store, jit_options=_INLINE)
def _stream_store_overload(c, r0, col0, rowsum, bz, coloff, out, obase, ors):  # type: ignore[no-untyped-def]
    if out.dtype != types.int32:  # never called: _stream_ok holds only for int32 outputs

        def impl_none(c, r0, col0, rowsum, bz, coloff, out, obase, ors):  # type: ignore[no-untyped-def]
            pass

        return impl_none
    store = _stream_kernels()[0]

    def impl(c, r0, col0, rowsum, bz, coloff, out, obase, ors):  # type: ignore[no-untyped-def]
        store(c, r0, col0, rowsum, bz, coloff, out, obase, ors)

    return impl


def _store_fence():  # type: ignore[no-untyped-def]
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_store_fence, jit_options=_INLINE)
def _store_fence_overload():  # type: ignore[no-untyped-def]
    fence = _stream_kernels()[1]

    def impl():  # type: ignore[no-untyped-def]
        fence()

    return impl


# a row block is copied to the aligned scratch (when A's rows are misaligned) only if at least this many panels
# read it
_COPY_A_MIN_PANELS = 8


@njit(cache=True, inline="always")
def _copy_block(a, src, lda, ablk, k64):  # type: ignore[no-untyped-def]
    # rows of slices: a run-time base in an index would keep numba's wraparound check and LLVM from vectorizing
    for r in range(32):
        s = src + r * lda
        d = r * k64
        arow = a[s : s + k64]
        brow = ablk[d : d + k64]
        for j in range(k64):
            brow[j] = arow[j]


@njit(cache=True, inline="always")
def _aligned_bytes(n):  # type: ignore[no-untyped-def]
    buf = np.empty(n + 64, np.uint8)
    s = (-buf.ctypes.data) % 64
    return buf[s : s + n]


@njit(cache=True, _nrt=False)
def _drive_block_amx(
    c,
    cv,
    ro,
    ablk,
    nocfg,
    cfg,
    a,
    rowoffs,
    lda,
    segoff,
    nseg,
    seglen64,
    seglen4,
    amx_end,
    bp,
    panel_bytes,
    N,
    m_lo,
    m_hi,
    p_lo,
    p_hi,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    # Row blocks of 32 (uniform stride lda from rowoffs[i0]) on AMX; the remaining rows of each
    # block on the VNNI microkernel, which reads the same packed panels.
    # Software pipelined: the AMX unit computes tile t+1 while the vector epilogue stores tile t
    # (the products run asynchronously once issued), then tile t+1 is saved to the scratch.
    # c: [32, 32] int32, the AMX tile whose store is pending; cv: [8, 32] int32, VNNI tiles;
    # ro: [8] int64; nocfg: zeros like cfg (palette 0: "already configured", skip ldtilecfg)
    # One store call site (the store is inlined: three sites made LLVM optimize three copies of it): a flat
    # loop over (row block, panel, row) whose last pass only stores the pending AMX tile.
    tcfg = cfg
    stream = _stream_ok(out, mode, ocs, obase, ors)
    # A rows off 64-byte boundaries (numpy's large arrays start 16 bytes past one as often as not; K not a multiple
    # of 64): each 32-row block is copied once into the aligned scratch ablk and read from there by all the block's
    # panels, where there are enough of them to pay for the copy. It reads the bytes the tile loads would.
    k64 = seglen64 * 64
    copy_a = False
    if nseg == 1 and p_hi - p_lo >= _COPY_A_MIN_PANELS and ablk.size >= 32 * k64 and m_lo < m_hi:
        copy_a = (a.ctypes.data + rowoffs[m_lo] + segoff[0]) % 64 != 0 or lda % 64 != 0
    copied = np.int64(-1)
    configured = False
    pending = False
    finished = m_lo >= m_hi or p_lo >= p_hi
    mb = m_lo
    p = p_lo
    i0 = m_lo
    # int64 values, not literals: a literal argument would type (and compile) a second store
    m32 = np.int64(32)
    pr0 = np.int64(0)
    pcol0 = np.int64(0)
    pnr = np.int64(0)
    while pending or not finished:
        amx = False
        mr = m32
        if finished:  # flush: the last AMX tile, computed and saved, is still to be stored
            sbuf, smr, snr, sr0, scol0 = c, m32, pnr, pr0, pcol0
            pending = False
        else:
            me = min(mb + mc, m_hi)
            col0 = p * 32
            nr = min(32, N - col0)
            boff = p * panel_bytes
            amx = i0 + 32 <= min(me, amx_end)
            if amx:
                if copy_a:
                    if copied != i0:
                        _copy_block(a, rowoffs[i0] + segoff[0], lda, ablk, k64)
                        copied = i0
                    _amx_compute(tcfg, ablk, -segoff[0], k64, segoff, nseg, seglen64, bp, boff)
                else:
                    _amx_compute(tcfg, a, rowoffs[i0], lda, segoff, nseg, seglen64, bp, boff)
                tcfg = nocfg
                configured = True
                # the previous AMX tile is stored while the unit computes this one
                sbuf, smr, snr, sr0, scol0 = c, m32, pnr, pr0, pcol0
            else:
                mr = min(8, me - i0)
                for r in range(8):
                    ro[r] = rowoffs[i0 + min(r, mr - 1)]
                if mr > 4:
                    _tile(0, 0, a, ro, segoff, nseg, seglen4, bp, boff, cv)
                elif mr > 2:
                    _tile(0, 4, a, ro, segoff, nseg, seglen4, bp, boff, cv)
                elif mr == 2:
                    _tile(0, 2, a, ro, segoff, nseg, seglen4, bp, boff, cv)
                else:
                    _tile(0, 1, a, ro, segoff, nseg, seglen4, bp, boff, cv)
                sbuf, smr, snr, sr0, scol0 = cv, mr, nr, i0, col0
        if stream and smr == 32 and snr == 32:  # a full AMX tile of a large int32 output (VNNI tiles: mr <= 8)
            _stream_store(sbuf, sr0, scol0, rowsum, bz, coloff, out, obase, ors)
        elif (amx and pending) or not amx:
            # kind 0 (VNNI), whose store is the same as AMX's: the VNNI entry's driver then shares the compiled
            # store with this one (a model with strided and stride-1 convolutions compiles it once, not twice)
            _store_fast(
                0, sbuf, smr, snr, sr0, scol0, rowsum, bz, coloff, mode, scale, mult, shift, zp, qmin, qmax,
                out, obase, ors, ocs,
            )  # fmt: skip
        if not finished:
            if amx:
                _amx_save(c)
                pending = True
                pr0 = i0
                pcol0 = col0
                pnr = nr
                i0 += 32
            else:
                i0 += mr
            if i0 >= me:  # next panel, then next row block
                p += 1
                if p >= p_hi:
                    p = p_lo
                    mb += mc
                    finished = mb >= m_hi
                i0 = mb
    if configured:
        _amx_release()
    if stream:
        _store_fence()


@njit(cache=True, inline="always")
def _aligned_tile(rows, cols):  # type: ignore[no-untyped-def]
    # int32 [rows, cols] scratch on a 64-byte boundary: a tile row that straddles two cache lines costs
    # both in tilestored and in the epilogue's zmm loads
    buf = np.empty(rows * cols + 16, np.int32)
    s = ((-buf.ctypes.data) % 64) // 4
    return buf[s : s + rows * cols].reshape((rows, cols))


@njit(cache=True)
def serial_amx(
    cfg,
    a,
    rowoffs,
    lda,
    segoff,
    nseg,
    seglen64,
    seglen4,
    amx_end,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    """AMX GEMM on the calling thread (``a`` rows at the uniform stride ``lda``; K runs padded to 64)."""
    npanels = (N + 31) // 32
    ablk_bytes = 64
    if nseg == 1:  # room for one 32-row block of A (see _drive_block_amx)
        ablk_bytes = 32 * seglen64 * 64
    _drive_block_amx(
        _aligned_tile(32, 32),
        _aligned_tile(8, 32),
        np.empty(8, np.int64),
        _aligned_bytes(ablk_bytes),
        np.zeros_like(cfg),
        cfg,
        a,
        rowoffs,
        lda,
        segoff,
        nseg,
        seglen64,
        seglen4,
        amx_end,
        bp,
        panel_bytes,
        N,
        0,
        M,
        0,
        npanels,
        mc,
        rowsum,
        bz,
        coloff,
        mode,
        scale,
        mult,
        shift,
        zp,
        qmin,
        qmax,
        out,
        obase,
        ors,
        ocs,
    )


@njit(cache=True, parallel=True)
def parallel_amx(
    cfg,
    a,
    rowoffs,
    lda,
    segoff,
    nseg,
    seglen64,
    seglen4,
    amx_end,
    bp,
    panel_bytes,
    N,
    M,
    mc,
    rowsum,
    bz,
    coloff,
    mode,
    scale,
    mult,
    shift,
    zp,
    qmin,
    qmax,
    out,
    obase,
    ors,
    ocs,
):  # type: ignore[no-untyped-def]
    """As :func:`serial_amx`, (row block, panel) work items over numba's threads."""
    npanels = (N + 31) // 32
    nmb = (M + mc - 1) // mc
    for item in prange(nmb * npanels):
        it = np.int64(item)
        mb = it // npanels
        p = it - mb * npanels
        _drive_block_amx(
            _aligned_tile(32, 32),
            _aligned_tile(8, 32),
            np.empty(8, np.int64),
            _aligned_bytes(64),  # one panel per work item: no block copies
            np.zeros_like(cfg),
            cfg,
            a,
            rowoffs,
            lda,
            segoff,
            nseg,
            seglen64,
            seglen4,
            amx_end,
            bp,
            panel_bytes,
            N,
            mb * mc,
            min(M, (mb + 1) * mc),
            p,
            p + 1,
            mc,
            rowsum,
            bz,
            coloff,
            mode,
            scale,
            mult,
            shift,
            zp,
            qmin,
            qmax,
            out,
            obase,
            ors,
            ocs,
        )


ENTRY_SERIAL = {0: serial_vnni, 1: serial_avx2_7bit, 2: serial_avx2_i16, 3: serial_portable, 4: serial_amx}
ENTRY_PARALLEL = {0: parallel_vnni, 1: parallel_avx2_7bit, 2: parallel_avx2_i16, 3: parallel_portable, 4: parallel_amx}
