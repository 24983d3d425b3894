"""MatMul, Gemm, Einsum and Det in numpy (BLAS for float32/float64).

float16 and bfloat16 products are computed in float32 and rounded once at
the end (numpy has no fast half-precision GEMM). A constant ``B`` of Gemm is
transposed once when the session is built, not on every run.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> Gemm = lookup("Gemm", "", 13)
    >>> ctx = OpContext(node_name="g", op_type="Gemm", opset=13, attrs={"transB": 1, "alpha": 2.0})
    >>> Gemm(ctx).run(np.ones((1, 2), np.float32), np.ones((3, 2), np.float32), None)[0]
    array([[4., 4., 4.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext
from edgeai.ops.elementwise import as_dtype, is_float, register_versions, unsupported

__all__: list[str] = []


def _work(x: np.ndarray) -> np.ndarray:
    """float16/bfloat16 -> float32 for BLAS; other dtypes unchanged."""
    if x.dtype.itemsize < 4 and is_float(x.dtype):
        return x.astype(np.float32)
    return x


@register_versions("MatMul", (1, 9, 13))
class MatMul(Op):
    """numpy ``matmul`` semantics, which are ONNX's (1-D operands promoted and squeezed)."""

    def run(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
        a = np.asarray(a)
        b = np.asarray(b)
        try:
            out = np.matmul(_work(a), _work(b))
        except ValueError as exc:
            raise InferenceError(
                f"MatMul node {self.ctx.node_name!r}: shapes {a.shape} and {b.shape} do not match "
                "(the last dim of A must equal the second-to-last of B; batch dims must broadcast)"
            ) from exc
        return (as_dtype(out, a.dtype),)


@register_versions("Gemm", (1, 6, 7, 9, 11, 13))
class Gemm(Op):
    """``alpha * A' @ B' + beta * C``; C broadcasts onto the result (``broadcast=1`` before opset 7)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._alpha = float(ctx.attr("alpha", 1.0))
        self._beta = float(ctx.attr("beta", 1.0))
        self._ta = bool(ctx.attr("transA", 0))
        self._tb = bool(ctx.attr("transB", 0))
        if ctx.opset < 7 and not ctx.attr("broadcast", 0):
            self._strict_c = True
        else:
            self._strict_c = False
        b = ctx.input_consts[1] if len(ctx.input_consts) > 1 else None
        # a constant B is laid out once as a contiguous (K, N) matrix
        self._b = None if b is None else np.ascontiguousarray(_work(b.T if self._tb else b))

    def run(self, a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> tuple[np.ndarray]:
        a = np.asarray(a)
        dtype = a.dtype
        if a.ndim != 2 or np.ndim(b) != 2:
            raise InferenceError(f"Gemm node {self.ctx.node_name!r} needs 2-D A and B, got {a.shape} and {np.shape(b)}")
        aw = _work(a)
        aw = aw.T if self._ta else aw
        bw = self._b if self._b is not None else _work(np.asarray(b))
        if self._b is None and self._tb:
            bw = bw.T
        if aw.shape[1] != bw.shape[0]:
            raise InferenceError(
                f"Gemm node {self.ctx.node_name!r}: A' is {aw.shape} and B' is {bw.shape}; "
                "their inner dimensions differ"
            )
        y = aw @ bw
        if self._alpha != 1.0:
            y = y * (y.dtype.type(self._alpha) if y.dtype.kind == "f" else self._alpha)
        if c is not None and self._beta != 0.0:
            cw = _work(np.asarray(c))
            if self._strict_c and cw.shape != y.shape:
                raise InferenceError(
                    f"Gemm node {self.ctx.node_name!r} (opset {self.ctx.opset}): C {cw.shape} must be "
                    f"{y.shape} without broadcast=1"
                )
            beta = y.dtype.type(self._beta) if y.dtype.kind == "f" else self._beta
            try:
                y = y + (cw if self._beta == 1.0 else cw * beta)
            except ValueError as exc:
                raise InferenceError(
                    f"Gemm node {self.ctx.node_name!r}: C of shape {cw.shape} does not broadcast to {y.shape}"
                ) from exc
        return (as_dtype(y, dtype),)


@register_versions("Einsum", (12, 28))  # 28 adds bfloat16
class Einsum(Op):
    """numpy ``einsum`` with path optimisation; the equation is checked when the session is built."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        eq = ctx.attr("equation")
        if not isinstance(eq, str) or not eq.strip():
            raise unsupported(ctx, "the 'equation' attribute is missing or empty")
        self._eq = eq.replace(" ", "")

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray]:
        arrays = [np.asarray(x) for x in xs]
        dtype = arrays[0].dtype
        work = [_work(x) for x in arrays]
        try:
            # optimize=True plans the contraction and hands it to BLAS (~10x faster on
            # attention-sized inputs); the plan costs ~10 us, too much for tiny inputs
            big = len(work) > 2 or sum(x.size for x in work) > 4096
            out = np.einsum(self._eq, *work, optimize=big)
        except ValueError as exc:
            raise InferenceError(
                f"Einsum node {self.ctx.node_name!r}: equation {self._eq!r} does not fit input shapes "
                f"{[x.shape for x in arrays]}: {exc}"
            ) from exc
        return (as_dtype(out, dtype),)


@register_versions("Det", (11, 22))
class Det(Op):
    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            raise InferenceError(f"Det node {self.ctx.node_name!r} needs [..., M, M] input, got {x.shape}")
        return (as_dtype(np.linalg.det(_work(x)), x.dtype),)
