"""MediaPipe's TFLite custom ops (float32), from MediaPipe's published kernel semantics.

Plain LiteRT refuses models that use them ("unresolved custom op"); the
native engine runs them, so such a model runs through edgeai with its
builtin parts still on LiteRT. Their options are raw C structs in the
operator's ``custom_options`` bytes: ``TfLitePoolParams`` (padding, stride
w/h, filter w/h, activation as int32; padding 1 = SAME, 2 = VALID) for the
pooling ops, ``TfLiteTransposeConvParams`` (padding, stride w/h) for
``Convolution2DTransposeBias``.

* ``MaxPoolingWithArgmax2D``: max pooling over in-bounds pixels; the second
  output holds, as float32, the winner's index inside its window
  (``dy * filter_width + dx + 0.1``; the first maximum in row-major order wins).
* ``MaxUnpooling2D``: output ``[N, H * fh, W * fw, C]`` of zeros; each input value
  goes to the window position its index names.
* ``Convolution2DTransposeBias``: transposed convolution with OHWI weights and
  a bias; SAME padding trims ``max(0, k - (in - 1) % s - 1)`` pixels (half before).
* ``TransformLandmarks``: each landmark's (x, y) mapped by the first two rows of
  a 4x4 matrix (``x' = m00 x + m01 y + m03``, float32, in that order of
  additions); z and any further channels are kept. Version 2 takes ``[1, N, C]``
  landmarks (C = 2 or 3 per landmark); version 1 ``[1, H, W, C]`` landmarks
  with ``dimensions`` and ``scale`` (scaling the translation) in flexbuffer options.
* ``Landmarks2TransformMatrix`` version 2 (``[1, N, 3]`` landmarks): the 4x4
  matrix from an output crop (``output_width`` x ``output_height``) to the
  input: rotation ``target_rotation_radians - atan2`` of the line from the
  ``left_rotation_idx`` to the ``right_rotation_idx`` landmark, centre and
  size of the rotated bounding box of the ``subset_idxs`` landmark pairs,
  scaled by ``scale_x``/``scale_y``; options in a flexbuffer map.
  Version 1 (``[1, 1, 1, 3N]`` landmarks in ``[0, landmarks_range]``; options
  ``input_hw``, ``output_hw``, ``dimensions`` = 3, ``landmarks_range``,
  ``bbox_size_multiplier``, ``left_rotation_idx``, ``right_rotation_idx``,
  ``subset``): rotation ``-atan(dy / dx)``, the bounding box of the ``subset``
  pairs in the rotated frame, and the matrix ``to_absolute * rotation * scale *
  to_relative`` from output pixels (corners at 0 and size - 1) to input pixels.
  The two versions are told apart by their options (``subset`` or ``subset_idxs``).
* ``TransformTensorBilinear`` (version 2): the output ``[1, H, W, C]`` (its size
  is the output tensor's) samples the input bilinearly at the matrix image of
  every output pixel (with the half-pixel correction of MediaPipe's kernel);
  samples outside the input are 0. Version 1 is the custom op
  ``TransformTensor``: the same sampling without the half-pixel correction.

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.mediapipe import max_pool_argmax
    >>> x = np.array([1, 5, 3, 2], np.float32).reshape(1, 2, 2, 1)
    >>> y, idx = max_pool_argmax(x, 2, 2, 2, 2, 0, 0, 1, 1)
    >>> float(y[0, 0, 0, 0]), round(float(idx[0, 0, 0, 0]), 4)
    (5.0, 1.1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.tflite._common import bad_model, unsupported

__all__ = [
    "Convolution2DTransposeBias",
    "Landmarks2TransformMatrix",
    "MaxPoolingWithArgmax2D",
    "MaxUnpooling2D",
    "TransformLandmarks",
    "TransformTensor",
    "TransformTensorBilinear",
    "landmarks_to_transform_matrix",
    "landmarks_to_transform_matrix_v1",
    "max_pool_argmax",
    "max_unpool",
    "transform_landmarks",
    "transform_tensor_bilinear",
    "transpose_conv_bias",
]

_SAME, _VALID = 1, 2  # TfLitePadding
_F32 = np.dtype(np.float32)


def _struct(ctx: OpContext, fields: int, what: str) -> list[int]:
    raw = ctx.attr("custom_options") or b""
    if len(raw) < 4 * fields:
        raise bad_model(ctx, f"custom options hold {len(raw)} bytes; a {what} struct needs {4 * fields}")
    return [int(v) for v in np.frombuffer(raw[: 4 * fields], dtype="<i4")]


def _float_io(ctx: OpContext) -> None:
    for v in (*ctx.input_values, *ctx.output_values):
        if v is not None and v.dtype is not None and v.dtype != _F32:
            raise unsupported(ctx, f"{v.name!r} of dtype {v.dtype} (MediaPipe's kernel is float32 only)")


def _activation(ctx: OpContext, act: int) -> tuple[float, float]:
    ranges = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}
    if act not in ranges:
        raise unsupported(ctx, f"fused activation {act}")
    return ranges[act]


def _pad(stride: int, size: int, filt: int, out: int) -> int:
    """TFLite ``ComputePadding`` (dilation 1)."""
    return max(((out - 1) * stride + filt - size) // 2, 0)


def max_pool_argmax(
    x: np.ndarray,
    fh: int,
    fw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    oh: int,
    ow: int,
    lo: float = -np.inf,
    hi: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """(pooled, window index + 0.1) of an NHWC float tensor."""
    n, h, w, c = x.shape
    best = np.full((n, oh, ow, c), np.finfo(np.float32).min, np.float32)
    index = np.zeros((n, oh, ow, c), np.int64)
    oy, ox = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw
    for dy in range(fh):
        for dx in range(fw):
            iy, ix = oy + dy, ox + dx
            vy, vx = (iy >= 0) & (iy < h), (ix >= 0) & (ix < w)
            tap = x[:, np.clip(iy, 0, h - 1)][:, :, np.clip(ix, 0, w - 1)]
            ok = (vy[:, None] & vx[None, :])[None, :, :, None]
            win = ok & (tap > best)  # strictly greater: the first maximum wins
            best = np.where(win, tap, best)
            index = np.where(win, dy * fw + dx, index)
    return np.clip(best, lo, hi).astype(np.float32), (index.astype(np.float32) + np.float32(0.1))


def max_unpool(x: np.ndarray, idx: np.ndarray, fh: int, fw: int, sh: int, sw: int, ph: int, pw: int) -> np.ndarray:
    n, h, w, c = x.shape
    out = np.zeros((n, h * fh, w * fw, c), np.float32)
    k = idx.astype(np.int64)  # C's float -> int conversion truncates
    oy = np.arange(h)[None, :, None, None] * sh - ph + k // fw
    ox = np.arange(w)[None, None, :, None] * sw - pw + k % fw
    bn = np.broadcast_to(np.arange(n)[:, None, None, None], x.shape)
    bc = np.broadcast_to(np.arange(c)[None, None, None, :], x.shape)
    out[bn, oy, ox, bc] = x  # in input order: a later write to the same spot wins, as in the kernel loop
    return out


def transpose_conv_bias(x: np.ndarray, w: np.ndarray, b: np.ndarray, sh: int, sw: int, same: bool) -> np.ndarray:
    n, h, wd, _ = x.shape
    o, kh, kw, _ = w.shape
    pad_h = max(0, kh - (h - 1) % sh - 1) if same else 0
    pad_w = max(0, kw - (wd - 1) % sw - 1) if same else 0
    oh, ow = sh * (h - 1) + kh - pad_h, sw * (wd - 1) + kw - pad_w
    full = np.zeros((n, sh * (h - 1) + kh, sw * (wd - 1) + kw, o), np.float64)
    xf, wf = x.astype(np.float64), w.astype(np.float64)
    for dy in range(kh):
        for dx in range(kw):
            full[:, dy : dy + sh * (h - 1) + 1 : sh, dx : dx + sw * (wd - 1) + 1 : sw, :] += xf @ wf[:, dy, dx, :].T
    top, left = pad_h // 2, pad_w // 2
    return (full[:, top : top + oh, left : left + ow, :] + b.astype(np.float64)).astype(np.float32)


class _PoolParams(Op):
    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        _float_io(ctx)
        padding, self.sw, self.sh, self.fw, self.fh, act = _struct(ctx, 6, "TfLitePoolParams")
        if padding not in (_SAME, _VALID):
            raise bad_model(ctx, f"padding {padding} is neither SAME (1) nor VALID (2)")
        if min(self.sw, self.sh, self.fw, self.fh) < 1:
            raise bad_model(ctx, "strides and filter sizes must be positive")
        self.same = padding == _SAME
        self.lo, self.hi = _activation(ctx, act)


@register("MaxPoolingWithArgmax2D", domain="tflite.custom", since=1)
class MaxPoolingWithArgmax2D(_PoolParams):
    """MediaPipe ``MaxPoolingWithArgmax2D``: (pooled, argmax index inside the window as float)."""

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray, np.ndarray]:
        h, w = x.shape[1], x.shape[2]
        if self.same:
            oh, ow = (h + self.sh - 1) // self.sh, (w + self.sw - 1) // self.sw
        else:
            oh, ow = (h - self.fh + self.sh) // self.sh, (w - self.fw + self.sw) // self.sw
        ph, pw = _pad(self.sh, h, self.fh, oh), _pad(self.sw, w, self.fw, ow)
        return max_pool_argmax(x, self.fh, self.fw, self.sh, self.sw, ph, pw, oh, ow, self.lo, self.hi)


@register("MaxUnpooling2D", domain="tflite.custom", since=1)
class MaxUnpooling2D(_PoolParams):
    """MediaPipe ``MaxUnpooling2D``: scatter each value to the window position of its index."""

    def run(self, x: np.ndarray, idx: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        h, w = x.shape[1], x.shape[2]
        ph = _pad(self.sh, h * self.fh, self.fh, h)
        pw = _pad(self.sw, w * self.fw, self.fw, w)
        return (max_unpool(x, idx, self.fh, self.fw, self.sh, self.sw, ph, pw),)


@register("Convolution2DTransposeBias", domain="tflite.custom", since=1)
class Convolution2DTransposeBias(Op):
    """MediaPipe ``Convolution2DTransposeBias``: transposed convolution plus bias (float32)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        _float_io(ctx)
        padding, self.sw, self.sh = _struct(ctx, 3, "TfLiteTransposeConvParams")
        if padding not in (_SAME, _VALID) or min(self.sw, self.sh) < 1:
            raise bad_model(ctx, f"bad TfLiteTransposeConvParams (padding {padding}, strides {self.sw}x{self.sh})")
        self.same = padding == _SAME

    def run(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if w.ndim != 4 or x.ndim != 4 or w.shape[3] != x.shape[3] or b.shape != (w.shape[0],):
            raise bad_model(self.ctx, f"shapes do not fit: input {x.shape}, weights {w.shape}, bias {b.shape}")
        return (transpose_conv_bias(x, w, b, self.sh, self.sw, self.same),)


def transform_landmarks(points: np.ndarray, matrix: np.ndarray, dims: int, scale: float = 1.0) -> np.ndarray:
    """Landmarks ``[..., C]`` (``dims`` channels per landmark) mapped by ``matrix`` (4x4, row-major)."""
    f = np.float32
    m = np.asarray(matrix, f).reshape(-1)[:8]
    out = np.array(points, dtype=f, copy=True)
    flat = out.reshape(-1, dims)
    x, y = flat[:, 0].copy(), flat[:, 1].copy()
    zero = f(0.0)
    for row, col in ((0, 0), (4, 1)):
        acc = x * m[row] + y * m[row + 1]  # float32 sums in the kernel's order
        acc = acc + zero * m[row + 2]
        acc = acc + m[row + 3] * f(scale)
        flat[:, col] = acc
    return out


@register("TransformLandmarks", domain="tflite.custom", since=1)
class TransformLandmarks(Op):
    """MediaPipe ``TransformLandmarks`` (versions 1 and 2, told apart by the landmarks' rank)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        _float_io(ctx)
        self.dims, self.scale = 0, 1.0
        raw = ctx.attr("custom_options")
        if raw:
            try:
                from flatbuffers import flexbuffers

                opts = flexbuffers.Loads(bytes(raw))
            except Exception:
                opts = None
            if isinstance(opts, dict):
                self.dims = int(opts.get("dimensions", 0) or 0)
                self.scale = float(opts.get("scale", 1.0))

    def run(self, points: np.ndarray, matrix: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if points.ndim == 3:  # version 2: the landmark's channel count is the last dimension
            dims, scale = points.shape[-1], 1.0
        elif points.ndim == 4:
            dims, scale = self.dims or 3, self.scale
        else:
            raise bad_model(self.ctx, f"landmarks must be 3-D (version 2) or 4-D (version 1), got {points.shape}")
        if dims not in (2, 3) or points.shape[-1] % dims:
            raise bad_model(self.ctx, f"{dims} dimensions per landmark do not fit landmarks of shape {points.shape}")
        if matrix.size < 8:
            raise bad_model(self.ctx, f"the transform matrix needs 16 values, got shape {matrix.shape}")
        return (transform_landmarks(points, matrix, dims, scale),)


def landmarks_to_transform_matrix(
    points: np.ndarray,
    pairs: list[tuple[int, int]],
    left: int,
    right: int,
    target: float,
    out_w: int,
    out_h: int,
    scale_x: float,
    scale_y: float,
) -> np.ndarray:
    """MediaPipe's Landmarks2TransformMatrix v2 in float32: a [1, 4, 4] matrix."""
    f = np.float32
    p = np.asarray(points, f).reshape(-1, 3)
    rot = f(target) - f(np.arctan2(p[right, 1] - p[left, 1], p[right, 0] - p[left, 0]))
    c, s = f(np.cos(rot)), f(np.sin(rot))
    idx = [i for pair in pairs for i in pair]
    xs = p[idx, 0] * c - p[idx, 1] * s
    ys = p[idx, 0] * s + p[idx, 1] * c
    width, height = xs.max() - xs.min(), ys.max() - ys.min()
    mx, my = (xs.min() + xs.max()) / f(2), (ys.min() + ys.max()) / f(2)
    ci, si = f(np.cos(-rot)), f(np.sin(-rot))
    cx, cy = ci * mx - si * my, si * mx + ci * my

    def mat(a: list[list[float]]) -> np.ndarray:
        return np.array(a, f)

    t = mat([[1, 0, 0, cx], [0, 1, 0, cy], [0, 0, 1, 0], [0, 0, 0, 1]])
    t = t @ mat([[ci, -si, 0, 0], [si, ci, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    sx, sy = f(scale_x) * width / f(out_w), f(scale_y) * height / f(out_h)
    t = t @ mat([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    t = t @ mat([[1, 0, 0, -out_w / 2.0], [0, 1, 0, -out_h / 2.0], [0, 0, 1, 0], [0, 0, 0, 1]])
    return t.astype(f).reshape(1, 4, 4)


def landmarks_to_transform_matrix_v1(
    points: np.ndarray,
    pairs: list[tuple[int, int]],
    left: int,
    right: int,
    input_hw: tuple[int, int],
    output_hw: tuple[int, int],
    landmarks_range: int,
    bbox_multiplier: float,
) -> np.ndarray:
    """MediaPipe's Landmarks2TransformMatrix v1 in float32: a [1, 4, 4] matrix.

    Constants the kernel writes as double literals (``2.0 / (w - 1.0)``, the centre's
    ``/ range * 2.0 - 1.0``) are computed in float64 and stored as float32, as its ``Mat3``
    constructor does; products and sums of the matrices are float32.
    """
    f = np.float32
    p = np.asarray(points, f).reshape(-1)
    xy = p[: p.size // 3 * 3].reshape(-1, 3)[:, :2]
    dx, dy = xy[right, 0] - xy[left, 0], xy[right, 1] - xy[left, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = -f(np.arctan(f(dy / dx)))
    c, s = f(np.cos(alpha)), f(np.sin(alpha))
    idx = [i for pair in pairs for i in pair]
    rx = xy[idx, 0] * c - xy[idx, 1] * s
    ry = xy[idx, 0] * s + xy[idx, 1] * c
    lo_x, lo_y = min(f(100000), rx.min()), min(f(100000), ry.min())
    hi_x, hi_y = max(f(-100000), rx.max()), max(f(-100000), ry.max())
    bw, bh = (hi_x - lo_x) * f(bbox_multiplier), (hi_y - lo_y) * f(bbox_multiplier)
    rng = f(landmarks_range)
    mx, my = f((float(hi_x) + float(lo_x)) / 2.0), f((float(hi_y) + float(lo_y)) / 2.0)
    ci, si = f(np.cos(-alpha)), f(np.sin(-alpha))
    cx, cy = mx * ci - my * si, mx * si + my * ci
    (in_h, in_w), (out_h, out_w) = input_hw, output_hw

    def mat(a: list[list[float]]) -> np.ndarray:
        return np.array(a, np.float64).astype(f)

    scale = mat([[bw / rng, 0, 0], [0, bh / rng, 0], [0, 0, 1]])
    rotation = mat([[ci, -si, float(cx / rng) * 2.0 - 1.0], [si, ci, float(cy / rng) * 2.0 - 1.0], [0, 0, 1]])
    to_relative = mat([[2.0 / (out_w - 1.0), 0, -1], [0, 2.0 / (out_h - 1.0), -1], [0, 0, 1]])
    to_absolute = mat(
        [[(in_w - 1.0) / 2.0, 0, (in_w - 1.0) / 2.0], [0, (in_h - 1.0) / 2.0, (in_h - 1.0) / 2.0], [0, 0, 1]]
    )
    itm = ((to_absolute @ rotation) @ scale) @ to_relative
    out = np.zeros((4, 4), f)
    out[0, :2], out[0, 3] = itm[0, :2], itm[0, 2]
    out[1, :2], out[1, 3] = itm[1, :2], itm[1, 2]
    out[2, :3] = itm[2]
    out[3, 3] = 1
    return out.reshape(1, 4, 4)


@register("Landmarks2TransformMatrix", domain="tflite.custom", since=1)
class Landmarks2TransformMatrix(Op):
    """MediaPipe ``Landmarks2TransformMatrix``, versions 1 and 2 (``[1, 4, 4]`` output).

    Version 2 takes ``[1, N, 3]`` landmarks; version 1 ``[1, 1, 1, 3N]`` (its options hold
    ``subset`` rather than ``subset_idxs``)."""

    _KEYS = ("subset_idxs", "left_rotation_idx", "right_rotation_idx", "output_height", "output_width")
    _KEYS_V1 = (
        "subset", "input_hw", "output_hw", "dimensions", "landmarks_range", "bbox_size_multiplier",
        "left_rotation_idx", "right_rotation_idx",
    )  # fmt: skip

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        _float_io(ctx)
        try:
            from flatbuffers import flexbuffers

            opts = flexbuffers.Loads(bytes(ctx.attr("custom_options") or b""))
        except Exception as exc:
            raise bad_model(ctx, f"custom options are not a flexbuffer map ({exc})") from exc
        if not isinstance(opts, dict):
            raise bad_model(ctx, "custom options are not a flexbuffer map")
        self.version = 1 if "subset" in opts and "subset_idxs" not in opts else 2
        keys = self._KEYS_V1 if self.version == 1 else self._KEYS
        missing = [k for k in keys if k not in opts]
        if missing:
            raise bad_model(ctx, f"custom options lack {', '.join(missing)} (version {self.version})")
        flat = [int(v) for v in opts["subset" if self.version == 1 else "subset_idxs"]]
        if len(flat) % 2:
            flat.append(flat[-1])  # an odd count pairs the last index with itself, as MediaPipe does
        self.pairs = list(zip(flat[0::2], flat[1::2]))
        self.left, self.right = int(opts["left_rotation_idx"]), int(opts["right_rotation_idx"])
        if not self.pairs or min(min(min(p) for p in self.pairs), self.left, self.right) < 0:
            raise bad_model(ctx, "landmark indices must be non-negative and the subset non-empty")
        if self.version == 1:
            self.input_hw = tuple(int(v) for v in opts["input_hw"])
            self.output_hw = tuple(int(v) for v in opts["output_hw"])
            self.range = int(opts["landmarks_range"])
            self.bbox = float(opts["bbox_size_multiplier"])
            if int(opts["dimensions"]) != 3:
                raise bad_model(ctx, f"dimensions must be 3, got {opts['dimensions']}")
            if len(self.input_hw) != 2 or len(self.output_hw) != 2 or min(*self.input_hw, *self.output_hw) <= 0:
                raise bad_model(ctx, f"input_hw {self.input_hw} and output_hw {self.output_hw} must be 2 positive ints")
            if self.range <= 0 or self.bbox == 0:
                raise bad_model(ctx, "landmarks_range must be positive and bbox_size_multiplier non-zero")
            return
        self.target = float(opts.get("target_rotation_radians", 0.0))
        self.out_h, self.out_w = int(opts["output_height"]), int(opts["output_width"])
        self.sx, self.sy = float(opts.get("scale_x", 1.0)), float(opts.get("scale_y", 1.0))
        if min(self.out_h, self.out_w) <= 0 or min(self.sx, self.sy) <= 0:
            raise bad_model(ctx, "output size and scales must be positive")

    def run(self, points: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if self.version == 1:
            if points.ndim != 4 or points.shape[:3] != (1, 1, 1):
                raise unsupported(self.ctx, f"landmarks of shape {points.shape} (version 1 takes [1, 1, 1, 3N])")
            n = points.shape[-1] // 3
        else:
            if points.ndim != 3 or points.shape[-1] != 3:
                raise unsupported(self.ctx, f"landmarks of shape {points.shape} (version 2 takes [1, N, 3])")
            n = points.shape[1]
        if max(max(max(p) for p in self.pairs), self.left, self.right) >= n:
            raise bad_model(self.ctx, f"a landmark index in the options is out of range for {n} landmarks")
        if self.version == 1:
            return (
                landmarks_to_transform_matrix_v1(
                    points, self.pairs, self.left, self.right, self.input_hw, self.output_hw, self.range, self.bbox
                ),
            )
        return (
            landmarks_to_transform_matrix(
                points, self.pairs, self.left, self.right, self.target, self.out_w, self.out_h, self.sx, self.sy
            ),
        )


def transform_tensor_bilinear(
    x: np.ndarray, matrix: np.ndarray, out_h: int, out_w: int, half_pixel: bool = True
) -> np.ndarray:
    """MediaPipe's TransformTensorBilinear on the first image of ``x`` (NHWC float32).

    ``half_pixel=True`` is version 2 (with its align-corners correction), ``False`` version 1
    (the custom op ``TransformTensor``)."""
    f = np.float32
    img = x[0].astype(np.float64)
    h, w, c = img.shape
    m = np.asarray(matrix, f).reshape(-1)
    rows = []
    for r in (0, 4):  # v2's align-corners correction, in double, stored back as float
        t = m[r : r + 4].copy()
        if half_pixel:
            t[3] = f(float(t[3]) + (float(t[0]) * 0.5 + float(t[1]) * 0.5 - 0.5))
        rows.append(t)
    oy, ox = np.meshgrid(np.arange(out_h, dtype=f), np.arange(out_w, dtype=f), indexing="ij")
    tx = (ox * rows[0][0] + oy * rows[0][1]) + f(0) * rows[0][2] + rows[0][3]
    ty = (ox * rows[1][0] + oy * rows[1][1]) + f(0) * rows[1][2] + rows[1][3]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fx, fy = np.floor(tx.astype(np.float64)), np.floor(ty.astype(np.float64))
    x0, y0 = fx.astype(np.int64), fy.astype(np.int64)
    padded = np.zeros((h + 2, w + 2, c))
    padded[:h, :w] = img  # reads past the last row/column give 0, as in the kernel

    def read(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return padded[np.clip(yy, -1, h), np.clip(xx, -1, w)]

    q11, q21 = read(y0, x0), read(y0, x0 + 1)
    q12, q22 = read(y0 + 1, x0), read(y0 + 1, x0 + 1)
    rc = (tx - fx.astype(f)).astype(f).astype(np.float64)[..., None]
    lc = (ty - fy.astype(f)).astype(f).astype(np.float64)[..., None]
    upper = ((1.0 - rc) * q11 + (rc * q21).astype(f)).astype(f).astype(np.float64)
    lower = ((1.0 - rc) * q12 + (rc * q22).astype(f)).astype(f).astype(np.float64)
    out = (lc * lower).astype(f) + (1.0 - lc) * upper
    return np.where(inside[..., None], out, 0.0).astype(f)[None]


@register("TransformTensorBilinear", domain="tflite.custom", since=1)
class TransformTensorBilinear(Op):
    """MediaPipe ``TransformTensorBilinear`` version 2 (output size from the output tensor)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        _float_io(ctx)
        shape = ctx.output_values[0].shape if ctx.output_values else None
        if shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
            raise bad_model(ctx, f"the output needs a fixed [1, H, W, C] shape, got {shape}")
        self.out_h, self.out_w = int(shape[1]), int(shape[2])

    def run(self, x: np.ndarray, matrix: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if x.ndim != 4 or matrix.size < 8:
            raise bad_model(self.ctx, f"needs NHWC data and a 4x4 matrix, got {x.shape} and {matrix.shape}")
        return (transform_tensor_bilinear(x, matrix, self.out_h, self.out_w),)


@register("TransformTensor", domain="tflite.custom", since=1)
class TransformTensor(TransformTensorBilinear):
    """MediaPipe ``TransformTensor``: ``TransformTensorBilinear`` version 1 (no half-pixel correction)."""

    def run(self, x: np.ndarray, matrix: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if x.ndim != 4 or matrix.size < 8:
            raise bad_model(self.ctx, f"needs NHWC data and a 4x4 matrix, got {x.shape} and {matrix.shape}")
        return (transform_tensor_bilinear(x, matrix, self.out_h, self.out_w, half_pixel=False),)
