"""Pooling family for the native engine: MaxPool (with indices), AveragePool, LpPool, global pools,
MaxUnpool, and the box ops of detection heads (RoiAlign, MaxRoiPool, NonMaxSuppression).

Window ops read strided slices of the padded input: a box window is
separable, so max and sum reduce one axis at a time (sum(k) vectorised
passes); MaxPool's Indices output walks every tap to track the argmax.
``ceil_mode`` adds extra padding at the end that never counts in averages.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.pooling import MaxPool
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> op = MaxPool(OpContext(node_name="p", op_type="MaxPool", opset=12,
    ...                        attrs={"kernel_shape": [2, 2], "strides": [2, 2]}))
    >>> op.run(x)[0]
    array([[[[ 5.,  7.],
             [13., 15.]]]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeai.errors import InferenceError, ModelFormatError
from edgeai.ops._base import Op, register
from edgeai.ops.conv import check_auto_pad, pad_spatial, pads_for, tap_slice

__all__ = [
    "AveragePool",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "LpPool",
    "MaxPool",
    "MaxRoiPool",
    "MaxUnpool",
    "NonMaxSuppression",
    "RoiAlign",
]


def _ints(value: Any, n: int, default: int) -> list[int]:
    if value is None or len(value) == 0:
        return [default] * n
    return [int(v) for v in value]


class _Window:
    """Geometry of one pooling window op on one input shape."""

    def __init__(self, op: Op, x_shape: Sequence[int], *, ceil_ok: bool = True) -> None:
        ctx = op.ctx
        kernel = ctx.attr("kernel_shape")
        if kernel is None or len(kernel) == 0:
            raise ModelFormatError(
                f"node {ctx.node_name!r} ({ctx.op_type}) has no kernel_shape attribute; it is required"
            )
        self.k = [int(v) for v in kernel]
        nsp = len(self.k)
        if len(x_shape) != nsp + 2:
            raise InferenceError(
                f"node {ctx.node_name!r} ({ctx.op_type}): input rank {len(x_shape)} does not match "
                f"kernel_shape {self.k} (expected rank {nsp + 2})"
            )
        self.s = _ints(ctx.attr("strides"), nsp, 1)
        self.d = _ints(ctx.attr("dilations"), nsp, 1)
        auto_pad = check_auto_pad(ctx)
        in_sz = list(x_shape[2:])
        self.in_sz = in_sz
        self.begin, self.end = pads_for(auto_pad, in_sz, self.k, self.s, self.d, ctx.attr("pads"))
        ceil = bool(ctx.attr("ceil_mode", 0)) and ceil_ok
        self.out: list[int] = []
        self.extra: list[int] = []
        for i in range(nsp):
            span = (self.k[i] - 1) * self.d[i] + 1
            avail = in_sz[i] + self.begin[i] + self.end[i] - span
            if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                o = -(-in_sz[i] // self.s[i])
            elif ceil:
                o = -(-avail // self.s[i]) + 1
                # the last window must start inside the input or the begin padding
                if (o - 1) * self.s[i] >= in_sz[i] + self.begin[i]:
                    o -= 1
            else:
                o = avail // self.s[i] + 1
            if o <= 0:
                raise InferenceError(
                    f"node {ctx.node_name!r} ({ctx.op_type}): kernel {self.k} with dilations {self.d} "
                    f"does not fit the padded input {in_sz}"
                )
            self.out.append(o)
            self.extra.append(max(0, (o - 1) * self.s[i] + span - (avail + span)))

    def padded(self, x: np.ndarray, value: Any) -> np.ndarray:
        return pad_spatial(x, self.begin, [e + x_ for e, x_ in zip(self.end, self.extra)], value)

    def taps(self, xp: np.ndarray) -> Any:
        for t in np.ndindex(*self.k):
            idx = (slice(None), slice(None)) + tuple(
                tap_slice(t[i] * self.d[i], self.s[i], self.out[i]) for i in range(len(self.k))
            )
            yield t, xp[idx]

    def reduce(self, xp: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
        """Reduce each window with ``ufunc`` (max or add), one axis at a time.

        A box window is separable, so this costs sum(k) passes instead of prod(k).
        """
        y = xp
        for i in range(len(self.k)):
            idx: list[slice] = [slice(None)] * y.ndim
            acc: np.ndarray | None = None
            for t in range(self.k[i]):
                idx[2 + i] = tap_slice(t * self.d[i], self.s[i], self.out[i])
                v = y[tuple(idx)]
                acc = v.copy() if acc is None else ufunc(acc, v, out=acc)
            assert acc is not None
            y = acc
        return y

    def counts(self, include_pad: bool) -> np.ndarray:
        """Per output position, how many taps fall inside the input (or its explicit padding)."""
        total: np.ndarray | None = None
        for i in range(len(self.k)):
            lo = -self.begin[i] if include_pad else 0
            hi = self.in_sz[i] + (self.end[i] if include_pad else 0)
            starts = np.arange(self.out[i]) * self.s[i] - self.begin[i]
            pos = starts[:, None] + np.arange(self.k[i])[None, :] * self.d[i]
            c = ((pos >= lo) & (pos < hi)).sum(axis=1)
            total = c if total is None else np.multiply.outer(total, c)
        assert total is not None
        return total


def _low(dtype: np.dtype) -> Any:
    if dtype.kind == "f":
        return -np.inf
    return np.iinfo(dtype).min


@register("MaxPool", since=1)
@register("MaxPool", since=8)
@register("MaxPool", since=10)
@register("MaxPool", since=11)
@register("MaxPool", since=12)
@register("MaxPool", since=22)
class MaxPool(Op):
    """ONNX MaxPool, with the optional Indices output (``storage_order`` 0 or 1)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        win = _Window(self, x.shape, ceil_ok=self.ctx.opset >= 10)
        xp = win.padded(x, _low(x.dtype))
        want_idx = self.ctx.num_outputs > 1
        if not want_idx:
            return (win.reduce(xp, np.maximum),)
        best: np.ndarray | None = None
        arg: np.ndarray | None = None
        for j, (_, v) in enumerate(win.taps(xp)):
            if best is None:
                best = v.copy()
                if want_idx:
                    arg = np.zeros(v.shape, dtype=np.int64)
            elif want_idx:
                assert arg is not None
                better = v > best
                np.copyto(best, v, where=better)
                arg[better] = j
            else:
                np.maximum(best, v, out=best)
        assert best is not None
        if not want_idx:
            return (best,)
        assert arg is not None
        return best, self._indices(win, x.shape, arg)

    def _indices(self, win: _Window, shape: Sequence[int], arg: np.ndarray) -> np.ndarray:
        nsp = len(win.k)
        taps = np.array(list(np.ndindex(*win.k)), dtype=np.int64).reshape(-1, nsp)
        order = int(self.ctx.attr("storage_order", 0))
        n, c = shape[:2]
        spatial = int(np.prod(shape[2:], dtype=np.int64))
        flat = (np.arange(n)[:, None] * c + np.arange(c)[None, :]).reshape((n, c) + (1,) * nsp) * spatial
        coords = []
        for i in range(nsp):
            start = (np.arange(win.out[i]) * win.s[i] - win.begin[i]).reshape(
                (1, 1) + tuple(-1 if a == i else 1 for a in range(nsp))
            )
            coords.append(start + taps[arg, i] * win.d[i])
        idx = np.zeros(arg.shape, dtype=np.int64)
        axes = range(nsp) if order == 0 else reversed(range(nsp))
        for i in axes:
            idx = idx * shape[2 + i] + coords[i]
        return flat + idx


@register("AveragePool", since=1)
@register("AveragePool", since=7)
@register("AveragePool", since=10)
@register("AveragePool", since=11)
@register("AveragePool", since=19)
@register("AveragePool", since=22)
class AveragePool(Op):
    """ONNX AveragePool with ``count_include_pad``, ``ceil_mode`` and dilations."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        win = _Window(self, x.shape, ceil_ok=self.ctx.opset >= 10)
        cdt = np.float32 if x.dtype == np.float16 else x.dtype
        xp = win.padded(x.astype(cdt, copy=False), 0)
        acc = win.reduce(xp, np.add)
        include = bool(self.ctx.attr("count_include_pad", 0))
        acc /= win.counts(include).astype(cdt)
        return (acc.astype(x.dtype, copy=False),)


@register("LpPool", since=1)
@register("LpPool", since=2)
@register("LpPool", since=11)
@register("LpPool", since=18)
@register("LpPool", since=22)
class LpPool(Op):
    """ONNX LpPool: the p-norm of each window (zero padding)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        win = _Window(self, x.shape, ceil_ok=self.ctx.opset >= 18)
        p = float(self.ctx.attr("p", 2))
        cdt = np.float32 if x.dtype == np.float16 else x.dtype
        xp = np.abs(win.padded(x.astype(cdt, copy=False), 0)) ** p
        acc = win.reduce(xp, np.add)
        return ((acc ** (1.0 / p)).astype(x.dtype, copy=False),)


@register("GlobalAveragePool", since=1)
@register("GlobalAveragePool", since=22)
class GlobalAveragePool(Op):
    """ONNX GlobalAveragePool: the mean over all spatial axes, kept as size-1 axes."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        axes = tuple(range(2, x.ndim))
        return (
            np.mean(x, axis=axes, keepdims=True, dtype=np.float64 if x.dtype == np.float64 else None).astype(
                x.dtype, copy=False
            ),
        )


@register("GlobalMaxPool", since=1)
@register("GlobalMaxPool", since=22)
class GlobalMaxPool(Op):
    """ONNX GlobalMaxPool: the max over all spatial axes, kept as size-1 axes."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        return (np.max(x, axis=tuple(range(2, x.ndim)), keepdims=True),)


@register("GlobalLpPool", since=1)
@register("GlobalLpPool", since=2)
@register("GlobalLpPool", since=22)
class GlobalLpPool(Op):
    """ONNX GlobalLpPool: the p-norm over all spatial axes."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        p = float(self.ctx.attr("p", 2))
        s = np.sum(np.abs(x) ** p, axis=tuple(range(2, x.ndim)), keepdims=True)
        return ((s ** (1.0 / p)).astype(x.dtype, copy=False),)


@register("MaxUnpool", since=9)
@register("MaxUnpool", since=11)
@register("MaxUnpool", since=22)
class MaxUnpool(Op):
    """ONNX MaxUnpool: scatter pooled values back to the flat positions MaxPool's Indices name.

    Indices address the natural unpooled shape ``(in - 1) * stride + kernel - pads``; a larger
    ``output_shape`` keeps each value's coordinates (ONNX's reference and node test; ONNX
    Runtime instead reads the indices as flat positions in the larger shape).
    """

    def run(self, x: np.ndarray, indices: np.ndarray, output_shape: np.ndarray | None = None) -> tuple[np.ndarray]:
        ctx = self.ctx
        kernel = [int(v) for v in ctx.attr("kernel_shape", [])]
        nsp = x.ndim - 2
        if len(kernel) != nsp:
            raise ModelFormatError(
                f"node {ctx.node_name!r} (MaxUnpool): kernel_shape {kernel} does not match input rank {x.ndim}"
            )
        strides = _ints(ctx.attr("strides"), nsp, 1)
        pads = _ints(ctx.attr("pads"), 2 * nsp, 0)
        natural = list(x.shape[:2]) + [
            (x.shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i] - pads[nsp + i] for i in range(nsp)
        ]
        flat = indices.astype(np.int64).reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= int(np.prod(natural, dtype=np.int64))):
            raise InferenceError(
                f"node {ctx.node_name!r} (MaxUnpool): an index is outside the unpooled shape {natural}"
            )
        shape = natural
        if output_shape is not None and output_shape.size:
            # indices address the natural unpooled shape; keep their coordinates in the larger one
            shape = [int(v) for v in output_shape.reshape(-1)]
            if len(shape) != x.ndim or any(a < b for a, b in zip(shape, natural)):
                raise InferenceError(
                    f"node {ctx.node_name!r} (MaxUnpool): output_shape {shape} is smaller than {natural}"
                )
            flat = np.ravel_multi_index(np.unravel_index(flat, natural), shape)
        out = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=x.dtype)
        out[flat] = x.reshape(-1)
        return (out.reshape(shape),)


def _roi_axis(start: float, size: float, bins: int, grid: int, limit: int) -> tuple[np.ndarray, ...]:
    """Bilinear taps along one axis for RoiAlign: (low index, high index, low weight, high weight, valid),
    each of shape (bins, grid)."""
    pos = start + np.arange(bins)[:, None] * (size / bins) + (np.arange(grid)[None, :] + 0.5) * (size / bins / grid)
    valid = (pos >= -1.0) & (pos <= limit)
    pos = np.maximum(pos, 0.0)
    low = np.floor(pos).astype(np.int64)
    edge = low >= limit - 1
    low = np.where(edge, limit - 1, low)
    high = np.where(edge, limit - 1, low + 1)
    frac = np.where(edge, 0.0, pos - low)
    return low, high, 1.0 - frac, frac, valid


@register("RoiAlign", since=10)
@register("RoiAlign", since=16)
@register("RoiAlign", since=22)
class RoiAlign(Op):
    """ONNX RoiAlign: average (or max) of bilinear samples in each bin of each region of interest.

    Opset 10 behaves as ``output_half_pixel`` (no half-pixel shift, regions at least 1 pixel);
    from 16 the default is ``half_pixel``. ``max`` mode takes the largest weighted corner of each
    sample, as ONNX Runtime and ONNX's reference do.
    """

    def run(self, x: np.ndarray, rois: np.ndarray, batch_indices: np.ndarray) -> tuple[np.ndarray]:
        ctx = self.ctx
        mode = ctx.attr("mode", "avg")
        coord = ctx.attr("coordinate_transformation_mode", "half_pixel" if ctx.opset >= 16 else "output_half_pixel")
        if mode not in ("avg", "max") or coord not in ("half_pixel", "output_half_pixel"):
            raise ModelFormatError(
                f"node {ctx.node_name!r} (RoiAlign): mode {mode!r} / coordinate_transformation_mode "
                f"{coord!r} is not supported"
            )
        out_h = int(ctx.attr("output_height", 1))
        out_w = int(ctx.attr("output_width", 1))
        ratio = int(ctx.attr("sampling_ratio", 0))
        scale = float(ctx.attr("spatial_scale", 1.0))
        if x.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 4 or len(batch_indices) != rois.shape[0]:
            raise InferenceError(
                f"node {ctx.node_name!r} (RoiAlign): expected X (N, C, H, W), rois (R, 4) and R batch "
                f"indices, got {x.shape}, {rois.shape}, {batch_indices.shape}"
            )
        n, c, h, w = x.shape
        cdt = np.float64 if x.dtype == np.float64 else np.float32
        out = np.zeros((rois.shape[0], c, out_h, out_w), dtype=cdt)
        offset = 0.5 if coord == "half_pixel" else 0.0
        for r in range(rois.shape[0]):
            b = int(batch_indices[r])
            if not 0 <= b < n:
                raise InferenceError(f"node {ctx.node_name!r} (RoiAlign): batch index {b} is outside 0..{n - 1}")
            x1, y1, x2, y2 = (float(v) * scale - offset for v in rois[r])
            rw, rh = x2 - x1, y2 - y1
            if coord == "output_half_pixel":
                rw, rh = max(rw, 1.0), max(rh, 1.0)
            gh = ratio if ratio > 0 else int(np.ceil(rh / out_h))
            gw = ratio if ratio > 0 else int(np.ceil(rw / out_w))
            ylo, yhi, wyl, wyh, vy = _roi_axis(y1, rh, out_h, gh, h)
            xlo, xhi, wxl, wxh, vx = _roi_axis(x1, rw, out_w, gw, w)
            img = x[b].astype(cdt, copy=False)
            if mode == "avg":
                # separable: rows (out_h, H) and columns (out_w, W) weight matrices
                count = max(gh * gw, 1)
                wy = np.zeros((out_h, h))
                wx = np.zeros((out_w, w))
                rows = np.broadcast_to(np.arange(out_h)[:, None], ylo.shape)
                cols = np.broadcast_to(np.arange(out_w)[:, None], xlo.shape)
                np.add.at(wy, (rows, ylo), wyl * vy)
                np.add.at(wy, (rows, yhi), wyh * vy)
                np.add.at(wx, (cols, xlo), wxl * vx)
                np.add.at(wx, (cols, xhi), wxh * vx)
                out[r] = (wy.astype(cdt) @ img @ wx.T.astype(cdt)) / count
            else:
                ys = [(ylo, wyl), (yhi, wyh)]
                xs = [(xlo, wxl), (xhi, wxh)]
                best = None
                for yi, wyv in ys:
                    for xi, wxv in xs:
                        # (c, out_h, gh, out_w, gw)
                        vals = img[:, yi[:, :, None, None], xi[None, None, :, :]]
                        weighted = vals * (wyv[:, :, None, None] * wxv[None, None, :, :]).astype(cdt)
                        best = weighted if best is None else np.maximum(best, weighted)
                assert best is not None
                valid = vy[:, :, None, None] & vx[None, None, :, :]
                best = np.where(valid, best, 0)
                out[r] = best.max(axis=(2, 4)) if gh * gw else 0
        return (out.astype(x.dtype, copy=False),)


@register("MaxRoiPool", since=1)
@register("MaxRoiPool", since=22)
class MaxRoiPool(Op):
    """ONNX MaxRoiPool (Fast R-CNN RoI pooling): the max of each bin of each ``(batch, x1, y1, x2, y2)``
    region, corners rounded half away from zero after ``spatial_scale``."""

    def run(self, x: np.ndarray, rois: np.ndarray) -> tuple[np.ndarray]:
        ctx = self.ctx
        pooled = [int(v) for v in ctx.attr("pooled_shape", [])]
        if len(pooled) != 2:
            raise ModelFormatError(f"node {ctx.node_name!r} (MaxRoiPool): pooled_shape must hold 2 values")
        if x.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 5:
            raise InferenceError(
                f"node {ctx.node_name!r} (MaxRoiPool): expected X (N, C, H, W) and rois (R, 5), "
                f"got {x.shape} and {rois.shape}"
            )
        scale = float(ctx.attr("spatial_scale", 1.0))
        ph, pw = pooled
        n, c, h, w = x.shape
        out = np.zeros((rois.shape[0], c, ph, pw), dtype=x.dtype)

        def rnd(v: float) -> int:  # std::round
            return int(np.sign(v) * np.floor(abs(v) + 0.5))

        for r, roi in enumerate(rois.astype(np.float64)):
            b = int(roi[0])
            if not 0 <= b < n:
                raise InferenceError(f"node {ctx.node_name!r} (MaxRoiPool): batch index {b} is outside 0..{n - 1}")
            x1, y1, x2, y2 = (rnd(v * scale) for v in roi[1:])
            bin_h = max(y2 - y1 + 1, 1) / ph
            bin_w = max(x2 - x1 + 1, 1) / pw
            for i in range(ph):
                hs = min(max(int(np.floor(i * bin_h)) + y1, 0), h)
                he = min(max(int(np.ceil((i + 1) * bin_h)) + y1, 0), h)
                for j in range(pw):
                    ws = min(max(int(np.floor(j * bin_w)) + x1, 0), w)
                    we = min(max(int(np.ceil((j + 1) * bin_w)) + x1, 0), w)
                    if he > hs and we > ws:
                        out[r, :, i, j] = x[b, :, hs:he, ws:we].max(axis=(1, 2))
        return (out,)


@register("NonMaxSuppression", since=10)
@register("NonMaxSuppression", since=11)
class NonMaxSuppression(Op):
    """ONNX NonMaxSuppression: per batch and class, greedily keep the highest-scoring boxes and drop
    those overlapping a kept one by IoU above ``iou_threshold``. Returns (batch, class, box) rows.

    Boxes are corners ``[y1, x1, y2, x2]`` in either order (``center_point_box=0``) or
    ``[x_center, y_center, width, height]`` (``center_point_box=1``). Equal scores keep the
    lower box index first.

    Example:
        >>> import numpy as np
        >>> from edgeai.ops._base import OpContext
        >>> boxes = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, 2, 1, 3]]], np.float32)
        >>> scores = np.array([[[0.9, 0.8, 0.7]]], np.float32)
        >>> op = NonMaxSuppression(OpContext(node_name="nms", op_type="NonMaxSuppression", opset=11))
        >>> op.run(boxes, scores, np.array([3]), np.array([0.5], np.float32))[0].tolist()
        [[0, 0, 0], [0, 0, 2]]
    """

    def run(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        max_output: np.ndarray | None = None,
        iou_threshold: np.ndarray | None = None,
        score_threshold: np.ndarray | None = None,
    ) -> tuple[np.ndarray]:
        ctx = self.ctx
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[0] != boxes.shape[0]:
            raise InferenceError(
                f"node {ctx.node_name!r} (NonMaxSuppression): expected boxes (B, N, 4) and scores "
                f"(B, C, N), got {boxes.shape} and {scores.shape}"
            )
        if scores.shape[2] != boxes.shape[1]:
            raise InferenceError(
                f"node {ctx.node_name!r} (NonMaxSuppression): {scores.shape[2]} scores per class for "
                f"{boxes.shape[1]} boxes"
            )
        limit = 0 if max_output is None or max_output.size == 0 else int(max_output.reshape(-1)[0])
        iou_max = 0.0 if iou_threshold is None or iou_threshold.size == 0 else float(iou_threshold.reshape(-1)[0])
        floor = None if score_threshold is None or score_threshold.size == 0 else float(score_threshold.reshape(-1)[0])
        b = boxes.astype(np.float64)
        if int(ctx.attr("center_point_box", 0)):
            xc, yc, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
            y1, x1, y2, x2 = yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2
        else:
            y1 = np.minimum(b[..., 0], b[..., 2])
            y2 = np.maximum(b[..., 0], b[..., 2])
            x1 = np.minimum(b[..., 1], b[..., 3])
            x2 = np.maximum(b[..., 1], b[..., 3])
        area = (y2 - y1) * (x2 - x1)
        rows: list[tuple[int, int, int]] = []
        if limit > 0:
            for bi in range(boxes.shape[0]):
                for ci in range(scores.shape[1]):
                    s = scores[bi, ci].astype(np.float64)
                    cand = np.arange(s.size) if floor is None else np.flatnonzero(s > floor)
                    cand = cand[np.argsort(-s[cand], kind="stable")]
                    kept = 0
                    while cand.size and kept < limit:
                        top, rest = cand[0], cand[1:]
                        rows.append((bi, ci, int(top)))
                        kept += 1
                        ih = np.maximum(
                            0.0, np.minimum(y2[bi, top], y2[bi, rest]) - np.maximum(y1[bi, top], y1[bi, rest])
                        )
                        iw = np.maximum(
                            0.0, np.minimum(x2[bi, top], x2[bi, rest]) - np.maximum(x1[bi, top], x1[bi, rest])
                        )
                        inter = ih * iw
                        union = area[bi, top] + area[bi, rest] - inter
                        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
                        cand = rest[iou <= iou_max]
        return (np.array(rows, dtype=np.int64).reshape(-1, 3),)
