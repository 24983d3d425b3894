"""TFLite int8 AVERAGE_POOL_2D and MAX_POOL_2D (reference-kernel arithmetic).

Windows cover only in-bounds pixels (SAME padding shrinks the border
windows). The average is the int32 sum divided by the number of in-bounds
pixels, rounded half away from zero (``(sum ± count/2) / count`` with C's
truncating division); both clamp to the fused activation's range. The ops run
one numba loop (:func:`edgeai.ops.tflite.loops.pool_nhwc`); the numpy
functions here are its reference (``tflite_kernels=False`` runs them).

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.pooling import average_pool_int8
    >>> x = np.array([1, 2, 2, 2], np.int8).reshape(1, 2, 2, 1)
    >>> int(average_pool_int8(x, 2, 2, 2, 2, 0, 0, 1, 1, -128, 127)[0, 0, 0, 0])   # 7/4 -> 2
    2
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.errors import InputShapeError
from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.tflite._common import activation_range, bad_model, pad_and_out, quant_of
from edgeai.ops.tflite.loops import pool_nhwc

__all__ = ["AveragePool2D", "MaxPool2D", "average_pool_int8", "max_pool_int8"]


def _reduce(
    x: np.ndarray, fh: int, fw: int, sh: int, sw: int, pt: int, pl: int, oh: int, ow: int, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Sum (``mode="sum"``) or max of the in-bounds taps of every window, and the in-bounds count."""
    n, h, w, c = x.shape
    hh = max((oh - 1) * sh + fh, pt + h)
    ww = max((ow - 1) * sw + fw, pl + w)
    fill = 0 if mode == "sum" else -(2**15)
    xp = np.full((n, hh, ww, c), fill, np.int32)
    xp[:, pt : pt + h, pl : pl + w, :] = x
    inside = np.zeros((hh, ww), np.int32)
    inside[pt : pt + h, pl : pl + w] = 1
    # separable: reduce along W (fw taps), then along H (fh taps): fh + fw slices, not fh * fw
    cols = np.full((n, hh, ow, c), fill, np.int32)
    count_cols = np.zeros((hh, ow), np.int32)
    for j in range(fw):
        sl = slice(j, j + (ow - 1) * sw + 1, sw)
        if mode == "sum":
            cols += xp[:, :, sl, :]
        else:
            np.maximum(cols, xp[:, :, sl, :], out=cols)
        count_cols += inside[:, sl]
    acc = np.full((n, oh, ow, c), fill, np.int32)
    count = np.zeros((oh, ow), np.int32)
    for i in range(fh):
        sl = slice(i, i + (oh - 1) * sh + 1, sh)
        if mode == "sum":
            acc += cols[:, sl]
        else:
            np.maximum(acc, cols[:, sl], out=acc)
        count += count_cols[sl]
    return acc, count


def average_pool_int8(
    x: np.ndarray, fh: int, fw: int, sh: int, sw: int, pt: int, pl: int, oh: int, ow: int, lo: int, hi: int
) -> np.ndarray:
    total, count = _reduce(x, fh, fw, sh, sw, pt, pl, oh, ow, "sum")
    count = count[None, :, :, None]
    half = count // 2
    num = np.where(total > 0, total + half, total - half)
    q = np.sign(num) * (np.abs(num) // count)  # C division truncates toward zero
    return np.clip(q, lo, hi).astype(np.int8)


def max_pool_int8(
    x: np.ndarray, fh: int, fw: int, sh: int, sw: int, pt: int, pl: int, oh: int, ow: int, lo: int, hi: int
) -> np.ndarray:
    best, _ = _reduce(x, fh, fw, sh, sw, pt, pl, oh, ow, "max")
    return np.clip(best, lo, hi).astype(np.int8)


class _Pool(Op):
    kernel = staticmethod(average_pool_int8)
    average = True

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        xq = quant_of(ctx, ctx.input_values[0], "input")
        yq = quant_of(ctx, ctx.output_values[0], "output")
        if (xq.scale[0], xq.zero_point[0]) != (yq.scale[0], yq.zero_point[0]):
            raise bad_model(ctx, "TFLite int8 pooling needs the same scale and zero point on input and output")
        self.lo, self.hi = activation_range(ctx, yq)
        self.fh, self.fw = int(ctx.attr("filterHeight", 1)), int(ctx.attr("filterWidth", 1))
        self.sh, self.sw = int(ctx.attr("strideH", 1)), int(ctx.attr("strideW", 1))
        self.padding = int(ctx.attr("padding", 0))
        self.fast = bool(ctx.options.get("tflite_kernels", True))
        self._geometry: dict[tuple[int, ...], tuple[int, int, int, int]] = {}

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        geometry = self._geometry.get(x.shape)
        if geometry is None:
            if x.ndim != 4:
                where = f"node {self.ctx.node_name!r} (tflite {self.ctx.op_type})"
                raise InputShapeError(f"{where} needs a 4-D NHWC input, got shape {x.shape}")
            oh, pt = pad_and_out(self.padding, x.shape[1], self.fh, self.sh)
            ow, pl = pad_and_out(self.padding, x.shape[2], self.fw, self.sw)
            geometry = (oh, pt, ow, pl)
            if len(self._geometry) < 16:
                self._geometry[x.shape] = geometry
        oh, pt, ow, pl = geometry
        if not self.fast:
            return (self.kernel(x, self.fh, self.fw, self.sh, self.sw, pt, pl, oh, ow, self.lo, self.hi),)
        out = np.empty((x.shape[0], oh, ow, x.shape[3]), np.int8)
        pool_nhwc(x, self.fh, self.fw, self.sh, self.sw, pt, pl, self.average, self.lo, self.hi, out)
        return (out,)


@register("AVERAGE_POOL_2D", domain="tflite", since=1)
class AveragePool2D(_Pool):
    """int8 AVERAGE_POOL_2D."""


@register("MAX_POOL_2D", domain="tflite", since=1)
class MaxPool2D(_Pool):
    """int8 MAX_POOL_2D."""

    kernel = staticmethod(max_pool_int8)
    average = False
