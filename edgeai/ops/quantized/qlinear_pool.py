"""com.microsoft QLinearGlobalAveragePool and QLinearAveragePool, as ONNX Runtime computes them.

* QLinearGlobalAveragePool: integer sum over the spatial dims, minus
  ``x_zp * n``, requantized with the float32 scale ``x_scale / (y_scale * n)``.
* QLinearAveragePool: dequantize to float32, sum the window in kernel order
  (padding contributes zeros), divide by the element count (the whole
  window with ``count_include_pad``, else the in-bounds positions), then
  ``sat(rint(avg / y_scale + y_zp))``: unlike QuantizeLinear, the zero
  point is added *before* rounding, which moves the ties. A window that
  covers the whole unpadded input runs the global average pool instead.

Both take NCHW by default and NHWC with ``channels_last=1``.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.qlinear_pool import QLinearGlobalAveragePool
    >>> op = QLinearGlobalAveragePool(OpContext("g", "QLinearGlobalAveragePool", "com.microsoft"))
    >>> x = np.array([[[[1, 2], [3, 5]]]], np.uint8)
    >>> op.run(x, np.float32(1.0), np.uint8(0), np.float32(1.0), np.uint8(0))[0].ravel()
    array([3], dtype=uint8)
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.quantized._common import (
    bad_model,
    c_order,
    check_int_dtype,
    onnx_mode_only,
    scalar,
    zero_point_or_default,
)
from edgeai.quant.requant import requantize_onnx

__all__ = ["QLinearAveragePool", "QLinearGlobalAveragePool"]

_F = np.float32
_I8 = ("int8", "uint8")


def _params(ctx: OpContext, x: np.ndarray, xs: Any, xz: Any, ys: Any, yz: Any) -> tuple[np.ndarray, ...]:
    check_int_dtype(ctx, x, "X", _I8)
    return (
        scalar(ctx, xs, "x_scale").astype(_F),
        scalar(ctx, zero_point_or_default(xz, x.dtype), "x_zero_point"),
        scalar(ctx, ys, "y_scale").astype(_F),
        scalar(ctx, zero_point_or_default(yz, x.dtype), "y_zero_point"),
    )


def _to_nchw(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, -1, 1)


def _from_nchw(y: np.ndarray) -> np.ndarray:
    return np.moveaxis(y, 1, -1)


def _global_average(xc: np.ndarray, xs: np.ndarray, xz: np.ndarray, ys: np.ndarray, yz: np.ndarray) -> np.ndarray:
    """MLAS's global average pool over NCHW ``xc``: integer sum, one float32 requantization.

    (ONNX Runtime refuses ``x_scale / (y_scale * n)`` outside ``[2**-32, 256)``;
    the arithmetic here is the same inside that range and still defined outside.)
    """
    axes = tuple(range(2, xc.ndim))
    n = int(np.prod(xc.shape[2:]))
    acc = xc.astype(np.int64).sum(axis=axes, keepdims=True) - int(xz) * n
    scale = _F(xs / _F(ys * _F(n)))
    qmin, qmax = np.iinfo(xc.dtype).min, np.iinfo(xc.dtype).max
    return requantize_onnx(acc.astype(np.int32), scale, int(yz), int(qmin), int(qmax), dtype=xc.dtype)


@register("QLinearGlobalAveragePool", domain="com.microsoft", since=1)
class QLinearGlobalAveragePool(Op):
    """Mean over all spatial positions, kept as size-1 dims."""

    accepts_nhwc_views = True  # an integer sum over the spatial axes: any strides

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        onnx_mode_only(ctx)

    def run(self, x: np.ndarray, x_scale: Any, x_zp: Any, y_scale: Any, y_zp: Any = None) -> tuple[Any, ...]:
        x = np.asarray(x)
        xs, xz, ys, yz = _params(self.ctx, x, x_scale, x_zp, y_scale, y_zp)
        channels_last = int(self.ctx.attr("channels_last", 0))
        if x.ndim < 3:
            raise bad_model(self.ctx, f"input must be N x C x spatial..., got shape {x.shape}")
        y = _global_average(_to_nchw(x) if channels_last else x, xs, xz, ys, yz)
        return (c_order(_from_nchw(y) if channels_last else y),)


@register("QLinearAveragePool", domain="com.microsoft", since=1)
class QLinearAveragePool(Op):
    """Average pooling (1-D, 2-D, 3-D) with pads, auto_pad, ceil_mode and count_include_pad."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        onnx_mode_only(ctx)
        self.kernel = list(ctx.attr("kernel_shape") or [])
        if not self.kernel:
            raise bad_model(ctx, "kernel_shape is required")
        n = len(self.kernel)
        self.strides = list(ctx.attr("strides") or [1] * n)
        self.pads = list(ctx.attr("pads") or [0] * (2 * n))
        auto_pad = ctx.attr("auto_pad", "NOTSET")
        self.auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        self.ceil_mode = int(ctx.attr("ceil_mode", 0))
        self.count_include_pad = int(ctx.attr("count_include_pad", 0))
        self.channels_last = int(ctx.attr("channels_last", 0))
        if len(self.strides) != n or len(self.pads) != 2 * n:
            raise bad_model(ctx, f"strides/pads do not match kernel_shape {self.kernel}")

    def _geometry(self, spatial: tuple[int, ...]) -> tuple[list[int], list[int], list[int]]:
        n = len(self.kernel)
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            begin, end, out = [], [], []
            for i in range(n):
                o = -(-spatial[i] // self.strides[i])
                # ONNX Runtime's arithmetic: the needed padding may be negative (windows that
                # do not reach the end), and C division truncates toward zero
                need = (o - 1) * self.strides[i] + self.kernel[i] - spatial[i]
                head = int((need + 1) / 2) if self.auto_pad == "SAME_LOWER" else int(need / 2)
                begin.append(head)
                end.append(need - head)
                out.append(o)
            return begin, end, out
        if self.auto_pad == "VALID":
            begin, end = [0] * n, [0] * n
        else:
            begin, end = self.pads[:n], self.pads[n:]
        out = []
        for i in range(n):
            span = spatial[i] + begin[i] + end[i] - self.kernel[i]
            o = (-(-span // self.strides[i]) if self.ceil_mode else span // self.strides[i]) + 1
            if self.ceil_mode and (o - 1) * self.strides[i] >= spatial[i] + begin[i]:
                o -= 1  # the last window must start inside the input or its begin padding
            out.append(o)
        return begin, end, out

    def run(self, x: np.ndarray, x_scale: Any, x_zp: Any, y_scale: Any, y_zp: Any = None) -> tuple[Any, ...]:
        x = np.asarray(x)
        xs, xz, ys, yz = _params(self.ctx, x, x_scale, x_zp, y_scale, y_zp)
        xc = _to_nchw(x) if self.channels_last else x
        n = len(self.kernel)
        if xc.ndim != n + 2:
            raise bad_model(self.ctx, f"input rank {xc.ndim} does not match kernel_shape {self.kernel}")
        spatial = xc.shape[2:]
        begin, end, out = self._geometry(spatial)
        if any(o <= 0 for o in out):
            raise bad_model(self.ctx, f"pooling output would be empty for input {x.shape}")
        if list(self.kernel) == list(spatial) and not any(begin) and not any(end):
            # a window covering the whole input: ONNX Runtime runs its global average pool
            y = _global_average(xc, xs, xz, ys, yz)
            return (_from_nchw(y) if self.channels_last else y,)
        deq = ((xc.astype(np.int32) - np.int32(xz)).astype(_F) * xs).astype(_F)
        # pad enough at the end for ceil_mode windows that run past the padding
        # pad (or, for negative begin padding, crop) so that window o starts at o * stride
        xp = deq[(slice(None), slice(None), *(slice(max(0, -b), None) for b in begin))]
        reach = [(out[i] - 1) * self.strides[i] + self.kernel[i] for i in range(n)]
        widths = [(max(0, begin[i]), max(0, reach[i] - xp.shape[2 + i] - max(0, begin[i]))) for i in range(n)]
        xp = np.pad(xp, [(0, 0), (0, 0), *widths])
        acc = np.zeros(xc.shape[:2] + tuple(out), dtype=_F)
        for k in itertools.product(*(range(s) for s in self.kernel)):
            sl = tuple(slice(k[i], k[i] + (out[i] - 1) * self.strides[i] + 1, self.strides[i]) for i in range(n))
            acc = (acc + xp[(slice(None), slice(None), *sl)]).astype(_F)
        count = np.ones((1,) * (n + 2), dtype=np.int64)
        for i in range(n):
            start = np.arange(out[i]) * self.strides[i] - begin[i]
            if self.count_include_pad:  # ORT counts the whole window, even past the end padding
                c = np.full(out[i], self.kernel[i])
            else:
                c = np.minimum(start + self.kernel[i], spatial[i]) - np.maximum(start, 0)
            shape = [1] * (n + 2)
            shape[2 + i] = out[i]
            count = count * c.reshape(shape)
        avg = (acc / count.astype(_F)).astype(_F)
        # the zero point is added before rounding here (ties resolve on avg / ys + zp)
        v = ((avg / ys).astype(_F) + _F(yz)).astype(_F)
        qmin, qmax = np.iinfo(x.dtype).min, np.iinfo(x.dtype).max
        y = np.clip(np.rint(v), qmin, qmax).astype(x.dtype)
        return (_from_nchw(y) if self.channels_last else y,)
