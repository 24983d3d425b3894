"""TFLite int8 ADD and MUL (reference-kernel arithmetic, numpy broadcasting).

ADD shifts both inputs left by 20 bits, rescales each by a fixed-point
multiplier below one (``scale / (2 * max scale)``), sums, and rescales by
``2 * max scale / (2**20 * y_scale)``; MUL requantizes the integer product by
``x1_scale * x2_scale / y_scale``. Both clamp to the fused activation's range.

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.elementwise import add_int8
    >>> a = np.array([10, -20], np.int8)
    >>> add_int8(a, 0.1, 0, a, 0.1, 0, 0.2, 0, -128, 127)
    array([ 10, -20], dtype=int8)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.tflite._common import activation_range, quant_of
from edgeai.quant.requant import multiply_by_quantized_multiplier, quantize_multiplier, requantize_tflite

__all__ = ["Add", "Mul", "add_int8", "add_int8_fast", "mul_int8"]

_F = np.float32
_I32 = (-(2**31), 2**31 - 1)


def _mbqm(x: np.ndarray, m: int, shift: int) -> np.ndarray:
    return requantize_tflite(np.asarray(x, np.int32), m, shift, 0, *_I32, dtype=np.int64)


def _add_loop(a, b, za, zb, m1, s1, m2, s2, mo, so, zy, lo, hi, out):  # type: ignore[no-untyped-def]
    for i in range(a.size):
        x1 = (np.int64(a[i]) - za) << 20
        x2 = (np.int64(b[i]) - zb) << 20
        raw = multiply_by_quantized_multiplier(x1, m1, s1) + multiply_by_quantized_multiplier(x2, m2, s2)
        v = multiply_by_quantized_multiplier(raw, mo, so) + zy
        out[i] = min(max(v, lo), hi)


_add_jit: Any = None


def _flat_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    x, y = np.broadcast_arrays(a, b)
    return np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(y).reshape(-1), x.shape


def add_int8_fast(
    a: np.ndarray, sa: float, za: int, b: np.ndarray, sb: float, zb: int, sy: float, zy: int, lo: int, hi: int
) -> np.ndarray:
    """:func:`add_int8` as one numba loop (the same scalar arithmetic, no int64 temporaries)."""
    global _add_jit
    if _add_jit is None:
        from numba import njit

        _add_jit = njit(cache=True)(_add_loop)
    twice_max = 2.0 * max(float(_F(sa)), float(_F(sb)))
    m1, s1 = quantize_multiplier(float(_F(sa)) / twice_max)
    m2, s2 = quantize_multiplier(float(_F(sb)) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << 20) * float(_F(sy))))
    x, y, shape = _flat_pair(a, b)
    out = np.empty(x.size, np.int8)
    _add_jit(x, y, int(za), int(zb), m1, s1, m2, s2, mo, so, int(zy), int(lo), int(hi), out)
    return out.reshape(shape)


def add_int8(
    a: np.ndarray, sa: float, za: int, b: np.ndarray, sb: float, zb: int, sy: float, zy: int, lo: int, hi: int
) -> np.ndarray:
    left = 20
    twice_max = 2.0 * max(float(_F(sa)), float(_F(sb)))
    m1, s1 = quantize_multiplier(float(_F(sa)) / twice_max)
    m2, s2 = quantize_multiplier(float(_F(sb)) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left) * float(_F(sy))))
    x1 = (a.astype(np.int64) - za) << left
    x2 = (b.astype(np.int64) - zb) << left
    raw = _mbqm(x1, m1, s1) + _mbqm(x2, m2, s2)
    return np.clip(_mbqm(raw, mo, so) + zy, lo, hi).astype(np.int8)


def mul_int8(
    a: np.ndarray, sa: float, za: int, b: np.ndarray, sb: float, zb: int, sy: float, zy: int, lo: int, hi: int
) -> np.ndarray:
    m, shift = quantize_multiplier(float(_F(sa)) * float(_F(sb)) / float(_F(sy)))
    prod = (a.astype(np.int64) - za) * (b.astype(np.int64) - zb)
    return np.clip(_mbqm(prod, m, shift) + zy, lo, hi).astype(np.int8)


class _Binary(Op):
    fn = staticmethod(add_int8)

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        qa = quant_of(ctx, ctx.input_values[0], "input 1")
        qb = quant_of(ctx, ctx.input_values[1], "input 2")
        qy = quant_of(ctx, ctx.output_values[0], "output")
        self.params = (qa.scale[0], qa.zero_point[0], qb.scale[0], qb.zero_point[0], qy.scale[0], qy.zero_point[0])
        self.lo, self.hi = activation_range(ctx, qy)

    def run(self, a: np.ndarray, b: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        sa, za, sb, zb, sy, zy = self.params
        return (self.fn(a, sa, za, b, sb, zb, sy, zy, self.lo, self.hi),)


@register("ADD", domain="tflite", since=1)
class Add(_Binary):
    """int8 ADD with broadcasting."""

    fn = staticmethod(add_int8_fast)


@register("MUL", domain="tflite", since=1)
class Mul(_Binary):
    """int8 MUL with broadcasting."""

    fn = staticmethod(mul_int8)
