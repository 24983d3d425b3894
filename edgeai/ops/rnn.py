"""Recurrent ops of the native engine: RNN, GRU and LSTM (ONNX opsets 1 to 22).

All three share the frame: the input projection ``X @ W^T + Wb`` of every
time step is one matmul up front, then each step only multiplies the hidden
state by ``R^T``. Directions, ``layout``, ``sequence_lens`` (shorter
sequences stop early; reverse direction reverses only each sequence's valid
part), initial states, ``clip``, custom activations and LSTM peepholes and
``input_forget`` follow the ONNX specification.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.rnn import RNN
    >>> x = np.ones((2, 1, 1), np.float32)                      # seq=2, batch=1, input=1
    >>> w, r = np.full((1, 1, 1), 0.5, np.float32), np.ones((1, 1, 1), np.float32)
    >>> op = RNN(OpContext(node_name="r", op_type="RNN", opset=14, attrs={"hidden_size": 1,
    ...          "activations": ["Relu"]}, num_outputs=2))
    >>> y, y_h = op.run(x, w, r)
    >>> y.ravel().tolist(), y_h.ravel().tolist()
    ([0.5, 1.0], [1.0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeai.errors import InferenceError, ModelFormatError
from edgeai.ops._base import Op, OpContext, register

__all__ = ["GRU", "LSTM", "RNN"]

Act = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # the tanh form never overflows and is one vectorised call
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# name -> (number of (alpha, beta) parameters it takes, defaults, factory)
_ACTIVATIONS: dict[str, tuple[int, tuple[float, float], Callable[[float, float], Act]]] = {
    "relu": (0, (0.0, 0.0), lambda a, b: lambda x: np.maximum(x, 0)),
    "tanh": (0, (0.0, 0.0), lambda a, b: np.tanh),
    "sigmoid": (0, (0.0, 0.0), lambda a, b: _sigmoid),
    "affine": (2, (1.0, 0.0), lambda a, b: lambda x: a * x + b),
    "leakyrelu": (1, (0.01, 0.0), lambda a, b: lambda x: np.where(x >= 0, x, a * x)),
    "thresholdedrelu": (1, (1.0, 0.0), lambda a, b: lambda x: np.where(x > a, x, 0)),
    "scaledtanh": (2, (1.0, 1.0), lambda a, b: lambda x: a * np.tanh(b * x)),
    "hardsigmoid": (2, (0.2, 0.5), lambda a, b: lambda x: np.clip(a * x + b, 0, 1)),
    "elu": (1, (1.0, 0.0), lambda a, b: lambda x: np.where(x >= 0, x, a * (np.exp(np.minimum(x, 0)) - 1))),
    "softsign": (0, (0.0, 0.0), lambda a, b: lambda x: x / (1 + np.abs(x))),
    "softplus": (0, (0.0, 0.0), lambda a, b: lambda x: np.logaddexp(x, 0)),
}


def activations(ctx: OpContext, defaults: Sequence[str], num_directions: int) -> list[list[Act]]:
    """Per direction, the gate activation functions of a recurrent node.

    ``activation_alpha``/``activation_beta`` are consumed in order by the
    functions that take parameters (as ONNX Runtime reads them).
    """
    names = ctx.attr("activations")
    names = [str(n) for n in names] if names else list(defaults) * num_directions
    if len(names) == len(defaults) and num_directions == 2:
        names = names * 2
    if len(names) != len(defaults) * num_directions:
        raise ModelFormatError(
            f"node {ctx.node_name!r} ({ctx.op_type}): {len(names)} activations given, expected "
            f"{len(defaults) * num_directions} ({len(defaults)} per direction)"
        )
    alphas = list(ctx.attr("activation_alpha", []) or [])
    betas = list(ctx.attr("activation_beta", []) or [])
    funcs: list[Act] = []
    for name in names:
        key = name.lower()
        if key not in _ACTIVATIONS:
            raise ModelFormatError(
                f"node {ctx.node_name!r} ({ctx.op_type}): activation {name!r} is not one of {sorted(_ACTIVATIONS)}"
            )
        nparams, (da, db), make = _ACTIVATIONS[key]
        a = float(alphas.pop(0)) if nparams >= 1 and alphas else da
        b = float(betas.pop(0)) if nparams >= 2 and betas else db
        funcs.append(make(a, b))
    k = len(defaults)
    return [funcs[d * k : (d + 1) * k] for d in range(num_directions)]


class _Recurrent(Op):
    """The shared frame; subclasses define the gate count, default activations and one step."""

    gates: int = 1
    default_acts: tuple[str, ...] = ("Tanh",)
    n_states: int = 1

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        direction = ctx.attr("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ModelFormatError(
                f"node {ctx.node_name!r} ({ctx.op_type}): direction {direction!r} is not "
                "forward, reverse or bidirectional"
            )
        self.direction = direction
        self.num_dir = 2 if direction == "bidirectional" else 1
        self.acts = activations(ctx, self.default_acts, self.num_dir)
        clip = ctx.attr("clip")
        self.clip = None if clip is None else float(clip)
        self.layout = int(ctx.attr("layout", 0))
        self.hidden = ctx.attr("hidden_size")

    def _pre(self, v: np.ndarray) -> np.ndarray:
        return v if self.clip is None else np.clip(v, -self.clip, self.clip)

    def step(
        self, d: int, xw: np.ndarray, states: list[np.ndarray], r: np.ndarray, rb: np.ndarray, extra: Any
    ) -> list[np.ndarray]:
        raise NotImplementedError

    def extra_for(self, d: int, inputs: Sequence[np.ndarray | None], hidden: int, cdt: Any) -> Any:
        return None

    def run(self, *inputs: np.ndarray | None) -> tuple[np.ndarray, ...]:
        x, w, r = inputs[0], inputs[1], inputs[2]
        if x is None or w is None or r is None:
            raise InferenceError(f"node {self.ctx.node_name!r} ({self.ctx.op_type}): X, W and R are required")
        ins = list(inputs) + [None] * 8
        b, seq_lens = ins[3], ins[4]
        init = [ins[5], ins[6]][: self.n_states]
        out_dtype = x.dtype
        cdt = np.float64 if x.dtype == np.float64 else np.float32
        if self.layout == 1:
            x = np.swapaxes(x, 0, 1)
            init = [None if s is None else np.swapaxes(s, 0, 1) for s in init]
        seq, batch, _ = x.shape
        hidden = int(self.hidden) if self.hidden is not None else r.shape[-1]
        g = self.gates
        if w.shape[0] != self.num_dir or w.shape[1] != g * hidden or r.shape[1:] != (g * hidden, hidden):
            raise InferenceError(
                f"node {self.ctx.node_name!r} ({self.ctx.op_type}): W {w.shape} / R {r.shape} do not match "
                f"{self.num_dir} direction(s) x {g} gate(s) x hidden_size {hidden}"
            )
        lens = (
            np.full(batch, seq, dtype=np.int64)
            if seq_lens is None
            else np.asarray(seq_lens, dtype=np.int64).reshape(-1)
        )
        steps = np.arange(seq)[:, None]
        active = steps < lens[None, :]  # (seq, batch)
        y = np.zeros((seq, self.num_dir, batch, hidden), dtype=cdt)
        finals: list[list[np.ndarray]] = [[] for _ in range(self.n_states)]
        xs = x.astype(cdt, copy=False)
        for d in range(self.num_dir):
            reverse = self.direction == "reverse" or d == 1
            bias = np.zeros(2 * g * hidden, dtype=cdt) if b is None else np.asarray(b[d], dtype=cdt).reshape(-1)
            xw = xs @ w[d].astype(cdt).T + bias[: g * hidden]
            if reverse:
                # step k of batch entry j reads time lens[j]-1-k (its valid part, reversed)
                tidx = np.where(active, lens[None, :] - 1 - steps, steps)
                xw = xw[tidx, np.arange(batch)[None, :]]
            else:
                tidx = np.broadcast_to(steps, (seq, batch))
            states = [
                np.zeros((batch, hidden), dtype=cdt) if s is None else np.asarray(s[d], dtype=cdt).copy() for s in init
            ]
            rt = np.ascontiguousarray(r[d].astype(cdt).T)
            rb = bias[g * hidden :]
            extra = self.extra_for(d, ins, hidden, cdt)
            cols = np.arange(batch)
            full = bool(active.all())
            for k in range(seq):
                new = self.step(d, xw[k], states, rt, rb, extra)
                if full:  # no sequence ends early: no masking
                    states = new
                    y[tidx[k], d, cols] = new[0]
                    continue
                m = active[k][:, None]
                states = [np.where(m, n, s) for n, s in zip(new, states)]
                y[tidx[k], d, cols] = np.where(m, new[0], 0)
            for i, s in enumerate(states):
                finals[i].append(s)
        outs: list[np.ndarray] = [y]
        outs += [np.stack(f) for f in finals]
        if self.layout == 1:
            outs[0] = np.transpose(outs[0], (2, 0, 1, 3))
            outs[1:] = [np.swapaxes(o, 0, 1) for o in outs[1:]]
        return tuple(o.astype(out_dtype, copy=False) for o in outs[: self.ctx.num_outputs])


@register("RNN", since=1)
@register("RNN", since=7)
@register("RNN", since=14)
@register("RNN", since=22)
class RNN(_Recurrent):
    """ONNX RNN: ``H = f(X W^T + H R^T + Wb + Rb)``."""

    gates = 1
    default_acts = ("Tanh",)
    n_states = 1

    def step(
        self, d: int, xw: np.ndarray, states: list[np.ndarray], r: np.ndarray, rb: np.ndarray, extra: Any
    ) -> list[np.ndarray]:
        return [self.acts[d][0](self._pre(xw + states[0] @ r + rb))]


@register("GRU", since=1)
@register("GRU", since=3)
@register("GRU", since=7)
@register("GRU", since=14)
@register("GRU", since=22)
class GRU(_Recurrent):
    """ONNX GRU (gates z, r, h), with ``linear_before_reset``."""

    gates = 3
    default_acts = ("Sigmoid", "Tanh")
    n_states = 1

    def step(
        self, d: int, xw: np.ndarray, states: list[np.ndarray], r: np.ndarray, rb: np.ndarray, extra: Any
    ) -> list[np.ndarray]:
        f, gfun = self.acts[d]
        h = states[0]
        n = h.shape[1]
        hr = h @ r[:, : 2 * n] + rb[: 2 * n]
        z = f(self._pre(xw[:, :n] + hr[:, :n]))
        rr = f(self._pre(xw[:, n : 2 * n] + hr[:, n:]))
        if int(self.ctx.attr("linear_before_reset", 0)):
            cand = gfun(self._pre(xw[:, 2 * n :] + rr * (h @ r[:, 2 * n :] + rb[2 * n :])))
        else:
            cand = gfun(self._pre(xw[:, 2 * n :] + (rr * h) @ r[:, 2 * n :] + rb[2 * n :]))
        return [(1 - z) * cand + z * h]


@register("LSTM", since=1)
@register("LSTM", since=7)
@register("LSTM", since=14)
@register("LSTM", since=22)
class LSTM(_Recurrent):
    """ONNX LSTM (gates i, o, f, c), with peepholes ``P`` and ``input_forget``."""

    gates = 4
    default_acts = ("Sigmoid", "Tanh", "Tanh")
    n_states = 2

    def extra_for(self, d: int, inputs: Sequence[np.ndarray | None], hidden: int, cdt: Any) -> Any:
        p = inputs[7] if len(inputs) > 7 else None
        if p is None:
            return None
        pd = np.asarray(p[d], dtype=cdt).reshape(3, hidden)
        return pd  # rows: i, o, f

    def step(
        self, d: int, xw: np.ndarray, states: list[np.ndarray], r: np.ndarray, rb: np.ndarray, extra: Any
    ) -> list[np.ndarray]:
        f, gfun, hfun = self.acts[d]
        h, c = states
        n = h.shape[1]
        pre = xw + h @ r + rb
        pi, po, pf, pc = pre[:, :n], pre[:, n : 2 * n], pre[:, 2 * n : 3 * n], pre[:, 3 * n :]
        if extra is not None:
            pi = pi + extra[0] * c
            pf = pf + extra[2] * c
        i = f(self._pre(pi))
        fg = 1 - i if int(self.ctx.attr("input_forget", 0)) else f(self._pre(pf))
        cc = fg * c + i * gfun(self._pre(pc))
        if extra is not None:
            po = po + extra[1] * cc
        o = f(self._pre(po))
        return [o * hfun(cc), cc]
