"""Optimizer steps of ``ai.onnx.preview.training``: Momentum, Adagrad, Adam (version 1).

Each op updates ``n`` tensors at once. Inputs are ``R`` (learning rate, a
float scalar), ``T`` (the update count, an int64 scalar), then the ``n``
tensors ``X``, their ``n`` gradients ``G`` and the optimizer's state
(Momentum: ``V``; Adagrad: ``H``; Adam: ``V`` then ``H``); outputs are the
new ``X`` followed by the new state, in the same grouping. The update rules
are the pseudo code of the ONNX specification, evaluated in float64 and
rounded once to each tensor's dtype:

- Momentum: ``G' = norm_coefficient * X + G``, ``V' = alpha * V + b * G'`` with
  ``b = beta`` after the first step (``T > 0``) and 1 on it; standard mode
  ``X' = X - R * V'``, Nesterov ``X' = X - R * (G' + alpha * V')``.
- Adagrad: ``r = R / (1 + T * decay_factor)``, ``H' = H + G'^2``,
  ``X' = X - r * G' / (sqrt(H') + epsilon)``.
- Adam: ``V' = alpha V + (1 - alpha) G'``, ``H' = beta H + (1 - beta) G'^2``,
  ``R' = R sqrt(1 - beta^T) / (1 - alpha^T)`` when ``T > 0``,
  ``X' = (1 - norm_coefficient_post) (X - R' V' / (sqrt(H') + epsilon))``.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> Adagrad = lookup("Adagrad", "ai.onnx.preview.training", 1)
    >>> op = Adagrad(OpContext(node_name="a", op_type="Adagrad", domain="ai.onnx.preview.training",
    ...                        opset=1, attrs={"epsilon": 0.0}))
    >>> x, h = op.run(np.float32(0.1), np.int64(0), np.array([1.0], np.float32),
    ...               np.array([2.0], np.float32), np.array([0.0], np.float32))
    >>> x.tolist(), h.tolist()
    ([0.8999999761581421], [4.0])
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext, register

__all__ = ["adagrad_step", "adam_step", "momentum_step"]

TRAINING = "ai.onnx.preview.training"


def momentum_step(
    r: float,
    t: int,
    x: np.ndarray,
    g: np.ndarray,
    v: np.ndarray,
    *,
    alpha: float,
    beta: float,
    norm_coefficient: float,
    nesterov: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One SGD-with-momentum step in float64: ``(X_new, V_new)``.

    >>> momentum_step(0.1, 0, np.array([1.0]), np.array([1.0]), np.array([0.0]),
    ...               alpha=0.9, beta=0.5, norm_coefficient=0.0, nesterov=False)
    (array([0.9]), array([1.]))
    """
    g_reg = norm_coefficient * x + g
    v_new = alpha * v + (beta if t > 0 else 1.0) * g_reg
    step = g_reg + alpha * v_new if nesterov else v_new
    return x - r * step, v_new


def adagrad_step(
    r: float,
    t: int,
    x: np.ndarray,
    g: np.ndarray,
    h: np.ndarray,
    *,
    decay_factor: float,
    epsilon: float,
    norm_coefficient: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One Adagrad step in float64: ``(X_new, H_new)``.

    >>> adagrad_step(1.0, 0, np.array([1.0]), np.array([3.0]), np.array([0.0]),
    ...              decay_factor=0.0, epsilon=0.0, norm_coefficient=0.0)
    (array([0.]), array([9.]))
    """
    rate = r / (1.0 + t * decay_factor)
    g_reg = norm_coefficient * x + g
    h_new = h + g_reg * g_reg
    return x - rate * g_reg / (np.sqrt(h_new) + epsilon), h_new


def adam_step(
    r: float,
    t: int,
    x: np.ndarray,
    g: np.ndarray,
    v: np.ndarray,
    h: np.ndarray,
    *,
    alpha: float,
    beta: float,
    epsilon: float,
    norm_coefficient: float,
    norm_coefficient_post: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step in float64: ``(X_new, V_new, H_new)``.

    >>> x, v, h = adam_step(0.1, 0, np.array([1.0]), np.array([1.0]), np.array([0.0]), np.array([0.0]),
    ...                     alpha=0.0, beta=0.0, epsilon=0.0, norm_coefficient=0.0, norm_coefficient_post=0.0)
    >>> x.tolist(), v.tolist(), h.tolist()
    ([0.9], [1.0], [1.0])
    """
    g_reg = norm_coefficient * x + g
    v_new = alpha * v + (1.0 - alpha) * g_reg
    h_new = beta * h + (1.0 - beta) * g_reg * g_reg
    rate = r * math.sqrt(1.0 - beta**t) / (1.0 - alpha**t) if t > 0 else r
    x_new = x - rate * v_new / (np.sqrt(h_new) + epsilon)
    return (1.0 - norm_coefficient_post) * x_new, v_new, h_new


class _Optimizer(Op):
    state_count: ClassVar[int] = 1
    defaults: ClassVar[dict[str, float]] = {}
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        missing = [a for a in self.required if ctx.attr(a) is None]
        if missing:
            raise self._fail(f"missing required attribute(s) {missing}")
        # ONNX stores float attributes (and the schema's defaults) as float32
        self.params = {name: float(ctx.attr(name, np.float32(default))) for name, default in self.defaults.items()}
        for name in self.required:
            if name != "mode":
                self.params[name] = float(ctx.attr(name))

    def _fail(self, message: str) -> InferenceError:
        c = self.ctx
        return InferenceError(f"{c.op_type} node {c.node_name!r} (opset {c.opset}): {message}")

    def _scalar(self, value: Any, name: str, kinds: str) -> float | int:
        arr = np.asarray(value)
        if arr.size != 1 or arr.dtype.kind not in kinds:
            what = "a float" if kinds == "f" else "an integer"
            raise self._fail(f"{name} must be {what} scalar, got shape {arr.shape} of {arr.dtype}")
        return arr.reshape(-1)[0].item()

    def step(self, r: float, t: int, x: np.ndarray, g: np.ndarray, *state: np.ndarray) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def run(self, *inputs: Any) -> tuple[np.ndarray, ...]:
        groups = 2 + self.state_count
        if len(inputs) < 2 + groups or (len(inputs) - 2) % groups:
            raise self._fail(
                f"expected R, T and {groups} tensors (X, G and the state) per optimized tensor, "
                f"got {len(inputs)} inputs"
            )
        r = float(self._scalar(inputs[0], "R (the learning rate)", "f"))
        t = int(self._scalar(inputs[1], "T (the update count)", "iu"))
        n = (len(inputs) - 2) // groups
        tensors = [np.asarray(a) for a in inputs[2:]]
        per_group = [tensors[k * n : (k + 1) * n] for k in range(groups)]
        results: list[list[np.ndarray]] = [[] for _ in range(1 + self.state_count)]
        for i in range(n):
            x = per_group[0][i]
            group = [per_group[k][i] for k in range(groups)]
            if x.dtype.kind != "f" or any(a.dtype != x.dtype for a in group):
                raise self._fail(
                    f"tensor {i}: X, G and the state must share one float dtype, got {[str(a.dtype) for a in group]}"
                )
            if any(a.shape != x.shape for a in group):
                raise self._fail(f"tensor {i}: X, G and the state must have X's shape {x.shape}")
            out = self.step(r, t, *(a.astype(np.float64) for a in group))
            for k, o in enumerate(out):
                results[k].append(np.asarray(o).astype(x.dtype))
        return tuple(a for part in results for a in part)


@register("Momentum", domain=TRAINING, since=1)
class Momentum(_Optimizer):
    """Momentum-1: SGD with standard or Nesterov momentum."""

    required = ("alpha", "beta", "norm_coefficient", "mode")

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        mode = ctx.attr("mode")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if mode not in ("standard", "nesterov"):
            raise self._fail(f"mode must be 'standard' or 'nesterov', got {mode!r}")
        self.nesterov = mode == "nesterov"

    def step(self, r: float, t: int, x: np.ndarray, g: np.ndarray, *state: np.ndarray) -> tuple[np.ndarray, ...]:
        return momentum_step(r, t, x, g, state[0], nesterov=self.nesterov, **self.params)


@register("Adagrad", domain=TRAINING, since=1)
class Adagrad(_Optimizer):
    """Adagrad-1: per-coordinate rates from the accumulated squared gradient."""

    defaults: ClassVar[dict[str, float]] = {"decay_factor": 0.0, "epsilon": 1e-6, "norm_coefficient": 0.0}

    def step(self, r: float, t: int, x: np.ndarray, g: np.ndarray, *state: np.ndarray) -> tuple[np.ndarray, ...]:
        return adagrad_step(r, t, x, g, state[0], **self.params)


@register("Adam", domain=TRAINING, since=1)
class Adam(_Optimizer):
    """Adam-1: bias-corrected first and second moments, optional post-update decay."""

    state_count = 2
    defaults: ClassVar[dict[str, float]] = {
        "alpha": 0.9,
        "beta": 0.999,
        "epsilon": 1e-6,
        "norm_coefficient": 0.0,
        "norm_coefficient_post": 0.0,
    }

    def step(self, r: float, t: int, x: np.ndarray, g: np.ndarray, *state: np.ndarray) -> tuple[np.ndarray, ...]:
        return adam_step(r, t, x, g, state[0], state[1], **self.params)
