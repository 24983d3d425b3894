"""TFLite int8 ADD and MUL (reference-kernel arithmetic, numpy broadcasting).

ADD shifts both inputs left by 20 bits, rescales each by a fixed-point
multiplier below one (``scale / (2 * max scale)``), sums, and rescales by
``2 * max scale / (2**20 * y_scale)``; MUL requantizes the integer product by
``x1_scale * x2_scale / y_scale``. Both clamp to the fused activation's range.
With per-tensor parameters the output is a function of the two input bytes, so
the ops look it up in a 65536-entry table built once by a numba loop of the same
arithmetic (:func:`pair_table`); ``tflite_kernels=False`` runs the numpy
functions here, the reference the tests compare the table with.

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
from edgeai.ops.tflite.loops import add_table, mul_table, pair_lookup
from edgeai.quant.requant import quantize_multiplier, requantize_tflite

__all__ = ["Add", "Mul", "add_int8", "add_multipliers", "mul_int8", "mul_multiplier", "pair_table"]

_F = np.float32
_I32 = (-(2**31), 2**31 - 1)
_LEFT = 20  # ADD's left shift of both inputs


def _mbqm(x: np.ndarray, m: int, shift: int) -> np.ndarray:
    return requantize_tflite(np.asarray(x, np.int32), m, shift, 0, *_I32, dtype=np.int64)


def add_multipliers(sa: float, sb: float, sy: float) -> tuple[int, int, int, int, int, int]:
    """ADD's three (multiplier, shift) pairs: each input by ``scale / (2 * max scale)``, the sum by
    ``2 * max scale / (2**20 * y_scale)``."""
    twice_max = 2.0 * max(float(_F(sa)), float(_F(sb)))
    m1, s1 = quantize_multiplier(float(_F(sa)) / twice_max)
    m2, s2 = quantize_multiplier(float(_F(sb)) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << _LEFT) * float(_F(sy))))
    return m1, s1, m2, s2, mo, so


def mul_multiplier(sa: float, sb: float, sy: float) -> tuple[int, int]:
    """MUL's (multiplier, shift): ``x1_scale * x2_scale / y_scale``."""
    return quantize_multiplier(float(_F(sa)) * float(_F(sb)) / float(_F(sy)))


def add_int8(
    a: np.ndarray, sa: float, za: int, b: np.ndarray, sb: float, zb: int, sy: float, zy: int, lo: int, hi: int
) -> np.ndarray:
    m1, s1, m2, s2, mo, so = add_multipliers(sa, sb, sy)
    x1 = (a.astype(np.int64) - za) << _LEFT
    x2 = (b.astype(np.int64) - zb) << _LEFT
    raw = _mbqm(x1, m1, s1) + _mbqm(x2, m2, s2)
    return np.clip(_mbqm(raw, mo, so) + zy, lo, hi).astype(np.int8)


def mul_int8(
    a: np.ndarray, sa: float, za: int, b: np.ndarray, sb: float, zb: int, sy: float, zy: int, lo: int, hi: int
) -> np.ndarray:
    m, shift = mul_multiplier(sa, sb, sy)
    prod = (a.astype(np.int64) - za) * (b.astype(np.int64) - zb)
    return np.clip(_mbqm(prod, m, shift) + zy, lo, hi).astype(np.int8)


def pair_table(
    op_type: str, sa: float, za: int, sb: float, zb: int, sy: float, zy: int, lo: int, hi: int
) -> np.ndarray:
    """int8 ADD or MUL (``op_type``) for every pair of int8 values, as 65536 int8 entries indexed by
    ``(a & 0xFF) << 8 | (b & 0xFF)``: with per-tensor parameters the output is a function of the two
    input bytes alone, so running the op is one table lookup per element. The same arithmetic as
    :func:`add_int8` / :func:`mul_int8`, one numba loop (the tests compare all pairs)."""
    table = np.empty(65536, np.int8)
    if op_type == "ADD":
        add_table(int(za), int(zb), *add_multipliers(sa, sb, sy), int(zy), int(lo), int(hi), table)
    else:
        mul_table(int(za), int(zb), *mul_multiplier(sa, sb, sy), int(zy), int(lo), int(hi), table)
    return table


class _Binary(Op):
    fn = staticmethod(add_int8)

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        qa = quant_of(ctx, ctx.input_values[0], "input 1")
        qb = quant_of(ctx, ctx.input_values[1], "input 2")
        qy = quant_of(ctx, ctx.output_values[0], "output")
        self.params = (qa.scale[0], qa.zero_point[0], qb.scale[0], qb.zero_point[0], qy.scale[0], qy.zero_point[0])
        self.lo, self.hi = activation_range(ctx, qy)
        self.table = None
        if ctx.options.get("tflite_kernels", True):
            self.table = pair_table(ctx.op_type, *self.params, self.lo, self.hi)

    def run(self, a: np.ndarray, b: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if self.table is None:
            sa, za, sb, zb, sy, zy = self.params
            return (self.fn(a, sa, za, b, sb, zb, sy, zy, self.lo, self.hi),)
        if a.shape != b.shape:
            a, b = np.broadcast_arrays(a, b)
        shape = a.shape
        out = np.empty(shape, np.int8)
        a = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        b = np.ascontiguousarray(b).reshape(-1).view(np.uint8)
        pair_lookup(a, b, self.table, out.reshape(-1))
        return (out,)


@register("ADD", domain="tflite", since=1)
class Add(_Binary):
    """int8 ADD with broadcasting."""


@register("MUL", domain="tflite", since=1)
class Mul(_Binary):
    """int8 MUL with broadcasting."""

    fn = staticmethod(mul_int8)
