"""TFLite int8 LOGISTIC and TANH through LiteRT's 256-entry lookup table.

LiteRT quantizes these activations with a table built once in float32:
for every int8 value ``v``, ``round(f(x_scale * (v - x_zp)) / y_scale) +
y_zp`` saturated, with ``f(x) = 1 / (1 + expf(-x))`` (LOGISTIC) or
``tanhf(x)`` (TANH) from the C library, ``1 / y_scale`` taken first and
rounding half away from zero. Running the op is a table lookup.

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.activations import lookup_table
    >>> t = lookup_table("LOGISTIC", 0.1, 0, 1 / 256, -128)
    >>> int(t[np.int8(0).view(np.uint8)])   # sigmoid(0) = 0.5 -> 128 - 128
    0
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.tflite._common import quant_of

__all__ = ["Logistic", "Tanh", "lookup_table"]

_F = np.float32


def _libm(name: str) -> Callable[[float], float] | None:
    lib = ctypes.util.find_library("m")
    if lib is None:
        return None
    try:
        fn = getattr(ctypes.CDLL(lib), name)
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return fn  # type: ignore[no-any-return]


def _function(op_type: str) -> Callable[[np.float32], np.float32]:
    if op_type == "LOGISTIC":
        expf = _libm("expf") or (lambda v: float(_F(math.exp(v))))
        return lambda x: _F(1.0) / (_F(1.0) + _F(expf(float(-x))))
    tanhf = _libm("tanhf") or (lambda v: float(_F(math.tanh(v))))
    return lambda x: _F(tanhf(float(x)))


def lookup_table(op_type: str, x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    """The int8 table of LiteRT's ``LUTPopulate``, indexed by the input's bits as uint8."""
    f = _function(op_type)
    inverse = _F(1.0) / _F(y_scale)
    table = np.empty(256, np.int8)
    for v in range(-128, 128):
        x = _F(x_scale) * _F(v - x_zp)
        scaled = f(x) * inverse
        r = math.floor(abs(float(scaled)) + 0.5) * (1 if scaled >= 0 else -1)  # TfLiteRound
        table[v & 0xFF] = min(max(int(r) + y_zp, -128), 127)
    return table


class _Table(Op):
    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        xq = quant_of(ctx, ctx.input_values[0], "input")
        yq = quant_of(ctx, ctx.output_values[0], "output")
        self.table = lookup_table(ctx.op_type, xq.scale[0], int(xq.zero_point[0]), yq.scale[0], int(yq.zero_point[0]))

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        return (self.table[x.view(np.uint8)],)


@register("LOGISTIC", domain="tflite", since=1)
class Logistic(_Table):
    """int8 LOGISTIC (sigmoid)."""


@register("TANH", domain="tflite", since=1)
class Tanh(_Table):
    """int8 TANH."""
