"""Integer matrix products: QLinearMatMul, MatMulInteger (ONNX) and the com.microsoft
QGemm, MatMulIntegerToFloat and DynamicQuantizeMatMul.

All are ``acc = (a - a_zp) @ (b - b_zp)`` in int32 followed by either
requantization (float32 scale ``a_scale * b_scale / y_scale``, ONNX
Runtime's order of operations) or a float output ``float32(acc) * scale (+ bias)``.
``a`` parameters are per tensor or per row, ``b`` parameters per tensor or
per column (1-D of N).

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.qlinear_matmul import MatMulInteger
    >>> a = np.array([[1, 2]], np.uint8); b = np.array([[3], [4]], np.int8)
    >>> MatMulInteger(OpContext("m", "MatMulInteger", opset=10)).run(a, b)[0]
    array([[11]], dtype=int32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.quantized._common import (
    bad_model,
    check_int_dtype,
    const_input,
    kernel_requant,
    onnx_scale,
    requantize,
    scalar,
    static_size,
    try_kernel,
    unsupported,
    zero_point_or_default,
)
from edgeai.ops.quantized.quantize_linear import dynamic_quantize_uint8
from edgeai.ops.quantized.reference import matmul_int32, wrap_int32

__all__ = ["DynamicQuantizeMatMul", "MatMulInteger", "MatMulIntegerToFloat", "QGemm", "QLinearMatMul"]

_I8 = ("int8", "uint8")


def _a_param(ctx: OpContext, p: Any, a: np.ndarray, what: str) -> np.ndarray:
    """Per tensor, or per row of ``a`` (1-D of M) shaped to broadcast as a column."""
    arr = np.asarray(p)
    if arr.size == 1 and arr.ndim <= 1:
        return arr.reshape(())
    m = a.shape[-2] if a.ndim >= 2 else 1
    if arr.ndim == 1 and arr.shape[0] == m:
        return arr.reshape(m, 1)
    raise bad_model(ctx, f"{what} must be a scalar or have one entry per row ({m}), got shape {arr.shape}")


def _b_param(ctx: OpContext, p: Any, b: np.ndarray, what: str) -> np.ndarray:
    """Per tensor, or per column of ``b`` (1-D of N; or ``b``'s batch shape with a 1 for K)."""
    arr = np.asarray(p)
    if arr.size == 1 and arr.ndim <= 1:
        return arr.reshape(())
    n = b.shape[-1]
    if arr.ndim == 1 and arr.shape[0] == n:
        return arr
    if arr.ndim == b.ndim and arr.shape[-1] == n and arr.shape[-2] == 1:
        return arr
    raise bad_model(ctx, f"{what} must be a scalar or have one entry per column ({n}), got shape {arr.shape}")


def _fused_gemm(
    ctx: OpContext, b: Any, params: tuple[Any, ...], alpha: Any = None, bias: Any = None
) -> tuple[Callable[..., np.ndarray], np.dtype, int] | None:
    """The GEMM kernel with bias and requantization fused, packed now, or None.

    ``params``: the constant ``(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp)`` (per tensor for
    ``a`` and ``y``, per tensor or per column for ``b``, float32 scales, 8-bit zero points)."""
    if b is None or any(p is None for p in params):
        return None
    b = np.asarray(b)
    a_scale, a_zp, b_scale, b_zp, y_scale, y_zp = (np.asarray(p) for p in params)
    if b.ndim != 2 or b.dtype.name not in _I8 or a_zp.dtype.name not in _I8 or y_zp.dtype.name not in _I8:
        return None
    if any(v.dtype != np.float32 for v in (a_scale, b_scale, y_scale)):
        return None
    if a_scale.size != 1 or a_zp.size != 1 or y_scale.size != 1 or y_zp.size != 1:
        return None
    n = b.shape[1]
    if b_scale.size not in (1, n) or b_zp.size not in (1, n):
        return None
    bz = b_zp.reshape(()) if b_zp.size == 1 else b_zp.reshape(-1)
    bs = b_scale.reshape(()) if b_scale.size == 1 else b_scale.reshape(-1)
    num = (a_scale.reshape(()), bs) if alpha is None else (alpha, a_scale.reshape(()), bs)
    requant = kernel_requant(ctx, num, y_scale.reshape(()), y_zp.reshape(()))
    if requant is None:
        return None
    a_shape = getattr(ctx.input_values[0], "shape", None) if ctx.input_values else None
    macs = None if a_shape is None else static_size(a_shape) * n  # M * K * N, a symbolic batch as 1
    kernel = try_kernel(ctx, "prepare_gemm", b, bz, a_dtype=a_zp.dtype, bias=bias, requant=requant, macs=macs)
    return None if kernel is None else (kernel, a_zp.dtype, int(a_zp.reshape(())))


class _IntegerMatMul(Op):
    _b_index = 1

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._kernels: dict[str, Callable[..., np.ndarray] | None] = {}

    def _accumulate(self, a: np.ndarray, a_zp: np.ndarray, b: np.ndarray, b_zp: np.ndarray) -> np.ndarray:
        if a.ndim < 1 or b.ndim < 1:
            raise bad_model(self.ctx, "matmul inputs must have rank >= 1")
        if a.shape[-1] != (b.shape[-2] if b.ndim >= 2 else b.shape[0]):
            raise bad_model(self.ctx, f"matmul shapes {a.shape} and {b.shape} do not agree on K")
        if (
            const_input(self.ctx, self._b_index) is not None
            and b.ndim == 2
            and a.ndim >= 2
            and np.ndim(a_zp) == 0
            and np.ndim(b_zp) <= 1
        ):
            key = a.dtype.str
            if key not in self._kernels:
                self._kernels[key] = try_kernel(self.ctx, "prepare_gemm", b, b_zp, a_dtype=a.dtype)
            kernel = self._kernels[key]
            if kernel is not None:
                lead = a.shape[:-1]
                return kernel(a.reshape(-1, a.shape[-1]), int(a_zp)).reshape(*lead, b.shape[-1])
        return matmul_int32(a, a_zp, b, b_zp)


@register("MatMulInteger", since=10)
class MatMulInteger(_IntegerMatMul):
    """ONNX MatMulInteger: int32 ``(a - a_zp) @ (b - b_zp)``."""

    def run(
        self,
        a: np.ndarray,
        b: np.ndarray,
        a_zero_point: np.ndarray | None = None,
        b_zero_point: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        check_int_dtype(self.ctx, a, "A", _I8)
        check_int_dtype(self.ctx, b, "B", _I8)
        az = _a_param(self.ctx, zero_point_or_default(a_zero_point, a.dtype), a, "a_zero_point")
        bz = _b_param(self.ctx, zero_point_or_default(b_zero_point, b.dtype), b, "b_zero_point")
        return (self._accumulate(a, az, b, bz),)


@register("QLinearMatMul", since=10)
@register("QLinearMatMul", since=21)
class QLinearMatMul(_IntegerMatMul):
    """ONNX QLinearMatMul: integer matmul requantized with ``a_scale * b_scale / y_scale``."""

    _b_index = 3

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        params = tuple(const_input(ctx, i) for i in (1, 2, 4, 5, 6, 7))
        self.fused = _fused_gemm(ctx, const_input(ctx, 3), params)
        """(kernel, A's dtype, A's zero point): the GEMM with requantization fused, packed when the
        session is created (constant B and parameters), or None."""

    def run(
        self,
        a: np.ndarray,
        a_scale: np.ndarray,
        a_zero_point: np.ndarray,
        b: np.ndarray,
        b_scale: np.ndarray,
        b_zero_point: np.ndarray,
        y_scale: np.ndarray,
        y_zero_point: np.ndarray,
    ) -> tuple[Any, ...]:
        fused = self.fused
        if fused is not None and type(a) is np.ndarray and a.ndim >= 2 and a.dtype == fused[1]:
            lead = a.shape[:-1]
            return (fused[0](a.reshape(-1, a.shape[-1]), fused[2]).reshape(*lead, -1),)
        ctx = self.ctx
        check_int_dtype(ctx, a, "A", _I8)
        check_int_dtype(ctx, b, "B", _I8)
        acc = self._accumulate(
            a, _a_param(ctx, a_zero_point, a, "a_zero_point"), b, _b_param(ctx, b_zero_point, b, "b_zero_point")
        )
        yz = scalar(ctx, y_zero_point, "y_zero_point")
        num = (_a_param(ctx, a_scale, a, "a_scale"), _b_param(ctx, b_scale, b, "b_scale"))
        ys = scalar(ctx, y_scale, "y_scale")
        scale_types = {np.asarray(v).dtype.name for v in (*num, ys)}
        if scale_types == {"float32"}:
            return (requantize(ctx, acc, num, ys, yz, yz.dtype),)
        if not scale_types <= {"float16", "bfloat16", "float32"}:
            raise unsupported(ctx, f"scales of type {sorted(scale_types)}")
        # float16/bfloat16 scales (opset 21): the multiplier in the scales' own type, as the
        # ONNX reference computes it; ONNX Runtime's CPU provider has no such kernel.
        mult = (num[0] * num[1] / ys).astype(np.float64)
        qmin, qmax = np.iinfo(yz.dtype).min, np.iinfo(yz.dtype).max
        y = np.rint(acc.astype(np.float64) * mult + float(yz))
        return (np.clip(y, qmin, qmax).astype(yz.dtype),)


@register("QGemm", domain="com.microsoft", since=1)
class QGemm(_IntegerMatMul):
    """com.microsoft QGemm: ``alpha * A' B' + C`` on integers; quantized output or float.

    The int32 bias ``C`` is added to the accumulator; the output scale is
    ``alpha * a_scale * b_scale / y_scale`` (float32, left to right), or, with
    no ``y_scale``, the float output is ``float32(acc) * (alpha * a_scale * b_scale)``.
    """

    _b_index = 3
    program_safe = True  # the bound step's work is the fused GEMM's recorded kernel call

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.alpha = np.float32(ctx.attr("alpha", 1.0))
        self.trans_a = int(ctx.attr("transA", 0))
        self.trans_b = int(ctx.attr("transB", 0))
        b = const_input(ctx, 3)
        self._b_t = None if b is None or not self.trans_b else np.ascontiguousarray(b.T)
        self.fused: tuple[Callable[..., np.ndarray], np.dtype, int] | None = None
        """(kernel, A's dtype, A's zero point): the quantized-output GEMM with bias and
        requantization fused, packed when the session is created, or None."""
        self._c_absent = True
        c = const_input(ctx, 6)
        c_absent = len(ctx.input_consts) <= 6 or (len(ctx.input_values) > 6 and ctx.input_values[6] is None)
        n = None if b is None else (b.shape[0] if self.trans_b else b.shape[-1])
        c_ok = c_absent or (c is not None and c.dtype == np.int32 and c.size == n and c.ndim <= 2 and c.shape[-1] == n)
        if c_ok and len(ctx.input_consts) > 8:
            params = tuple(const_input(ctx, i) for i in (1, 2, 4, 5, 7, 8))
            b2 = self._b_t if self.trans_b else b
            bias = None if c is None else np.asarray(c).reshape(-1)
            self.fused = _fused_gemm(ctx, b2, params, alpha=self.alpha, bias=bias)
            self._c_absent = c is None

    def bind_static(
        self, nhwc_in: frozenset[int] = frozenset(), nhwc_out: bool = False
    ) -> tuple[Callable[[np.ndarray], tuple[Any, ...]], tuple[int, ...]] | None:
        """``(step(a), (0,))`` when the fused GEMM was packed at creation (every input but ``a`` is then a
        constant this op holds): a 2-D ``a`` of its dtype goes straight to the kernel, anything else to
        :meth:`run` with the constants. None otherwise."""
        fused = self.fused
        if fused is None:
            return None
        kernel, dtype, zp = fused
        consts = tuple(self.ctx.input_consts[1:9]) + (None,) * max(0, 9 - len(self.ctx.input_consts))
        run, ndarray, trans_a = self.run, np.ndarray, self.trans_a

        def step(a: np.ndarray) -> tuple[Any, ...]:
            if type(a) is ndarray and a.ndim == 2 and a.dtype == dtype:
                return (kernel(a.T if trans_a else a, zp),)
            return run(a, *consts)

        return step, (0,)

    def run(
        self,
        a: np.ndarray,
        a_scale: np.ndarray,
        a_zero_point: np.ndarray,
        b: np.ndarray,
        b_scale: np.ndarray,
        b_zero_point: np.ndarray,
        c: np.ndarray | None = None,
        y_scale: np.ndarray | None = None,
        y_zero_point: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        fused = self.fused
        if (
            fused is not None
            and type(a) is np.ndarray
            and a.ndim == 2
            and a.dtype == fused[1]
            and (c is None) == self._c_absent
        ):
            return (fused[0](a.T if self.trans_a else a, fused[2]),)
        ctx = self.ctx
        check_int_dtype(ctx, a, "A", _I8)
        check_int_dtype(ctx, b, "B", _I8)
        if a.ndim != 2 or b.ndim != 2:
            raise bad_model(ctx, f"QGemm needs 2-D A and B, got {a.shape} and {b.shape}")
        a2 = a.T if self.trans_a else a
        b2 = (self._b_t if self._b_t is not None else b.T) if self.trans_b else b
        bz = _b_param(ctx, b_zero_point, b2, "b_zero_point")
        acc = self._accumulate(a2, scalar(ctx, a_zero_point, "a_zero_point"), b2, bz)
        if c is not None:
            cc = np.asarray(c)
            if cc.dtype != np.int32:
                raise bad_model(ctx, f"C must be int32, got {cc.dtype}")
            acc = wrap_int32(acc.astype(np.int64) + cc)
        bs = _b_param(ctx, b_scale, b2, "b_scale")
        num = (self.alpha, scalar(ctx, a_scale, "a_scale"), bs)
        if y_scale is None:
            return ((acc.astype(np.float32) * onnx_scale(*num)).astype(np.float32),)
        yz = scalar(ctx, zero_point_or_default(y_zero_point, np.uint8), "y_zero_point")
        return (requantize(ctx, acc, num, scalar(ctx, y_scale, "y_scale"), yz, yz.dtype),)


def _float_output(acc: np.ndarray, scale: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = (acc.astype(np.float32) * scale).astype(np.float32)
    if bias is not None:
        y = (y + np.asarray(bias, dtype=np.float32)).astype(np.float32)
    return y


@register("MatMulIntegerToFloat", domain="com.microsoft", since=1)
class MatMulIntegerToFloat(_IntegerMatMul):
    """com.microsoft MatMulIntegerToFloat: ``float32(acc) * (a_scale * b_scale) + bias``."""

    def run(
        self,
        a: np.ndarray,
        b: np.ndarray,
        a_scale: np.ndarray,
        b_scale: np.ndarray,
        a_zero_point: np.ndarray | None = None,
        b_zero_point: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        ctx = self.ctx
        check_int_dtype(ctx, a, "A", _I8)
        check_int_dtype(ctx, b, "B", _I8)
        az = scalar(ctx, zero_point_or_default(a_zero_point, a.dtype), "a_zero_point")
        bz = _b_param(ctx, zero_point_or_default(b_zero_point, b.dtype), b, "b_zero_point")
        acc = self._accumulate(a, az, b, bz)
        scale = onnx_scale(scalar(ctx, a_scale, "a_scale"), _b_param(ctx, b_scale, b, "b_scale"))
        return (_float_output(acc, scale, bias),)


@register("DynamicQuantizeMatMul", domain="com.microsoft", since=1)
class DynamicQuantizeMatMul(_IntegerMatMul):
    """com.microsoft DynamicQuantizeMatMul: A quantized to uint8 on the fly, then MatMulIntegerToFloat."""

    def run(
        self,
        a: np.ndarray,
        b: np.ndarray,
        b_scale: np.ndarray,
        b_zero_point: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        ctx = self.ctx
        check_int_dtype(ctx, b, "B", _I8)
        aq, a_scale, a_zp = dynamic_quantize_uint8(np.asarray(a, dtype=np.float32))
        bz = _b_param(ctx, zero_point_or_default(b_zero_point, b.dtype), b, "b_zero_point")
        acc = self._accumulate(aq, a_zp.reshape(()), b, bz)
        scale = onnx_scale(a_scale, _b_param(ctx, b_scale, b, "b_scale"))
        return (_float_output(acc, scale, bias),)
