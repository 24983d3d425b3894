"""The com.microsoft float ops that ONNX Runtime's transformer optimizer writes.

``Gelu``, ``FastGelu``, ``BiasGelu``, ``QuickGelu``, ``SkipLayerNormalization``,
``SkipSimplifiedLayerNormalization``, ``SimplifiedLayerNormalization`` (which
ONNX Runtime registers in the default domain, opset 1) and the fused
multi-head self-``Attention`` of BERT/GPT-2 style models. Semantics follow
ONNX Runtime's CPU kernels (the oracle of ``tests/native/test_float_math_ops.py``);
cases that kernel also refuses (rotary embeddings, a shared past/present
buffer, 4-D Megatron masks) raise :class:`edgeai.errors.UnsupportedOpError`.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> Gelu = lookup("Gelu", "com.microsoft", 1)
    >>> Gelu(OpContext(node_name="g", op_type="Gelu", domain="com.microsoft")).run(
    ...     np.array([0.0, 1.0], np.float32))[0]
    array([0.       , 0.8413447], dtype=float32)
"""

from __future__ import annotations

import math

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext
from edgeai.ops.activations import gelu, gelu_tanh, sigmoid
from edgeai.ops.elementwise import as_dtype, register_versions, unsupported

__all__: list[str] = []

MS = "com.microsoft"


def _work(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) if x.dtype.itemsize < 4 else x


@register_versions("Gelu", (1,), domain=MS)
class Gelu(Op):
    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        return (as_dtype(gelu(_work(x)), x.dtype),)


@register_versions("BiasGelu", (1,), domain=MS)
class BiasGelu(Op):
    def run(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
        a = np.asarray(a)
        return (as_dtype(gelu(_work(a) + _work(np.asarray(b))), a.dtype),)


@register_versions("FastGelu", (1,), domain=MS)
class FastGelu(Op):
    """Tanh-approximated GELU of ``X + bias`` (bias optional)."""

    def run(self, x: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray]:
        x = np.asarray(x)
        w = _work(x)
        if bias is not None:
            w = w + _work(np.asarray(bias))
        return (as_dtype(gelu_tanh(w), x.dtype),)


@register_versions("QuickGelu", (1,), domain=MS)
class QuickGelu(Op):
    """``x * sigmoid(alpha * x)`` (alpha 1.702 by default)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        w = _work(x)
        alpha = w.dtype.type(float(self.ctx.attr("alpha", 1.702)))
        return (as_dtype(w * sigmoid(w * alpha), x.dtype),)


# --------------------------------------------------------------------------- layer norms


class _SkipNorm(Op):
    """Shared by the Skip*LayerNormalization ops: normalise ``input + skip (+ bias)`` over the last axis."""

    simplified = False

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._eps = float(ctx.attr("epsilon", 1e-12))  # ONNX Runtime's default for both variants

    def run(self, x: np.ndarray, skip: np.ndarray, gamma: np.ndarray, *rest: np.ndarray | None) -> tuple:
        x = np.asarray(x)
        if self.simplified:
            beta, bias = None, (rest[0] if rest else None)
        else:
            beta = rest[0] if rest else None
            bias = rest[1] if len(rest) > 1 else None
        if x.ndim not in (2, 3):
            raise InferenceError(
                f"{self.ctx.op_type} node {self.ctx.node_name!r}: input must be 2-D or 3-D, got {x.shape}"
            )
        s = _work(x) + _work(np.asarray(skip))  # skip may broadcast over the batch
        if bias is not None:
            s = s + _work(np.asarray(bias))
        s = as_dtype(s, s.dtype)
        if self.simplified:
            mean = None
            ms = np.mean(np.square(s), axis=-1, keepdims=True)
            inv = 1.0 / np.sqrt(ms + s.dtype.type(self._eps))
            y = s * inv * _work(np.asarray(gamma))
        else:
            mean = np.mean(s, axis=-1, keepdims=True)
            d = s - mean
            inv = 1.0 / np.sqrt(np.mean(np.square(d), axis=-1, keepdims=True) + s.dtype.type(self._eps))
            y = d * inv * _work(np.asarray(gamma))
            if beta is not None:
                y = y + _work(np.asarray(beta))
        stats = np.float32 if x.dtype.itemsize < 4 else x.dtype
        outs: list[np.ndarray] = [as_dtype(y, x.dtype)]
        n = self.ctx.num_outputs
        if n > 1:
            outs.append(as_dtype(mean if mean is not None else np.zeros_like(inv), np.dtype(stats)))
        if n > 2:
            outs.append(as_dtype(inv, np.dtype(stats)))
        if n > 3:
            outs.append(as_dtype(s, x.dtype))
        return tuple(outs)


@register_versions("SkipLayerNormalization", (1,), domain=MS)
class SkipLayerNormalization(_SkipNorm):
    simplified = False


@register_versions("SkipSimplifiedLayerNormalization", (1,), domain=MS)
class SkipSimplifiedLayerNormalization(_SkipNorm):
    simplified = True


@register_versions("SimplifiedLayerNormalization", (1,))
class SimplifiedLayerNormalization(Op):
    """RMS normalisation over the axes from ``axis`` on: ``X / sqrt(mean(X^2) + eps) * scale``."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._axis = int(ctx.attr("axis", -1))
        self._eps = float(ctx.attr("epsilon", 1e-5))
        self._stash32 = int(ctx.attr("stash_type", 1)) == 1

    def run(self, x: np.ndarray, scale: np.ndarray) -> tuple:
        x = np.asarray(x)
        axis = self._axis % x.ndim if x.ndim else 0
        w = x.astype(np.float32) if (self._stash32 and x.dtype.itemsize < 4) else x
        axes = tuple(range(axis, x.ndim))
        ms = np.mean(np.square(w), axis=axes, keepdims=True)
        inv = (1.0 / np.sqrt(ms + w.dtype.type(self._eps))).astype(w.dtype, copy=False)
        y = as_dtype(w * inv, x.dtype) * np.asarray(scale).astype(x.dtype, copy=False)
        outs: list[np.ndarray] = [as_dtype(y, x.dtype)]
        if self.ctx.num_outputs > 1:
            outs.append(as_dtype(inv, np.dtype(np.float32) if self._stash32 else x.dtype))
        return tuple(outs)


# --------------------------------------------------------------------------- Attention


@register_versions("Attention", (1,), domain=MS)
class Attention(Op):
    """Fused multi-head self-attention of ONNX Runtime (BERT/GPT-2 exports).

    Inputs: ``input`` (B, S, D), ``weights`` (D, Dq + Dk + Dv), ``bias``,
    ``mask_index`` (key lengths (B) or (2B) with start positions, raw 0/1
    mask (B, T) or (B, S, T)), ``past`` (2, B, N, P, H), ``attention_bias``
    (B or 1, N, S, T). Outputs ``output`` (B, S, Dv) and ``present``.
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._heads = int(ctx.attr("num_heads", 0))
        if self._heads <= 0:
            raise unsupported(ctx, "the 'num_heads' attribute must be a positive integer")
        if int(ctx.attr("do_rotary", 0)):
            raise unsupported(ctx, "rotary embeddings (do_rotary=1) are not implemented")
        if int(ctx.attr("past_present_share_buffer", 0)):
            raise unsupported(ctx, "past_present_share_buffer=1 is not implemented")
        self._causal = bool(ctx.attr("unidirectional", 0))
        self._filter = float(ctx.attr("mask_filter_value", -10000.0))
        self._scale = ctx.attr("scale")
        self._sizes = ctx.attr("qkv_hidden_sizes")

    def run(
        self,
        x: np.ndarray,
        weights: np.ndarray,
        bias: np.ndarray | None = None,
        mask_index: np.ndarray | None = None,
        past: np.ndarray | None = None,
        attention_bias: np.ndarray | None = None,
        past_sequence_length: np.ndarray | None = None,
    ) -> tuple:
        x = np.asarray(x)
        dtype = x.dtype
        w = _work(x)
        if w.ndim != 3:
            raise InferenceError(f"Attention node {self.ctx.node_name!r}: input must be (B, S, D), got {x.shape}")
        b, s, _ = w.shape
        wt = _work(np.asarray(weights))
        total = wt.shape[1]
        if self._sizes:
            dq, dk, dv = (int(v) for v in self._sizes)
        else:
            dq = dk = dv = total // 3
        n = self._heads
        if dq + dk + dv != total or dq % n or dv % n or dq != dk:
            raise InferenceError(
                f"Attention node {self.ctx.node_name!r}: weights {wt.shape} do not split into q/k/v of "
                f"{(dq, dk, dv)} over {n} heads"
            )
        qkv = w @ wt
        if bias is not None:
            qkv = qkv + _work(np.asarray(bias))
        hq, hv = dq // n, dv // n

        def heads(t: np.ndarray, h: int) -> np.ndarray:  # (B, S, N*h) -> (B, N, S, h)
            return t.reshape(b, s, n, h).transpose(0, 2, 1, 3)

        q = heads(qkv[..., :dq], hq)
        k = heads(qkv[..., dq : dq + dk], hq)
        v = heads(qkv[..., dq + dk :], hv)
        p_len = 0
        if past is not None and np.size(past):
            pw = _work(np.asarray(past))
            p_len = pw.shape[3]
            k = np.concatenate([pw[0], k], axis=2)
            v = np.concatenate([pw[1], v], axis=2)
        t = p_len + s
        scale = float(self._scale) if self._scale else 1.0 / math.sqrt(hq)
        scores = (q @ k.transpose(0, 1, 3, 2)) * q.dtype.type(scale)
        mask = self._mask(mask_index, b, s, t, p_len, q.dtype)
        if mask is not None:
            scores = scores + mask[:, None, :, :]
        if attention_bias is not None:
            scores = scores + _work(np.asarray(attention_bias))
        scores = scores - scores.max(axis=-1, keepdims=True)
        e = np.exp(scores)
        probs = e / e.sum(axis=-1, keepdims=True)
        out = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, dv)
        outs: list[np.ndarray] = [as_dtype(out, dtype)]
        if self.ctx.num_outputs > 1:
            outs.append(as_dtype(np.stack([k, v]), dtype))
        return tuple(outs)

    def _mask(
        self, mask_index: np.ndarray | None, b: int, s: int, t: int, p_len: int, dtype: np.dtype
    ) -> np.ndarray | None:
        """The additive mask (B, S, T): 0 where attended, ``mask_filter_value`` where not."""
        fill = dtype.type(self._filter)
        mask = None
        if mask_index is not None and np.size(mask_index):
            m = np.asarray(mask_index)
            keep: np.ndarray
            if m.ndim == 2 and m.shape == (b, t):
                keep = np.broadcast_to((m > 0)[:, None, :], (b, s, t))
            elif m.ndim == 3 and m.shape == (b, s, t):
                keep = m > 0
            elif m.ndim == 1 and m.shape[0] in (b, 2 * b):
                pos = np.arange(t)
                keep = pos[None, :] < m[:b, None]
                if m.shape[0] == 2 * b:
                    keep &= pos[None, :] >= np.minimum(m[b:, None], t)
                keep = np.broadcast_to(keep[:, None, :], (b, s, t))
            else:
                raise unsupported(
                    self.ctx,
                    f"mask_index of shape {m.shape} is not one of (B)={b}, (2B), (B, T)=({b}, {t}) "
                    f"or (B, S, T)=({b}, {s}, {t})",
                )
            mask = np.where(keep, dtype.type(0), fill)
        if self._causal:
            future = np.arange(t)[None, :] > (p_len + np.arange(s))[:, None]
            causal = np.where(future, fill, dtype.type(0))[None]
            mask = causal if mask is None else np.where(future[None], fill, mask)
        return mask
