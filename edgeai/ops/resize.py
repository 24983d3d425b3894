"""Resize (opsets 10-19), the older Upsample, and GridSample/AffineGrid for the native engine.

Resizing is separable: each resized axis is handled on its own. Nearest
modes gather source rows; linear and cubic modes (with antialias and
``exclude_outside``) build a small dense interpolation matrix for the axis
and apply it with one matmul. Source coordinates follow every
``coordinate_transformation_mode`` of the ONNX specification.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.resize import Resize
    >>> op = Resize(OpContext(node_name="r", op_type="Resize", opset=13, attrs={"mode": "nearest"}))
    >>> op.run(np.array([[[[1, 2]]]], np.float32), None, np.array([1, 1, 1, 2], np.float32))[0]
    array([[[[1., 1., 2., 2.]]]], dtype=float32)
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from edgeai.errors import InferenceError, ModelFormatError
from edgeai.ops._base import Op, OpContext, register

__all__ = ["AffineGrid", "GridSample", "Resize", "Upsample"]

_COORD_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_crop_and_resize",
    "tf_half_pixel_for_nn",
)
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "legacy")


def source_coords(
    mode: str, n_out: int, n_in: int, scale: float, roi: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Source coordinate of each output index along one axis, and which ones extrapolate.

    The "float length" ``scale * n_in`` (not the rounded output size) is what
    ONNX's reference uses for ``align_corners`` and the ``n_out == 1`` cases.

    Example:
        >>> source_coords("align_corners", 3, 2, 1.5, None)[0]
        array([0. , 0.5, 1. ])
    """
    y = np.arange(n_out, dtype=np.float64)
    length = scale * n_in
    extrap = None
    if mode == "align_corners":
        x = np.zeros(n_out) if length == 1 else y * (n_in - 1) / (length - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        lo, hi = roi if roi is not None else (0.0, 1.0)
        if length == 1:
            x = np.full(n_out, (hi - lo) * (n_in - 1) / 2)
        else:
            x = y * (hi - lo) * (n_in - 1) / (length - 1)
        x = x + lo * (n_in - 1)
        extrap = (x < 0) | (x > n_in - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(n_out, -0.5) if length == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / length)
        x = offset + (y + 0.5) / scale - 0.5
    elif mode == "tf_half_pixel_for_nn":
        x = (y + 0.5) / scale
    else:
        raise ValueError(mode)
    return x, extrap


def _cubic(t: np.ndarray, a: float) -> np.ndarray:
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def interpolation_matrix(
    x: np.ndarray,
    n_in: int,
    scale: float,
    *,
    mode: str,
    cubic_a: float = -0.75,
    antialias: bool = False,
    exclude_outside: bool = False,
) -> np.ndarray:
    """Dense (n_out, n_in) matrix mapping an axis of ``n_in`` samples to the coordinates ``x``.

    Taps sit left-biased around each coordinate (an integer coordinate counts
    as ratio 1 of the sample on its left); out-of-range taps repeat the edge
    sample, or are dropped and the rest renormalized with ``exclude_outside``.
    """
    base = np.ceil(x).astype(np.int64) - 1
    ratio = x - base  # in (0, 1]
    s = min(scale, 1.0) if antialias else 1.0
    if mode == "linear":
        start = int(math.floor(-1 / s) + 1)
    else:
        start = int(math.floor(-2 / s) + 1)
    offsets = np.arange(start, 2 - start)
    dist = (offsets[None, :] - ratio[:, None]) * s
    if mode == "linear":
        w = np.clip(1 - np.abs(dist), 0, 1)
    else:
        w = _cubic(dist, cubic_a)
    if antialias:
        w = w / w.sum(axis=1, keepdims=True)
    idx = base[:, None] + offsets[None, :]
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= n_in), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    mat = np.zeros((len(x), n_in))
    rows = np.broadcast_to(np.arange(len(x))[:, None], idx.shape)
    np.add.at(mat, (rows, np.clip(idx, 0, n_in - 1)), w)
    return mat


def nearest_index(x: np.ndarray, n_in: int, mode: str, downsample: bool) -> np.ndarray:
    """Source index of each output for a nearest ``mode`` (``legacy``: Upsample and Resize-10)."""
    if mode == "round_prefer_floor":
        i = np.ceil(x - 0.5)
    elif mode == "round_prefer_ceil":
        i = np.floor(x + 0.5)
    elif mode == "floor":
        i = np.floor(x)
    elif mode == "ceil":
        i = np.ceil(x)
    else:
        i = np.ceil(x) if downsample else np.floor(x)
    return np.clip(i, 0, n_in - 1).astype(np.int64)


class _Resizer:
    """Everything of a Resize node that does not depend on the data."""

    def __init__(self, ctx: OpContext, *, legacy: bool) -> None:
        self.ctx = ctx
        self.mode = ctx.attr("mode", "nearest")
        if self.mode == "bilinear":  # Upsample-1 spelling
            self.mode = "linear"
        if self.mode not in ("nearest", "linear", "cubic"):
            raise ModelFormatError(
                f"node {ctx.node_name!r} ({ctx.op_type}): mode {self.mode!r} is not nearest, linear or cubic"
            )
        self.coord = "asymmetric" if legacy else ctx.attr("coordinate_transformation_mode", "half_pixel")
        self.nearest = "legacy" if legacy else ctx.attr("nearest_mode", "round_prefer_floor")
        if self.coord not in _COORD_MODES or self.nearest not in _NEAREST_MODES:
            raise ModelFormatError(
                f"node {ctx.node_name!r} ({ctx.op_type}): unknown coordinate_transformation_mode "
                f"{self.coord!r} or nearest_mode {self.nearest!r}"
            )
        self.cubic_a = float(ctx.attr("cubic_coeff_a", -0.75))
        self.exclude = bool(ctx.attr("exclude_outside", 0))
        self.extrap = float(ctx.attr("extrapolation_value", 0.0))
        self.antialias = bool(ctx.attr("antialias", 0))
        self.policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        axes = ctx.attr("axes")
        self.axes = None if axes is None else [int(a) for a in axes]

    def fail(self, message: str) -> InferenceError:
        return InferenceError(f"node {self.ctx.node_name!r} ({self.ctx.op_type}): {message}")

    def __call__(
        self, x: np.ndarray, roi: np.ndarray | None, scales: np.ndarray | None, sizes: np.ndarray | None
    ) -> np.ndarray:
        r = x.ndim
        axes = list(range(r)) if self.axes is None else [a + r if a < 0 else a for a in self.axes]
        have_sizes = sizes is not None and sizes.size > 0
        have_scales = scales is not None and scales.size > 0
        if have_sizes == have_scales:
            raise self.fail("exactly one of scales and sizes must be given")
        if have_sizes:
            assert sizes is not None
            want = [int(v) for v in sizes.reshape(-1)]
            if len(want) != len(axes):
                raise self.fail(f"sizes {want} must have one value per resized axis ({len(axes)})")
            sc = [want[i] / x.shape[a] for i, a in enumerate(axes)]
            if self.policy in ("not_larger", "not_smaller"):
                one = min(sc) if self.policy == "not_larger" else max(sc)
                sc = [one] * len(axes)
                want = [int(one * x.shape[a] + 0.5) for a in axes]
        else:
            assert scales is not None
            sc = [float(v) for v in scales.reshape(-1)]
            if len(sc) != len(axes):
                raise self.fail(f"scales {sc} must have one value per resized axis ({len(axes)})")
            if min(sc) <= 0:
                raise self.fail(f"scales {sc} must be positive")
            want = [int(s * x.shape[a]) for s, a in zip(sc, axes)]
        roi_pairs: list[tuple[float, float] | None] = [None] * len(axes)
        if roi is not None and roi.size:
            vals = [float(v) for v in roi.reshape(-1)]
            k = len(vals) // 2
            for i, a in enumerate(axes):
                j = a if k == r and len(axes) != k else i
                roi_pairs[i] = (vals[j], vals[j + k])
        cdt = np.float64 if x.dtype == np.float64 else np.float32
        y = x
        masks: list[tuple[int, np.ndarray]] = []
        for a, s, n_out, rp in zip(axes, sc, want, roi_pairs):
            n_in = x.shape[a]
            if n_out == n_in and math.isclose(s, 1.0) and (rp is None or rp == (0.0, 1.0)):
                continue
            coords, extrap = source_coords(self.coord, n_out, n_in, s, rp)
            if self.mode == "nearest":
                y = np.take(y, nearest_index(coords, n_in, self.nearest, s < 1), axis=a)
            else:
                mat = interpolation_matrix(
                    coords,
                    n_in,
                    s,
                    mode=self.mode,
                    cubic_a=self.cubic_a,
                    antialias=self.antialias,
                    exclude_outside=self.exclude,
                ).astype(cdt)
                moved = np.moveaxis(y.astype(cdt, copy=False), a, -1)
                y = np.moveaxis(moved @ mat.T, -1, a)
            if extrap is not None and extrap.any():
                masks.append((a, extrap))
        if masks:
            y = np.array(y, dtype=cdt if self.mode != "nearest" else y.dtype)
            for a, m in masks:
                shape = [1] * r
                shape[a] = -1
                y = np.where(m.reshape(shape), np.asarray(self.extrap, y.dtype), y)
        if y.dtype != x.dtype:
            if x.dtype.kind in "iu":
                info = np.iinfo(x.dtype)
                y = np.clip(np.rint(y), info.min, info.max)
            y = y.astype(x.dtype)
        return np.ascontiguousarray(y)


@register("Resize", since=10)
@register("Resize", since=11)
@register("Resize", since=13)
@register("Resize", since=18)
@register("Resize", since=19)
class Resize(Op):
    """ONNX Resize: nearest/linear/cubic, all coordinate modes, antialias, axes, aspect-ratio policy."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.resizer = _Resizer(ctx, legacy=ctx.opset < 11)

    def run(
        self,
        x: np.ndarray,
        roi: np.ndarray | None = None,
        scales: np.ndarray | None = None,
        sizes: np.ndarray | None = None,
    ) -> tuple[np.ndarray]:
        if self.ctx.opset < 11:
            return (self.resizer(x, None, roi, None),)  # Resize-10: (X, scales)
        return (self.resizer(x, roi, scales, sizes),)


@register("Upsample", since=7)
@register("Upsample", since=9)
class Upsample(Op):
    """ONNX Upsample (deprecated; ``scales`` attribute at opset 7, input at 9): nearest or linear."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.resizer = _Resizer(ctx, legacy=True)

    def run(self, x: np.ndarray, scales: np.ndarray | None = None) -> tuple[np.ndarray]:
        if self.ctx.opset < 9:
            scales = np.asarray(self.ctx.attr("scales"), dtype=np.float32)
        return (self.resizer(x, None, scales, None),)


def _reflect(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold coordinates back into [lo, hi] by reflecting at the borders, as often as needed."""
    span = hi - lo
    if span <= 0:
        return np.full_like(v, lo)
    below = lo - v
    above = v - hi
    out = v.copy()
    for dist, mask, near, far in ((below, v < lo, lo, hi), (above, v > hi, hi, lo)):
        if not mask.any():
            continue
        flips = np.floor(dist / span)
        rest = dist - flips * span
        even = flips % 2 == 0
        sign = 1 if near == lo else -1
        out = np.where(mask, np.where(even, near + sign * rest, far - sign * rest), out)
    return out


@register("GridSample", since=16)
@register("GridSample", since=20)
@register("GridSample", since=22)
class GridSample(Op):
    """ONNX GridSample: sample the input at normalized grid points (nearest, linear, cubic).

    ``padding_mode`` zeros, border or reflection and ``align_corners`` follow
    PyTorch's ``grid_sample``, which ONNX adopted; N-D inputs from opset 20.

    Example:
        >>> import numpy as np
        >>> from edgeai.ops._base import OpContext
        >>> x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
        >>> grid = np.zeros((1, 1, 1, 2), np.float32)               # the centre
        >>> GridSample(OpContext(node_name="g", op_type="GridSample", opset=20)).run(x, grid)[0]
        array([[[[1.5]]]], dtype=float32)
    """

    _MODES: ClassVar[dict[str, str]] = {
        "bilinear": "linear",
        "linear": "linear",
        "nearest": "nearest",
        "bicubic": "cubic",
        "cubic": "cubic",
    }

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        mode = ctx.attr("mode", "bilinear" if ctx.opset < 20 else "linear")
        pad = ctx.attr("padding_mode", "zeros")
        if mode not in self._MODES or pad not in ("zeros", "border", "reflection"):
            raise ModelFormatError(
                f"node {ctx.node_name!r} (GridSample): mode {mode!r} / padding_mode {pad!r} is not supported "
                "(modes: linear, nearest, cubic; padding: zeros, border, reflection)"
            )
        self.mode = self._MODES[mode]
        self.padding = pad
        self.align = bool(ctx.attr("align_corners", 0))

    def run(self, x: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray]:
        nsp = x.ndim - 2
        if grid.ndim != nsp + 2 or grid.shape[-1] != nsp or grid.shape[0] != x.shape[0]:
            raise InferenceError(
                f"node {self.ctx.node_name!r} (GridSample): grid {grid.shape} does not fit input {x.shape} "
                f"(expected (N, *out, {nsp}))"
            )
        cdt = np.float64 if x.dtype == np.float64 else np.float32
        dims = x.shape[2:]
        coords, bounds = [], []
        for i in range(nsp):
            g = grid[..., nsp - 1 - i].astype(np.float64)  # the grid lists x (the last axis) first
            n = dims[i]
            c = (g + 1) / 2 * (n - 1) if self.align else ((g + 1) * n - 1) / 2
            lo, hi = (0.0, n - 1.0) if self.align else (-0.5, n - 0.5)
            if self.mode == "nearest":
                c = np.rint(c)
            if self.padding == "border" and self.mode != "cubic":
                # cubic keeps the coordinate and clamps each tap (PyTorch, ONNX Runtime)
                c = np.where((c < lo) | (c > hi), np.clip(c, 0, n - 1), c)
            elif self.padding == "reflection":
                c = _reflect(c, lo, hi)
            coords.append(c)
            bounds.append((lo, hi))
        per_axis: list[list[tuple[np.ndarray, np.ndarray | None]]] = []
        for c in coords:
            if self.mode == "nearest":
                per_axis.append([(np.trunc(c).astype(np.int64), None)])
                continue
            base = np.floor(c)
            t = c - base
            offsets = (0, 1) if self.mode == "linear" else (-1, 0, 1, 2)
            taps = []
            for o in offsets:
                w = (1 - np.abs(t - o)) if self.mode == "linear" else _cubic(t - o, -0.75)
                taps.append(((base + o).astype(np.int64), w))
            per_axis.append(taps)
        batch = np.arange(x.shape[0]).reshape((-1,) + (1,) * nsp)
        out = np.zeros((x.shape[0], *grid.shape[1:-1], x.shape[1]), dtype=cdt)
        xs = x.astype(cdt, copy=False)
        for combo in np.ndindex(*(len(t) for t in per_axis)):
            weight: np.ndarray | float = 1.0
            valid: np.ndarray | bool = True
            index = []
            for i, j in enumerate(combo):
                idx, w = per_axis[i][j]
                if w is not None:
                    weight = weight * w
                idx, ok = self._pixel(idx, dims[i], bounds[i])
                if ok is not None:
                    valid = valid & ok
                index.append(idx)
            vals = xs[(batch, slice(None), *index)] if nsp else xs  # (N, *out, C)
            factor = np.asarray(weight, dtype=cdt) * np.asarray(valid, dtype=cdt)
            out += vals * np.asarray(factor)[..., None]
        return (np.ascontiguousarray(np.moveaxis(out, -1, 1)).astype(x.dtype, copy=False),)

    def _pixel(self, idx: np.ndarray, n: int, bounds: tuple[float, float]) -> tuple[np.ndarray, np.ndarray | None]:
        """Integer tap positions made readable: masked (zeros), clamped (border) or reflected."""
        if self.padding == "zeros":
            return np.clip(idx, 0, n - 1), (idx >= 0) & (idx < n)
        if self.padding == "reflection":
            idx = np.trunc(_reflect(idx.astype(np.float64), *bounds)).astype(np.int64)
        return np.clip(idx, 0, n - 1), None


@register("AffineGrid", since=20)
class AffineGrid(Op):
    """ONNX AffineGrid: the sampling grid of an affine transform (2-D or 3-D), for GridSample."""

    def run(self, theta: np.ndarray, size: np.ndarray) -> tuple[np.ndarray]:
        dims = [int(v) for v in np.asarray(size).reshape(-1)]
        spatial = dims[2:]
        nsp = len(spatial)
        if nsp not in (2, 3) or theta.shape[1:] != (nsp, nsp + 1):
            raise InferenceError(
                f"node {self.ctx.node_name!r} (AffineGrid): theta {theta.shape} does not match size {dims}"
            )
        align = bool(self.ctx.attr("align_corners", 0))
        axes = []
        for n in spatial:
            if align:
                axes.append(np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1))
            else:
                axes.append((np.arange(n) * 2 + 1) / n - 1)
        mesh = np.meshgrid(*axes, indexing="ij")  # (D,) H, W
        # homogeneous coordinates, x (the last axis) first
        base = np.stack([*mesh[::-1], np.ones_like(mesh[0])], axis=-1)
        out = base.reshape(-1, nsp + 1) @ np.swapaxes(theta.astype(np.float64), 1, 2)
        return (out.reshape(theta.shape[0], *spatial, nsp).astype(theta.dtype),)
