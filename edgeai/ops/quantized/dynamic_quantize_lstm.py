"""com.microsoft DynamicQuantizeLSTM: an ONNX LSTM whose two GEMMs run on int8 weights.

As ONNX Runtime computes it: the whole input sequence ``X`` (``[seq * batch,
input]``) is quantized to uint8 once per direction and every hidden state
``h`` once per step, with DynamicQuantizeLinear's parameters; each integer
product becomes float as ``float32(acc) * (a_scale * w_scale)``. The gate
arithmetic is float32, separately rounded (``xw + hr``, then ``+ (Wb + Rb)``,
``c = f * c_prev + i * g``), and the activations are MLAS's rational
approximations of the logistic function and tanh (FMA polynomials). Weights
are ``W: [directions, input, 4 * hidden]`` and ``R: [directions, hidden,
4 * hidden]`` (gate order i, o, f, c), int8 or uint8, with per-tensor or
per-column scales and zero points.

Supported: forward, reverse and bidirectional; initial states; bias;
peepholes; ``clip``; ``input_forget``; ``sequence_lens`` (a finished row keeps
its state, outputs zeros, and feeds zeros to the next recurrent GEMM, which
changes that GEMM's quantization parameters; the input GEMM quantizes only
the steps up to the longest sequence; all as in ONNX Runtime). Not
supported (UnsupportedOpError): activations other than the defaults.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.dynamic_quantize_lstm import DynamicQuantizeLSTM
    >>> op = DynamicQuantizeLSTM(OpContext("l", "DynamicQuantizeLSTM", "com.microsoft", attrs={"hidden_size": 2}))
    >>> x = np.ones((3, 1, 2), np.float32); w = np.ones((1, 2, 8), np.int8); r = np.ones((1, 2, 8), np.int8)
    >>> s, z = np.array([0.1], np.float32), np.array([0], np.int8)
    >>> y, y_h, y_c = op.run(x, w, r, None, None, None, None, None, s, z, s, z)
    >>> y.shape, y_h.shape
    ((3, 1, 1, 2), (1, 1, 2))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.quantized._common import bad_model, check_int_dtype, onnx_mode_only, unsupported
from edgeai.ops.quantized.qlinear_elementwise import mlas_logistic
from edgeai.ops.quantized.quantize_linear import dynamic_quantize_uint8
from edgeai.ops.quantized.reference import matmul_int32
from edgeai.quant.float32 import fma_f32

__all__ = ["DynamicQuantizeLSTM", "mlas_tanh"]

_F = np.float32
# MLAS's tanh: an odd polynomial over an even one on [-9, 9]
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)  # fmt: skip
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def mlas_tanh(x: np.ndarray) -> np.ndarray:
    """MLAS ``MlasComputeTanh`` in float32."""
    v = np.clip(np.asarray(x, dtype=_F), _F(-9.0), _F(9.0))
    v2 = (v * v).astype(_F)
    p = _F(_TANH_P[0])
    for c in _TANH_P[1:]:
        p = fma_f32(p, v2, _F(c))
    q = _F(_TANH_Q[0])
    for c in _TANH_Q[1:]:
        q = fma_f32(q, v2, _F(c))
    return ((p * v).astype(_F) / q).astype(_F)


def _gemm_float(a: np.ndarray, w: np.ndarray, w_scale: np.ndarray, w_zp: np.ndarray) -> np.ndarray:
    aq, a_scale, a_zp = dynamic_quantize_uint8(np.ascontiguousarray(a, dtype=_F))
    acc = matmul_int32(aq, a_zp.reshape(()), w, w_zp)
    return (acc.astype(_F) * (a_scale * w_scale).astype(_F)).astype(_F)


@register("DynamicQuantizeLSTM", domain="com.microsoft", since=1)
class DynamicQuantizeLSTM(Op):
    """LSTM with dynamically quantized inputs/hidden states and int8 weights."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        onnx_mode_only(ctx)
        self.hidden = int(ctx.attr("hidden_size", 0))
        if self.hidden <= 0:
            raise bad_model(ctx, "hidden_size must be a positive integer")
        direction = ctx.attr("direction", "forward")
        self.direction = direction.decode() if isinstance(direction, bytes) else direction
        if self.direction not in ("forward", "reverse", "bidirectional"):
            raise bad_model(ctx, f"direction must be forward, reverse or bidirectional, not {self.direction!r}")
        acts = [a.decode() if isinstance(a, bytes) else a for a in (ctx.attr("activations") or [])]
        default = ["Sigmoid", "Tanh", "Tanh"] * (2 if self.direction == "bidirectional" else 1)
        if acts and [a.lower() for a in acts] != [a.lower() for a in default]:
            raise unsupported(ctx, f"activations {acts}")
        clip = ctx.attr("clip")
        self.clip = None if clip is None else _F(clip)
        self.input_forget = bool(int(ctx.attr("input_forget", 0)))

    def run(
        self, x: np.ndarray, w: np.ndarray, r: np.ndarray, b: Any = None, sequence_lens: Any = None,
        initial_h: Any = None, initial_c: Any = None, p: Any = None, w_scale: Any = None,
        w_zero_point: Any = None, r_scale: Any = None, r_zero_point: Any = None,
    ) -> tuple[Any, ...]:  # fmt: skip
        ctx, hdim = self.ctx, self.hidden
        x = np.asarray(x, dtype=_F)
        w, r = np.asarray(w), np.asarray(r)
        check_int_dtype(ctx, w, "W", ("int8", "uint8"))
        check_int_dtype(ctx, r, "R", ("int8", "uint8"))
        if x.ndim != 3:
            raise bad_model(ctx, f"X must be [seq, batch, input], got shape {x.shape}")
        seq, batch, _ = x.shape
        dirs = 2 if self.direction == "bidirectional" else 1
        if w.shape != (dirs, x.shape[2], 4 * hdim) or r.shape != (dirs, hdim, 4 * hdim):
            want_w, want_r = (dirs, x.shape[2], 4 * hdim), (dirs, hdim, 4 * hdim)
            raise bad_model(ctx, f"W must be {want_w} and R {want_r}, got {w.shape} and {r.shape}")
        if w_scale is None or r_scale is None:
            raise bad_model(ctx, "W_scale and R_scale are required")
        for scale, zp, what in ((w_scale, w_zero_point, "W"), (r_scale, r_zero_point, "R")):
            if zp is not None and np.ndim(zp) != np.ndim(scale):
                raise bad_model(ctx, f"{what}_scale and {what}_zero_point must have the same layout")
        lens = np.full(batch, seq, np.int64) if sequence_lens is None else np.asarray(sequence_lens, np.int64)
        if lens.shape != (batch,) or np.any(lens < 1) or np.any(lens > seq):
            raise bad_model(ctx, f"sequence_lens must be {batch} lengths in 1..{seq}, got {lens.tolist()}")
        peep = None if p is None else np.asarray(p, dtype=_F)
        if peep is not None and peep.shape != (dirs, 3 * hdim):
            raise bad_model(ctx, f"P must be {(dirs, 3 * hdim)}, got {peep.shape}")
        ys = np.zeros((seq, dirs, batch, hdim), dtype=_F)
        hs = np.zeros((dirs, batch, hdim), dtype=_F)
        cs = np.zeros((dirs, batch, hdim), dtype=_F)
        rows = np.arange(batch)
        for d in range(dirs):
            params = [self._param(v, d, w.dtype if i % 2 else _F) for i, v in
                      enumerate((w_scale, w_zero_point, r_scale, r_zero_point))]  # fmt: skip
            # only the steps up to the longest sequence go into the input GEMM (and its quantization)
            steps = int(lens.max())
            xw = _gemm_float(x[:steps].reshape(steps * batch, -1), w[d], params[0], params[1]).reshape(steps, batch, -1)
            bias = np.zeros(4 * hdim, _F)
            if b is not None:
                bd = np.asarray(b, dtype=_F)[d]
                bias = (bd[: 4 * hdim] + bd[4 * hdim :]).astype(_F)
            pi, po, pf = (
                (None, None, None) if peep is None else (peep[d, :hdim], peep[d, hdim : 2 * hdim], peep[d, 2 * hdim :])
            )
            h = np.zeros((batch, hdim), _F) if initial_h is None else np.asarray(initial_h, _F)[d].copy()
            c = np.zeros((batch, hdim), _F) if initial_c is None else np.asarray(initial_c, _F)[d].copy()
            reverse = self.direction == "reverse" or d == 1
            for j in range(steps):
                active = j < lens
                pos = np.where(active, lens - 1 - j, 0) if reverse else np.full(batch, j)
                # the recurrent GEMM reads the previous step's output: zero for rows already done
                fed = h if j == 0 else np.where((j - 1 < lens)[:, None], h, _F(0)).astype(_F)
                g = (xw[pos, rows] + _gemm_float(fed, r[d], params[2], params[3])).astype(_F)
                i_g = mlas_logistic(self._gate(g[:, :hdim], bias[:hdim], pi, c))
                if self.input_forget:
                    f_g = (_F(1) - i_g).astype(_F)
                else:
                    f_g = mlas_logistic(self._gate(g[:, 2 * hdim : 3 * hdim], bias[2 * hdim : 3 * hdim], pf, c))
                c_g = mlas_tanh(self._gate(g[:, 3 * hdim :], bias[3 * hdim :], None, c))
                c_new = ((f_g * c).astype(_F) + (i_g * c_g).astype(_F)).astype(_F)
                o_g = mlas_logistic(self._gate(g[:, hdim : 2 * hdim], bias[hdim : 2 * hdim], po, c_new))
                h_new = (o_g * mlas_tanh(c_new)).astype(_F)
                h = np.where(active[:, None], h_new, h)
                c = np.where(active[:, None], c_new, c)
                ys[pos[active], d, rows[active]] = h_new[active]
            hs[d], cs[d] = h, c
        return ys, hs, cs

    def _gate(self, g: np.ndarray, bias: np.ndarray, peephole: np.ndarray | None, c: np.ndarray) -> np.ndarray:
        """``clip(g + peephole * c + bias)``, each step rounded to float32 as ONNX Runtime does."""
        if peephole is not None:
            g = (g + (c * peephole).astype(_F)).astype(_F)
        g = (g + bias).astype(_F)
        if self.clip is not None:
            g = np.clip(g, -self.clip, self.clip)
        return g

    def _param(self, v: Any, d: int, dtype: Any) -> np.ndarray:
        """Direction ``d``'s scale or zero point: per tensor (``[D]``) or per column (``[D, 4H]``)."""
        if v is None:
            return np.zeros((), dtype=dtype)
        a = np.asarray(v)
        if a.ndim == 2 and a.shape[1] == 4 * self.hidden:
            return a[d]
        if a.ndim == 1 and a.shape[0] in (1, 2):
            return a[min(d, a.shape[0] - 1)].reshape(())
        raise bad_model(self.ctx, f"scales/zero points must be [directions] or [directions, 4*hidden], got {a.shape}")
