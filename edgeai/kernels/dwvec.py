"""The depthwise inner loop as one vector ``@intrinsic``: nine taps' weights held in registers.

:func:`taps9` computes, for ``n`` consecutive output pixels of one block of :data:`LANES`
channels, the sum over nine taps of ``x * w`` in float32 vectors::

    acc[ab + p * astep + l] (+)= sum_t x[xb + p * xstep + o[t] + l] * w[wb + t * LANES + l]

for ``p < n``, ``l < LANES``. The nine weight vectors are loaded once, before the pixel loop, so
that each pixel costs nine loads and nine multiply-adds; written as plain numba loops, LLVM keeps
reloading the weights after every store (it cannot prove that the output does not alias them),
which doubled the loads of the depthwise layers and made them load-bound.

The vectors are generic LLVM ``<LANES x float>``: 16 lanes (a ``zmm`` register) where numba
targets AVX-512, else 8 (an AVX2 ``ymm`` register; SSE or NEON pairs on other targets: nothing
here needs a particular instruction set). The products are
``llvm.fmuladd`` (fused where the target has FMA). Every partial sum is an exact integer below
``2**24`` (see :mod:`edgeai.kernels.depthwise`), so fusing, order and chaining change no result.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from edgeai.kernels.x86 import _data_addr, _splat_any  # plain IR helpers: importing x86 compiles nothing

__all__ = ["LANES", "taps3x3", "taps3x3_requant", "taps9", "widen"]


def _lanes() -> int:
    """16 float32 lanes (a ``zmm`` register) where numba compiles for AVX-512, else 8.

    Read from the features numba itself targets (``NUMBA_CPU_FEATURES`` when set, else the host's),
    so that the lane count and the compiled code agree; numba's cache is keyed by the same CPU
    name and features."""
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    feats = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
    return 16 if "+avx512f" in str(feats).split(",") else 8


LANES = _lanes()

_i64, _f32 = ir.IntType(64), ir.FloatType()
_vec = ir.VectorType(_f32, LANES)
_vptr = _vec.as_pointer()


def _addr(context: Any, builder: ir.IRBuilder, aty: types.Array, val: Any, index: ir.Value) -> ir.Value:
    # byte address of element `index` of a float32 array, as an integer
    return builder.add(_data_addr(context, builder, aty, val), builder.mul(index, ir.Constant(_i64, 4)))


def _vload(builder: ir.IRBuilder, addr: ir.Value) -> ir.Value:
    return builder.load(builder.inttoptr(addr, _vptr), align=4)


@intrinsic
def taps9(
    typingctx: Any, x: Any, xb: Any, xstep: Any, o: Any, w: Any, wb: Any, acc: Any, ab: Any, astep: Any, n: Any,
    add: Any,
) -> Any:  # fmt: skip
    """See the module docstring; ``o`` is a tuple of nine int64 element offsets, ``add`` a bool
    (add to ``acc`` rather than overwrite it)."""
    if not (isinstance(o, types.UniTuple) and o.count == 9):
        return None
    sig = types.void(x, types.int64, types.int64, o, w, types.int64, acc, types.int64, types.int64, types.int64, add)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        x_v, xb_v, xstep_v, o_v, w_v, wb_v, acc_v, ab_v, astep_v, n_v, add_v = args
        sa = signature.args
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_vec, [_vec, _vec, _vec]), f"llvm.fmuladd.v{LANES}f32"
        )
        wv = [_vload(builder, _addr(context, builder, sa[4], w_v, builder.add(wb_v, ir.Constant(_i64, t * LANES))))
              for t in range(9)]  # fmt: skip
        ob = [builder.mul(builder.extract_value(o_v, t), ir.Constant(_i64, 4)) for t in range(9)]
        x0 = _addr(context, builder, sa[0], x_v, xb_v)
        a0 = _addr(context, builder, sa[6], acc_v, ab_v)
        xs = builder.mul(xstep_v, ir.Constant(_i64, 4))
        as_ = builder.mul(astep_v, ir.Constant(_i64, 4))
        flag = context.cast(builder, add_v, sa[10], types.boolean)

        def pixels(accumulate: bool) -> None:
            with cgutils.for_range(builder, n_v) as loop:
                px = builder.add(x0, builder.mul(loop.index, xs))
                v = [_vload(builder, builder.add(px, ob[t])) for t in range(9)]
                # three independent chains of three, then two adds
                chains = []
                for c in range(3):
                    s = builder.fmul(v[3 * c], wv[3 * c])
                    s = builder.call(fma, [v[3 * c + 1], wv[3 * c + 1], s])
                    chains.append(builder.call(fma, [v[3 * c + 2], wv[3 * c + 2], s]))
                s = builder.fadd(builder.fadd(chains[0], chains[1]), chains[2])
                dst = builder.inttoptr(builder.add(a0, builder.mul(loop.index, as_)), _vptr)
                if accumulate:
                    s = builder.fadd(builder.load(dst, align=4), s)
                builder.store(s, dst, align=4)

        with builder.if_else(flag) as (then, otherwise):
            with then:
                pixels(True)
            with otherwise:
                pixels(False)
        return context.get_dummy_value()

    return sig, codegen


_PIXELS = 4  # output pixels per block of the 3x3 loops: stride 1 reads 6 columns for them, stride 2 reads 9


def _codegen_3x3(mode: int) -> Any:
    """The code of :func:`taps3x3` (``mode`` 0) and :func:`taps3x3_requant` (3: float32 bias, 1: int32)."""
    vbytes = LANES * 4
    vi32 = ir.VectorType(ir.IntType(32), LANES)
    vi8 = ir.VectorType(ir.IntType(8), LANES)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        x_v, xb_v, rows_v, w_v, wb_v, out_v, ob_v, ostep_v, n_v, stride_v = args[:10]
        sa = signature.args
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_vec, [_vec, _vec, _vec]), f"llvm.fmuladd.v{LANES}f32"
        )
        c4 = ir.Constant(_i64, 4)
        w0 = _addr(context, builder, sa[3], w_v, wb_v)
        wv = [_vload(builder, builder.add(w0, ir.Constant(_i64, t * vbytes))) for t in range(9)]
        ro = [ir.Constant(_i64, 0)] + [builder.mul(builder.extract_value(rows_v, i), c4) for i in range(2)]
        x0 = _addr(context, builder, sa[0], x_v, xb_v)
        if mode == 0:  # float32 sums, one row
            d0, ostep_v = _addr(context, builder, sa[5], out_v, ob_v), builder.mul(ostep_v, c4)
            nrows, xrow, orow = ir.Constant(_i64, 1), ir.Constant(_i64, 0), ir.Constant(_i64, 0)
        else:
            p1_v, sc_v, pb_v, zp_v, lo_v, hi_v = args[10:16]
            rint = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_vec, [_vec]), f"llvm.rint.v{LANES}f32"
            )
            d0 = builder.add(_data_addr(context, builder, sa[5], out_v), ob_v)
            p1_addr = builder.add(_data_addr(context, builder, sa[10], p1_v), builder.mul(pb_v, c4))
            p1v = builder.load(builder.inttoptr(p1_addr, (_vec if mode == 3 else vi32).as_pointer()), align=4)
            scv = _vload(builder, _addr(context, builder, sa[11], sc_v, pb_v))
            zpv = _splat_any(builder, builder.trunc(zp_v, ir.IntType(32)), vi32)
            lov, hiv = _splat_any(builder, lo_v, _vec), _splat_any(builder, hi_v, _vec)
            nrows, xrow, orow = args[16], builder.mul(args[17], c4), args[18]

        def sink(d0: ir.Value, idx: ir.Value, s: ir.Value) -> None:
            if mode == 0:
                builder.store(s, builder.inttoptr(builder.add(d0, builder.mul(idx, ostep_v)), _vptr), align=4)
                return
            if mode == 3:
                y = builder.fmul(builder.fadd(s, p1v), scv)
            else:
                y = builder.fmul(builder.sitofp(builder.add(builder.fptosi(s, vi32), p1v), _vec), scv)
            y = builder.select(builder.fcmp_ordered(">", y, lov), y, lov)  # as _round_clamp: f if f > lo else lo
            y = builder.select(builder.fcmp_ordered("<", y, hiv), y, hiv)
            q = builder.add(builder.fptosi(builder.call(rint, [y]), vi32), zpv)
            addr = builder.add(d0, builder.mul(idx, ostep_v))
            builder.store(builder.trunc(q, vi8), builder.inttoptr(addr, vi8.as_pointer()), align=1)

        def madd(acc: Any, v: ir.Value, wgt: ir.Value) -> ir.Value:
            return builder.fmul(v, wgt) if acc is None else builder.call(fma, [v, wgt, acc])

        def load(px: ir.Value, i: int, c: int) -> ir.Value:
            return _vload(builder, builder.add(builder.add(px, ro[i]), ir.Constant(_i64, c * vbytes)))

        def rows(stride: int) -> None:
            # every row's blocks of _PIXELS pixels sharing the columns they read, then the last n % _PIXELS
            nblk = builder.sdiv(n_v, ir.Constant(_i64, _PIXELS))
            done = builder.mul(nblk, ir.Constant(_i64, _PIXELS))
            with cgutils.for_range(builder, nrows) as row:  # the weights stay loaded for every row
                xr = builder.add(x0, builder.mul(row.index, xrow))
                dr = builder.add(d0, builder.mul(row.index, orow))
                with cgutils.for_range(builder, nblk) as loop:
                    first = builder.mul(loop.index, ir.Constant(_i64, _PIXELS))
                    px = builder.add(xr, builder.mul(first, ir.Constant(_i64, stride * vbytes)))
                    accs: list[Any] = [None] * _PIXELS
                    for i in range(3):
                        for c in range((_PIXELS - 1) * stride + 3):
                            users = [(p, c - p * stride) for p in range(_PIXELS) if 0 <= c - p * stride <= 2]
                            if users:
                                v = load(px, i, c)
                                for p, j in users:
                                    accs[p] = madd(accs[p], v, wv[3 * i + j])
                    for p in range(_PIXELS):
                        sink(dr, builder.add(first, ir.Constant(_i64, p)), accs[p])
                with cgutils.for_range(builder, builder.sub(n_v, done)) as loop:
                    idx = builder.add(done, loop.index)
                    px = builder.add(xr, builder.mul(idx, ir.Constant(_i64, stride * vbytes)))
                    s = None
                    for i in range(3):
                        for j in range(3):
                            s = madd(s, load(px, i, j), wv[3 * i + j])
                    sink(dr, idx, s)

        with builder.if_else(builder.icmp_signed("==", stride_v, ir.Constant(_i64, 1))) as (one, two):
            with one:
                rows(1)
            with two:
                rows(2)
        return context.get_dummy_value()

    return codegen


@intrinsic
def taps3x3(
    typingctx: Any, x: Any, xb: Any, rows: Any, w: Any, wb: Any, acc: Any, ab: Any, astep: Any, n: Any, stride: Any
) -> Any:  # fmt: skip
    """A 3x3 kernel of horizontal dilation 1 and stride 1 or 2 (any vertical ones: ``rows``) over a
    channel-blocked band (``LANES`` channels per
    pixel, so that every column and pixel step is a constant displacement): the nine taps' float32
    sums of ``n`` output pixels of the block at ``x[xb:]`` (``rows``: the element offsets of kernel rows
    1 and 2; weights at ``w[wb:]``) at ``acc[ab + p * astep:]``. Blocks of four pixels share the columns
    they read: 18 (stride 1) or 27 (stride 2) loads for 36 multiply-adds."""
    if not (isinstance(rows, types.UniTuple) and rows.count == 2):
        return None
    i64 = types.int64
    return types.void(x, i64, rows, w, i64, acc, i64, i64, i64, i64), _codegen_3x3(0)


@intrinsic
def taps3x3_requant(
    typingctx: Any, x: Any, xb: Any, rows: Any, w: Any, wb: Any, out: Any, ob: Any, ostep: Any, n: Any, stride: Any,
    bias: Any, scale: Any, pb: Any, zp: Any, lo: Any, hi: Any, nrows: Any, xrow: Any, orow: Any,
) -> Any:  # fmt: skip
    """:func:`taps3x3` with the ONNX requantization in its store, for ``nrows`` output rows (``xrow`` band
    elements and ``orow`` output elements apart; the weights and parameters loaded once): each pixel's
    sums ``s`` become ``(s + bias) * scale`` (a float32 ``bias``) or ``float32(int32(s) + bias) * scale``
    (an int32 ``bias``, added with wrap-around), as :func:`edgeai.kernels.depthwise._store` does, clamped
    to ``[lo, hi]`` (float32 ``qmin - zp``, ``qmax - zp``), rounded half to even, ``zp`` added, and
    stored as ``LANES`` bytes at ``out[ob + p * ostep:]`` (the channels' parameters at ``[pb:]``). The
    whole vector is stored: the caller uses this only when the channels are a multiple of ``LANES``."""
    if not (isinstance(bias, types.Array) and bias.dtype in (types.float32, types.int32)):
        return None
    if not (isinstance(rows, types.UniTuple) and rows.count == 2 and out.dtype in (types.int8, types.uint8)):
        return None
    i64, f32 = types.int64, types.float32
    sig = types.void(x, i64, rows, w, i64, out, i64, i64, i64, i64, bias, scale, i64, i64, f32, f32, i64, i64, i64)
    return sig, _codegen_3x3(3 if bias.dtype == types.float32 else 1)


@intrinsic
def widen(typingctx: Any, src: Any, si: Any, zp: Any, dst: Any, di: Any) -> Any:
    """``dst[di:di + LANES] = float32(src[si:si + LANES]) - zp`` for int8 or uint8 ``src``, one vector."""
    if not (isinstance(src, types.Array) and src.dtype in (types.int8, types.uint8)):
        return None
    signed = src.dtype == types.int8
    sig = types.void(src, types.int64, types.float32, dst, types.int64)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        src_v, si_v, zp_v, dst_v, di_v = args
        sa = signature.args
        s_addr = builder.add(_data_addr(context, builder, sa[0], src_v), si_v)
        bytes_ = builder.load(builder.inttoptr(s_addr, ir.VectorType(ir.IntType(8), LANES).as_pointer()), align=1)
        ints = (builder.sext if signed else builder.zext)(bytes_, ir.VectorType(ir.IntType(32), LANES))
        f = builder.sitofp(ints, _vec)
        builder.store(
            builder.fsub(f, _splat_any(builder, zp_v, _vec)),
            builder.inttoptr(_addr(context, builder, sa[3], dst_v, di_v), _vptr),
            align=4,
        )
        return context.get_dummy_value()

    return sig, codegen
