"""Fused transformer ops: the com.microsoft float ops ONNX Runtime's transformer
optimizer and GenAI model builder write, ONNX's ``Attention`` and
``RotaryEmbedding`` (opset 23 on), ``LinearAttention`` (27) and the preview
``FlexAttention`` (domain ``ai.onnx.preview``).

com.microsoft: ``Gelu``, ``FastGelu``, ``BiasGelu``, ``QuickGelu``,
``GemmFastGelu``, ``EmbedLayerNormalization``, ``SkipLayerNormalization``,
``SkipSimplifiedLayerNormalization``, ``Attention`` (BERT/GPT-2),
``MultiHeadAttention``, ``GroupQueryAttention`` (decoder LLMs, float KV cache)
and ``RotaryEmbedding``; ``SimplifiedLayerNormalization``, which ONNX Runtime
registers in the default domain (opset 1). Semantics follow ONNX Runtime's CPU
kernels, the oracle of ``tests/native/test_float_math_ops.py``; what this
engine does not implement (rotary inside ``Attention``, shared past/present
buffers of ``Attention``, quantized or window-sized KV caches, ragged batches)
raises :class:`edgeai.errors.UnsupportedOpError` when the session is built.

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
from typing import Any, ClassVar

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext
from edgeai.ops.activations import gelu, gelu_tanh, sigmoid
from edgeai.ops.elementwise import as_dtype, mean_last, register_versions, unsupported

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
            ms = mean_last(np.square(s))
            inv = 1.0 / np.sqrt(ms + s.dtype.type(self._eps))
            y = s * inv * _work(np.asarray(gamma))
        else:
            mean = mean_last(s)
            d = s - mean
            inv = 1.0 / np.sqrt(mean_last(np.square(d)) + s.dtype.type(self._eps))
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


@register_versions("EmbedLayerNormalization", (1,), domain=MS)
class EmbedLayerNormalization(Op):
    """BERT's embedding block: word + position (+ segment) embeddings, then LayerNorm.

    Outputs the normalised embeddings, ``mask_index`` (the number of ones in
    each row of ``mask``; zeros without a mask) and the sum before normalising.
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._eps = float(ctx.attr("epsilon", 1e-12))

    def _lookup(self, table: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
        ids = np.asarray(ids).astype(np.int64, copy=False)
        if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
            raise InferenceError(
                f"EmbedLayerNormalization node {self.ctx.node_name!r}: {what} must be in [0, {table.shape[0]}), "
                f"got values from {ids.min()} to {ids.max()}"
            )
        return table[ids]

    def run(
        self,
        input_ids: np.ndarray,
        segment_ids: np.ndarray | None,
        word_embedding: np.ndarray,
        position_embedding: np.ndarray,
        segment_embedding: np.ndarray | None,
        gamma: np.ndarray,
        beta: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        position_ids: np.ndarray | None = None,
    ) -> tuple:
        ids = np.asarray(input_ids)
        if ids.ndim != 2:
            raise InferenceError(
                f"EmbedLayerNormalization node {self.ctx.node_name!r}: input_ids must be (batch, sequence), "
                f"got {ids.shape}"
            )
        b, s = ids.shape
        word = np.asarray(word_embedding)
        dtype = word.dtype
        total = _work(self._lookup(word, ids, "input_ids"))
        pos = np.arange(s)[None, :] if position_ids is None else np.broadcast_to(np.asarray(position_ids), (b, s))
        total = total + _work(self._lookup(np.asarray(position_embedding), pos, "position_ids"))
        if segment_ids is not None and segment_embedding is not None:
            total = total + _work(self._lookup(np.asarray(segment_embedding), segment_ids, "segment_ids"))
        total = np.broadcast_to(total, (b, s, word.shape[1]))
        mean = mean_last(total)
        d = total - mean
        inv = 1.0 / np.sqrt(mean_last(np.square(d)) + total.dtype.type(self._eps))
        y = d * inv * _work(np.asarray(gamma))
        if beta is not None:
            y = y + _work(np.asarray(beta))
        if mask is not None:
            mask_index = (np.asarray(mask) == 1).sum(axis=1).astype(np.int32)
        else:
            mask_index = np.zeros(b, np.int32)
        outs = (as_dtype(y, dtype), mask_index, as_dtype(total, dtype))
        return outs[: max(1, self.ctx.num_outputs)]


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
        ms = mean_last(np.square(w), axes)
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
        out, _ = self._attend(q, k, v, mask_index, attention_bias, p_len)
        outs: list[np.ndarray] = [as_dtype(out.transpose(0, 2, 1, 3).reshape(b, s, dv), dtype)]
        if self.ctx.num_outputs > 1:
            outs.append(as_dtype(np.stack([k, v]), dtype))
        return tuple(outs)

    def _attend(
        self,
        q: np.ndarray,
        k: np.ndarray,
        v: np.ndarray,
        mask_index: np.ndarray | None,
        attention_bias: np.ndarray | None,
        p_len: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """softmax(Q K' * scale + mask + bias) V over (B, N, S, H) heads; also returns Q K' * scale."""
        b, _, s, hq = q.shape
        t = k.shape[2]
        scale = float(self._scale) if self._scale else 1.0 / math.sqrt(hq)
        qk = (q @ k.transpose(0, 1, 3, 2)) * q.dtype.type(scale)
        scores = qk
        mask = self._mask(mask_index, b, s, t, p_len, q.dtype)
        if mask is not None:
            scores = scores + mask[:, None, :, :]
        if attention_bias is not None:
            scores = scores + _work(np.asarray(attention_bias))
        probs = scores - scores.max(axis=-1, keepdims=True)  # a new array: qk stays intact
        np.exp(probs, out=probs)
        probs /= probs.sum(axis=-1, keepdims=True)
        return probs @ v, qk

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


@register_versions("MultiHeadAttention", (1,), domain=MS)
class MultiHeadAttention(Attention):
    """ONNX Runtime's self/cross attention over already projected Q, K, V.

    Query (B, S, D) or packed QKV (B, S, N, 3, H); key/value (B, L, D), packed
    KV (B, L, N, 2, H) or per-head (B, N, L, H); optional projection ``bias``,
    ``key_padding_mask`` (the formats of Attention's ``mask_index``),
    ``attention_bias``, ``past_key``/``past_value`` and ``unidirectional``.
    """

    def __init__(self, ctx: OpContext) -> None:
        Op.__init__(self, ctx)
        self._heads = int(ctx.attr("num_heads", 0))
        if self._heads <= 0:
            raise unsupported(ctx, "the 'num_heads' attribute must be a positive integer")
        self._causal = bool(ctx.attr("unidirectional", 0))
        self._filter = float(ctx.attr("mask_filter_value", -10000.0))
        self._scale = ctx.attr("scale")

    def run(
        self,
        query: np.ndarray,
        key: np.ndarray | None = None,
        value: np.ndarray | None = None,
        bias: np.ndarray | None = None,
        key_padding_mask: np.ndarray | None = None,
        attention_bias: np.ndarray | None = None,
        past_key: np.ndarray | None = None,
        past_value: np.ndarray | None = None,
        past_sequence_length: np.ndarray | None = None,
        cache_indirection: np.ndarray | None = None,
    ) -> tuple:
        if past_sequence_length is not None or cache_indirection is not None:
            raise unsupported(self.ctx, "past/present buffer sharing and beam-search cache indirection")
        query = np.asarray(query)
        dtype = query.dtype
        n = self._heads
        q = _work(query)
        b, s = q.shape[:2]
        if q.ndim == 5:  # packed QKV (B, S, N, 3, H)
            if key is not None or value is not None:
                raise InferenceError(f"MultiHeadAttention node {self.ctx.node_name!r}: packed QKV takes no key/value")
            q, k, v = (q[:, :, :, i].transpose(0, 2, 1, 3) for i in range(3))
        else:
            if key is None:
                raise InferenceError(f"MultiHeadAttention node {self.ctx.node_name!r}: key is missing")
            kw = _work(np.asarray(key))
            dq = q.shape[2]
            bias_w = None if bias is None else _work(np.asarray(bias))
            if bias_w is not None:
                q = q + bias_w[:dq]
            q = q.reshape(b, s, n, -1).transpose(0, 2, 1, 3)
            if kw.ndim == 5:  # packed KV (B, L, N, 2, H)
                k, v = kw[:, :, :, 0].transpose(0, 2, 1, 3), kw[:, :, :, 1].transpose(0, 2, 1, 3)
            elif kw.ndim == 4:  # already per head (B, N, L, H): cross-attention cache, no bias
                k, v = kw, _work(np.asarray(value))
            else:
                vw = _work(np.asarray(value))
                if bias_w is not None:
                    dk = kw.shape[2]
                    kw, vw = kw + bias_w[dq : dq + dk], vw + bias_w[dq + dk :]
                k = kw.reshape(b, kw.shape[1], n, -1).transpose(0, 2, 1, 3)
                v = vw.reshape(b, vw.shape[1], n, -1).transpose(0, 2, 1, 3)
        p_len = 0
        if past_key is not None and past_value is not None:
            p_len = np.asarray(past_key).shape[2]
            k = np.concatenate([_work(np.asarray(past_key)), k], axis=2)
            v = np.concatenate([_work(np.asarray(past_value)), v], axis=2)
        out, qk = self._attend(q, k, v, key_padding_mask, attention_bias, p_len)
        outs = (
            as_dtype(out.transpose(0, 2, 1, 3).reshape(b, s, -1), dtype),
            as_dtype(k, dtype),
            as_dtype(v, dtype),
            as_dtype(qk, dtype),
        )
        return outs[: max(1, self.ctx.num_outputs)]


# --------------------------------------------------------------------------- ONNX Attention (opset 23+)


def _softmax_rows(scores: np.ndarray, fully_masked: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; rows with no attendable key become zeros (not NaN)."""
    m = scores.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, scores.dtype.type(0))
    e = np.exp(scores - m)
    s = e.sum(axis=-1, keepdims=True)
    probs = e / np.where(s == 0, scores.dtype.type(1), s)
    return np.where(fully_masked, scores.dtype.type(0), probs)


@register_versions("Attention", (23, 24, 25))
class OnnxAttention(Op):
    """ONNX Attention: scaled dot-product attention over 3-D or 4-D Q/K/V with MHA, GQA and MQA,
    boolean or additive masks, bottom-right causal masking, a past/present KV cache,
    ``nonpad_kv_seqlen`` (24), softcap, ``qk_matmul_output`` modes and sliding windows (25).

    Fully masked query rows give zeros, following the onnx 1.23 errata.
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._causal = bool(ctx.attr("is_causal", 0))
        qn, kvn = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
        self._qn = None if qn is None else int(qn)
        self._kvn = None if kvn is None else int(kvn)
        self._mode = int(ctx.attr("qk_matmul_output_mode", 0))
        if self._mode not in (0, 1, 2, 3):
            raise unsupported(ctx, f"qk_matmul_output_mode must be 0, 1, 2 or 3, got {self._mode}")
        self._scale = ctx.attr("scale")
        self._softcap = float(ctx.attr("softcap", 0.0))
        precision = ctx.attr("softmax_precision")
        self._softmax_dtype = None
        if precision is not None:
            from onnx import helper

            self._softmax_dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(precision)))
        self._left = int(ctx.attr("left_window_size", -1))
        self._right = int(ctx.attr("right_window_size", -1))

    def _fail(self, what: str) -> InferenceError:
        return InferenceError(f"Attention node {self.ctx.node_name!r}: {what}")

    def run(
        self,
        q: np.ndarray,
        k: np.ndarray,
        v: np.ndarray,
        attn_mask: np.ndarray | None = None,
        past_key: np.ndarray | None = None,
        past_value: np.ndarray | None = None,
        nonpad_kv_seqlen: np.ndarray | None = None,
    ) -> tuple:
        q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
        dtype = q.dtype
        three_d = q.ndim == 3
        if not (q.ndim == k.ndim == v.ndim) or q.ndim not in (3, 4):
            raise self._fail(f"Q, K and V must all be 3-D or all 4-D, got {q.shape}, {k.shape}, {v.shape}")
        if three_d:
            if self._qn is None or self._kvn is None:
                raise self._fail("3-D Q/K/V need the q_num_heads and kv_num_heads attributes")
            b = q.shape[0]
            q = q.reshape(b, q.shape[1], self._qn, -1).transpose(0, 2, 1, 3)
            k = k.reshape(b, k.shape[1], self._kvn, -1).transpose(0, 2, 1, 3)
            v = v.reshape(b, v.shape[1], self._kvn, -1).transpose(0, 2, 1, 3)
        if (past_key is None) != (past_value is None):
            raise self._fail("past_key and past_value must be given together")
        if past_key is not None:
            k = np.concatenate([np.asarray(past_key), k], axis=2)
            v = np.concatenate([np.asarray(past_value), v], axis=2)
        present_k, present_v = k, v
        b, nq, sq, h = q.shape
        nkv, t = k.shape[1], k.shape[2]
        if nq % nkv:
            raise self._fail(f"{nq} query heads are not a multiple of {nkv} key/value heads")
        w = np.dtype(np.float32) if dtype.itemsize < 4 else dtype
        qw, kw, vw = q.astype(w, copy=False), k.astype(w, copy=False), v.astype(w, copy=False)
        if nq != nkv:  # GQA/MQA: key/value head j serves query heads j*r ... j*r + r - 1
            kw, vw = np.repeat(kw, nq // nkv, axis=1), np.repeat(vw, nq // nkv, axis=1)
        # scale both operands by sqrt(scale), as the spec does against overflow in half precision
        root = w.type(math.sqrt(float(self._scale) if self._scale is not None else 1.0 / math.sqrt(h)))
        raw = (qw * root) @ (kw * root).swapaxes(-1, -2)
        capped = raw
        if self._softcap > 0:
            cap = w.type(self._softcap)
            capped = cap * np.tanh(raw / cap)
        past_len = 0 if past_key is None else np.asarray(past_key).shape[2]
        bias = self._bias(attn_mask, nonpad_kv_seqlen, b, sq, t, past_len, past_key is not None, w)
        with np.errstate(invalid="ignore", over="ignore"):
            scores = capped + bias
            sm = scores if self._softmax_dtype is None else scores.astype(self._softmax_dtype)
            fully = np.isneginf(bias.max(axis=-1, keepdims=True))
            probs = _softmax_rows(sm, fully).astype(w, copy=False)
        out = probs @ vw
        if three_d:
            out = out.transpose(0, 2, 1, 3).reshape(b, sq, -1)
        qk = (raw, capped, scores, probs)[self._mode]
        outs = (as_dtype(out, dtype), present_k, present_v, as_dtype(qk, dtype))
        return outs[: max(1, self.ctx.num_outputs)]

    def _bias(
        self,
        attn_mask: np.ndarray | None,
        nonpad: np.ndarray | None,
        b: int,
        sq: int,
        t: int,
        past_len: int,
        has_past: bool,
        w: np.dtype,
    ) -> np.ndarray:
        """The additive bias, broadcastable to (B, heads, Sq, T): 0 where attended, -inf where not."""
        zero, ninf = w.type(0), w.type(-np.inf)
        bias: np.ndarray = np.zeros((sq, t), w)
        if attn_mask is not None:
            m = np.asarray(attn_mask)
            if m.shape[-1] < t:  # a short mask is padded with "do not attend"
                pad = [(0, 0)] * (m.ndim - 1) + [(0, t - m.shape[-1])]
                m = np.pad(m, pad, constant_values=False if m.dtype == np.bool_ else -np.inf)
            bias = bias + (np.where(m, zero, ninf) if m.dtype == np.bool_ else m.astype(w))
        lengths = None if nonpad is None else np.asarray(nonpad).reshape(-1).astype(np.int64)
        if self._causal or self._left >= 0 or self._right >= 0:
            # bottom-right alignment: query i sits at absolute position i + offset
            if has_past or lengths is None:
                pos = (np.arange(sq) + past_len)[:, None]
            else:
                pos = (lengths - sq)[:, None, None, None] + np.arange(sq)[:, None]
            diff = pos - np.arange(t)  # query position minus key position
            allowed = np.ones(diff.shape, np.bool_)
            if self._causal:
                allowed &= diff >= 0
            if self._left >= 0:
                allowed &= diff <= self._left
            if self._right >= 0:
                allowed &= -diff <= self._right
            bias = bias + np.where(allowed, zero, ninf)
        if lengths is not None:
            bias = bias + np.where(np.arange(t) < lengths[:, None], zero, ninf)[:, None, None, :]
        return bias


@register_versions("RotaryEmbedding", (23,))
class RotaryEmbedding(Op):
    """ONNX RotaryEmbedding (RoPE) over (B, N, S, H) or (B, S, N*H) input, full or partial,
    with split-half or interleaved pairs; caches indexed by ``position_ids`` when given."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._heads = int(ctx.attr("num_heads", 0))
        self._dim = int(ctx.attr("rotary_embedding_dim", 0))
        self._interleaved = bool(ctx.attr("interleaved", 0))

    def run(
        self, x: np.ndarray, cos: np.ndarray, sin: np.ndarray, position_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray]:
        x = np.asarray(x)
        dtype = x.dtype
        if x.ndim == 4:
            bsnh = x.transpose(0, 2, 1, 3)
        elif x.ndim == 3:
            if self._heads <= 0 or x.shape[2] % self._heads:
                raise InferenceError(
                    f"RotaryEmbedding node {self.ctx.node_name!r}: a 3-D input needs num_heads dividing "
                    f"its hidden size {x.shape[2]}"
                )
            bsnh = x.reshape(x.shape[0], x.shape[1], self._heads, -1)
        else:
            raise InferenceError(f"RotaryEmbedding node {self.ctx.node_name!r}: input must be 3-D or 4-D")
        head = bsnh.shape[3]
        dim = self._dim or head
        cos, sin = np.asarray(cos), np.asarray(sin)
        if position_ids is not None:
            pos = np.asarray(position_ids).astype(np.int64, copy=False)
            cos, sin = cos[pos], sin[pos]
        if cos.shape[-1] != dim // 2 or sin.shape[-1] != dim // 2:
            raise InferenceError(
                f"RotaryEmbedding node {self.ctx.node_name!r}: cos/sin caches end in {cos.shape[-1]}, "
                f"expected rotary_embedding_dim / 2 = {dim // 2}"
            )
        out = _rope(bsnh, cos, sin, dim, self._interleaved)
        out = out.reshape(x.shape) if x.ndim == 3 else out.transpose(0, 2, 1, 3)
        return (as_dtype(out, dtype),)


def _rope(bsnh: np.ndarray, cos: np.ndarray, sin: np.ndarray, dim: int, interleaved: bool) -> np.ndarray:
    """Rotate the first ``dim`` features of (B, S, N, H) by per-(B, S) cos/sin of shape (B, S, dim/2)."""
    w = _work(bsnh)
    c = _work(cos)[:, :, None, :]
    s = _work(sin)[:, :, None, :]
    rot = w[..., :dim]
    x1, x2 = (rot[..., 0::2], rot[..., 1::2]) if interleaved else (rot[..., : dim // 2], rot[..., dim // 2 :])
    real = c * x1 - s * x2
    imag = s * x1 + c * x2
    if interleaved:
        rotated = np.stack([real, imag], axis=-1).reshape(rot.shape)
    else:
        rotated = np.concatenate([real, imag], axis=-1)
    return np.concatenate([rotated, w[..., dim:]], axis=-1)


@register_versions("RotaryEmbedding", (1,), domain=MS)
class MsRotaryEmbedding(Op):
    """ONNX Runtime's RotaryEmbedding: input (B, S, D) or (B, N, S, H); ``position_ids`` (B, S),
    or (1) holding the first position of every sequence; caches (max_len, rotary_dim / 2)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._heads = int(ctx.attr("num_heads", 0))
        self._dim = int(ctx.attr("rotary_embedding_dim", 0))
        self._interleaved = bool(ctx.attr("interleaved", 0))
        if int(ctx.attr("is_packed_batching", 0)):
            raise unsupported(ctx, "ragged (is_packed_batching=1) inputs are not implemented")
        if float(ctx.attr("scale", 1.0)) != 1.0:
            raise unsupported(ctx, "a scale other than 1.0 is not implemented")

    def run(self, x: np.ndarray, position_ids: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        cos, sin = np.asarray(cos), np.asarray(sin)
        if x.ndim == 4:
            bsnh = x.transpose(0, 2, 1, 3)
        elif x.ndim == 3:
            head = self._dim or 2 * cos.shape[1]
            heads = self._heads or x.shape[2] // head
            if heads <= 0 or x.shape[2] % heads:
                raise InferenceError(
                    f"RotaryEmbedding node {self.ctx.node_name!r}: hidden size {x.shape[2]} does not split "
                    f"into {heads} heads"
                )
            bsnh = x.reshape(x.shape[0], x.shape[1], heads, -1)
        else:
            raise InferenceError(f"RotaryEmbedding node {self.ctx.node_name!r}: input must be 3-D or 4-D")
        b, s = bsnh.shape[:2]
        pos = np.asarray(position_ids).astype(np.int64, copy=False)
        if pos.size == 1:  # the position of the first token; the others follow it
            pos = np.broadcast_to(pos.reshape(()) + np.arange(s), (b, s))
        if pos.size and (pos.min() < 0 or pos.max() >= cos.shape[0]):
            raise InferenceError(
                f"RotaryEmbedding node {self.ctx.node_name!r}: positions must be in [0, {cos.shape[0]}), "
                f"got up to {pos.max()}"
            )
        out = _rope(bsnh, cos[pos], sin[pos], self._dim or bsnh.shape[3], self._interleaved)
        out = out.reshape(x.shape) if x.ndim == 3 else out.transpose(0, 2, 1, 3)
        return (as_dtype(out, x.dtype),)


@register_versions("GemmFastGelu", (1,), domain=MS)
class GemmFastGelu(Op):
    """``FastGelu(X @ W + bias)``."""

    def run(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray]:
        x = np.asarray(x)
        y = _work(x) @ _work(np.asarray(w))
        if bias is not None:
            y = y + _work(np.asarray(bias))
        return (as_dtype(gelu_tanh(y), x.dtype),)


@register_versions("GroupQueryAttention", (1,), domain=MS)
class GroupQueryAttention(Op):
    """ONNX Runtime's grouped-query attention of decoder LLMs, with a float KV cache in BNSH.

    Batch entry ``b`` holds ``T = seqlens_k[b] + 1`` tokens after the step, the
    ``S`` new ones at positions ``[T - S, T)`` (first-prompt rows past ``T`` are
    padding). New keys/values are written into the cache there; query ``s``
    attends causally (and within ``local_window_size``) to ``[0, T - S + s]``.
    Optional rotary embedding (``do_rotary``), ``softcap``, ``smooth_softmax``
    and ``head_sink``. Quantized caches, ``query_seqlens``, window-sized caches
    and per-head Q/K norms raise :class:`edgeai.errors.UnsupportedOpError`.
    """

    # input index -> name, for the optional inputs this engine does not implement
    _NOT_IMPLEMENTED: ClassVar[tuple[tuple[int, str], ...]] = (
        (12, "k_scale"),
        (13, "v_scale"),
        (14, "q_norm_weight"),
        (15, "k_norm_weight"),
        (16, "query_seqlens"),
    )

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._heads = int(ctx.attr("num_heads", 0))
        self._kv_heads = int(ctx.attr("kv_num_heads", 0))
        if self._heads <= 0 or self._kv_heads <= 0 or self._heads % self._kv_heads:
            raise unsupported(ctx, "num_heads and kv_num_heads must be positive, num_heads a multiple of kv_num_heads")
        for name in ("sliding_window_cache", "kv_cache_bit_width"):
            if int(ctx.attr(name, 0)):
                raise unsupported(ctx, f"{name} (window-sized or quantized KV caches) is not implemented")
        for name in ("k_quant_type", "v_quant_type"):
            if str(ctx.attr(name, "NONE")) != "NONE":
                raise unsupported(ctx, f"{name}={ctx.attr(name)!r} (quantized KV cache) is not implemented")
        self._causal = bool(ctx.attr("causal", 1))
        self._window = int(ctx.attr("local_window_size", -1))
        self._scale = ctx.attr("scale")
        self._softcap = float(ctx.attr("softcap", 0.0))
        self._rotary = bool(ctx.attr("do_rotary", 0))
        self._interleaved = bool(ctx.attr("rotary_interleaved", 0))
        self._smooth = int(ctx.attr("smooth_softmax", -1)) == 1
        self._qk_output = int(ctx.attr("qk_output", 0))

    def _fail(self, what: str) -> InferenceError:
        return InferenceError(f"GroupQueryAttention node {self.ctx.node_name!r}: {what}")

    def run(
        self, query: np.ndarray, key: np.ndarray | None = None, value: np.ndarray | None = None, *rest: Any
    ) -> tuple:
        rest = rest + (None,) * (14 - len(rest))  # inputs 3 .. 16
        past_key, past_value, seqlens_k, total_len, cos, sin, position_ids, attention_bias, head_sink = rest[:9]
        for index, name in self._NOT_IMPLEMENTED:
            if rest[index - 3] is not None:
                raise unsupported(self.ctx, f"the {name} input is not implemented")
        if seqlens_k is None or total_len is None:
            raise self._fail("seqlens_k and total_sequence_length are required")
        query = np.asarray(query)
        dtype = query.dtype
        n, kvn = self._heads, self._kv_heads
        qw = _work(query)
        b, s = qw.shape[:2]
        if key is None:  # packed QKV: (B, S, N*H + 2*kvN*H)
            h = qw.shape[2] // (n + 2 * kvn)
            qw, kw, vw = qw[..., : n * h], qw[..., n * h : (n + kvn) * h], qw[..., (n + kvn) * h :]
        else:
            kw, vw = _work(np.asarray(key)), _work(np.asarray(value))
            h = qw.shape[2] // n
        q = qw.reshape(b, s, n, h)
        k = kw.reshape(b, s, kvn, h)
        v = vw.reshape(b, s, kvn, h)
        totals = np.asarray(seqlens_k).reshape(-1).astype(np.int64) + 1
        total = int(np.asarray(total_len).reshape(-1)[0])
        if totals.shape[0] != b or totals.min() < 1 or totals.max() > total:
            raise self._fail(f"seqlens_k + 1 must be in [1, total_sequence_length={total}] for each of {b} entries")
        past_lens = np.maximum(totals - s, 0)  # a first prompt may be right-padded: T < S
        if self._rotary:
            if cos is None or sin is None:
                raise self._fail("do_rotary=1 needs cos_cache and sin_cache")
            cos, sin = np.asarray(cos), np.asarray(sin)
            if position_ids is not None and past_lens.max() == 0 and s > 1:
                # a first prompt: only the first position id counts, the others follow it
                first = np.asarray(position_ids).astype(np.int64).reshape(-1)[0]
                pos = np.broadcast_to(first + np.arange(s), (b, s))
            elif position_ids is not None:
                pos = np.broadcast_to(np.asarray(position_ids).astype(np.int64), (b, s))
            else:
                pos = past_lens[:, None] + np.arange(s)
            pos = np.minimum(pos, cos.shape[0] - 1)
            q = _rope(q, cos[pos], sin[pos], 2 * cos.shape[1], self._interleaved)
            k = _rope(k, cos[pos], sin[pos], 2 * cos.shape[1], self._interleaved)
        buf = 0 if past_key is None else np.asarray(past_key).shape[2]
        cache_len = max(buf, total)
        present_k = np.zeros((b, kvn, cache_len, h), qw.dtype)
        present_v = np.zeros((b, kvn, cache_len, h), qw.dtype)
        for i in range(b):
            p = int(past_lens[i])
            if p:
                if past_key is None or past_value is None or buf < p:
                    raise self._fail(f"entry {i} has {p} cached tokens but the past buffers hold {buf}")
                present_k[i, :, :p] = _work(np.asarray(past_key)[i, :, :p])
                present_v[i, :, :p] = _work(np.asarray(past_value)[i, :, :p])
            new = min(s, cache_len - p)  # padding rows of a first prompt are stored too, as ORT does
            present_k[i, :, p : p + new] = k[i, :new].transpose(1, 0, 2)
            present_v[i, :, p : p + new] = v[i, :new].transpose(1, 0, 2)
        reps = n // kvn
        keys = np.repeat(present_k, reps, axis=1)  # (B, N, L, H): kv head j serves q heads j*reps...
        vals = np.repeat(present_v, reps, axis=1)
        scale = float(self._scale) if self._scale else 1.0 / math.sqrt(h)
        scores = (q.transpose(0, 2, 1, 3) @ keys.swapaxes(-1, -2)) * qw.dtype.type(scale)
        if self._softcap > 0:
            cap = qw.dtype.type(self._softcap)
            scores = cap * np.tanh(scores / cap)
        qpos = past_lens[:, None] + np.arange(s)  # (B, S) absolute query positions
        kpos = np.arange(cache_len)
        allowed = kpos[None, None, :] < totals[:, None, None]
        if self._causal:
            allowed = allowed & (kpos[None, None, :] <= qpos[:, :, None])
        if self._window > 0:
            allowed = allowed & (kpos[None, None, :] > qpos[:, :, None] - self._window)
        if attention_bias is not None:
            bias = _work(np.asarray(attention_bias))
            scores = scores + np.pad(bias, [(0, 0)] * 3 + [(0, cache_len - bias.shape[-1])])[..., :cache_len]
        neg = qw.dtype.type(-np.inf)
        scores = np.where(allowed[:, None], scores, neg)
        qk_raw = scores
        m = scores.max(axis=-1, keepdims=True)
        if head_sink is not None or self._smooth:
            sink = (
                np.zeros((1, n, 1, 1), qw.dtype)
                if head_sink is None
                else _work(np.asarray(head_sink)).reshape(1, n, 1, 1)
            )
            m = np.maximum(m, sink)
        m = np.where(np.isfinite(m), m, qw.dtype.type(0))
        e = np.exp(scores - m)
        denom = e.sum(axis=-1, keepdims=True)
        if head_sink is not None or self._smooth:
            denom = denom + np.exp(sink - m)
        probs = e / np.where(denom == 0, qw.dtype.type(1), denom)
        out = (probs @ vals).transpose(0, 2, 1, 3).reshape(b, s, n * h)
        outs = [as_dtype(out, dtype), as_dtype(present_k, dtype), as_dtype(present_v, dtype)]
        if self.ctx.num_outputs > 3:
            outs.append(as_dtype(probs if self._qk_output == 2 else qk_raw, dtype))
        return tuple(outs[: max(1, self.ctx.num_outputs)])


@register_versions("LinearAttention", (27,))
class LinearAttention(Op):
    """ONNX LinearAttention: the recurrent state update of linear / gated / delta / gated-delta
    attention, token by token, with GQA head sharing and an optional past state."""

    _RULES = ("linear", "gated", "delta", "gated_delta")

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._qn = int(ctx.attr("q_num_heads", 0))
        self._kvn = int(ctx.attr("kv_num_heads", 0))
        if self._qn <= 0 or self._kvn <= 0 or self._qn % self._kvn:
            raise unsupported(
                ctx, "q_num_heads and kv_num_heads must be positive, q_num_heads a multiple of kv_num_heads"
            )
        self._rule = str(ctx.attr("update_rule", "gated_delta"))
        if self._rule not in self._RULES:
            raise unsupported(ctx, f"update_rule must be one of {self._RULES}, got {self._rule!r}")
        self._scale = float(ctx.attr("scale", 0.0))

    def run(
        self,
        query: np.ndarray,
        key: np.ndarray,
        value: np.ndarray,
        past_state: np.ndarray | None = None,
        decay: np.ndarray | None = None,
        beta: np.ndarray | None = None,
    ) -> tuple:
        query = np.asarray(query)
        dtype = query.dtype
        q, k, v = _work(query), _work(np.asarray(key)), _work(np.asarray(value))
        b, t = q.shape[:2]
        qn, kvn = self._qn, self._kvn
        dk, dv = q.shape[2] // qn, v.shape[2] // kvn
        gated, delta = self._rule in ("gated", "gated_delta"), self._rule in ("delta", "gated_delta")
        if gated and decay is None:
            raise InferenceError(f"LinearAttention node {self.ctx.node_name!r}: update_rule {self._rule!r} needs decay")
        if delta and beta is None:
            raise InferenceError(f"LinearAttention node {self.ctx.node_name!r}: update_rule {self._rule!r} needs beta")
        q = q.reshape(b, t, kvn, qn // kvn, dk)  # query head j*r + i reads kv head j
        k = k.reshape(b, t, kvn, dk)
        v = v.reshape(b, t, kvn, dv)
        g = None if decay is None else _work(np.asarray(decay)).reshape(b, t, kvn, -1)  # (.., dk) or (.., 1)
        bt = None if beta is None else np.broadcast_to(_work(np.asarray(beta)).reshape(b, t, -1), (b, t, kvn))
        state = np.zeros((b, kvn, dk, dv), q.dtype) if past_state is None else _work(np.asarray(past_state)).copy()
        scale = q.dtype.type(self._scale if self._scale else 1.0 / math.sqrt(dk))
        out = np.empty((b, t, kvn, qn // kvn, dv), q.dtype)
        for step in range(t):
            kt, vt = k[:, step], v[:, step]
            if gated:
                state = state * np.exp(g[:, step])[..., None]  # per key dim (dk, 1) or per head (1, 1)
            if delta:
                predicted = np.einsum("bhkv,bhk->bhv", state, kt)
                state = state + bt[:, step, :, None, None] * kt[..., None] * (vt - predicted)[:, :, None, :]
            else:
                state = state + kt[..., None] * vt[:, :, None, :]
            out[:, step] = np.einsum("bhrk,bhkv->bhrv", q[:, step], state) * scale
        outs = (as_dtype(out.reshape(b, t, qn * dv), dtype), as_dtype(state, dtype))
        return outs[: max(1, self.ctx.num_outputs)]


@register_versions("FlexAttention", (1,), domain="ai.onnx.preview")
class FlexAttention(Op):
    """ONNX's preview FlexAttention: rank-4 SDPA with GQA and optional ``score_mod`` /
    ``prob_mod`` subgraphs run by the executor on the (B, Hq, L, S) scores and probabilities."""

    _PRECISION: ClassVar[dict[int, str]] = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._score_mod = ctx.attrs.get("score_mod")
        self._prob_mod = ctx.attrs.get("prob_mod")
        self._scale = ctx.attr("scale")
        precision = ctx.attr("softmax_precision")
        self._softmax_dtype: np.dtype | None = None
        if precision is not None:
            if int(precision) not in self._PRECISION:
                raise unsupported(ctx, f"softmax_precision {precision} is not a float type")
            import ml_dtypes

            name = self._PRECISION[int(precision)]
            self._softmax_dtype = np.dtype(ml_dtypes.bfloat16 if name == "bfloat16" else name)

    def _modify(self, graph: Any, value: np.ndarray, outer: dict[str, Any]) -> np.ndarray:
        if self.ctx.run_subgraph is None:
            raise unsupported(self.ctx, "score_mod/prob_mod subgraphs need the graph executor")
        (out,) = self.ctx.run_subgraph(graph, {graph.inputs[0]: value}, outer)
        return np.asarray(out, dtype=value.dtype)

    def run(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, *outer_values: Any) -> tuple[np.ndarray]:
        q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
        if not q.ndim == k.ndim == v.ndim == 4:
            raise InferenceError(
                f"FlexAttention node {self.ctx.node_name!r}: Q, K and V must be rank 4, got "
                f"{q.shape}, {k.shape}, {v.shape}"
            )
        outer = dict(zip(self.ctx.outer_names, outer_values))
        hq, hkv = q.shape[1], k.shape[1]
        if hq % hkv:
            raise InferenceError(f"FlexAttention node {self.ctx.node_name!r}: {hq} query heads, {hkv} kv heads")
        if hq != hkv:  # kv head j serves query heads j*r ... j*r + r - 1
            k, v = np.repeat(k, hq // hkv, axis=1), np.repeat(v, hq // hkv, axis=1)
        scale = float(self._scale) if self._scale is not None else 1.0 / math.sqrt(q.shape[3])
        root = q.dtype.type(math.sqrt(np.float32(scale)))
        scores = (q * root) @ (k * root).swapaxes(-1, -2)
        sm = self._softmax_dtype or (np.dtype(np.float32) if q.dtype.itemsize < 4 else q.dtype)
        scores = scores.astype(sm)
        if self._score_mod is not None:
            scores = self._modify(self._score_mod, scores, outer)
        with np.errstate(invalid="ignore", over="ignore"):
            e = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = e / e.sum(axis=-1, keepdims=True)
        if self._prob_mod is not None:
            probs = self._modify(self._prob_mod, probs, outer)
        return (as_dtype(probs.astype(q.dtype) @ v, q.dtype),)
