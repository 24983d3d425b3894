"""Activation ONNX ops in numpy, and Softmax / LogSoftmax / Hardmax.

Attributes are cast to the input's dtype so that float32 stays float32;
float16 and bfloat16 inputs are computed in float32 and rounded back once.
Softmax-family ops before opset 13 flatten the input to 2-D at ``axis``
(default 1); from 13 on they work along ``axis`` (default -1).

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> Softmax = lookup("Softmax", "", 13)
    >>> Softmax(OpContext(node_name="s", op_type="Softmax", opset=13)).run(
    ...     np.array([[0.0, 0.0]], np.float32))[0]
    array([[0.5, 0.5]], dtype=float32)
"""

from __future__ import annotations

import math

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext
from edgeai.ops.elementwise import as_dtype, gelu_exact, is_float, register_versions, unsupported

__all__ = ["gelu", "gelu_tanh", "sigmoid"]


def _work(x: np.ndarray) -> np.ndarray:
    """``x`` in a dtype numpy computes well: float16/bfloat16 go to float32."""
    return x.astype(np.float32) if x.dtype.kind != "f" or x.dtype.itemsize < 4 else x


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function without overflow: exp(-|x|) never exceeds 1."""
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e)).astype(x.dtype, copy=False)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt(2)))``, in ``x``'s dtype.

    Computed as ``0.5 x erfc(-x / sqrt(2))`` in one fused kernel: the same
    function without the cancellation of ``1 + erf`` for large negative ``x``.
    """
    return gelu_exact(x)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """Tanh-approximated GELU, ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    Computed as ``x sigmoid(2 inner)``, the same function without the
    cancellation of ``1 + tanh`` for large negative ``x``.
    """
    t = x.dtype.type
    inner = t(2 * math.sqrt(2 / math.pi)) * (x + t(0.044715) * x * x * x)
    return (x * sigmoid(inner)).astype(x.dtype, copy=False)


class _Activation(Op):
    """One-input activation; subclasses implement :meth:`f` on a float32/float64 array."""

    def f(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            return (as_dtype(self.f(_work(x)), x.dtype),)

    def fattr(self, name: str, default: float) -> float:
        return float(self.ctx.attr(name, default))


@register_versions("Relu", (1, 6, 13, 14))
class Relu(Op):
    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        return (as_dtype(np.maximum(x, x.dtype.type(0)), x.dtype),)


@register_versions("LeakyRelu", (1, 6, 16))
class LeakyRelu(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        alpha = x.dtype.type(self.fattr("alpha", 0.01))
        return np.where(x < 0, x * alpha, x)


@register_versions("PRelu", (7, 9, 16))
class PRelu(Op):
    """PRelu with the slope broadcast onto X (opset >= 7)."""

    def run(self, x: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        slope = np.asarray(slope)
        try:
            np.broadcast_shapes(slope.shape, x.shape)
        except ValueError as exc:
            raise InferenceError(
                f"PRelu node {self.ctx.node_name!r}: slope of shape {slope.shape} does not broadcast "
                f"to X of shape {x.shape}"
            ) from exc
        xw = _work(x) if is_float(x.dtype) else x
        out = np.where(xw < 0, xw * slope.astype(xw.dtype), xw)
        return (as_dtype(out, x.dtype),)


@register_versions("Sigmoid", (1, 6, 13))
class Sigmoid(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(x)


@register_versions("HardSigmoid", (1, 6, 22))
class HardSigmoid(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        t = x.dtype.type
        return np.clip(x * t(self.fattr("alpha", 0.2)) + t(self.fattr("beta", 0.5)), t(0), t(1))


@register_versions("HardSwish", (14, 22))
class HardSwish(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        t = x.dtype.type
        return x * np.clip(x * t(1 / 6) + t(0.5), t(0), t(1))


@register_versions("Swish", (24,))
class Swish(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        return x * sigmoid(x * x.dtype.type(self.fattr("alpha", 1.0)))


@register_versions("Tanh", (1, 6, 13))
class Tanh(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)


@register_versions("Elu", (1, 6, 22))
class Elu(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        alpha = x.dtype.type(self.fattr("alpha", 1.0))
        return np.where(x > 0, x, alpha * np.expm1(x))


@register_versions("Selu", (1, 6, 22))
class Selu(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        t = x.dtype.type
        alpha = t(self.fattr("alpha", 1.67326319217681884765625))
        gamma = t(self.fattr("gamma", 1.05070102214813232421875))
        return np.where(x > 0, gamma * x, gamma * alpha * np.expm1(x))


@register_versions("Celu", (12, 28))  # 28 adds float16, bfloat16, double
class Celu(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        t = x.dtype.type
        alpha = t(self.fattr("alpha", 1.0))
        return np.maximum(x, t(0)) + np.minimum(t(0), alpha * np.expm1(x / alpha))


@register_versions("Gelu", (20,))
class Gelu(_Activation):
    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._approx = ctx.attr("approximate", "none")
        if self._approx not in ("none", "tanh"):
            raise unsupported(ctx, f"approximate must be 'none' or 'tanh', got {self._approx!r}")

    def f(self, x: np.ndarray) -> np.ndarray:
        return gelu_tanh(x) if self._approx == "tanh" else gelu(x)


@register_versions("Softplus", (1, 22))
class Softplus(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        return np.logaddexp(x, x.dtype.type(0))


@register_versions("Mish", (18, 22))
class Mish(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        return x * np.tanh(np.logaddexp(x, x.dtype.type(0)))


@register_versions("Softsign", (1, 22))
class Softsign(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        return x / (x.dtype.type(1) + np.abs(x))


@register_versions("ThresholdedRelu", (10, 22))
class ThresholdedRelu(_Activation):
    def f(self, x: np.ndarray) -> np.ndarray:
        return np.where(x > x.dtype.type(self.fattr("alpha", 1.0)), x, x.dtype.type(0))


@register_versions("Shrink", (9,))
class Shrink(Op):
    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        xw = _work(x) if is_float(x.dtype) else x.astype(np.float64)
        t = xw.dtype.type
        bias = t(float(self.ctx.attr("bias", 0.0)))
        lambd = t(float(self.ctx.attr("lambd", 0.5)))
        out = np.where(xw < -lambd, xw + bias, np.where(xw > lambd, xw - bias, t(0)))
        return (as_dtype(out, x.dtype),)


# --------------------------------------------------------------------------- softmax family


class _SoftmaxFamily(Op):
    """Softmax-like ops: 2-D coercion at ``axis`` before opset 13, a single axis from 13 on."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._axis = int(ctx.attr("axis", -1 if ctx.opset >= 13 else 1))

    def along(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if x.ndim == 0:
            raise InferenceError(f"{self.ctx.op_type} node {self.ctx.node_name!r} needs an input of rank >= 1")
        axis = self._axis + x.ndim if self._axis < 0 else self._axis
        if not 0 <= axis < x.ndim:
            raise InferenceError(
                f"{self.ctx.op_type} node {self.ctx.node_name!r}: axis {self._axis} is out of range "
                f"for an input of rank {x.ndim}"
            )
        xw = _work(x)
        with np.errstate(all="ignore"):
            if self.ctx.opset < 13:
                flat = xw.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
                out = self.along(flat).reshape(x.shape)
            else:
                if axis == x.ndim - 1:
                    out = self.along(xw)
                else:
                    out = np.moveaxis(self.along(np.moveaxis(xw, axis, -1)), -1, axis)
        return (as_dtype(out, x.dtype),)


@register_versions("Softmax", (1, 11, 13))
class Softmax(_SoftmaxFamily):
    def along(self, x: np.ndarray) -> np.ndarray:
        e = np.subtract(x, x.max(axis=-1, keepdims=True, initial=-np.inf))
        np.exp(e, out=e)  # in place: one temporary for the whole op
        e /= e.sum(axis=-1, keepdims=True)
        return e


@register_versions("LogSoftmax", (1, 11, 13))
class LogSoftmax(_SoftmaxFamily):
    def along(self, x: np.ndarray) -> np.ndarray:
        shifted = np.subtract(x, x.max(axis=-1, keepdims=True, initial=-np.inf))
        shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return shifted


@register_versions("Hardmax", (1, 11, 13))
class Hardmax(_SoftmaxFamily):
    def along(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        if x.shape[-1] == 0:
            return out
        idx = np.argmax(x, axis=-1)[..., None]  # the first maximum wins, as ONNX specifies
        np.put_along_axis(out, idx, 1, axis=-1)
        return out
