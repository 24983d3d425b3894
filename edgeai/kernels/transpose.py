"""Byte-matrix transposes for the convolution's layout changes (NCHW <-> NHWC), 16x16 blocks in registers.

A plain loop that transposes bytes reads or writes one byte per instruction: LLVM does not
vectorize it. Here a 16x16 block is sixteen 16-byte loads, one shuffle of the 256 bytes (emitted
as LLVM IR; on AVX-512 VBMI it becomes eight ``vpermi2b``) and sixteen 16-byte stores. The
shuffle is target-independent IR, so it compiles on any CPU (as other shuffles where VBMI is
missing). Edges narrower than 16 go byte by byte.

Example:
    >>> import numpy as np
    >>> from edgeai.kernels.transpose import transpose_bytes
    >>> a = np.arange(40, dtype=np.uint8).reshape(5, 8)
    >>> t = np.empty((8, 5), np.uint8)
    >>> transpose_bytes(a.reshape(-1), 0, 5, 8, 8, t.reshape(-1), 0, 5)
    >>> bool((t == a.T).all())
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["drop_virtual_pixels", "pixels_to_planes", "prepare_rows", "transpose_bytes"]

_i8, _i32, _i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)


def _addr(context: Any, builder: ir.IRBuilder, aty: types.Array, val: Any) -> ir.Value:
    return builder.ptrtoint(context.make_array(aty)(context, builder, val).data, _i64)


@intrinsic
def _block16(typingctx: Any, src: Any, soff: Any, sstride: Any, dst: Any, doff: Any, dstride: Any) -> Any:
    """dst[doff + j * dstride + i] = src[soff + i * sstride + j] for i, j < 16 (byte arrays)."""
    ip = types.intp
    sig = types.void(src, ip, ip, dst, ip, ip)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> None:
        src_v, so, ss, dst_v, do, ds = args
        v16 = ir.VectorType(_i8, 16)
        sbase = builder.add(_addr(context, builder, signature.args[0], src_v), so)
        dbase = builder.add(_addr(context, builder, signature.args[3], dst_v), do)
        rows = []
        for i in range(16):
            a = builder.add(sbase, builder.mul(ss, ir.Constant(_i64, i)))
            rows.append(builder.load(builder.inttoptr(a, v16.as_pointer()), align=1))
        width = 16
        while len(rows) > 1:  # concatenate into one 256-byte vector
            mask = ir.Constant(ir.VectorType(_i32, 2 * width), list(range(2 * width)))
            rows = [builder.shuffle_vector(a, b, mask) for a, b in zip(rows[::2], rows[1::2], strict=True)]
            width *= 2
        whole = rows[0]
        undef = ir.Constant(whole.type, None)
        for j in range(16):  # output row j: byte j of every input row
            mask = ir.Constant(ir.VectorType(_i32, 16), [i * 16 + j for i in range(16)])
            col = builder.shuffle_vector(whole, undef, mask)
            a = builder.add(dbase, builder.mul(ds, ir.Constant(_i64, j)))
            builder.store(col, builder.inttoptr(a, v16.as_pointer()), align=1)

    return sig, codegen


@njit(cache=True)
def transpose_bytes(src, soff, rows, cols, sstride, dst, doff, dstride):  # type: ignore[no-untyped-def]
    """``dst[doff + c * dstride + r] = src[soff + r * sstride + c]`` for ``r < rows``, ``c < cols``.

    ``src`` and ``dst`` are 1-D arrays of 1-byte items (uint8 or int8), different buffers.
    """
    # 16x16 blocks; a ragged edge of a dimension of at least 16 is one more block overlapping the
    # previous one (the bytes written twice are the same), only narrower ones go byte by byte
    r16 = rows if rows < 16 else (rows + 15) // 16 * 16
    c16 = cols if cols < 16 else (cols + 15) // 16 * 16
    if rows >= 16 and cols >= 16:
        for r in range(0, r16, 16):
            rb = min(r, rows - 16)
            for c in range(0, c16, 16):
                cb = min(c, cols - 16)
                _block16(src, soff + rb * sstride + cb, sstride, dst, doff + cb * dstride + rb, dstride)
        return
    for r in range(rows):
        for c in range(cols):
            dst[doff + c * dstride + r] = src[soff + r * sstride + c]


@njit(cache=True)
def pixels_to_planes(src, oh, ow, wp, m, dst):  # type: ignore[no-untyped-def]
    """``dst`` [M, oh * ow] (flat) from ``src`` [oh, wp, M] (flat): pixel-major rows to channel planes,
    dropping the columns ``ow..wp`` of each row (the AMX kernel's virtual pixels)."""
    for y in range(oh):
        transpose_bytes(src, y * wp * m, ow, m, m, dst, y * ow, oh * ow)


@njit(cache=True)
def drop_virtual_pixels(src, oh, ow, wp, m, dst):  # type: ignore[no-untyped-def]
    """``dst`` [oh, ow, M] (flat) from ``src`` [oh, wp, M] (flat): the NHWC rows without the columns
    ``ow..wp`` of each row (the AMX kernel's virtual pixels). A kernel, not a numpy copy, so that a
    compiled program (``edgeai.graph.program``) records it."""
    row = ow * m
    for y in range(oh):
        dst[y * row : (y + 1) * row] = src[y * wp * m : y * wp * m + row]


@njit(cache=True)
def prepare_rows(a, flip, out):  # type: ignore[no-untyped-def]
    """``out[:, :K] = a ^ flip`` for the uint8 bytes ``a`` [M, K] (any strides): int8 activations as the
    uint8 the GEMM kernels read (``flip`` 0x80: ``s8 + 128``), rows copied to the kernel's padded
    stride (``flip`` 0). The rest of each ``out`` row is left as it is (zeros). A kernel rather than
    numpy, so that a compiled program (``edgeai.graph.program``) records it."""
    f = np.uint8(flip)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = a[i, j] ^ f
