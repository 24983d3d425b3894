"""x86 SIMD microkernels, emitted as LLVM IR through numba's ``@intrinsic``.

LLVM does not turn plain loops into ``vpdpbusd`` / ``vpmaddubsw`` and widens
int32 products to int64, so the inner loops are written as IR here. Each
microkernel computes one register tile ``C[mr, NR] = A_rows . B_panel`` in
int32 and stores it into a small scratch tile; the caller fuses the
zero-point correction, bias and requantization into the store of the output.

Operands (the same for every kind, see :mod:`edgeai.kernels.pack`):

* ``a``: uint8 bytes; row ``r`` of the tile starts at ``rowoff[r]``; its
  K values are ``nseg`` runs of ``4 * seglen`` contiguous bytes, run ``s``
  at ``rowoff[r] + segoff[s]`` (one run for a GEMM; one per kernel row for a
  direct NHWC convolution).
* ``bp``: the packed weight panel starting at byte ``boff``: for each group
  of 4 K values, ``NR`` columns x 4 values (int8), or x 4 int16 for the
  exact int16 kind.
* ``c``: int32 ``[MR, NR]`` scratch, C-contiguous.

Kinds:

* ``"vnni"``   AVX-512 VNNI, ``vpdpbusd`` zmm, NR=32. Exact for all u8 x s8.
* ``"avx2_7bit"`` AVX2 ``vpmaddubsw`` + ``vpmaddwd``, NR=16. Exact only when
  every weight is in [-64, 63]: then a pair sum is at most 2*255*64 = 32640
  and the int16 saturation of ``vpmaddubsw`` cannot trigger.
* ``"avx2_i16"``  AVX2 ``vpmaddwd`` on int16 operands, NR=16. Exact for all
  8-bit weights, half the throughput.

These functions may only be *compiled* on a CPU that has the features:
LLVM cannot select the instructions otherwise. :mod:`edgeai.kernels.cpu`
decides; nothing here is compiled at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["KINDS", "Kind", "make_microkernel", "make_rows_kernel"]

_i8, _i16, _i32, _i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
# the vector types of the 16-lane (zmm) IR: int32, float32, int8, mask lanes, and 8 int64 lanes
_V16I32, _V16F32 = ir.VectorType(_i32, 16), ir.VectorType(ir.FloatType(), 16)
_V16I8, _V16I1, _V8I64 = ir.VectorType(_i8, 16), ir.VectorType(ir.IntType(1), 16), ir.VectorType(_i64, 8)


@dataclass(frozen=True)
class Kind:
    name: str
    mr: int  # rows of the register tile
    nr: int  # columns of a packed panel
    lanes: int  # int32 lanes per vector register
    wbytes: int  # bytes per packed weight value (1: int8, 2: int16)


KINDS = {
    "vnni": Kind("vnni", mr=8, nr=32, lanes=16, wbytes=1),
    "avx2_7bit": Kind("avx2_7bit", mr=6, nr=16, lanes=8, wbytes=1),
    "avx2_i16": Kind("avx2_i16", mr=6, nr=16, lanes=8, wbytes=2),
}


def _data_addr(context: Any, builder: ir.IRBuilder, aty: types.Array, val: Any) -> ir.Value:
    arr = context.make_array(aty)(context, builder, val)
    return builder.ptrtoint(arr.data, _i64)


def _load(builder: ir.IRBuilder, addr: ir.Value, ty: ir.Type) -> ir.Value:
    return builder.load(builder.inttoptr(addr, ty.as_pointer()), align=1)


def _splat(builder: ir.IRBuilder, scalar: ir.Value, vty: ir.VectorType) -> ir.Value:
    undef = ir.Constant(vty, None)
    v = builder.insert_element(undef, scalar, ir.Constant(_i32, 0))
    return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(_i32, vty.count), [0] * vty.count))


def _const(n: int) -> ir.Constant:
    return ir.Constant(_i64, n)


def make_microkernel(kind_name: str, rows: int) -> Any:
    """An ``@intrinsic`` computing ``rows`` (<= MR) rows of one tile of kind ``kind_name``."""
    kind = KINDS[kind_name]
    nv = kind.nr // kind.lanes  # vector registers per tile row
    vacc = ir.VectorType(_i32, kind.lanes)
    vbytes = ir.VectorType(_i8, kind.lanes * 4)
    vshort = ir.VectorType(_i16, kind.lanes * 2)
    group_bytes = kind.nr * 4 * kind.wbytes  # packed bytes per group of 4 K values

    def emit_group(builder: ir.IRBuilder, module: ir.Module, acc: list, arow: list, bptr: ir.Value) -> None:
        if kind.name == "vnni":
            fn = cgutils.get_or_insert_function(
                module, ir.FunctionType(vacc, [vacc, vbytes, vbytes]), "llvm.x86.avx512.vpdpbusd.512"
            )
            bv = [_load(builder, builder.add(bptr, _const(64 * j)), vbytes) for j in range(nv)]
            for r in range(rows):
                av = builder.bitcast(_splat(builder, _load(builder, arow[r], _i32), vacc), vbytes)
                for j in range(nv):
                    builder.store(builder.call(fn, [builder.load(acc[r][j]), av, bv[j]]), acc[r][j])
        elif kind.name == "avx2_7bit":
            maddubs = cgutils.get_or_insert_function(
                module, ir.FunctionType(vshort, [vbytes, vbytes]), "llvm.x86.avx2.pmadd.ub.sw"
            )
            maddwd = cgutils.get_or_insert_function(
                module, ir.FunctionType(vacc, [vshort, vshort]), "llvm.x86.avx2.pmadd.wd"
            )
            ones = ir.Constant(vshort, [1] * (kind.lanes * 2))
            bv = [_load(builder, builder.add(bptr, _const(32 * j)), vbytes) for j in range(nv)]
            for r in range(rows):
                av = builder.bitcast(_splat(builder, _load(builder, arow[r], _i32), vacc), vbytes)
                for j in range(nv):
                    pairs = builder.call(maddubs, [av, bv[j]])
                    quads = builder.call(maddwd, [pairs, ones])
                    builder.store(builder.add(builder.load(acc[r][j]), quads), acc[r][j])
        else:  # avx2_i16: two steps of 2 K values, operands widened to int16
            maddwd = cgutils.get_or_insert_function(
                module, ir.FunctionType(vacc, [vshort, vshort]), "llvm.x86.avx2.pmadd.wd"
            )
            v2i8, v2i16 = ir.VectorType(_i8, 2), ir.VectorType(_i16, 2)
            for half in range(2):
                boff = half * kind.nr * 4
                bv = [_load(builder, builder.add(bptr, _const(boff + 32 * j)), vshort) for j in range(nv)]
                for r in range(rows):
                    pair = _load(builder, builder.add(arow[r], _const(2 * half)), v2i8)
                    word = builder.bitcast(builder.zext(pair, v2i16), _i32)
                    av = builder.bitcast(_splat(builder, word, vacc), vshort)
                    for j in range(nv):
                        prod = builder.call(maddwd, [av, bv[j]])
                        builder.store(builder.add(builder.load(acc[r][j]), prod), acc[r][j])

    @intrinsic
    def microkernel(
        typingctx: Any, a: Any, rowoff: Any, segoff: Any, nseg: Any, seglen: Any, bp: Any, boff: Any, c: Any
    ) -> Any:
        sig = types.void(a, rowoff, segoff, types.intp, types.intp, bp, types.intp, c)

        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            a_v, rowoff_v, segoff_v, nseg_v, seglen_v, bp_v, boff_v, c_v = args
            sa = signature.args
            a_addr = _data_addr(context, builder, sa[0], a_v)
            ro_addr = _data_addr(context, builder, sa[1], rowoff_v)
            so_addr = _data_addr(context, builder, sa[2], segoff_v)
            b_addr = builder.add(_data_addr(context, builder, sa[5], bp_v), boff_v)
            c_addr = _data_addr(context, builder, sa[7], c_v)
            module = builder.module
            acc = [
                [cgutils.alloca_once_value(builder, ir.Constant(vacc, None)) for _ in range(nv)] for _ in range(rows)
            ]
            for r in range(rows):
                for j in range(nv):
                    builder.store(ir.Constant(vacc, [0] * kind.lanes), acc[r][j])
            rbase = [
                builder.add(a_addr, _load(builder, builder.add(ro_addr, _const(8 * r)), _i64)) for r in range(rows)
            ]
            bptr = cgutils.alloca_once_value(builder, b_addr)
            with cgutils.for_range(builder, nseg_v) as segloop:
                so = _load(builder, builder.add(so_addr, builder.mul(segloop.index, _const(8))), _i64)
                with cgutils.for_range(builder, seglen_v) as kloop:
                    koff = builder.add(so, builder.mul(kloop.index, _const(4)))
                    arow = [builder.add(rbase[r], koff) for r in range(rows)]
                    bcur = builder.load(bptr)
                    emit_group(builder, module, acc, arow, bcur)
                    builder.store(builder.add(bcur, _const(group_bytes)), bptr)
            for r in range(rows):
                for j in range(nv):
                    dst = builder.add(c_addr, _const((r * kind.nr + j * kind.lanes) * 4))
                    builder.store(builder.load(acc[r][j]), builder.inttoptr(dst, vacc.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return microkernel


def make_amx_microkernel(prefetch_b: int = 0, prefetch_a: int = 0) -> Any:
    """AMX ``tdpbusd`` kernels for one 32 x 32 int32 tile, as four ``@intrinsic``.

    Four C tiles (0-3), two A tiles (4, 5: rows 0-15 and 16-31, loaded in place with
    the row stride ``lda``), two B tiles (6, 7: columns 0-15 and 16-31 of a VNNI-packed
    32-column panel, row stride 128 bytes). K advances 64 bytes per step; every K run
    (``seglen`` steps of 64 bytes) must be padded with zero weights to a multiple of 64.
    ``tdpbusd`` accumulates in int32 without intermediate saturation: exact for u8 x s8.
    The tile configuration ``cfg`` (64 bytes) is loaded when its first byte (the palette)
    is non-zero: the driver passes it on the first tile of a block and a zeroed copy after,
    then calls ``amx_release`` so no AMX state outlives a call.

    Returns ``(amx_microkernel, amx_release, amx_compute, amx_save)``: ``amx_microkernel``
    computes a tile and stores it into the int32 ``[32, 32]`` scratch ``c``;
    ``amx_compute`` only computes it into the C tile registers and ``amx_save`` stores them,
    so that a driver can run the vector epilogue of the previous tile while the AMX unit
    works on the next one.

    ``prefetch_b`` / ``prefetch_a``: software prefetches per K step of the B lines (64 bytes
    each, of the step after next) and of the A rows (one line per row, two steps ahead).
    Tile loads are served from L1 only as fast as the lines arrive; with both streams
    prefetched the 32 x 32 tile steps measured 5-15% faster here (``prefetch`` never faults,
    so lines past the end of a panel or of A are harmless).
    """
    void = ir.VoidType()
    p8 = _i8.as_pointer()

    def t(n: int) -> ir.Constant:
        return ir.Constant(_i8, n)

    def emit_tile(context: Any, builder: ir.IRBuilder, sa: Any, args: Any) -> None:
        cfg_v, a_v, aoff_v, lda_v, segoff_v, nseg_v, seglen_v, bp_v, boff_v = args[:9]
        m = builder.module
        ldcfg = cgutils.get_or_insert_function(m, ir.FunctionType(void, [p8]), "llvm.x86.ldtilecfg")
        tload = cgutils.get_or_insert_function(m, ir.FunctionType(void, [_i8, p8, _i64]), "llvm.x86.tileloadd64")
        tzero = cgutils.get_or_insert_function(m, ir.FunctionType(void, [_i8]), "llvm.x86.tilezero")
        tdp = cgutils.get_or_insert_function(m, ir.FunctionType(void, [_i8, _i8, _i8]), "llvm.x86.tdpbusd")
        pf = cgutils.get_or_insert_function(m, ir.FunctionType(void, [p8, _i32, _i32, _i32]), "llvm.prefetch")

        def _i32c(n: int) -> ir.Constant:
            return ir.Constant(_i32, n)

        def ptr(addr: ir.Value) -> ir.Value:
            return builder.inttoptr(addr, p8)

        cfg_addr = _data_addr(context, builder, sa[0], cfg_v)
        with builder.if_then(
            builder.icmp_signed("!=", builder.load(builder.inttoptr(cfg_addr, p8)), ir.Constant(_i8, 0))
        ):
            builder.call(ldcfg, [ptr(cfg_addr)])
        for n in range(4):
            builder.call(tzero, [t(n)])
        a_addr = builder.add(_data_addr(context, builder, sa[1], a_v), aoff_v)
        a_addr2 = builder.add(a_addr, builder.mul(lda_v, _const(16)))
        so_addr = _data_addr(context, builder, sa[4], segoff_v)
        bptr = cgutils.alloca_once_value(builder, builder.add(_data_addr(context, builder, sa[7], bp_v), boff_v))
        with cgutils.for_range(builder, nseg_v) as segloop:
            so = _load(builder, builder.add(so_addr, builder.mul(segloop.index, _const(8))), _i64)
            with cgutils.for_range(builder, seglen_v) as kloop:
                koff = builder.add(so, builder.mul(kloop.index, _const(64)))
                bcur = builder.load(bptr)
                # each product as soon as its operands are loaded (the order oneDNN's brgemm uses)
                builder.call(tload, [t(4), ptr(builder.add(a_addr, koff)), lda_v])
                builder.call(tload, [t(6), ptr(bcur), _const(128)])
                builder.call(tdp, [t(0), t(4), t(6)])
                builder.call(tload, [t(7), ptr(builder.add(bcur, _const(64))), _const(128)])
                builder.call(tdp, [t(1), t(4), t(7)])
                builder.call(tload, [t(5), ptr(builder.add(a_addr2, koff)), lda_v])
                builder.call(tdp, [t(2), t(5), t(6)])
                builder.call(tdp, [t(3), t(5), t(7)])
                for i in range(prefetch_b):  # the B lines of the step after next
                    builder.call(pf, [ptr(builder.add(bcur, _const(4096 + 64 * i))), _i32c(0), _i32c(3), _i32c(1)])
                for i in range(prefetch_a):
                    base = a_addr if i < 16 else a_addr2
                    row = builder.add(base, builder.mul(lda_v, _const(i % 16)))
                    builder.call(
                        pf, [ptr(builder.add(row, builder.add(koff, _const(128)))), _i32c(0), _i32c(3), _i32c(1)]
                    )
                builder.store(builder.add(bcur, _const(2048)), bptr)

    def emit_save(context: Any, builder: ir.IRBuilder, cty: Any, c_v: Any) -> None:
        tstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(void, [_i8, p8, _i64]), "llvm.x86.tilestored64"
        )
        c_addr = _data_addr(context, builder, cty, c_v)
        for n, off in enumerate((0, 64, 16 * 128, 16 * 128 + 64)):
            builder.call(tstore, [t(n), builder.inttoptr(builder.add(c_addr, _const(off)), p8), _const(128)])

    @intrinsic
    def amx_microkernel(
        typingctx: Any,
        cfg: Any,
        a: Any,
        a_off: Any,
        lda: Any,
        segoff: Any,
        nseg: Any,
        seglen: Any,
        bp: Any,
        boff: Any,
        c: Any,
    ) -> Any:
        sig = types.void(cfg, a, types.intp, types.intp, segoff, types.intp, types.intp, bp, types.intp, c)

        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            emit_tile(context, builder, signature.args, args)
            emit_save(context, builder, signature.args[9], args[9])
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def amx_compute(
        typingctx: Any,
        cfg: Any,
        a: Any,
        a_off: Any,
        lda: Any,
        segoff: Any,
        nseg: Any,
        seglen: Any,
        bp: Any,
        boff: Any,
    ) -> Any:
        sig = types.void(cfg, a, types.intp, types.intp, segoff, types.intp, types.intp, bp, types.intp)

        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            emit_tile(context, builder, signature.args, args)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def amx_save(typingctx: Any, c: Any) -> Any:
        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            emit_save(context, builder, signature.args[0], args[0])
            return context.get_dummy_value()

        return types.void(c), codegen

    @intrinsic
    def amx_release(typingctx: Any) -> Any:
        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            trel = cgutils.get_or_insert_function(builder.module, ir.FunctionType(void, []), "llvm.x86.tilerelease")
            builder.call(trel, [])
            return context.get_dummy_value()

        return types.void(), codegen

    return amx_microkernel, amx_release, amx_compute, amx_save


def make_store_rows(nr: int, mode: int) -> Any:
    """An ``@intrinsic`` storing one tile (at most ``nr`` columns) into contiguous output rows.

    ``store(c, mr, width, r0, col0, rowsum, bz, coloff, scale, mult, shift, zp, qmin, qmax, out, obase, ors)``
    writes ``out[obase + (r0 + r) * ors + col0 + j]`` for ``r < mr`` and ``j < width`` (``width <= nr``;
    ``c`` has ``nr`` columns) with
    ``v = c[r, j] + coloff[col0 + j] - bz[col0 + j] * rowsum[r0 + r]`` (int32, wrapping), as
    :func:`edgeai.kernels.tiles._store_tile` does: ``mode`` 0 stores ``v`` (int32 ``out``),
    ``mode`` 1 the MLAS float requantization of ``v`` (8-bit ``out``: ``float32(v) * scale``,
    clamped to ``[qmin - zp, qmax - zp]``, rounded half to even, plus ``zp``), ``mode`` 2 TFLite's fixed point as
    :func:`edgeai.kernels.requant.requantize_fixed_point_branchless` (the high multiply in
    int64 lanes, the rounding shift in int32 lanes). The column terms are loaded once per
    tile; each row is ``nr / 16`` 16-lane vectors (AVX-512). A narrower tile (the last panel
    of an N that is not a multiple of ``nr``) uses masked loads and stores, so nothing past
    column ``col0 + width`` is read or written; a tile whose ``bz`` columns are all zero skips
    the row term.
    """
    if nr % 16 or mode not in (0, 1, 2):
        raise ValueError(f"no vector store for nr={nr}, mode={mode}")
    nv = nr // 16
    v16, f16, b16, m16 = _V16I32, _V16F32, _V16I8, _V16I1

    @intrinsic
    def store_rows(
        typingctx: Any,
        c: Any,
        mr: Any,
        width: Any,
        r0: Any,
        col0: Any,
        rowsum: Any,
        bz: Any,
        coloff: Any,
        scale: Any,
        mult: Any,
        shift: Any,
        zp: Any,
        qmin: Any,
        qmax: Any,
        out: Any,
        obase: Any,
        ors: Any,
    ) -> Any:
        ip = types.intp
        sig = types.void(c, ip, ip, ip, ip, rowsum, bz, coloff, scale, mult, shift, ip, ip, ip, out, ip, ip)

        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            c_v, mr_v, width_v, r0_v, col0_v, rs_v = args[:6]
            zp_v, qmin_v, qmax_v, out_v, obase_v, ors_v = args[11:]
            sa = signature.args
            module = builder.module
            out_ty = sa[14].dtype
            esize = out_ty.bitwidth // 8
            ovec = v16 if mode == 0 else b16
            mload_i = cgutils.get_or_insert_function(
                module, ir.FunctionType(v16, [v16.as_pointer(), _i32, m16, v16]), "llvm.masked.load.v16i32.p0"
            )
            mload_f = cgutils.get_or_insert_function(
                module, ir.FunctionType(f16, [f16.as_pointer(), _i32, m16, f16]), "llvm.masked.load.v16f32.p0"
            )
            ostore = cgutils.get_or_insert_function(
                module,
                ir.FunctionType(ir.VoidType(), [ovec, ovec.as_pointer(), _i32, m16]),
                "llvm.masked.store.v16i32.p0" if mode == 0 else "llvm.masked.store.v16i8.p0",
            )
            lane = ir.Constant(v16, list(range(16)))
            masks = [
                builder.icmp_signed(
                    "<", lane, _splat_any(builder, builder.trunc(builder.sub(width_v, _const(16 * j)), _i32), v16)
                )
                for j in range(nv)
            ]
            c_addr = _data_addr(context, builder, sa[0], c_v)
            rs_addr = _data_addr(context, builder, sa[5], rs_v)
            coff4 = builder.mul(col0_v, _const(4))

            def columns(k: int, vty: ir.VectorType) -> list:
                base = builder.add(_data_addr(context, builder, sa[k], args[k]), coff4)
                fn = mload_f if vty == f16 else mload_i
                return [
                    builder.call(
                        fn,
                        [
                            builder.inttoptr(builder.add(base, _const(64 * j)), vty.as_pointer()),
                            ir.Constant(_i32, 4),
                            masks[j],
                            ir.Constant(vty, [0.0] * 16 if vty == f16 else [0] * 16),  # masked-off lanes: 0
                        ],
                    )
                    for j in range(nv)
                ]

            zero16 = ir.Constant(v16, [0] * 16)
            bzv = columns(6, v16)
            cov = columns(7, v16)
            if mode == 1:
                scv = columns(8, f16)
                flt = ir.FloatType()
                lo = _splat_any(builder, builder.sitofp(builder.sub(qmin_v, zp_v), flt), f16)
                hi = _splat_any(builder, builder.sitofp(builder.sub(qmax_v, zp_v), flt), f16)
                # round half to even in the conversion itself (embedded rounding {rn-sae}: not MXCSR's),
                # the same integers as the magic-number rounding of requantize_float for |f| < 2**22
                cvt_rn = cgutils.get_or_insert_function(
                    module,
                    ir.FunctionType(v16, [f16, v16, ir.IntType(16), _i32]),
                    "llvm.x86.avx512.mask.cvtps2dq.512",
                )
                zpv = _splat_any(builder, builder.trunc(zp_v, _i32), v16)
            if mode == 2:
                mu = columns(9, v16)
                sh = columns(10, v16)
                fx = [_fixed_point_columns(builder, mu[j], sh[j]) for j in range(nv)]
                zp32 = builder.trunc(zp_v, _i32)
                vlo = _splat_any(builder, builder.trunc(builder.sub(qmin_v, zp_v), _i32), v16)
                vhi = _splat_any(builder, builder.trunc(builder.sub(qmax_v, zp_v), _i32), v16)
                zpv = _splat_any(builder, zp32, v16)
            out_addr = _data_addr(context, builder, sa[14], out_v)
            # the row term only where a column has a weight zero point (symmetric weights: none)
            anybz = bzv[0]
            for v in bzv[1:]:
                anybz = builder.or_(anybz, v)
            i16 = ir.IntType(16)
            nonzero = builder.bitcast(builder.icmp_signed("!=", anybz, zero16), i16)
            has_bz = builder.icmp_unsigned("!=", nonzero, ir.Constant(i16, 0))

            def row_loop(with_bz: bool) -> None:
                with cgutils.for_range(builder, mr_v) as rloop:
                    row = builder.add(r0_v, rloop.index)
                    if with_bz:
                        rs = _load(builder, builder.add(rs_addr, builder.mul(row, _const(4))), _i32)
                        rsv = _splat_any(builder, rs, v16)
                    orow = builder.add(builder.add(obase_v, builder.mul(row, ors_v)), col0_v)
                    oaddr = builder.add(out_addr, builder.mul(orow, _const(esize)))
                    caddr = builder.add(c_addr, builder.mul(rloop.index, _const(4 * nr)))
                    for j in range(nv):
                        v = builder.add(_load(builder, builder.add(caddr, _const(64 * j)), v16), cov[j])
                        if with_bz:
                            v = builder.sub(v, builder.mul(bzv[j], rsv))
                        if mode == 0:
                            q = v
                        elif mode == 2:
                            r = _fixed_point(builder, v, *fx[j])
                            r = builder.select(builder.icmp_signed("<", r, vlo), vlo, r)
                            r = builder.select(builder.icmp_signed(">", r, vhi), vhi, r)
                            q = builder.trunc(builder.add(r, zpv), b16)
                        else:
                            f = builder.fmul(builder.sitofp(v, f16), scv[j])
                            f = builder.select(builder.fcmp_ordered("<", f, lo), lo, f)
                            f = builder.select(builder.fcmp_ordered(">", f, hi), hi, f)
                            r = builder.call(cvt_rn, [f, zero16, ir.Constant(ir.IntType(16), -1), ir.Constant(_i32, 8)])
                            q = builder.trunc(builder.add(r, zpv), b16)
                        dst = builder.inttoptr(builder.add(oaddr, _const(16 * esize * j)), ovec.as_pointer())
                        builder.call(ostore, [q, dst, ir.Constant(_i32, 1), masks[j]])

            with builder.if_else(has_bz) as (then, otherwise):
                with then:
                    row_loop(True)
                with otherwise:
                    row_loop(False)
            return context.get_dummy_value()

        return sig, codegen

    return store_rows


def make_rows_kernel(nv: int, rows: int, quant: int) -> Any:
    """An ``@intrinsic`` computing ``rows`` rows x ``16 * nv`` columns and storing them requantized.

    ``rows_kernel(a, rowoffs, i0, nrows, segoff, nseg, seglen, bp, boff, panel_bytes, width, col0,
    coloff, scale, mult, shift, mode, zp, qmin, qmax, out, obase, ors)`` multiplies the A rows
    ``i0 .. i0 + nrows - 1`` (``nrows <= rows``; row ``i`` at ``rowoffs[i]``, its K values in ``nseg`` runs
    of ``4 * seglen`` bytes at ``segoff``, as :func:`make_microkernel` reads them) by the VNNI-packed
    weight panels from byte ``boff`` (32-column panels of ``panel_bytes``; vector ``j`` of a K group is
    at ``(j // 2) * panel_bytes + (j % 2) * 64``) with ``vpdpbusd``, the accumulators starting at
    ``coloff``, and stores ``out[obase + row * ors + col0 + j]`` for ``j < width`` straight from the
    registers: no scratch tile, no separate store pass. The store is that of :func:`make_store_rows`
    without the row term (weights without a zero point) for the requantization ``quant`` alone, fixed when
    compiled (``mode`` is not read): 0 (int32 ``out``), 1 (MLAS float) or 2 (TFLite fixed point).
    ``nv`` vectors of 16 columns, masked past ``width``; rows past ``nrows`` repeat the last row's
    reads and are not stored.
    """
    if quant not in (0, 1, 2):
        raise ValueError(f"no requantization {quant}")
    out_int32 = quant == 0
    v16, f16, b16, m16 = _V16I32, _V16F32, _V16I8, _V16I1
    vbytes = ir.VectorType(_i8, 64)

    @intrinsic
    def rows_kernel(
        typingctx: Any,
        a: Any,
        rowoffs: Any,
        i0: Any,
        nrows: Any,
        segoff: Any,
        nseg: Any,
        seglen: Any,
        bp: Any,
        boff: Any,
        panel_bytes: Any,
        width: Any,
        col0: Any,
        coloff: Any,
        scale: Any,
        mult: Any,
        shift: Any,
        mode: Any,
        zp: Any,
        qmin: Any,
        qmax: Any,
        out: Any,
        obase: Any,
        ors: Any,
    ) -> Any:
        ip = types.intp
        sig = types.void(
            a, rowoffs, ip, ip, segoff, ip, ip, bp, ip, ip, ip, ip, coloff, scale, mult, shift, ip, ip, ip, ip, out,
            ip, ip,
        )  # fmt: skip

        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            (a_v, ro_v, i0_v, nrows_v, so_v, nseg_v, seglen_v, bp_v, boff_v, pb_v, width_v, col0_v) = args[:12]
            zp_v, qmin_v, qmax_v, out_v, obase_v, ors_v = args[17:]
            sa = signature.args
            module = builder.module
            vnni = cgutils.get_or_insert_function(
                module, ir.FunctionType(v16, [v16, vbytes, vbytes]), "llvm.x86.avx512.vpdpbusd.512"
            )
            mload_i = cgutils.get_or_insert_function(
                module, ir.FunctionType(v16, [v16.as_pointer(), _i32, m16, v16]), "llvm.masked.load.v16i32.p0"
            )
            mload_f = cgutils.get_or_insert_function(
                module, ir.FunctionType(f16, [f16.as_pointer(), _i32, m16, f16]), "llvm.masked.load.v16f32.p0"
            )
            ovec = v16 if out_int32 else b16
            ostore = cgutils.get_or_insert_function(
                module,
                ir.FunctionType(ir.VoidType(), [ovec, ovec.as_pointer(), _i32, m16]),
                "llvm.masked.store.v16i32.p0" if out_int32 else "llvm.masked.store.v16i8.p0",
            )
            lane = ir.Constant(v16, list(range(16)))
            masks = [
                builder.icmp_signed(
                    "<", lane, _splat_any(builder, builder.trunc(builder.sub(width_v, _const(16 * j)), _i32), v16)
                )
                for j in range(nv)
            ]
            coff4 = builder.mul(col0_v, _const(4))

            def columns(k: int, vty: ir.VectorType) -> list:
                base = builder.add(_data_addr(context, builder, sa[k], args[k]), coff4)
                fn = mload_f if vty == f16 else mload_i
                zero = ir.Constant(vty, [0.0] * 16 if vty == f16 else [0] * 16)
                return [
                    builder.call(
                        fn,
                        [
                            builder.inttoptr(builder.add(base, _const(64 * j)), vty.as_pointer()),
                            ir.Constant(_i32, 4),
                            masks[j],
                            zero,
                        ],
                    )
                    for j in range(nv)
                ]

            a_addr = _data_addr(context, builder, sa[0], a_v)
            ro_addr = _data_addr(context, builder, sa[1], ro_v)
            so_addr = _data_addr(context, builder, sa[4], so_v)
            b_addr = builder.add(_data_addr(context, builder, sa[7], bp_v), boff_v)
            last = builder.sub(nrows_v, _const(1))
            rbase = []
            for r in range(rows):
                rr = builder.select(builder.icmp_signed("<", _const(r), nrows_v), _const(r), last)
                roff = _load(builder, builder.add(ro_addr, builder.mul(builder.add(i0_v, rr), _const(8))), _i64)
                rbase.append(builder.add(a_addr, roff))
            # the accumulators start at the column terms (bias - a_zp * colsum): the store adds nothing
            cov = columns(12, v16)
            acc = [[cgutils.alloca_once_value(builder, cov[j]) for j in range(nv)] for _ in range(rows)]
            for r in range(rows):
                for j in range(nv):
                    builder.store(cov[j], acc[r][j])
            voff = [builder.add(builder.mul(pb_v, _const(j // 2)), _const(64 * (j % 2))) for j in range(nv)]
            bptr = cgutils.alloca_once_value(builder, b_addr)
            with cgutils.for_range(builder, nseg_v) as segloop:
                so = _load(builder, builder.add(so_addr, builder.mul(segloop.index, _const(8))), _i64)
                with cgutils.for_range(builder, seglen_v) as kloop:
                    koff = builder.add(so, builder.mul(kloop.index, _const(4)))
                    bcur = builder.load(bptr)
                    bv = [_load(builder, builder.add(bcur, voff[j]), vbytes) for j in range(nv)]
                    for r in range(rows):
                        av = builder.bitcast(
                            _splat_any(builder, _load(builder, builder.add(rbase[r], koff), _i32), v16), vbytes
                        )
                        for j in range(nv):
                            builder.store(builder.call(vnni, [builder.load(acc[r][j]), av, bv[j]]), acc[r][j])
                    builder.store(builder.add(bcur, _const(128)), bptr)
            out_addr = _data_addr(context, builder, sa[20], out_v)
            esize = 4 if out_int32 else 1

            def store_rows(quantize: Any) -> None:
                for r in range(rows):

                    def one_row(r: int = r) -> None:
                        orow = builder.add(
                            builder.add(obase_v, builder.mul(builder.add(i0_v, _const(r)), ors_v)), col0_v
                        )
                        oaddr = builder.add(out_addr, builder.mul(orow, _const(esize)))
                        for j in range(nv):
                            q = quantize(builder.load(acc[r][j]), j)
                            dst = builder.inttoptr(builder.add(oaddr, _const(16 * esize * j)), ovec.as_pointer())
                            builder.call(ostore, [q, dst, ir.Constant(_i32, 1), masks[j]])

                    if r == 0:
                        one_row()
                    else:
                        with builder.if_then(builder.icmp_signed("<", _const(r), nrows_v), likely=True):
                            one_row()

            if out_int32:
                store_rows(lambda v, j: v)
                return context.get_dummy_value()
            zpv = _splat_any(builder, builder.trunc(zp_v, _i32), v16)
            if quant == 2:
                mu = columns(14, v16)
                sh = columns(15, v16)
                fx = [_fixed_point_columns(builder, mu[j], sh[j]) for j in range(nv)]
                vlo = _splat_any(builder, builder.trunc(builder.sub(qmin_v, zp_v), _i32), v16)
                vhi = _splat_any(builder, builder.trunc(builder.sub(qmax_v, zp_v), _i32), v16)

                def q_fixed(v: Any, j: int) -> Any:
                    r = _fixed_point(builder, v, *fx[j])
                    r = builder.select(builder.icmp_signed("<", r, vlo), vlo, r)
                    r = builder.select(builder.icmp_signed(">", r, vhi), vhi, r)
                    return builder.trunc(builder.add(r, zpv), b16)

                store_rows(q_fixed)
                return context.get_dummy_value()
            scv = columns(13, f16)
            flt_t = ir.FloatType()
            lo = _splat_any(builder, builder.sitofp(builder.sub(qmin_v, zp_v), flt_t), f16)
            hi = _splat_any(builder, builder.sitofp(builder.sub(qmax_v, zp_v), flt_t), f16)
            cvt_rn = cgutils.get_or_insert_function(
                module,
                ir.FunctionType(v16, [f16, v16, ir.IntType(16), _i32]),
                "llvm.x86.avx512.mask.cvtps2dq.512",
            )
            zero16 = ir.Constant(v16, [0] * 16)

            def q_float(v: Any, j: int) -> Any:
                f = builder.fmul(builder.sitofp(v, f16), scv[j])
                f = builder.select(builder.fcmp_ordered("<", f, lo), lo, f)
                f = builder.select(builder.fcmp_ordered(">", f, hi), hi, f)
                r = builder.call(cvt_rn, [f, zero16, ir.Constant(ir.IntType(16), -1), ir.Constant(_i32, 8)])
                return builder.trunc(builder.add(r, zpv), b16)

            store_rows(q_float)
            return context.get_dummy_value()

        return sig, codegen

    return rows_kernel


def _fixed_point_columns(builder: ir.IRBuilder, mult: ir.Value, shift: ir.Value) -> tuple:
    """Per-column terms of the fixed-point requantization: (left, multiplier of the even lanes,
    multiplier of the odd lanes) for the high multiply, (right, mask, mask >> 1) for the rounding
    shift, all loaded once per tile."""
    v64, v32 = _V8I64, _V16I32
    zero = ir.Constant(v32, [0] * 16)
    one = ir.Constant(v32, [1] * 16)
    left = builder.select(builder.icmp_signed(">", shift, zero), shift, zero)
    right = builder.select(builder.icmp_signed("<", shift, zero), builder.sub(zero, shift), zero)
    # (1 << right) - 1 for right <= 31 in int32 lanes: 1 << 31 wraps to INT32_MIN, minus 1 is INT32_MAX
    mask = builder.sub(builder.shl(one, right), one)
    half = builder.lshr(mask, one)
    m64 = builder.bitcast(mult, v64)
    c32 = ir.Constant(v64, [32] * 8)
    return left, builder.ashr(builder.shl(m64, c32), c32), builder.ashr(m64, c32), right, mask, half


def _fixed_point(builder: ir.IRBuilder, v: ir.Value, left: ir.Value, mult_even: ir.Value, mult_odd: ir.Value,
                 right: ir.Value, mask: ir.Value, half: ir.Value) -> ir.Value:  # fmt: skip
    """MultiplyByQuantizedMultiplier of 16 int32 lanes (see requantize_fixed_point_branchless), for
    multipliers in [0, 2**31) as :class:`edgeai.kernels.api.Requant` admits them.

    SaturatingRoundingDoublingHighMul is ``(a * b + 2**30) >> 31`` for every such multiplier: for a
    negative product, gemmlowp's nudge ``1 - 2**30`` and its division truncating towards zero
    (``+ 2**31 - 1`` before the shift) add up to the same ``2**30``, and the one saturating case
    (both operands ``INT32_MIN``) cannot occur. The products are two signed 32 x 32 -> 64
    multiplies (``vpmuldq``) of the even and the odd lanes; the even results are taken from the low
    and the odd ones from the high half of each 64-bit lane, without a narrowing pass.
    """
    v64, v32 = _V8I64, _V16I32

    def c64(n: int) -> ir.Constant:
        return ir.Constant(v64, [n] * 8)

    x = builder.bitcast(builder.shl(v, left), v64)  # wraps in int32, as TFLite's C++
    even = builder.mul(builder.ashr(builder.shl(x, c64(32)), c64(32)), mult_even)
    odd = builder.mul(builder.ashr(x, c64(32)), mult_odd)
    lo = builder.bitcast(builder.lshr(builder.add(even, c64(1 << 30)), c64(31)), v32)  # result in dword 2i
    hi = builder.bitcast(builder.shl(builder.add(odd, c64(1 << 30)), c64(1)), v32)  # result in dword 2i + 1
    q32 = builder.shuffle_vector(lo, hi, ir.Constant(v32, [i + 16 * (i % 2) for i in range(16)]))
    threshold = builder.add(half, builder.lshr(q32, ir.Constant(v32, [31] * 16)))
    up = builder.zext(builder.icmp_signed(">", builder.and_(q32, mask), threshold), v32)
    return builder.add(builder.ashr(q32, right), up)


def _splat_any(builder: ir.IRBuilder, scalar: ir.Value, vty: ir.VectorType) -> ir.Value:
    undef = ir.Constant(vty, None)
    v = builder.insert_element(undef, scalar, ir.Constant(_i32, 0))
    return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(_i32, vty.count), [0] * vty.count))
