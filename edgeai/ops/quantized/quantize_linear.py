"""QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear (ONNX), as ONNX Runtime computes them.

* QuantizeLinear: ``sat(rint(x / scale) + zp)``: a float32 *division* (not a
  multiply by the reciprocal), clamped to ``[qmin - zp, qmax - zp]`` before
  rounding half to even; NaN saturates to ``qmin`` (MLAS's ``max_ps`` keeps
  its second operand when the first is NaN).
* DequantizeLinear: ``float32(x - zp) * scale``.
* With ``requant_mode="tflite"``, QuantizeLinear rounds ties away from zero
  (TFLite's QUANTIZE); DequantizeLinear is the same in both modes.
* Per tensor, per axis and blocked (opset 21) parameters; int8, uint8, int16,
  uint16 and the ml_dtypes int4, uint4, int2, uint2 integer types.
* Float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz) and float4 (e2m1) outputs/inputs
  follow the ONNX definition (``x / scale`` cast with saturation, round to
  nearest even; the zero point of float8 must be 0). ONNX Runtime's CPU
  provider has no float8 kernels, so these are checked against ONNX's own
  node tests, not against ONNX Runtime.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.quantize_linear import QuantizeLinear
    >>> q = QuantizeLinear(OpContext("q", "QuantizeLinear", opset=13))
    >>> q.run(np.array([-1.0, 0.25, 0.75, 300.0], np.float32), np.float32(0.5), np.uint8(10))[0]
    array([  8,  10,  12, 255], dtype=uint8)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from edgeai.errors import InputShapeError
from edgeai.kernels import _record
from edgeai.ops._base import Op, OpContext, nhwc_base, register
from edgeai.ops.quantized._common import bad_model, c_order, check_int_dtype, const_input, unsupported
from edgeai.quant.params import expand_param, qrange

__all__ = ["DequantizeLinear", "DynamicQuantizeLinear", "QuantizeLinear", "quantize_onnx"]

_INTS = ("int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2")
_FLOAT8 = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz")
_FLOAT4 = ("float4_e2m1fn",)
_QTYPES = _INTS + _FLOAT8 + _FLOAT4
_F32 = np.dtype(np.float32)


def quantize_onnx(
    x: np.ndarray, scale: np.ndarray, zp: np.ndarray, out_dtype: Any, *, half_away: bool = False
) -> np.ndarray:
    """MLAS ``QuantizeLinear``: float32 divide, clamp, round half to even, add zero point.

    ``half_away=True`` rounds ties away from zero instead (TFLite's ``TfLiteRound``).
    """
    qmin, qmax = qrange(out_dtype)
    v = np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32)
    zp32 = np.asarray(zp).astype(np.int32)
    lo = (qmin - zp32).astype(np.float32)
    hi = (qmax - zp32).astype(np.float32)
    v = np.where(np.isnan(v), lo, v)
    v = np.minimum(np.maximum(v, lo), hi)
    r = np.trunc(v + np.copysign(np.float32(0.5), v)) if half_away else np.rint(v)
    return (r.astype(np.int32) + zp32).astype(out_dtype)


def _onnx_dtype(code: int) -> np.dtype[Any]:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(code))


class _QParams(Op):
    accepts_nhwc_views = True  # the numba loop walks a view in memory order; numpy handles any strides
    program_safe = True  # the bound step's work is one kernel call (edgeai.graph.program)

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.nhwc_views = False  # set by the executor: results may stay NCHW views of NHWC arrays
        self.axis = int(ctx.attr("axis", 1))
        self.block_size = int(ctx.attr("block_size", 0))
        if self.block_size < 0:
            raise bad_model(ctx, f"block_size must be >= 0, got {self.block_size}")
        if ctx.opset < 21 and self.block_size:
            raise bad_model(ctx, "block_size needs opset 21 or newer")
        code = int(ctx.attr("output_dtype", 0))
        self.attr_dtype = _onnx_dtype(code) if code else None

    _per_tensor: tuple[np.ndarray, np.dtype[Any]] | None  # the per-tensor fast path's parameters (subclasses)

    @property
    def nhwc_raw_output(self) -> bool:
        """Whether the bound step can hand its result on as an NHWC array: the per-tensor fast path
        on an input of declared rank 4 (written NHWC from NCHW, as for ``nhwc_views``)."""
        value = self.ctx.input_values[0] if self.ctx.input_values else None
        shape = getattr(value, "shape", None)
        return self._per_tensor is not None and shape is not None and len(shape) == 4

    def _params(self, x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None) -> tuple[np.ndarray, ...]:
        s = expand_param(np.asarray(scale), x.shape, self.axis, self.block_size)
        z = None if zp is None else expand_param(np.asarray(zp), x.shape, self.axis, self.block_size)
        return s, z


def _plain_step(
    run: Callable[..., tuple[Any, ...]], consts: Any, kernel: Any, params: np.ndarray, in_dtype: Any, out_dtype: Any
) -> Callable[[np.ndarray], tuple[Any, ...]]:
    """The bound step of a per-tensor QuantizeLinear/DequantizeLinear between plain (NCHW) values:
    ``kernel`` over a C-contiguous input of ``in_dtype`` in memory order, anything else through
    ``run`` with the constants."""
    ndarray, empty, in_dtype = np.ndarray, np.empty, np.dtype(in_dtype)

    def step(x: np.ndarray) -> tuple[Any, ...]:
        if type(x) is ndarray and x.dtype == in_dtype and x.flags.c_contiguous:
            out = empty(x.shape, out_dtype)
            args = (x.reshape(-1), params, out.reshape(-1))
            if _record.RECORD is not None:
                _record.RECORD.append((kernel, args))
            kernel(*args)
            return (out,)
        return run(x, *consts)

    return step


@register("QuantizeLinear", since=10)
@register("QuantizeLinear", since=13)
@register("QuantizeLinear", since=19)
@register("QuantizeLinear", since=21)
class QuantizeLinear(_QParams):
    """ONNX QuantizeLinear with ONNX Runtime's float arithmetic."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        zp = const_input(ctx, 2)
        if zp is not None:
            check_int_dtype(ctx, np.asarray(zp), "zero point", _QTYPES)
        if self.attr_dtype is not None:
            check_int_dtype(ctx, np.zeros(0, self.attr_dtype), "output_dtype", _QTYPES)
        if int(ctx.attr("precision", 0)):
            raise unsupported(ctx, "the precision attribute")
        self.saturate = bool(int(ctx.attr("saturate", 1)))
        # per-tensor constant scale and 8-bit zero point, ONNX mode: one numba loop over float32 input
        self._per_tensor: tuple[np.ndarray, np.dtype[Any]] | None = None
        """``(float32 [scale, qmin - zp, qmax - zp, zp], output dtype)`` of the per-tensor fast path."""
        fast = _per_tensor_8bit(ctx) if ctx.requant_mode == "onnx" and self.block_size == 0 else None
        if fast is not None:
            scale, zp = fast
            qmin, qmax = qrange(zp.dtype)
            params = np.array([scale, qmin - int(zp), qmax - int(zp), int(zp)], _F32)
            self._per_tensor = (params, zp.dtype)

    def bind_static(
        self, nhwc_in: frozenset[int] = frozenset(), nhwc_out: bool = False
    ) -> tuple[Callable[[np.ndarray], tuple[Any, ...]], tuple[int, ...]] | None:
        """With a per-tensor constant scale and zero point (ONNX mode): ``(step(x), (0,))``, with
        ``nhwc_out`` (see :mod:`edgeai.graph.executor`) writing the NHWC array of the result; None
        otherwise (:meth:`run` is called)."""
        fast = self._per_tensor
        if fast is None:
            return None
        params, dtype = fast
        run, consts, ndarray, empty = self.run, self.ctx.input_consts[1:3], np.ndarray, np.empty
        if not nhwc_out:
            return None if self.nhwc_views else (_plain_step(run, consts, _quantize_8bit, params, _F32, dtype), (0,))

        def step(x: np.ndarray) -> tuple[Any, ...]:
            if type(x) is ndarray and x.dtype == _F32 and x.ndim == 4 and x.flags.c_contiguous:
                out = empty((x.shape[0], x.shape[2], x.shape[3], x.shape[1]), dtype)
                if _record.RECORD is not None:
                    _record.RECORD.append((_quantize_8bit_nchw_to_nhwc, (x, params, out)))
                _quantize_8bit_nchw_to_nhwc(x, params, out)
                return (out,)
            y = run(x, *consts)[0]
            if y.ndim != 4:
                raise InputShapeError(f"{self.ctx.node_name!r}: the model declares a rank-4 input, got {x.shape}")
            return (y.transpose(0, 2, 3, 1),)

        return step, (0,)

    def run(self, x: np.ndarray, y_scale: np.ndarray, y_zero_point: np.ndarray | None = None) -> tuple[Any, ...]:
        fast = self._per_tensor
        if fast is not None and type(x) is np.ndarray and x.dtype == _F32:
            params, dtype = fast
            if self.nhwc_views and x.ndim == 4 and x.flags.c_contiguous:
                # an NCHW graph input read by convolutions: written NHWC here (the NHWC kernels
                # would otherwise copy the NCHW bytes into NHWC, a slow strided copy for few channels)
                out = np.empty((x.shape[0], x.shape[2], x.shape[3], x.shape[1]), dtype)
                _quantize_8bit_nchw_to_nhwc(x, params, out)
                return (out.transpose(0, 3, 1, 2),)
            if not x.flags.c_contiguous:
                base = nhwc_base(x)
                if base is not None:  # an NCHW view of an NHWC array: walked in memory order
                    out = np.empty(base.shape, dtype)
                    _quantize_8bit(base.reshape(-1), params, out.reshape(-1))
                    out = out.transpose(0, 3, 1, 2)
                    return (out if self.nhwc_views else np.ascontiguousarray(out),)
                x = np.ascontiguousarray(x)
            out = np.empty(x.shape, dtype)
            _quantize_8bit(x.reshape(-1), params, out.reshape(-1))
            return (out,)
        x = c_order(np.asarray(x))
        if y_zero_point is not None:
            out_dtype = np.asarray(y_zero_point).dtype
        else:
            out_dtype = self.attr_dtype if self.attr_dtype is not None else np.dtype(np.uint8)
        check_int_dtype(self.ctx, np.zeros(0, out_dtype), "output type", _QTYPES)
        s, z = self._params(x, y_scale, y_zero_point)
        if out_dtype.name in _INTS:
            zp = np.zeros((), np.int32) if z is None else z
            return (quantize_onnx(x, s, zp, out_dtype, half_away=self.ctx.requant_mode == "tflite"),)
        v = (np.asarray(x, dtype=np.float32) / np.asarray(s, dtype=np.float32)).astype(np.float32)
        if out_dtype.name in _FLOAT4:
            if z is not None:
                v = (v + z.astype(np.float32)).astype(np.float32)
            return (v.astype(out_dtype),)  # no inf/nan encoding: the cast saturates
        if self.saturate:
            from onnx.numpy_helper import saturate_cast

            return (saturate_cast(v, out_dtype),)
        return (v.astype(out_dtype),)


@register("DequantizeLinear", since=10)
@register("DequantizeLinear", since=13)
@register("DequantizeLinear", since=19)
@register("DequantizeLinear", since=21)
class DequantizeLinear(_QParams):
    """ONNX DequantizeLinear: ``float32(x - zp) * scale``, output in the scale's float type."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        fast = _per_tensor_8bit(ctx) if self.block_size == 0 and self.attr_dtype in (None, np.float32) else None
        self._per_tensor: tuple[np.ndarray, np.dtype[Any]] | None = None
        """``(float32 [scale, zp], input dtype)`` of the per-tensor fast path."""
        if fast is not None:
            self._per_tensor = (np.array([fast[0], int(fast[1])], _F32), fast[1].dtype)

    @property
    def nhwc_raw_inputs(self) -> tuple[int, ...]:
        """``(0,)`` with the per-tensor fast path: the bound step then takes ``x`` as an NHWC array."""
        return (0,) if self._per_tensor is not None else ()

    def bind_static(
        self, nhwc_in: frozenset[int] = frozenset(), nhwc_out: bool = False
    ) -> tuple[Callable[[np.ndarray], tuple[Any, ...]], tuple[int, ...]] | None:
        """With a per-tensor constant scale and zero point (ONNX mode): ``(step(x), (0,))``, with
        ``0 in nhwc_in`` or ``nhwc_out`` (see :mod:`edgeai.graph.executor`) reading or writing NHWC
        arrays; None otherwise (:meth:`run` is called)."""
        fast = self._per_tensor
        if fast is None:
            return None
        params, qdtype = fast
        run, consts, ndarray, empty, views = self.run, self.ctx.input_consts[1:3], np.ndarray, np.empty, self.nhwc_views
        if not (nhwc_in or nhwc_out):
            # (a C-contiguous input is read in memory order whatever the readers take: run() does the same)
            return _plain_step(run, consts, _dequantize_8bit, params, qdtype, _F32), (0,)
        raw_in, raw_out = 0 in nhwc_in, nhwc_out

        def step(x: np.ndarray) -> tuple[Any, ...]:
            if raw_in and type(x) is ndarray and x.dtype == qdtype and x.flags.c_contiguous:
                if raw_out or views:
                    out = empty(x.shape, _F32)
                    if _record.RECORD is not None:
                        _record.RECORD.append((_dequantize_8bit, (x.reshape(-1), params, out.reshape(-1))))
                    _dequantize_8bit(x.reshape(-1), params, out.reshape(-1))
                    return (out,) if raw_out else (out.transpose(0, 3, 1, 2),)
                nchw = empty((x.shape[0], x.shape[3], x.shape[1], x.shape[2]), _F32)
                if _record.RECORD is not None:
                    _record.RECORD.append((_dequantize_8bit_nhwc_to_nchw, (x, params, nchw)))
                _dequantize_8bit_nhwc_to_nchw(x, params, nchw)
                return (nchw,)
            y = run(x.transpose(0, 3, 1, 2) if raw_in else x, *consts)[0]
            if not raw_out:
                return (y,)
            if y.ndim != 4:
                raise InputShapeError(f"{self.ctx.node_name!r}: the model declares a rank-4 input, got {x.shape}")
            return (y.transpose(0, 2, 3, 1),)

        return step, (0,)

    def run(self, x: np.ndarray, x_scale: np.ndarray, x_zero_point: np.ndarray | None = None) -> tuple[Any, ...]:
        fast = self._per_tensor
        if fast is not None and type(x) is np.ndarray and x.dtype == fast[1]:
            params = fast[0]
            if not x.flags.c_contiguous:
                base = nhwc_base(x)
                if base is not None:
                    if self.nhwc_views:  # NHWC readers: the same layout, walked in memory order
                        out = np.empty(base.shape, _F32)
                        _dequantize_8bit(base.reshape(-1), params, out.reshape(-1))
                        return (out.transpose(0, 3, 1, 2),)
                    out = np.empty(x.shape, _F32)  # an NHWC result going to NCHW readers: written NCHW here
                    _dequantize_8bit_nhwc_to_nchw(base, params, out)
                    return (out,)
                x = np.ascontiguousarray(x)
            out = np.empty(x.shape, _F32)
            _dequantize_8bit(x.reshape(-1), params, out.reshape(-1))
            return (out,)
        x = c_order(np.asarray(x))
        check_int_dtype(self.ctx, x, "input", (*_QTYPES, "int32"))
        if x.dtype == np.int32 and x_zero_point is not None and np.any(np.asarray(x_zero_point) != 0):
            raise bad_model(self.ctx, "an int32 input must have no zero point (or zero)")
        scale = np.asarray(x_scale)
        out_dtype = self.attr_dtype if self.attr_dtype is not None else scale.dtype
        if x.dtype.name in _FLOAT8 + _FLOAT4:
            zp_nonzero = x_zero_point is not None and np.any(np.asarray(x_zero_point).astype(np.float32) != 0)
            if x.dtype.name in _FLOAT8 and zp_nonzero:
                raise bad_model(self.ctx, "a float8 input must have a zero point of 0")
            s = expand_param(scale, x.shape, self.axis, self.block_size)
            return ((x.astype(np.float32) * s.astype(np.float32)).astype(out_dtype),)
        s, z = self._params(x, scale, x_zero_point)
        centered = x.astype(np.int32) if z is None else x.astype(np.int32) - z.astype(np.int32)
        y = centered.astype(np.float32) * s.astype(np.float32)
        return (y.astype(out_dtype),)


def _per_tensor_8bit(ctx: OpContext) -> tuple[np.float32, np.ndarray] | None:
    """(float32 scale, zero point) when both are constant, per tensor, the scale float32 and the
    zero point 8-bit; else None."""
    scale, zp = const_input(ctx, 1), const_input(ctx, 2)
    if scale is None or zp is None:
        return None
    scale, zp = np.asarray(scale), np.asarray(zp)
    if scale.size != 1 or zp.size != 1 or scale.ndim > 1 or zp.ndim > 1:
        return None
    if scale.dtype != np.float32 or zp.dtype.name not in ("int8", "uint8"):
        return None
    return np.float32(scale.reshape(())), zp.reshape(())


@njit(cache=True, nogil=True)
def _quantize_8bit(x: np.ndarray, params: np.ndarray, out: np.ndarray) -> None:
    """:func:`quantize_onnx` per element of C-contiguous ``x`` into ``out`` (same size; callers pass
    1-D views, so one compiled version serves every rank): float32 divide, NaN to ``qmin``, clamp,
    round half to even. ``params``: ``[scale, qmin - zp, qmax - zp, zp]`` (one float32 array: numba's
    dispatcher types one array faster than four scalars)."""
    xf, of = x.reshape(x.size), out.reshape(out.size)
    scale, vlo, vhi, zp = params[0], params[1], params[2], np.int32(params[3])
    for i in range(xf.size):
        v = xf[i] / scale
        if v != v:
            v = vlo
        v = min(max(v, vlo), vhi)
        of[i] = np.int32(np.rint(v)) + zp


@njit(cache=True, nogil=True)
def _quantize_8bit_nchw_to_nhwc(x: np.ndarray, params: np.ndarray, out: np.ndarray) -> None:
    """:func:`_quantize_8bit` from an NCHW ``x`` into an NHWC ``out``."""
    scale, vlo, vhi, zp = params[0], params[1], params[2], np.int32(params[3])
    nb, c, h, w = x.shape
    row = np.empty(w, np.int32)
    for n in range(nb):
        for i in range(h):
            for k in range(c):
                for j in range(w):  # one input row: this loop vectorizes
                    v = x[n, k, i, j] / scale
                    if v != v:
                        v = vlo
                    v = min(max(v, vlo), vhi)
                    row[j] = np.int32(np.rint(v)) + zp
                for j in range(w):  # then scattered C apart (output rows stay in cache)
                    out[n, i, j, k] = row[j]


@njit(cache=True, nogil=True)
def _dequantize_8bit(x: np.ndarray, params: np.ndarray, out: np.ndarray) -> None:
    """``float32(x - zp) * scale`` per element of C-contiguous ``x`` (1-D views, as for
    :func:`_quantize_8bit`); ``params``: ``[scale, zp]``."""
    xf, of = x.reshape(x.size), out.reshape(out.size)
    scale, zp = params[0], np.int32(params[1])
    for i in range(xf.size):
        of[i] = np.float32(np.int32(xf[i]) - zp) * scale


@register("DynamicQuantizeLinear", since=11)
class DynamicQuantizeLinear(Op):
    """ONNX DynamicQuantizeLinear (uint8), with ONNX Runtime's parameter arithmetic.

    ``scale = (max(x, 0) - min(x, 0)) / 255`` in float32 (1 when the range is
    empty), ``zp = rint(clamp(0 - min / scale, 0, 255))``, then QuantizeLinear.
    """

    def run(self, x: np.ndarray) -> tuple[Any, ...]:
        y, scale, zp = dynamic_quantize_uint8(np.asarray(x, dtype=np.float32))
        return y, scale, zp


def dynamic_quantize_uint8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantize a float32 array to uint8 with parameters from its own range (ORT's formulas)."""
    lo = np.float32(min(float(x.min(initial=0.0)), 0.0))
    hi = np.float32(max(float(x.max(initial=0.0)), 0.0))
    scale = np.float32(1.0) if hi == lo else np.float32((hi - lo) / np.float32(255.0))
    initial = np.float32(np.float32(0.0) - lo / scale)
    zp = np.uint8(np.rint(min(max(initial, np.float32(0.0)), np.float32(255.0))))
    return quantize_onnx(x, scale, zp, np.uint8), np.array(scale, dtype=np.float32), np.array(zp, dtype=np.uint8)


@njit(cache=True, nogil=True)
def _dequantize_8bit_nhwc_to_nchw(x: np.ndarray, params: np.ndarray, out: np.ndarray) -> None:
    """:func:`_dequantize_8bit` from an NHWC ``x`` into an NCHW ``out``."""
    scale, zp = params[0], np.int32(params[1])
    nb, h, w, c = x.shape
    pixel = np.empty(c, np.float32)
    for n in range(nb):
        for i in range(h):
            for j in range(w):
                for k in range(c):  # one input pixel: this loop vectorizes
                    pixel[k] = np.float32(np.int32(x[n, i, j, k]) - zp) * scale
                for k in range(c):
                    out[n, k, i, j] = pixel[k]
