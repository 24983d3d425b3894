"""com.microsoft QLinearSoftmax, bit for bit as ONNX Runtime's CPU kernel computes it.

Each row (``opset`` < 13: the input flattened to 2-D at ``axis``; 13 and
later: the single ``axis``) goes through four steps:

1. A float32 table ``t[k] = exp((k - 255 + b / x_scale) * x_scale)``,
   computed in double and rounded to float32, indexed by ``k = 255 -
   (row max - x)`` (int8 and uint8 alike). ``b = max(0, logf(FLT_MAX /
   D) - 5)`` keeps the row sum finite; the quotient ``FLT_MAX / D`` and its
   log are float32 (C ``logf``), which is why the table depends on ``D``.
2. The row sum ``s`` of the table values, accumulated in float32 from left
   to right.
3. ``c = floor(1 / y_scale)``, the reciprocal and its floor in float32
   (when that reciprocal overflows, for a subnormal ``y_scale``, ONNX
   Runtime uses the real ``1 / y_scale``: done here in double).
4. ``y = rint(t * c / s) + y_zero_point``, the product and quotient in
   double, rounded half to even, then saturated to the output type (int8
   at 127, no wrap-around); a NaN (a NaN ``y_scale``, or ``0 * inf``)
   gives 0. ONNX Runtime 1.32 was probed for this (ties at .5, ``t * c``
   beyond float32): its older published source divides in float32.

The zero point of ``x`` does not matter (softmax is shift invariant); an
``x_scale`` that is not positive raises :class:`edgeai.errors.ModelFormatError`
(ONNX Runtime refuses it as well).
With ``int8_kernels`` (the default) one numba loop per row does steps 2 and
4 in the same order; ``int8_kernels=False`` runs the numpy reference.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.qlinear_softmax import QLinearSoftmax
    >>> op = QLinearSoftmax(OpContext("s", "QLinearSoftmax", "com.microsoft", attrs={"axis": -1, "opset": 13}))
    >>> x = np.array([[0, 0, 0, 0]], np.uint8)
    >>> op.run(x, np.float32(0.1), np.uint8(0), np.float32(1 / 256), np.uint8(0))[0]
    array([[64, 64, 64, 64]], dtype=uint8)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.quantized._common import bad_model, check_int_dtype, onnx_mode_only, scalar, zero_point_or_default
from edgeai.quant.params import normalize_axis, qrange

__all__ = ["QLinearSoftmax"]

_F = np.float32
_FLT_MAX = _F(np.finfo(np.float32).max)


def _load_logf() -> Callable[[float], float]:
    """The C library's float32 ``logf``, which ONNX Runtime calls for the table's headroom.

    ``float32(math.log(q))`` (correctly rounded) differs from glibc's ``logf``
    by one ulp for a few reduce lengths (the first is D = 60594); the fallback
    is used only where no C math library can be loaded.
    """
    for name in (ctypes.util.find_library("m"), "libm.so.6", ctypes.util.find_library("c"), "ucrtbase"):
        if not name:
            continue
        try:
            fn = ctypes.CDLL(name).logf
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float]
        return lambda v: float(fn(v))
    return lambda v: float(_F(math.log(v)))


_logf = _load_logf()


def _c_exp(v: float) -> float:
    """The C library's double ``exp`` (numpy's SIMD exp may differ by an ulp), ``inf`` on overflow like C."""
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _exp_table(x_scale: float, reduce_len: int) -> np.ndarray:
    """``t[k]`` for ``k = 255 - (row max - x)``: 256 float32 values."""
    headroom = _logf(float(_FLT_MAX / _F(reduce_len)))  # float32 quotient, float32 log
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shift = float(np.float64(max(0.0, headroom - 5.0)) / np.float64(x_scale))  # x_scale 0: inf, as in C
        return np.array([_c_exp((k - 255.0 + shift) * x_scale) for k in range(256)], np.float64).astype(_F)


def _reciprocal_floor(y_scale: np.float32) -> float:
    """``floor(1 / y_scale)`` in float32; in double where the float32 reciprocal overflows."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        c = np.floor(_F(1.0) / y_scale)
        if np.isinf(c) and y_scale != 0:
            c = np.floor(np.float64(1.0) / np.float64(y_scale))
    return float(c)


def _softmax_rows_reference(
    rows: np.ndarray, table: np.ndarray, c: float, zp: int, qmin: int, qmax: int, out_dtype: Any
) -> np.ndarray:
    """Steps 2 and 4 over the last axis of ``rows`` with numpy: the oracle of :func:`_softmax_rows`."""
    xi = rows.astype(np.int32)
    vt = table[xi - xi.max(axis=-1, keepdims=True) + 255]
    vsum = np.add.accumulate(vt, axis=-1, dtype=_F)[..., -1:]  # float32, strictly left to right
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.rint(vt.astype(np.float64) * c / vsum.astype(np.float64))  # double, as ORT
        q = np.clip(v + zp, qmin, qmax)
    return np.where(np.isnan(q), 0, q).astype(out_dtype)


@njit(cache=True, nogil=True)
def _softmax_rows(rows: np.ndarray, table: np.ndarray, params: np.ndarray, out: np.ndarray) -> None:
    """Steps 2 and 4 for each row of the 2-D ``rows`` into ``out``; ``params``: float64
    ``[c, zero point, qmin, qmax]``. No fastmath: the sum stays sequential, the quotient a division."""
    c, zp, qmin, qmax = params[0], params[1], params[2], params[3]
    n, d = rows.shape
    for r in range(n):
        m = np.int32(rows[r, 0])
        for j in range(1, d):
            m = max(m, np.int32(rows[r, j]))
        s = np.float32(0.0)
        for j in range(d):
            s = s + table[np.int32(rows[r, j]) - m + 255]
        sd = np.float64(s)
        for j in range(d):
            v = np.rint(np.float64(table[np.int32(rows[r, j]) - m + 255]) * c / sd)
            if v != v:
                out[r, j] = 0
            else:
                out[r, j] = min(max(v + zp, qmin), qmax)


@register("QLinearSoftmax", domain="com.microsoft", since=1)
class QLinearSoftmax(Op):
    """Softmax over ``axis`` of a uint8/int8 tensor."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        onnx_mode_only(ctx)
        self.opset = int(ctx.attr("opset", 13))
        self.axis = int(ctx.attr("axis", -1 if self.opset >= 13 else 1))
        self._tables: dict[tuple[float, int], np.ndarray] = {}
        self._numba = bool(ctx.options.get("int8_kernels", True))

    def run(self, x: np.ndarray, x_scale: Any, x_zp: Any, y_scale: Any, y_zp: Any = None) -> tuple[Any, ...]:
        ctx = self.ctx
        x = np.asarray(x)
        check_int_dtype(ctx, x, "X", ("int8", "uint8"))
        xs = float(scalar(ctx, x_scale, "x_scale").astype(_F))
        if not xs > 0:  # ORT refuses these too (0, negative, NaN); +inf passes and gives NaN rows: zeros
            raise bad_model(ctx, f"x_scale must be positive, got {xs:g}")
        ys = scalar(ctx, y_scale, "y_scale").astype(_F)
        yz = int(scalar(ctx, zero_point_or_default(y_zp, x.dtype), "y_zero_point"))
        if x.ndim == 0:  # ORT's shape inference refuses it too
            raise bad_model(ctx, "X is a scalar; softmax needs an input of rank 1 or more")
        axis = normalize_axis(self.axis, x.ndim)
        if x.size == 0:
            return (np.empty_like(x),)
        if self.opset < 13:
            rows = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
        else:
            rows = np.moveaxis(x, axis, -1)
        d = rows.shape[-1]
        key = (xs, d)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = _exp_table(xs, d)
        c = _reciprocal_floor(ys)
        qmin, qmax = qrange(x.dtype)
        if self._numba:
            flat = np.ascontiguousarray(rows).reshape(-1, d)
            y = np.empty(flat.shape, x.dtype)
            _softmax_rows(flat, table, np.array([c, yz, qmin, qmax], np.float64), y)
            y = y.reshape(rows.shape)
        else:
            y = _softmax_rows_reference(rows, table, c, yz, qmin, qmax, x.dtype)
        y = y.reshape(x.shape) if self.opset < 13 else np.moveaxis(y, -1, axis)
        return (y,)
