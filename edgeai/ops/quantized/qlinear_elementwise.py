"""com.microsoft QLinearAdd, QLinearMul (broadcasting binary) and the lookup-table
unary ops QLinearSigmoid, QLinearLeakyRelu, as ONNX Runtime computes them.

* QLinearAdd: with ``ra = sa / sc``, ``rb = sb / sc`` and
  ``k = zc - fma(ra, za, rb * zb)``, ``c = sat(rint(fma(ra, a, fma(rb, b, k))))``
  (float32, single-rounding FMAs as MLAS's AVX2 kernel); where ONNX Runtime's
  broadcaster hands ``a`` over as a scalar per span, ``a`` and ``b`` swap roles.
* QLinearMul: ``c = sat(rint(float32((a - za) * (b - zb)) * (sa * sb / sc) + zc))``
  (the zero point is added before rounding).
* With ``requant_mode="tflite"``, QLinearAdd and QLinearMul follow TFLite's
  reference ADD/MUL kernels instead (fixed-point multipliers, gemmlowp rounding).
* QLinearSigmoid / QLinearLeakyRelu: a 256-entry table ``quantize(f(dequantize(q)))``
  built once (when the scales are constants) and indexed per element; the
  sigmoid is MLAS's rational approximation of the logistic function.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.qlinear_elementwise import QLinearAdd
    >>> op = QLinearAdd(OpContext("a", "QLinearAdd", "com.microsoft"))
    >>> f = np.float32
    >>> op.run(np.array([10, 20], np.uint8), f(0.5), np.uint8(0), np.array([2], np.uint8), f(0.5), np.uint8(0),
    ...        f(1.0), np.uint8(0))[0]
    array([ 6, 11], dtype=uint8)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from edgeai.kernels import _record
from edgeai.ops._base import Op, OpContext, nhwc_base, register
from edgeai.ops.quantized._common import (
    c_order,
    check_int_dtype,
    const_input,
    onnx_mode_only,
    scalar,
    zero_point_or_default,
)
from edgeai.ops.quantized.quantize_linear import quantize_onnx
from edgeai.quant.float32 import fma_f32, fma_f32_jit
from edgeai.quant.params import qrange
from edgeai.quant.requant import quantize_multiplier, requantize_tflite

__all__ = ["QLinearAdd", "QLinearLeakyRelu", "QLinearMul", "QLinearSigmoid", "mlas_logistic"]

_I8 = ("int8", "uint8")
_F = np.float32


def _saturate(v: np.ndarray, dtype: Any) -> np.ndarray:
    qmin, qmax = qrange(dtype)
    return np.clip(np.rint(v), qmin, qmax).astype(dtype)


def _first_is_scalar_span(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> bool:
    """Whether ONNX Runtime's broadcaster feeds the first input as a scalar per output span.

    The span is the innermost run of output dims; the first input is the scalar
    one when it is broadcast (size 1) in the innermost output dim larger than 1.
    """
    a_size, b_size = int(np.prod(a_shape)), int(np.prod(b_shape))
    if a_size == 1:
        return b_size > 1
    if b_size == 1 or tuple(a_shape) == tuple(b_shape):
        return False
    rank = max(len(a_shape), len(b_shape))
    pa = (1,) * (rank - len(a_shape)) + tuple(a_shape)
    pb = (1,) * (rank - len(b_shape)) + tuple(b_shape)
    for da, db in zip(reversed(pa), reversed(pb)):
        if max(da, db) > 1:
            return da == 1
    return False


class _Binary(Op):
    def _operands(
        self,
        a: np.ndarray,
        a_scale: Any,
        a_zp: Any,
        b: np.ndarray,
        b_scale: Any,
        b_zp: Any,
        c_scale: Any,
        c_zp: Any,
    ) -> tuple[np.ndarray, ...]:
        ctx = self.ctx
        check_int_dtype(ctx, np.asarray(a), "A", _I8)
        check_int_dtype(ctx, np.asarray(b), "B", _I8)
        a = np.asarray(a)
        zpa = scalar(ctx, zero_point_or_default(a_zp, a.dtype), "A_zero_point")
        zpb = scalar(ctx, zero_point_or_default(b_zp, a.dtype), "B_zero_point")
        zpc = scalar(ctx, zero_point_or_default(c_zp, a.dtype), "C_zero_point")
        sa = scalar(ctx, a_scale, "A_scale").astype(_F)
        sb = scalar(ctx, b_scale, "B_scale").astype(_F)
        sc = scalar(ctx, c_scale, "C_scale").astype(_F)
        return a, np.asarray(b), sa, zpa, sb, zpb, sc, zpc


@register("QLinearAdd", domain="com.microsoft", since=1)
class QLinearAdd(_Binary):
    """com.microsoft QLinearAdd with numpy broadcasting.

    When every scale and zero point is a constant (ONNX mode), the float32
    coefficients are computed once here, and two inputs of one shape and type
    run through one loop over their 8-bit values in memory order: C-contiguous
    arrays, or NCHW views of NHWC arrays (what QLinearConv hands on), whose
    result is the same kind of view.
    """

    accepts_nhwc_views = True
    program_safe = True  # the bound step's work is one kernel call (edgeai.graph.program)

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.nhwc_views = False  # set by the executor: results may stay NCHW views of NHWC arrays
        self._coeffs: tuple[np.ndarray, np.dtype] | None = None
        """``(float32 [ra, rb, k, qmin, qmax], output dtype)`` when every parameter is constant."""
        params = [const_input(ctx, i) for i in (1, 2, 4, 5, 6, 7)]
        if ctx.requant_mode == "onnx" and all(p is not None for p in params):
            sa, zpa, sb, zpb, sc, zpc = (np.asarray(p) for p in params)
            if zpa.dtype == zpb.dtype == zpc.dtype and zpc.dtype.name in _I8:
                sa, sb, sc = (
                    scalar(ctx, v, n).astype(_F) for v, n in ((sa, "A_scale"), (sb, "B_scale"), (sc, "C_scale"))
                )
                zpa, zpb, zpc = (
                    scalar(ctx, v, n) for v, n in ((zpa, "A_zero_point"), (zpb, "B_zero_point"), (zpc, "C_zero_point"))
                )
                ra, rb = _F(sa / sc), _F(sb / sc)
                k = _F(_F(zpc) - fma_f32(ra, _F(zpa), _F(rb * _F(zpb))))
                qmin, qmax = qrange(zpc.dtype)
                self._coeffs = (np.array([ra, rb, k, qmin, qmax], _F), zpc.dtype)

    @property
    def nhwc_raw_inputs(self) -> tuple[int, ...]:
        """``(0, 3)`` when :meth:`bind_static` binds: its step then takes A and B as NHWC arrays."""
        return (0, 3) if self._bindable() else ()

    @property
    def nhwc_raw_output(self) -> bool:
        """Whether the bound step can hand C on as an NHWC array (its declared rank is 4)."""
        out = self.ctx.output_values[0] if self.ctx.output_values else None
        shape = getattr(out, "shape", None)
        return self._bindable() and shape is not None and len(shape) == 4

    def _bindable(self) -> bool:
        consts = self.ctx.input_consts
        return self._coeffs is not None and len(consts) >= 8 and consts[1] is not None and consts[7] is not None

    def bind_static(
        self, nhwc_in: frozenset[int] = frozenset(), nhwc_out: bool = False
    ) -> tuple[Callable[[np.ndarray, np.ndarray], tuple[Any, ...]], tuple[int, ...]] | None:
        """``(step(a, b), (0, 3))`` for the executor when every parameter is a constant (see
        :func:`edgeai.graph.executor.CompiledGraph`); anything but two arrays of one shape and type
        goes to :meth:`run` with the constants. ``nhwc_in`` (positions 0, 3) and ``nhwc_out``: the
        inputs and the result that go as NHWC arrays (:mod:`edgeai.graph.executor`)."""
        coeffs = self._coeffs
        if coeffs is None or not self._bindable():
            return None
        consts = self.ctx.input_consts
        scales = (consts[1], consts[2], consts[4], consts[5], consts[6], consts[7])
        run, views, dtype, ndarray, contiguous = self.run, self.nhwc_views, coeffs[1], np.ndarray, np.ascontiguousarray
        params, empty = coeffs[0], np.empty
        raw_a, raw_b, raw_out = 0 in nhwc_in, 3 in nhwc_in, nhwc_out

        def step(a: np.ndarray, b: np.ndarray) -> tuple[Any, ...]:
            if (
                raw_a
                and raw_b
                and type(a) is ndarray
                and type(b) is ndarray
                and a.shape == b.shape
                and a.dtype == b.dtype == dtype
                and a.flags.c_contiguous
                and b.flags.c_contiguous
            ):  # the NHWC bytes, added in memory order
                out = empty(a.shape, dtype)
                if _record.RECORD is not None:
                    _record.RECORD.append((_qlinear_add_8bit, (a, b, params, out)))
                _qlinear_add_8bit(a, b, params, out)
                if raw_out:
                    return (out,)
                y = out.transpose(0, 3, 1, 2)
                return (y,) if views else (contiguous(y),)
            if raw_a:
                a = a.transpose(0, 3, 1, 2)
            if raw_b:
                b = b.transpose(0, 3, 1, 2)
            if type(a) is ndarray and type(b) is ndarray and a.shape == b.shape and a.dtype == b.dtype == dtype:
                y = _add_same_shape(a, b, coeffs)
                if not views and not raw_out:
                    y = contiguous(y)
            else:
                y = run(a, scales[0], scales[1], b, *scales[2:])[0]
            return (y.transpose(0, 2, 3, 1),) if raw_out else (y,)

        return step, (0, 3)

    def run(self, *inputs: Any) -> tuple[Any, ...]:
        coeffs = self._coeffs
        if coeffs is not None:
            a, b = inputs[0], inputs[3]
            if (
                type(a) is np.ndarray
                and type(b) is np.ndarray
                and a.shape == b.shape
                and a.dtype == b.dtype == coeffs[1]
            ):
                y = _add_same_shape(a, b, coeffs)
                return (y if self.nhwc_views else np.ascontiguousarray(y),)
        a, b, sa, zpa, sb, zpb, sc, zpc = self._operands(*inputs)
        a, b = c_order(a), c_order(b)
        if self.ctx.requant_mode == "tflite":
            return (tflite_add(a, sa, zpa, b, sb, zpb, sc, zpc),)
        if _first_is_scalar_span(a.shape, b.shape):
            # ORT runs "scalar A + vector B" as "vector B + scalar A": the operands swap roles
            a, b, sa, zpa, sb, zpb = b, a, sb, zpb, sa, zpa
        ra = _F(sa / sc)
        rb = _F(sb / sc)
        k = _F(_F(zpc) - fma_f32(ra, _F(zpa), _F(rb * _F(zpb))))
        qmin, qmax = qrange(zpc.dtype)
        shape = np.broadcast_shapes(a.shape, b.shape)
        ai = np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.int32).reshape(-1)
        bi = np.ascontiguousarray(np.broadcast_to(b, shape), dtype=np.int32).reshape(-1)
        out = np.empty(ai.size, dtype=np.int32)
        _qlinear_add_kernel(ai, bi, ra, rb, k, qmin, qmax, out)
        return (out.reshape(shape).astype(zpc.dtype),)


@register("QLinearMul", domain="com.microsoft", since=1)
class QLinearMul(_Binary):
    """com.microsoft QLinearMul with numpy broadcasting."""

    def run(self, *inputs: Any) -> tuple[Any, ...]:
        a, b, sa, zpa, sb, zpb, sc, zpc = self._operands(*inputs)
        if self.ctx.requant_mode == "tflite":
            return (tflite_mul(a, sa, zpa, b, sb, zpb, sc, zpc),)
        m = _F(_F(sa * sb) / sc)
        prod = (a.astype(np.int32) - np.int32(zpa)) * (b.astype(np.int32) - np.int32(zpb))
        v = ((prod.astype(_F) * m).astype(_F) + _F(zpc)).astype(_F)  # zp before rounding
        return (_saturate(v, zpc.dtype),)


def _add_same_shape(a: np.ndarray, b: np.ndarray, coeffs: tuple[np.ndarray, np.dtype]) -> np.ndarray:
    """QLinearAdd of two arrays of one shape, walked in memory order (see :class:`QLinearAdd`)."""
    params, dtype = coeffs
    if not (a.flags.c_contiguous and b.flags.c_contiguous):
        at, bt = nhwc_base(a), nhwc_base(b)
        if at is not None and bt is not None:  # NCHW views of NHWC arrays
            out = np.empty(at.shape, dtype)
            _qlinear_add_8bit(at, bt, params, out)
            return out.transpose(0, 3, 1, 2)
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    out = np.empty(a.shape, dtype)
    _qlinear_add_8bit(a, b, params, out)
    return out


@njit(cache=True, nogil=True)
def _qlinear_add_8bit(a: np.ndarray, b: np.ndarray, params: np.ndarray, out: np.ndarray) -> None:
    """:func:`_qlinear_add_kernel` on C-contiguous 8-bit inputs and output of one shape, clamped
    before rounding (the same integers: the bounds are integers). ``params``: float32
    ``[ra, rb, k, qmin, qmax]`` (one array: numba's dispatcher types it faster than five scalars)."""
    af, bf, of = a.reshape(a.size), b.reshape(b.size), out.reshape(out.size)
    ra, rb, k, lo, hi = params[0], params[1], params[2], params[3], params[4]
    for i in range(af.size):
        v = fma_f32_jit(ra, np.float32(af[i]), fma_f32_jit(rb, np.float32(bf[i]), k))
        v = min(max(v, lo), hi)
        of[i] = np.rint(v)


@njit(cache=True, nogil=True)
def _qlinear_add_kernel(
    a: np.ndarray, b: np.ndarray, ra: np.float32, rb: np.float32, k: np.float32, qmin: int, qmax: int,
    out: np.ndarray,
) -> None:  # fmt: skip
    """``sat(rint(fma(ra, a, fma(rb, b, k))))`` per element (the reference is :func:`fma_f32`)."""
    for i in range(a.size):
        v = fma_f32_jit(ra, np.float32(a[i]), fma_f32_jit(rb, np.float32(b[i]), k))
        r = int(np.rint(v))
        out[i] = min(max(r, qmin), qmax)


def tflite_add(a: np.ndarray, sa: Any, za: Any, b: np.ndarray, sb: Any, zb: Any, sc: Any, zc: Any) -> np.ndarray:
    """TFLite's int8/uint8 ADD (reference kernel): inputs shifted left by 20, each rescaled by a
    fixed-point multiplier below one, summed, rescaled to the output scale."""
    left_shift = 20
    twice_max = float(_F(2) * max(_F(sa), _F(sb)))  # float arithmetic, then widened to double
    m1, s1 = quantize_multiplier(float(_F(sa)) / twice_max)
    m2, s2 = quantize_multiplier(float(_F(sb)) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * float(_F(sc))))
    x1 = (a.astype(np.int64) - int(za)) << left_shift
    x2 = (b.astype(np.int64) - int(zb)) << left_shift
    raw = _mbqm(x1, m1, s1) + _mbqm(x2, m2, s2)
    out = _mbqm(raw, mo, so) + int(zc)
    qmin, qmax = qrange(np.asarray(zc).dtype)
    return np.clip(out, qmin, qmax).astype(np.asarray(zc).dtype)


def tflite_mul(a: np.ndarray, sa: Any, za: Any, b: np.ndarray, sb: Any, zb: Any, sc: Any, zc: Any) -> np.ndarray:
    """TFLite's int8/uint8 MUL (reference kernel): the integer product requantized by
    ``sa * sb / sc`` (double) as a fixed-point multiplier."""
    m, shift = quantize_multiplier(float(_F(sa)) * float(_F(sb)) / float(_F(sc)))
    prod = (a.astype(np.int64) - int(za)) * (b.astype(np.int64) - int(zb))
    out = _mbqm(prod, m, shift) + int(zc)
    qmin, qmax = qrange(np.asarray(zc).dtype)
    return np.clip(out, qmin, qmax).astype(np.asarray(zc).dtype)


def _mbqm(x: np.ndarray, m: int, shift: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    return requantize_tflite(x.astype(np.int32), m, shift, 0, -(2**31), 2**31 - 1, dtype=np.int64)


# MLAS's logistic: a rational approximation on [-18, 18] (odd polynomial over even polynomial).
_ALPHA = (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
          2.48287947061529e-01)  # fmt: skip
_BETA = (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
         1.16817656904453e-01, 9.93151921023180e-01)  # fmt: skip


def mlas_logistic(x: np.ndarray) -> np.ndarray:
    """MLAS ``MlasComputeLogistic`` in float32 (the sigmoid ONNX Runtime's CPU kernels use)."""
    v = np.clip(np.asarray(x, dtype=_F), _F(-18.0), _F(18.0))
    v2 = (v * v).astype(_F)
    p = _F(_ALPHA[0])
    for c in _ALPHA[1:]:
        p = fma_f32(p, v2, _F(c))
    p = (p * v).astype(_F)
    q = _F(_BETA[0])
    for c in _BETA[1:]:
        q = fma_f32(q, v2, _F(c))
    out = ((p / q).astype(_F) + _F(0.5)).astype(_F)
    return np.clip(out, _F(0.0), _F(1.0))


class _Lookup(Op):
    """A unary op run as a 256-entry table ``quantize(f(dequantize(q)))``, built once per parameters."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        onnx_mode_only(ctx)
        self._tables: dict[tuple[Any, ...], np.ndarray] = {}

    def fn(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _build(self, dtype: Any, xs: np.ndarray, xz: np.ndarray, ys: np.ndarray, yz: np.ndarray) -> np.ndarray:
        qmin, qmax = qrange(dtype)
        q = np.arange(qmin, qmax + 1, dtype=np.int32)
        deq = ((q - np.int32(xz)).astype(_F) * xs).astype(_F)
        return quantize_onnx(self.fn(deq), ys, yz, np.dtype(dtype))

    def run(
        self, x: np.ndarray, x_scale: Any, x_zp: Any = None, y_scale: Any = None, y_zp: Any = None
    ) -> tuple[Any, ...]:
        ctx = self.ctx
        x = np.asarray(x)
        check_int_dtype(ctx, x, "X", _I8)
        xs = scalar(ctx, x_scale, "X_scale").astype(_F)
        xz = scalar(ctx, zero_point_or_default(x_zp, x.dtype), "X_zero_point")
        ys = scalar(ctx, y_scale, "Y_scale").astype(_F)
        yz = scalar(ctx, zero_point_or_default(y_zp, x.dtype), "Y_zero_point")
        key = (x.dtype.str, float(xs), int(xz), float(ys), int(yz))
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = self._build(x.dtype, xs, xz, ys, yz)
        return (table[x.astype(np.int32) - qrange(x.dtype)[0]],)


@register("QLinearSigmoid", domain="com.microsoft", since=1)
class QLinearSigmoid(_Lookup):
    """com.microsoft QLinearSigmoid (table over MLAS's logistic)."""

    def fn(self, x: np.ndarray) -> np.ndarray:
        return mlas_logistic(x)


@register("QLinearLeakyRelu", domain="com.microsoft", since=1)
class QLinearLeakyRelu(_Lookup):
    """com.microsoft QLinearLeakyRelu: ``x if x >= 0 else alpha * x`` through a table."""

    def __init__(self, ctx: OpContext) -> None:
        self.alpha = _F(ctx.attr("alpha", 0.01))
        super().__init__(ctx)

    def fn(self, x: np.ndarray) -> np.ndarray:
        return np.where(x >= 0, x, (x * self.alpha).astype(_F)).astype(_F)
