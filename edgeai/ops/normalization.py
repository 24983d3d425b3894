"""Normalization family of the native engine: Batch, Layer, Instance, Group, RMS and Lp
normalization, LRN and MeanVarianceNormalization.

BatchNormalization folds its constant statistics into one scale and one shift
at session creation, so inference is a single multiply-add. The other
normalizations compute their statistics in float32 (float64 for float64
inputs) whatever the input type, as ONNX's ``stash_type`` asks.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.normalization import BatchNormalization
    >>> x = np.array([[[1.0], [2.0]]], np.float32)          # N=1, C=2, L=1
    >>> one, zero = np.ones(2, np.float32), np.zeros(2, np.float32)
    >>> op = BatchNormalization(OpContext(node_name="bn", op_type="BatchNormalization", opset=15,
    ...                                   attrs={"epsilon": 0.0}))
    >>> op.run(x, one * 2, zero, np.array([1, 0], np.float32), one)[0].ravel()
    array([0., 4.], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.errors import InferenceError, ModelFormatError
from edgeai.ops._base import Op, OpContext, register

__all__ = [
    "LRN",
    "BatchNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "LpNormalization",
    "MeanVarianceNormalization",
    "RMSNormalization",
]


def _stash(dtype: np.dtype) -> Any:
    return np.float64 if dtype == np.float64 else np.float32


def _per_channel(p: np.ndarray, ndim: int) -> np.ndarray:
    # 1-D parameters are per channel; older ``spatial=0`` models give (C, D1, ...) parameters
    return p.reshape((1, -1) + (1,) * (ndim - 2)) if p.ndim == 1 else p.reshape((1,) + p.shape)


@register("BatchNormalization", since=1)
@register("BatchNormalization", since=6)
@register("BatchNormalization", since=7)
@register("BatchNormalization", since=9)
@register("BatchNormalization", since=14)
@register("BatchNormalization", since=15)
class BatchNormalization(Op):
    """ONNX BatchNormalization: inference with running statistics, or ``training_mode`` (opset 14+)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.eps = float(ctx.attr("epsilon", 1e-5))
        self.training = ctx.opset >= 14 and bool(ctx.attr("training_mode", 0))
        c = tuple(ctx.input_consts) + (None,) * 5
        self._folded: tuple[np.ndarray, np.ndarray] | None = None
        if not self.training and all(v is not None for v in c[1:5]):
            self._folded = self._fold(*c[1:5])  # type: ignore[arg-type]

    def _fold(
        self, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + self.eps)
        b = bias.astype(np.float64) - mean.astype(np.float64) * a
        return a, b

    def run(
        self, x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        if self.training:
            return self._train(x, scale, bias, mean, var)
        a, b = self._folded if self._folded is not None else self._fold(scale, bias, mean, var)
        cdt = _stash(x.dtype)
        y = x.astype(cdt, copy=False) * _per_channel(a.astype(cdt), x.ndim)
        y += _per_channel(b.astype(cdt), x.ndim)
        outs: tuple[np.ndarray, ...] = (y.astype(x.dtype, copy=False),)
        if self.ctx.num_outputs > 1:
            raise InferenceError(
                f"node {self.ctx.node_name!r} (BatchNormalization): the training outputs of opset "
                f"{self.ctx.opset} (is_test=0) are not supported; export the model for inference"
            )
        return outs

    def _train(
        self, x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        momentum = float(self.ctx.attr("momentum", 0.9))
        axes = (0, *range(2, x.ndim))
        x64 = x.astype(np.float64)
        bmean = x64.mean(axis=axes)
        bvar = x64.var(axis=axes)
        a, b = self._fold(scale, bias, bmean, bvar)
        y = x64 * _per_channel(a, x.ndim) + _per_channel(b, x.ndim)
        run_mean = mean * momentum + bmean * (1 - momentum)
        run_var = var * momentum + bvar * (1 - momentum)
        outs = (y.astype(x.dtype), run_mean.astype(mean.dtype), run_var.astype(var.dtype))
        return outs[: max(1, self.ctx.num_outputs)]


@register("LayerNormalization", since=17)
class LayerNormalization(Op):
    """ONNX LayerNormalization over the axes from ``axis`` on, with optional Mean and InvStdDev outputs."""

    def run(self, x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        axis = int(self.ctx.attr("axis", -1))
        axis = axis + x.ndim if axis < 0 else axis
        eps = float(self.ctx.attr("epsilon", 1e-5))
        cdt = np.float64 if x.dtype == np.float64 else np.float32
        stash = np.float64 if int(self.ctx.attr("stash_type", 1)) == 11 else np.float32
        xs = x.astype(cdt, copy=False)
        axes = tuple(range(axis, x.ndim))
        mean = xs.mean(axis=axes, keepdims=True)
        d = xs - mean
        inv = 1.0 / np.sqrt((d * d).mean(axis=axes, keepdims=True) + eps)
        y = d * inv * scale.astype(cdt, copy=False)
        if bias is not None:
            y += bias.astype(cdt, copy=False)
        outs = (y.astype(x.dtype, copy=False), mean.astype(stash), inv.astype(stash))
        return outs[: max(1, self.ctx.num_outputs)]


@register("InstanceNormalization", since=1)
@register("InstanceNormalization", since=6)
@register("InstanceNormalization", since=22)
class InstanceNormalization(Op):
    """ONNX InstanceNormalization: each (sample, channel) normalized over its spatial axes."""

    def run(self, x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray]:
        eps = float(self.ctx.attr("epsilon", 1e-5))
        cdt = _stash(x.dtype)
        xs = x.astype(cdt, copy=False)
        axes = tuple(range(2, x.ndim))
        mean = xs.mean(axis=axes, keepdims=True)
        d = xs - mean
        var = (d * d).mean(axis=axes, keepdims=True)
        y = d / np.sqrt(var + eps) * _per_channel(scale.astype(cdt), x.ndim)
        y += _per_channel(bias.astype(cdt), x.ndim)
        return (y.astype(x.dtype, copy=False),)


@register("GroupNormalization", since=18)
@register("GroupNormalization", since=21)
class GroupNormalization(Op):
    """ONNX GroupNormalization: statistics per channel group; scale/bias per group (18) or channel (21)."""

    def run(self, x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray]:
        groups = int(self.ctx.attr("num_groups"))
        eps = float(self.ctx.attr("epsilon", 1e-5))
        n, c = x.shape[:2]
        if c % groups:
            raise InferenceError(
                f"node {self.ctx.node_name!r} (GroupNormalization): {c} channels do not divide into {groups} groups"
            )
        cdt = _stash(x.dtype)
        xs = x.astype(cdt, copy=False).reshape(n, groups, -1)
        mean = xs.mean(axis=2, keepdims=True)
        d = xs - mean
        y = (d / np.sqrt((d * d).mean(axis=2, keepdims=True) + eps)).reshape(x.shape)
        if scale.size == groups and self.ctx.opset < 21:
            scale = np.repeat(scale, c // groups)
            bias = np.repeat(bias, c // groups)
        if scale.size != c:
            raise InferenceError(
                f"node {self.ctx.node_name!r} (GroupNormalization): scale has {scale.size} values, "
                f"expected {c} (one per channel)"
            )
        y = y * _per_channel(scale.astype(cdt), x.ndim) + _per_channel(bias.astype(cdt), x.ndim)
        return (y.astype(x.dtype, copy=False),)


@register("LRN", since=1)
@register("LRN", since=13)
class LRN(Op):
    """ONNX LRN: local response normalization across ``size`` neighbouring channels."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.size = int(ctx.attr("size", 0))
        if self.size <= 0:
            raise ModelFormatError(f"node {ctx.node_name!r} (LRN): the size attribute must be positive")

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        alpha = float(self.ctx.attr("alpha", 1e-4))
        beta = float(self.ctx.attr("beta", 0.75))
        bias = float(self.ctx.attr("bias", 1.0))
        cdt = _stash(x.dtype)
        sq = x.astype(cdt) ** 2
        lo = (self.size - 1) // 2
        hi = self.size - 1 - lo
        c = x.shape[1]
        padded = np.zeros((x.shape[0], c + self.size) + x.shape[2:], dtype=cdt)
        padded[:, lo + 1 : lo + 1 + c] = sq
        csum = np.cumsum(padded, axis=1)
        window = csum[:, lo + hi + 1 : lo + hi + 1 + c] - csum[:, :c]
        y = x.astype(cdt) / (bias + alpha / self.size * window) ** beta
        return (y.astype(x.dtype, copy=False),)


@register("MeanVarianceNormalization", since=9)
@register("MeanVarianceNormalization", since=13)
class MeanVarianceNormalization(Op):
    """ONNX MeanVarianceNormalization: ``(X - mean) / (std + 1e-9)`` over ``axes`` (default 0, 2, 3)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        axes = tuple(int(a) for a in self.ctx.attr("axes", [0, 2, 3]))
        cdt = _stash(x.dtype)
        xs = x.astype(cdt, copy=False)
        mean = xs.mean(axis=axes, keepdims=True)
        var = (xs * xs).mean(axis=axes, keepdims=True) - mean * mean
        y = (xs - mean) / (np.sqrt(np.maximum(var, 0)) + 1e-9)
        return (y.astype(x.dtype, copy=False),)


@register("RMSNormalization", since=23)
class RMSNormalization(Op):
    """ONNX RMSNormalization: ``X / sqrt(mean(X²) + epsilon) * scale`` over the axes from ``axis`` on."""

    def run(self, x: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray]:
        axis = int(self.ctx.attr("axis", -1))
        axis = axis + x.ndim if axis < 0 else axis
        if not 0 <= axis < max(x.ndim, 1):
            raise InferenceError(
                f"node {self.ctx.node_name!r} (RMSNormalization): axis {axis} is out of range for rank {x.ndim}"
            )
        eps = float(self.ctx.attr("epsilon", 1e-5))
        cdt = np.float64 if x.dtype == np.float64 or int(self.ctx.attr("stash_type", 1)) == 11 else np.float32
        xs = x.astype(cdt, copy=False)
        ms = (xs * xs).mean(axis=tuple(range(axis, x.ndim)), keepdims=True)
        y = xs / np.sqrt(ms + eps) * scale.astype(cdt, copy=False)
        return (y.astype(x.dtype, copy=False),)


@register("LpNormalization", since=1)
@register("LpNormalization", since=22)
class LpNormalization(Op):
    """ONNX LpNormalization: divide by the L1 or L2 norm along ``axis`` (zero norms give 0)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        p = int(self.ctx.attr("p", 2))
        if p not in (1, 2):
            raise ModelFormatError(f"node {self.ctx.node_name!r} (LpNormalization): p={p} must be 1 or 2")
        axis = int(self.ctx.attr("axis", -1))
        cdt = _stash(x.dtype)
        xs = x.astype(cdt, copy=False)
        if p == 1:
            norm = np.abs(xs).sum(axis=axis, keepdims=True)
        else:
            norm = np.sqrt((xs * xs).sum(axis=axis, keepdims=True))
        # an all-zero slice stays zero (as ONNX's reference and node tests have it)
        y = xs / np.where(norm == 0, 1, norm)
        return (y.astype(x.dtype, copy=False),)
