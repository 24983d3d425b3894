"""Reference integer cores of the INT8 ops: simple, obviously correct, slow-ish.

These are the oracle for the fast kernels in :mod:`edgeai.kernels`: every op
is "integer accumulation + requantization", and both halves live here.

Accumulation runs in float64 through BLAS: every product of two 8/16-bit
integers and every partial sum is an integer below 2**53, so float64 holds
them exactly; the result is then converted back to int32 (wrapping as
int32 accumulators do).

Example:
    >>> import numpy as np
    >>> from edgeai.ops.quantized.reference import matmul_int32
    >>> a = np.array([[130, 120]], dtype=np.uint8); b = np.array([[1], [-2]], dtype=np.int8)
    >>> matmul_int32(a, 128, b, 0)
    array([[18]], dtype=int32)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from edgeai.errors import ModelFormatError
from edgeai.quant.requant import requantize_onnx, requantize_tflite

__all__ = [
    "conv_int32",
    "conv_output_pads",
    "matmul_int32",
    "requantize_onnx",
    "requantize_tflite",
    "wrap_int32",
]

_EXACT = 2.0**53


def wrap_int32(v: np.ndarray) -> np.ndarray:
    """Exact integer-valued float64 (or int64) to int32 with two's complement wrap."""
    i = np.asarray(v).astype(np.int64)
    return (((i + 2**31) % 2**32) - 2**31).astype(np.int32)


def _centered(x: np.ndarray, zp: np.ndarray | int) -> np.ndarray:
    return np.asarray(x).astype(np.float64) - np.asarray(zp).astype(np.float64)


def matmul_int32(a: np.ndarray, a_zp: np.ndarray | int, b: np.ndarray, b_zp: np.ndarray | int) -> np.ndarray:
    """``(a - a_zp) @ (b - b_zp)`` with numpy matmul broadcasting, as int32.

    ``a_zp`` broadcasts against ``a`` (scalar, or per row as shape (M, 1));
    ``b_zp`` against ``b`` (scalar, or per column as shape (N,)).
    """
    a_c = _centered(a, a_zp)
    b_c = _centered(b, b_zp)
    k = a_c.shape[-1]
    if k and float(np.abs(a_c).max(initial=0)) * float(np.abs(b_c).max(initial=0)) * k >= _EXACT:
        raise ModelFormatError(f"integer matmul with K={k} could overflow the exact accumulator")
    return wrap_int32(np.matmul(a_c, b_c))


def conv_output_pads(
    in_spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
    auto_pad: str = "NOTSET",
) -> list[int]:
    """ONNX begin/end pads ``[b1..bn, e1..en]`` after resolving ``auto_pad`` as ONNX Runtime does.

    With SAME padding and windows that do not reach the end of the input
    (stride larger than the kernel), the "needed" padding is negative and
    the begin pad becomes a negative offset (crop), as in ONNX Runtime.
    """
    n = len(in_spatial)
    if auto_pad in ("NOTSET", "", b"NOTSET"):
        p = list(pads) if pads else [0] * (2 * n)
        if len(p) != 2 * n:
            raise ModelFormatError(f"pads must have {2 * n} entries for {n} spatial dims, got {len(p)}")
        return p
    if auto_pad == "VALID":
        return [0] * (2 * n)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ModelFormatError(f"auto_pad={auto_pad!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    begin, end = [], []
    for i in range(n):
        out = -(-in_spatial[i] // strides[i])
        need = (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_spatial[i]
        if need >= 0:
            head = need // 2 if auto_pad == "SAME_UPPER" else need - need // 2
        else:
            # Windows that stop short of the end (stride > kernel): ONNX Runtime's conv then
            # starts them later, by these amounts (C truncating division; measured on ORT 1.32).
            head = int((need + 1) / 2) if auto_pad == "SAME_UPPER" else int((need + 2) / 2)
        begin.append(head)
        end.append(need - head)
    return begin + end


def conv_int32(
    x: np.ndarray,
    x_zp: np.ndarray | int,
    w: np.ndarray,
    w_zp: np.ndarray | int,
    *,
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    group: int = 1,
) -> np.ndarray:
    """Grouped N-d convolution of ``(x - x_zp)`` with ``(w - w_zp)``, NCHW layout, as int32.

    ``x`` is ``(N, C, *spatial)``, ``w`` is ``(M, C/group, *kernel)``; ``w_zp``
    is a scalar or one per output channel (shape ``(M,)``); ``pads`` are
    ONNX begin/end pads (already resolved from ``auto_pad``).
    """
    x_c = _centered(x, x_zp)
    w_zp_a = np.asarray(w_zp)
    if w_zp_a.ndim == 1 and w_zp_a.size > 1:
        w_zp_a = w_zp_a.reshape((-1,) + (1,) * (w.ndim - 1))
    w_c = _centered(w, w_zp_a)
    n, c = x_c.shape[:2]
    m, cg = w_c.shape[:2]
    nsp = x_c.ndim - 2
    kernel = w_c.shape[2:]
    if c != cg * group or m % group:
        raise ModelFormatError(
            f"conv: input has {c} channels, weight expects {cg} per group x {group} groups "
            f"and {m} output channels (must be divisible by group)"
        )
    if cg * int(np.prod(kernel)) * 65536.0 * 65536.0 >= _EXACT:
        raise ModelFormatError("conv reduction is too long for an exact accumulator")
    # negative pads (see conv_output_pads) crop instead
    x_c = x_c[(slice(None), slice(None), *(slice(max(0, -pads[i]), None) for i in range(nsp)))]
    xp = np.pad(x_c, [(0, 0), (0, 0)] + [(max(0, pads[i]), max(0, pads[i + nsp])) for i in range(nsp)])
    out_sp = [
        (x.shape[2 + i] + pads[i] + pads[i + nsp] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
        for i in range(nsp)
    ]
    if any(o <= 0 for o in out_sp):
        raise ModelFormatError(f"conv output would be empty: input {x.shape}, kernel {tuple(kernel)}")
    mg = m // group
    out = np.zeros((n, m, *out_sp), dtype=np.float64)
    for k in itertools.product(*(range(s) for s in kernel)):
        sl = tuple(
            slice(k[i] * dilations[i], k[i] * dilations[i] + (out_sp[i] - 1) * strides[i] + 1, strides[i])
            for i in range(nsp)
        )
        patch = xp[(slice(None), slice(None), *sl)].reshape(n, group, cg, *out_sp)
        wk = w_c[(slice(None), slice(None), *k)].reshape(group, mg, cg)
        out += np.einsum("goc,ngc...->ngo...", wk, patch).reshape(n, m, *out_sp)
    return wrap_int32(out)
