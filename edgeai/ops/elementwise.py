"""Elementwise ONNX ops in numpy: arithmetic, math, comparison, logic, bitwise, Where, Cast.

Every op keeps ONNX's output dtype exactly (float32 stays float32, no silent
float64 upcast) and follows ONNX semantics where numpy differs: integer
``Div`` truncates toward zero, ``Mod`` follows the divisor's sign unless
``fmod=1``, ``Round`` is half to even, ``Max``/``Min`` propagate NaN, and the
opset < 7 ``broadcast``/``axis`` attributes of the binary ops are honoured.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> Div = lookup("Div", "", 14)
    >>> Div(OpContext(node_name="d", op_type="Div", opset=14)).run(
    ...     np.array([7, -7], np.int32), np.array([2, 2], np.int32))[0]
    array([ 3, -3], dtype=int32)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from edgeai.errors import InferenceError, UnsupportedOpError
from edgeai.ops._base import Op, OpContext, register

__all__ = ["as_dtype", "erf", "erfc", "gelu_exact", "is_float", "mean_last", "register_versions", "unsupported"]


# --------------------------------------------------------------------------- helpers


def register_versions(
    op_type: str, versions: tuple[int, ...], domain: str = "", until: int | None = None
) -> Callable[[type[Op]], type[Op]]:
    """Register one class for every schema version in ``versions`` (it reads ``ctx.opset``).

    The last version covers later schemas too unless ``until`` ends the claim there.
    """

    def deco(cls: type[Op]) -> type[Op]:
        for v in versions:
            register(op_type, domain=domain, since=v, until=until if v == versions[-1] else None)(cls)
        return cls

    return deco


def unsupported(ctx: OpContext, what: str) -> UnsupportedOpError:
    """An :class:`UnsupportedOpError` naming the node, for a case the native engine does not run."""
    return UnsupportedOpError(
        f"native {ctx.op_type} (opset {ctx.opset}) in node {ctx.node_name!r}: {what}. "
        "Run this model on another device (device='cpu' uses ONNX Runtime).",
        op_type=ctx.op_type,
        domain=ctx.domain,
        opset=ctx.opset,
        node=ctx.node_name,
    )


def is_float(dtype: np.dtype) -> bool:
    """True for numpy floats and ml_dtypes' bfloat16 (whose kind is "V"); cheap on the hot path."""
    return dtype.kind == "f" or (dtype.kind == "V" and dtype.name == "bfloat16")


def mean_last(x: np.ndarray, axis: Any = -1) -> np.ndarray:
    """``x.mean(axis, keepdims=True)`` in ``x``'s dtype without ``np.mean``'s Python overhead."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    n = 1
    for a in axes:
        n *= x.shape[a]
    return np.add.reduce(x, axis=axis, keepdims=True) / x.dtype.type(n)


def as_dtype(x: Any, dtype: np.dtype) -> np.ndarray:
    """``x`` as an ndarray of exactly ``dtype`` (numpy returns scalars for 0-d results)."""
    if isinstance(x, np.ndarray) and x.dtype == dtype:
        return x
    return np.asarray(x).astype(dtype, copy=False)


def _legacy_broadcast(ctx: OpContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Opset < 7 binary ops: ``b`` broadcasts onto ``a`` only with ``broadcast=1``, aligned at ``axis``."""
    if not ctx.attr("broadcast", 0):
        if a.shape != b.shape:
            raise InferenceError(
                f"{ctx.op_type} node {ctx.node_name!r} (opset {ctx.opset}): shapes {a.shape} and {b.shape} "
                "differ and the node has no broadcast=1 attribute; fix the model or upgrade its opset to >= 7"
            )
        return b
    axis = ctx.attr("axis")
    if axis is None or b.ndim == 0:
        return b
    if axis < 0:
        axis += a.ndim
    trailing = a.ndim - axis - b.ndim
    if trailing < 0:
        raise InferenceError(
            f"{ctx.op_type} node {ctx.node_name!r}: B of shape {b.shape} does not fit "
            f"A of shape {a.shape} at axis {axis}"
        )
    return b.reshape(b.shape + (1,) * trailing)


# float32 erf/erfc: erfc(y) = exp(-y*y) * P(y) / Q(y) for y >= 0, a rational fit of
# erfc(y) * exp(y*y) on [0, 10] made for edgeai with numpy (relative error 1.1e-8), and the
# Taylor series of erf for |x| < 0.5. numpy computes exp(-x*x) with its SIMD exp, and one
# numba loop does the rest; libm's erf (exact, but ~20x slower) stays for float64.
_ERFC_P = (1.0000000110117695, 1.2464368324321278, 0.7403580142263867, 0.23353018720273147, 0.033755662116125885)
_ERFC_Q = (1.0, 2.3748169173544316, 2.4200385851270303, 1.3417659640382413, 0.41394562904721116, 0.05982972079251432)
# erf(x) / x = 2/sqrt(pi) * sum_k (-1)^k x^(2k) / (k! (2k + 1))
_ERF_TAYLOR = tuple(2 / math.sqrt(math.pi) * (-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(9))


@functools.cache
def _erf_kernels() -> tuple[
    Callable[..., None], Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]
]:
    """(float32 loop, float64 erf, float64 erfc), compiled on first use (importing numba then)."""
    from numba import njit, vectorize

    p0, p1, p2, p3, p4 = _ERFC_P
    q0, q1, q2, q3, q4, q5 = _ERFC_Q
    t0, t1, t2, t3, t4, t5, t6, t7, t8 = _ERF_TAYLOR

    # two simple loops rather than one, which LLVM vectorises more readily.
    # Both work on z = s * x: s = 1 for erf/erfc, s = -1/sqrt(2) for GELU's erfc(-x/sqrt(2)).
    # error_model="numpy": no ZeroDivisionError check, whose branch would stop LLVM vectorising
    @njit(cache=True, error_model="numpy")
    def _tail32(x: np.ndarray, e: np.ndarray, s: float) -> None:  # pragma: no cover - compiled
        """e[i] = exp(-s*s * float32(x*x)) becomes erfc(|s * x[i]|)."""
        for i in range(x.size):
            xi = x[i]
            v = np.float64(xi)
            y = min(abs(v * s), 10.0)  # erfc(10) ~ 2e-45: beyond, e is 0 in float32
            # undo the rounding of the float32 square inside e to first order
            d = v * v - np.float64(xi * xi) if abs(v) < 1e18 else 0.0  # x*x overflows float32 beyond
            ef = np.float64(e[i]) * (1.0 - s * s * d)
            num = (((p4 * y + p3) * y + p2) * y + p1) * y + p0
            den = ((((q5 * y + q4) * y + q3) * y + q2) * y + q1) * y + q0
            e[i] = ef * num / den

    @njit(cache=True, error_model="numpy")
    def _select32(x: np.ndarray, tail: np.ndarray, out: np.ndarray, s: float, mode: int) -> None:  # pragma: no cover
        """out = erf(z), erfc(z) or x/2 * erfc(z) (mode 0, 1, 2): Taylor near 0, the tail elsewhere."""
        for i in range(x.size):
            v = np.float64(x[i])
            z = v * s
            z2 = min(z * z, 0.25)
            small = z * (
                (((((((t8 * z2 + t7) * z2 + t6) * z2 + t5) * z2 + t4) * z2 + t3) * z2 + t2) * z2 + t1) * z2 + t0
            )
            t = np.float64(tail[i])
            if mode == 0:
                far = t - 1.0 if z < 0.0 else 1.0 - t
                out[i] = small if abs(z) < 0.5 else far
            else:
                far = 2.0 - t if z < 0.0 else t
                c = 1.0 - small if abs(z) < 0.5 else far
                out[i] = c if mode == 1 else 0.5 * v * c

    def _loop32(x: np.ndarray, s: float, mode: int) -> np.ndarray:
        with np.errstate(over="ignore", under="ignore"):
            e = np.square(x)
            if s * s != 1.0:
                e *= np.float32(s * s)  # exact for s * s = 1/2
            np.negative(e, out=e)
            np.exp(e, out=e)
        flat = x.reshape(-1)
        _tail32(flat, e.reshape(-1), s)
        out = np.empty_like(x)
        _select32(flat, e.reshape(-1), out.reshape(-1), s, mode)
        return out

    @vectorize(["float64(float64)"], cache=True)
    def _erf64(v: float) -> float:  # pragma: no cover - compiled
        return math.erf(v)

    @vectorize(["float64(float64)"], cache=True)
    def _erfc64(v: float) -> float:  # pragma: no cover - compiled
        return math.erfc(v)

    return _loop32, _erf64, _erfc64


def _apply(mode: int, x: np.ndarray) -> np.ndarray:
    """erf (mode 0), erfc (1) or exact GELU (2) of ``x`` in its float dtype."""
    x = np.asarray(x)
    loop32, erf64, erfc64 = _erf_kernels()
    if x.dtype == np.float64:
        if mode == 2:
            return 0.5 * x * erfc64(x * (-1 / math.sqrt(2)))
        return erfc64(x) if mode == 1 else erf64(x)
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    out = loop32(x32, -1 / math.sqrt(2) if mode == 2 else 1.0, mode)
    return out if x.dtype == np.float32 else out.astype(x.dtype)


def gelu_exact(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``x/2 * erfc(-x/sqrt(2))`` (= ``x/2 * (1 + erf(x/sqrt(2)))``) in ``x``'s float dtype.

    One fused kernel for float32, no cancellation for large negative ``x``.

    Example:
        >>> import numpy as np
        >>> round(float(gelu_exact(np.array([1.0], np.float32))[0]), 6)
        0.841345
    """
    return _apply(2, x)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function elementwise, in ``x``'s float dtype (float16/bfloat16 computed in float32).

    Example:
        >>> import numpy as np
        >>> round(float(erf(np.array([0.5], np.float32))[0]), 6)
        0.5205
    """
    return _apply(0, x)


def erfc(x: np.ndarray) -> np.ndarray:
    """``1 - erf(x)`` without cancellation for large ``x``, in ``x``'s float dtype.

    Example:
        >>> import numpy as np
        >>> float(erfc(np.array([5.0], np.float32))[0])  # doctest: +ELLIPSIS
        1.537459...e-12
    """
    return _apply(1, x)


# --------------------------------------------------------------------------- binary arithmetic


class _Binary(Op):
    """A two-input op with multidirectional broadcasting (legacy rules before opset 7)."""

    legacy_until: ClassVar[int] = 7

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._legacy = ctx.opset < self.legacy_until

    def compute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
        a = np.asarray(a)
        b = np.asarray(b)
        if self._legacy:
            b = _legacy_broadcast(self.ctx, a, b)
        try:
            with np.errstate(all="ignore"):
                out = self.compute(a, b)
        except ValueError as exc:
            if "broadcast" not in str(exc):
                raise
            raise InferenceError(
                f"{self.ctx.op_type} node {self.ctx.node_name!r}: input shapes {a.shape} and {b.shape} "
                "cannot be broadcast together (ONNX multidirectional broadcasting); check the feeds"
            ) from exc
        return (out,)


@register_versions("Add", (1, 6, 7, 13, 14))
class Add(_Binary):
    def compute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return as_dtype(np.add(a, b), a.dtype)


@register_versions("Sub", (1, 6, 7, 13, 14))
class Sub(_Binary):
    def compute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return as_dtype(np.subtract(a, b), a.dtype)


@register_versions("Mul", (1, 6, 7, 13, 14))
class Mul(_Binary):
    def compute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return as_dtype(np.multiply(a, b), a.dtype)


def _int_div_trunc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero (C semantics), division by zero gives 0."""
    safe_b = np.where(b == 0, 1, b).astype(b.dtype, copy=False)
    q = np.floor_divide(a, safe_b)
    if a.dtype.kind == "i":
        fix = (np.remainder(a, safe_b) != 0) & ((a < 0) != (safe_b < 0))
        q = q + fix.astype(q.dtype)
    return np.where(b == 0, 0, q).astype(a.dtype, copy=False)


@register_versions("Div", (1, 6, 7, 13, 14))
class Div(_Binary):
    def compute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.dtype.kind in "iu":
            return _int_div_trunc(a, b)
        return as_dtype(np.divide(a, b), a.dtype)


@register_versions("Pow", (1, 7, 12, 13, 15))
class Pow(_Binary):
    def compute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if is_float(a.dtype):
            if a.dtype.itemsize < 4:
                return as_dtype(np.power(a.astype(np.float32), b.astype(np.float32)), a.dtype)
            return as_dtype(np.power(a, b.astype(a.dtype)), a.dtype)
        # integer base: an integer exponent stays exact; a float or negative one goes through float64
        if b.dtype.kind in "iu" and not (b < 0).any():
            return as_dtype(np.power(a.astype(np.int64), b.astype(np.int64)), a.dtype)
        return as_dtype(np.power(a.astype(np.float64), b.astype(np.float64)), a.dtype)


@register_versions("Mod", (10, 13, 28))
class Mod(_Binary):
    legacy_until = 0

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._fmod = int(ctx.attr("fmod", 0))

    def compute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.dtype.kind in "iu":
            safe_b = np.where(b == 0, 1, b).astype(b.dtype, copy=False)
            r = np.fmod(a, safe_b) if self._fmod else np.mod(a, safe_b)
            return as_dtype(np.where(b == 0, 0, r), a.dtype)
        if a.dtype.itemsize < 4:
            a32, b32 = a.astype(np.float32), b.astype(np.float32)
            return as_dtype(np.fmod(a32, b32) if self._fmod else np.mod(a32, b32), a.dtype)
        return as_dtype(np.fmod(a, b) if self._fmod else np.mod(a, b), a.dtype)


# --------------------------------------------------------------------------- unary math


class _Unary(Op):
    """A one-input op: ``fn`` applied elementwise; float16/bfloat16 computed in float32."""

    fn: ClassVar[Callable[[np.ndarray], Any]]
    float_only: ClassVar[bool] = True

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            if x.dtype.kind == "f" and x.dtype.itemsize >= 4:
                return (as_dtype(type(self).fn(x), x.dtype),)
            if x.dtype.kind in "iub" and not self.float_only:
                return (as_dtype(type(self).fn(x), x.dtype),)
            return (as_dtype(type(self).fn(x.astype(np.float32)), x.dtype),)


def _unary(name: str, versions: tuple[int, ...], fn: Callable[[np.ndarray], Any], float_only: bool = True) -> type[Op]:
    cls = type(name, (_Unary,), {"fn": staticmethod(fn), "float_only": float_only, "__doc__": f"ONNX {name}."})
    register_versions(name, versions)(cls)
    return cls


def _reciprocal(x: np.ndarray) -> np.ndarray:
    return np.reciprocal(x) if x.dtype.kind == "f" else 1 / x


Abs = _unary("Abs", (1, 6, 13), np.abs, float_only=False)
Neg = _unary("Neg", (1, 6, 13), np.negative, float_only=False)
Exp = _unary("Exp", (1, 6, 13), np.exp)
Log = _unary("Log", (1, 6, 13), np.log)
Sqrt = _unary("Sqrt", (1, 6, 13), np.sqrt)
Reciprocal = _unary("Reciprocal", (1, 6, 13), _reciprocal)
Floor = _unary("Floor", (1, 6, 13), np.floor)
Ceil = _unary("Ceil", (1, 6, 13), np.ceil)
Round = _unary("Round", (11, 22), np.round)  # numpy rounds half to even, as ONNX does
Sign = _unary("Sign", (9, 13), np.sign, float_only=False)
Sin = _unary("Sin", (7, 22), np.sin)
Cos = _unary("Cos", (7, 22), np.cos)
Tan = _unary("Tan", (7, 22), np.tan)
Asin = _unary("Asin", (7, 22), np.arcsin)
Acos = _unary("Acos", (7, 22), np.arccos)
Atan = _unary("Atan", (7, 22), np.arctan)
Sinh = _unary("Sinh", (9, 22), np.sinh)
Cosh = _unary("Cosh", (9, 22), np.cosh)
Asinh = _unary("Asinh", (9, 22), np.arcsinh)
Acosh = _unary("Acosh", (9, 22), np.arccosh)
Atanh = _unary("Atanh", (9, 22), np.arctanh)


@register_versions("Erf", (9, 13))
class Erf(Op):
    """ONNX Erf (integer inputs are computed in float64 and cast back, as the reference does)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if x.dtype.kind in "iu":
            return (erf(x.astype(np.float64)).astype(x.dtype),)
        return (erf(x),)


@register_versions("IsNaN", (9, 13, 20))
class IsNaN(Op):
    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        return (np.asarray(np.isnan(np.asarray(x))),)


@register_versions("IsInf", (10, 20))
class IsInf(Op):
    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._neg = bool(ctx.attr("detect_negative", 1))
        self._pos = bool(ctx.attr("detect_positive", 1))

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if x.dtype.itemsize < 4:
            x = x.astype(np.float32)
        inf = np.isinf(x)
        if self._neg and self._pos:
            return (inf,)
        if self._neg:
            return (inf & (x < 0),)
        if self._pos:
            return (inf & (x > 0),)
        return (np.zeros(x.shape, np.bool_),)


# --------------------------------------------------------------------------- variadic


class _Variadic(Op):
    """Max/Min/Sum/Mean over any number of inputs, with multidirectional broadcasting."""

    reduce: ClassVar[Callable[[np.ndarray, np.ndarray], np.ndarray]]

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray]:
        arrays = [np.asarray(x) for x in xs if x is not None]
        if not arrays:
            raise InferenceError(f"{self.ctx.op_type} node {self.ctx.node_name!r} needs at least one input")
        dtype = arrays[0].dtype
        if self.ctx.opset < 8 and len({a.shape for a in arrays}) > 1:
            raise InferenceError(
                f"{self.ctx.op_type} node {self.ctx.node_name!r} (opset {self.ctx.opset} < 8) needs inputs "
                f"of one shape, got {[a.shape for a in arrays]}"
            )
        try:
            out = arrays[0]
            with np.errstate(all="ignore"):
                for a in arrays[1:]:
                    out = type(self).reduce(out, a)
        except ValueError as exc:
            raise InferenceError(
                f"{self.ctx.op_type} node {self.ctx.node_name!r}: input shapes "
                f"{[a.shape for a in arrays]} cannot be broadcast together"
            ) from exc
        out = np.broadcast_to(out, np.broadcast_shapes(*(a.shape for a in arrays)))
        return (self.finish(np.array(out, dtype=dtype), len(arrays)),)

    def finish(self, out: np.ndarray, n: int) -> np.ndarray:
        return out


@register_versions("Max", (1, 6, 8, 12, 13))
class Max(_Variadic):
    reduce = staticmethod(np.maximum)  # propagates NaN, as ONNX Runtime does


@register_versions("Min", (1, 6, 8, 12, 13))
class Min(_Variadic):
    reduce = staticmethod(np.minimum)


@register_versions("Sum", (1, 6, 8, 13))
class Sum(_Variadic):
    reduce = staticmethod(np.add)


@register_versions("Mean", (1, 6, 8, 13))
class Mean(_Variadic):
    reduce = staticmethod(np.add)

    def finish(self, out: np.ndarray, n: int) -> np.ndarray:
        return as_dtype(out / out.dtype.type(n), out.dtype)


@register_versions("Clip", (1, 6, 11, 12, 13))
class Clip(Op):
    """ONNX Clip: bounds are attributes before opset 11, optional scalar inputs from 11 on."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._lo = ctx.attr("min")
        self._hi = ctx.attr("max")

    def run(self, x: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if self.ctx.opset < 11:
            lo, hi = self._lo, self._hi
        out = x
        if lo is not None and np.size(lo):
            out = np.maximum(out, np.asarray(lo).astype(x.dtype).reshape(()))
        if hi is not None and np.size(hi):
            out = np.minimum(out, np.asarray(hi).astype(x.dtype).reshape(()))
        return (as_dtype(out, x.dtype),)


# --------------------------------------------------------------------------- bitwise, comparison, logic


@register_versions("BitShift", (11, 28))
class BitShift(_Binary):
    """BitShift; from opset 28 also signed types (arithmetic right shift) and defined
    results for shifts that are negative or not below the bit width."""

    legacy_until = 0

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        direction = ctx.attr("direction")
        if direction not in ("LEFT", "RIGHT"):
            raise unsupported(ctx, f"direction must be 'LEFT' or 'RIGHT', got {direction!r}")
        self._left = direction == "LEFT"

    def compute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        shift = b.astype(np.int64)
        out_of_range = (shift < 0) | (shift >= a.dtype.itemsize * 8)
        safe = np.where(out_of_range, 0, shift).astype(a.dtype)
        shifted = np.left_shift(a, safe) if self._left else np.right_shift(a, safe)
        if not out_of_range.any():
            return as_dtype(shifted, a.dtype)
        # only the sign extension is left: -1 for a right shift of a negative value, else 0
        fill = (a < 0) if (not self._left and a.dtype.kind == "i") else np.zeros((), np.bool_)
        return as_dtype(np.where(out_of_range, np.where(fill, -1, 0).astype(a.dtype), shifted), a.dtype)


def _binary(name: str, versions: tuple[int, ...], fn: Callable[..., Any], *, out_bool: bool) -> type[Op]:
    def compute(self: _Binary, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.dtype == object or b.dtype == object:  # strings (Equal 19)
            return np.asarray(fn(a, b), dtype=np.bool_)
        r = fn(a, b)
        return as_dtype(r, np.dtype(np.bool_) if out_bool else a.dtype)

    cls = type(name, (_Binary,), {"compute": compute, "__doc__": f"ONNX {name}."})
    register_versions(name, versions)(cls)
    return cls


BitwiseAnd = _binary("BitwiseAnd", (18,), np.bitwise_and, out_bool=False)
BitwiseOr = _binary("BitwiseOr", (18,), np.bitwise_or, out_bool=False)
BitwiseXor = _binary("BitwiseXor", (18,), np.bitwise_xor, out_bool=False)
Equal = _binary("Equal", (1, 7, 11, 13, 19), np.equal, out_bool=True)
Greater = _binary("Greater", (1, 7, 9, 13), np.greater, out_bool=True)
Less = _binary("Less", (1, 7, 9, 13), np.less, out_bool=True)
GreaterOrEqual = _binary("GreaterOrEqual", (12, 16), np.greater_equal, out_bool=True)
LessOrEqual = _binary("LessOrEqual", (12, 16), np.less_equal, out_bool=True)
And = _binary("And", (1, 7), np.logical_and, out_bool=True)
Or = _binary("Or", (1, 7), np.logical_or, out_bool=True)
Xor = _binary("Xor", (1, 7), np.logical_xor, out_bool=True)
BitwiseNot = _unary("BitwiseNot", (18,), np.invert, float_only=False)
Not = _unary("Not", (1,), np.logical_not, float_only=False)


@register_versions("Where", (9, 16))
class Where(Op):
    def run(self, cond: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        try:
            out = np.where(np.asarray(cond, dtype=np.bool_), x, np.asarray(y))
        except ValueError as exc:
            raise InferenceError(
                f"Where node {self.ctx.node_name!r}: shapes {np.shape(cond)}, {x.shape}, {np.shape(y)} "
                "cannot be broadcast together"
            ) from exc
        return (as_dtype(out, x.dtype),)


# --------------------------------------------------------------------------- Cast

_FLOAT8 = {17, 18, 19, 20}
_E8M0 = 24
_STRING = 8


def _np_dtype(ctx: OpContext, to: int) -> np.dtype:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(to))
    except (KeyError, TypeError, ValueError) as exc:
        raise unsupported(ctx, f"cannot cast to ONNX data type {to}") from exc


def _cast_to_e8m0(x: np.ndarray, round_mode: str, saturate: bool) -> np.ndarray:
    """float -> float8e8m0 (a biased power-of-two exponent; 0xFF is NaN)."""
    import ml_dtypes

    f = x.astype(np.float64)
    with np.errstate(all="ignore"):
        mant, exp = np.frexp(np.abs(f))  # |f| = mant * 2**exp, mant in [0.5, 1)
    e = exp.astype(np.int64) - 1  # floor(log2|f|)
    frac = mant * 2.0  # in [1, 2)
    if round_mode == "up":
        e = e + (frac > 1.0)
    elif round_mode == "nearest":
        e = e + (frac >= 1.5)
    bits = e + 127
    nan = np.isnan(f)
    if saturate:
        bits = np.where(np.isinf(f) | (bits > 254), 254, bits)
        bits = np.where((f == 0) | (bits < 0), 0, bits)
    else:
        bad = np.isinf(f) | (bits > 254) | (bits < 0) | (f == 0)
        nan = nan | bad
    bits = np.where(nan, 255, np.clip(bits, 0, 255)).astype(np.uint8)
    return bits.view(ml_dtypes.float8_e8m0fnu)


def _format_float(v: float) -> str:
    # ONNX Runtime's spelling: printf's %.8g for every float type, NaN / INF / -INF
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "INF" if v > 0 else "-INF"
    return f"{v:.8g}"


@register_versions("Cast", (1, 6, 9, 13, 19, 21, 23, 24, 25), until=25)  # 28 adds float6
class Cast(Op):
    """ONNX Cast: strings, float8 (``saturate``), float8e8m0 (``round_mode``), 4- and 2-bit types."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        to = ctx.attr("to")
        if isinstance(to, str):  # opset 1 spelled the type as a string
            from onnx import TensorProto

            to = int(getattr(TensorProto, to.upper(), -1))
        self._setup(int(to) if to is not None else -1)

    def _setup(self, to: int) -> None:
        self._to = to
        self._saturate = bool(self.ctx.attr("saturate", 1))
        self._round_mode = str(self.ctx.attr("round_mode", "up"))
        self._dtype = np.dtype(object) if to == _STRING else _np_dtype(self.ctx, to)
        self._small_float = self._dtype.name.startswith(("float8", "float4"))

    def run(self, x: np.ndarray, like: np.ndarray | None = None) -> tuple[np.ndarray]:
        return (self.cast(np.asarray(x)),)

    def cast(self, x: np.ndarray) -> np.ndarray:
        to, dtype = self._to, self._dtype
        if x.dtype == dtype and to != _STRING:
            return x.copy()
        if to == _STRING:
            if is_float(x.dtype):
                vals = [_format_float(float(v)) for v in x.ravel()]
            else:
                vals = [str(int(v)) for v in x.ravel().tolist()]  # bool as 1/0, like ONNX Runtime
            return np.array(vals, dtype=object).reshape(x.shape)
        if x.dtype == object or x.dtype.kind in "US":
            if dtype.kind in "iu":  # parse integers exactly (float64 would round above 2**53)
                return np.array([_parse_int(v) for v in x.ravel()], dtype=np.int64).reshape(x.shape).astype(dtype)
            return np.array([_parse(v) for v in x.ravel()], dtype=np.float64).reshape(x.shape).astype(dtype)
        if to == _E8M0:
            return _cast_to_e8m0(x, self._round_mode, self._saturate)
        if self._small_float and x.dtype != dtype:
            src = x if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else x.astype(np.float32)
            if to in _FLOAT8 and self._saturate:
                import ml_dtypes

                top = float(ml_dtypes.finfo(dtype).max)
                src = np.clip(src, -top, top)
            with np.errstate(all="ignore"):
                return src.astype(dtype)
        if dtype.kind in "iu" and x.dtype.kind not in "iub" and dtype.itemsize < 8:
            # float -> narrow int: truncate through int64 so out-of-range values wrap, not saturate
            with np.errstate(all="ignore"):
                return x.astype(np.float64).astype(np.int64).astype(dtype)
        with np.errstate(all="ignore"):
            return x.astype(dtype)


def _parse(v: Any) -> float:
    s = (v.decode() if isinstance(v, bytes) else str(v)).strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        return float.fromhex(s)  # strtod, which ONNX Runtime uses, reads hex too
    except ValueError as exc:
        raise InferenceError(f"Cast: cannot parse the string {s!r} as a number") from exc


def _parse_int(v: Any) -> int:
    s = (v.decode() if isinstance(v, bytes) else str(v)).strip()
    try:
        return int(s, 0) if s.lower().startswith(("0x", "-0x")) else int(s)
    except ValueError:
        return int(_parse(s))


@register_versions("CastLike", (15, 19, 21, 23, 24, 25))
class CastLike(Op):
    """ONNX CastLike: the target type is the dtype of the second input.

    One configured :class:`Cast` per target dtype seen, so concurrent runs never
    reconfigure a shared object.
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._casts: dict[np.dtype, Cast] = {}

    def _cast_for(self, dtype: np.dtype) -> Cast:
        cast = self._casts.get(dtype)
        if cast is None:
            if dtype.kind == "O":
                to = _STRING
            else:
                from onnx import helper

                to = int(helper.np_dtype_to_tensor_dtype(dtype))
            cast = Cast(OpContext(self.ctx.node_name, "Cast", opset=self.ctx.opset, attrs={**self.ctx.attrs, "to": to}))
            self._casts[dtype] = cast
        return cast

    def run(self, x: np.ndarray, like: np.ndarray) -> tuple[np.ndarray]:
        return (self._cast_for(np.asarray(like).dtype).cast(np.asarray(x)),)


@register_versions("BitCast", (26,))
class BitCast(Op):
    """Reinterpret the bytes (little endian) as another type of the same bit width."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        to = ctx.attr("to")
        if to is None or int(to) == _STRING:
            raise unsupported(ctx, "the 'to' attribute must name a non-string ONNX data type")
        self._dtype = _np_dtype(ctx, int(to))

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if _bit_width(x.dtype) != _bit_width(self._dtype):
            raise InferenceError(
                f"BitCast node {self.ctx.node_name!r}: {x.dtype} ({_bit_width(x.dtype)} bits) cannot be "
                f"reinterpreted as {self._dtype} ({_bit_width(self._dtype)} bits); the widths must match"
            )
        le = x.astype(x.dtype.newbyteorder("<"), copy=False) if x.dtype.byteorder == ">" else x
        return (np.ascontiguousarray(le).view(self._dtype).reshape(x.shape),)


_SUB_BYTE_BITS = {"int2": 2, "uint2": 2, "int4": 4, "uint4": 4, "float4_e2m1fn": 4}


def _bit_width(dtype: np.dtype) -> int:
    # ml_dtypes keeps 2- and 4-bit values in the low bits of one byte, so a view is a bit cast
    return _SUB_BYTE_BITS.get(dtype.name, dtype.itemsize * 8)
