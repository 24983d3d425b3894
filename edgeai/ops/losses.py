"""Training losses in numpy: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

Both take class scores ``[N, C]`` or ``[N, C, d1, ..., dk]`` and integer
targets ``[N]`` or ``[N, d1, ..., dk]``. The loss of one element is
``-input[n, target, d...] * weight[target]`` (weight 1 when omitted); a target
equal to ``ignore_index`` contributes 0 and drops out of the mean's
denominator. ``reduction`` is ``"none"`` (the per-element losses),
``"sum"``, or ``"mean"`` (the sum divided by the summed weights of the
elements not ignored). SoftmaxCrossEntropyLoss applies log-softmax over the
class axis first and can return it as a second output. Targets outside
``[0, C)`` that are not ``ignore_index`` raise an :class:`InferenceError`.

float32 and float64 are computed in their own precision, float16 and
bfloat16 in float32 and rounded back once.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> NLL = lookup("NegativeLogLikelihoodLoss", "", 13)
    >>> log_prob = np.array([[-1.0, -2.0], [-0.5, -3.0]], np.float32)
    >>> NLL(OpContext(node_name="l", op_type="NegativeLogLikelihoodLoss", opset=13,
    ...               attrs={"reduction": "none"})).run(log_prob, np.array([0, 1]))[0]
    array([1., 3.], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.elementwise import is_float

__all__ = ["negative_log_likelihood"]

_REDUCTIONS = ("none", "sum", "mean")


def negative_log_likelihood(
    log_prob: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    reduction: str = "mean",
    ignore_index: int | None = None,
) -> np.ndarray:
    """ONNX's NegativeLogLikelihoodLoss of ``log_prob`` (``[N, C, ...]``) at ``target`` (``[N, ...]``).

    Computed in ``log_prob``'s dtype. Raises ``ValueError`` for mismatched
    shapes or a target outside ``[0, C)`` that is not ``ignore_index``.

    >>> negative_log_likelihood(np.array([[-1.0, -2.0]]), np.array([1]))
    array(2.)
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if log_prob.ndim < 2:
        raise ValueError(f"input must have shape [N, C, ...], got {log_prob.shape}")
    classes = log_prob.shape[1]
    expected = (log_prob.shape[0], *log_prob.shape[2:])
    if target.shape != expected:
        raise ValueError(f"target has shape {target.shape}; for input {log_prob.shape} it must be {expected}")
    if target.dtype.kind not in "iu":
        raise ValueError(f"target must be an integer tensor, got {target.dtype}")
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"weight has shape {weight.shape}; it must be [C] = ({classes},)")
    keep = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    bad = keep & ((target < 0) | (target >= classes))
    if bad.any():
        value = int(target[bad].reshape(-1)[0])
        hint = "" if ignore_index is None else f" and not ignore_index={ignore_index}"
        raise ValueError(f"target value {value} is outside [0, {classes}){hint}")
    safe = np.where(keep, target, 0).astype(np.intp)
    picked = np.take_along_axis(log_prob, np.expand_dims(safe, 1), axis=1).squeeze(1)
    dtype = log_prob.dtype
    w = keep.astype(dtype) if weight is None else np.where(keep, weight.astype(dtype)[safe], dtype.type(0))
    loss = -picked * w
    if reduction == "none":
        return loss
    total = np.sum(loss, dtype=dtype)
    if reduction == "sum":
        return np.asarray(total, dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # every element ignored: 0/0 = nan, as torch
        return np.asarray(total / np.sum(w, dtype=dtype), dtype)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


class _LossBase(Op):
    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        reduction = ctx.attr("reduction", "mean")
        self._reduction = reduction.decode() if isinstance(reduction, bytes) else str(reduction)
        if self._reduction not in _REDUCTIONS:
            raise self._fail(f"reduction={self._reduction!r} is not one of {_REDUCTIONS}")
        ii = ctx.attr("ignore_index")
        self._ignore_index = None if ii is None else int(ii)

    def _fail(self, message: str) -> InferenceError:
        c = self.ctx
        return InferenceError(f"{c.op_type} node {c.node_name!r} (opset {c.opset}): {message}")

    def _loss(self, log_prob: np.ndarray, target: Any, weight: Any) -> np.ndarray:
        try:
            return negative_log_likelihood(
                log_prob,
                np.asarray(target),
                None if weight is None else np.asarray(weight),
                reduction=self._reduction,
                ignore_index=self._ignore_index,
            )
        except ValueError as exc:
            raise self._fail(str(exc)) from None

    def _check_float(self, x: np.ndarray) -> None:
        if not is_float(x.dtype):
            raise self._fail(f"input must be a float tensor, got {x.dtype}")


@register("NegativeLogLikelihoodLoss", since=12)
@register("NegativeLogLikelihoodLoss", since=13)
@register("NegativeLogLikelihoodLoss", since=22)
class NegativeLogLikelihoodLoss(_LossBase):
    """NegativeLogLikelihoodLoss-12/13/22 (later versions add types; the semantics are unchanged)."""

    def run(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> tuple[np.ndarray]:
        x = np.asarray(x)
        self._check_float(x)
        work = x.astype(_compute_dtype(x.dtype), copy=False)
        return (self._loss(work, target, weight).astype(x.dtype, copy=False),)


@register("SoftmaxCrossEntropyLoss", since=12)
@register("SoftmaxCrossEntropyLoss", since=13)
class SoftmaxCrossEntropyLoss(_LossBase):
    """SoftmaxCrossEntropyLoss-12/13: log-softmax over axis 1, then the NLL loss; output 2 is the log-softmax."""

    def run(self, scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        scores = np.asarray(scores)
        self._check_float(scores)
        if scores.ndim < 2:
            raise self._fail(f"scores must have shape [N, C, ...], got {scores.shape}")
        work = scores.astype(_compute_dtype(scores.dtype), copy=False)
        shifted = work - np.max(work, axis=1, keepdims=True, initial=-np.inf)
        log_prob = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        loss = self._loss(log_prob, labels, weights).astype(scores.dtype, copy=False)
        if self.ctx.num_outputs >= 2:
            return loss, log_prob.astype(scores.dtype, copy=False)
        return (loss,)
