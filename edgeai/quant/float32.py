"""Float32 arithmetic as vector CPUs do it: a correctly rounded fused multiply-add.

ONNX Runtime's AVX2 kernels (QLinearAdd, ...) use FMA instructions; to be
bit-exact the reference must round ``a * b + c`` once, not twice. numpy has
no FMA, so :func:`fma_f32` computes it exactly: the product of two float32
is exact in float64, the float64 sum's rounding error comes from TwoSum, and
the sum is rounded *to odd* in float64 (nudged one ulp toward the exact
value when inexact and even), which makes the final float64 -> float32
rounding correct (53 >= 24 + 2 bits).

Example:
    >>> import numpy as np
    >>> from edgeai.quant.float32 import fma_f32
    >>> a = np.float32(1 + 2**-12); c = np.float32(-(1 + 2**-11))
    >>> float(fma_f32(a, a, c)), float(a * a + c)   # the FMA keeps 2**-24, a*a then + loses it
    (5.960464477539063e-08, 0.0)
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = ["fma_f32", "fma_f32_jit"]


def fma_f32(a: np.ndarray | float, b: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    """``a * b + c`` rounded once to float32 (round half to even), broadcasting like numpy."""
    a64 = np.asarray(a, dtype=np.float32).astype(np.float64)
    b64 = np.asarray(b, dtype=np.float32).astype(np.float64)
    c64 = np.asarray(c, dtype=np.float32).astype(np.float64)
    p = a64 * b64  # exact: 24 + 24 significant bits
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)  # TwoSum: p + c == s + err exactly
    with np.errstate(invalid="ignore"):
        even = (np.asarray(s).view(np.int64) & 1) == 0
        nudge = (err != 0) & even & np.isfinite(s)
    s = np.where(nudge, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return np.asarray(s).astype(np.float32)


@intrinsic
def fma_f32_jit(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """Inside numba-compiled code: the hardware fused multiply-add on three float32 (``llvm.fma``).

    Bit-identical to :func:`fma_f32` (both round once); usable only from ``@njit`` functions.
    """
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.fma(*args)

    return sig, codegen
