"""Shape and data-movement ops of the native engine (Reshape, Slice, Gather, Pad, Scatter,
Unique, TensorScatter, Dropout at inference...).

Each op follows the ONNX schema of the versions it registers for: where a
later version moved an attribute to an input (Slice-10, Squeeze-13, Split-13,
Pad-11...) one class reads both forms. Reshape, Squeeze, Unsqueeze and
Flatten return views of their input, as other runtimes alias them.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.tensor_shape import Slice
    >>> op = Slice(OpContext(node_name="s", op_type="Slice", opset=13))
    >>> op.run(np.arange(6), np.array([5]), np.array([0]), np.array([0]), np.array([-2]))[0]
    array([5, 3, 1])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.errors import InferenceError, ModelFormatError
from edgeai.ops._base import Op, register

__all__ = [
    "CenterCropPad",
    "Compress",
    "Concat",
    "ConstantOfShape",
    "DepthToSpace",
    "Dropout",
    "Expand",
    "EyeLike",
    "Flatten",
    "Gather",
    "GatherElements",
    "GatherND",
    "NonZero",
    "OneHot",
    "Pad",
    "Range",
    "Reshape",
    "ReverseSequence",
    "ScatterElements",
    "ScatterND",
    "Shape",
    "Size",
    "Slice",
    "SpaceToDepth",
    "Split",
    "Squeeze",
    "TensorScatter",
    "Tile",
    "Transpose",
    "Trilu",
    "Unique",
    "Unsqueeze",
]


def _fail(op: Op, message: str) -> InferenceError:
    return InferenceError(f"node {op.ctx.node_name!r} ({op.ctx.op_type}): {message}")


def _axis(op: Op, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise _fail(op, f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis + rank if axis < 0 else axis


def _int_list(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _onnx_dtype(code: int) -> np.dtype:
    from onnx.helper import tensor_dtype_to_np_dtype

    return np.dtype(tensor_dtype_to_np_dtype(int(code)))


# ---------------------------------------------------------------- reshaping


@register("Reshape", since=1)
@register("Reshape", since=5)
@register("Reshape", since=13)
@register("Reshape", since=14)
@register("Reshape", since=19)
@register("Reshape", since=21)
@register("Reshape", since=23)
@register("Reshape", since=24)
@register("Reshape", since=25)
class Reshape(Op):
    """ONNX Reshape: ``0`` copies the input's dimension (unless ``allowzero``), ``-1`` is inferred."""

    def run(self, x: np.ndarray, shape: np.ndarray | None = None) -> tuple[np.ndarray]:
        target = _int_list(self.ctx.attr("shape", []) if self.ctx.opset < 5 else shape)
        allowzero = bool(self.ctx.attr("allowzero", 0))
        dims = list(target)
        for i, d in enumerate(dims):
            if d == 0 and not allowzero:
                if i >= x.ndim:
                    raise _fail(self, f"shape {target} copies dimension {i} that the input {x.shape} lacks")
                dims[i] = x.shape[i]
        if dims.count(-1) > 1:
            raise _fail(self, f"shape {target} has more than one -1")
        try:
            return (x.reshape(dims),)
        except ValueError:
            raise _fail(self, f"cannot reshape an input of shape {x.shape} to {target}") from None


@register("Transpose", since=1)
@register("Transpose", since=13)
@register("Transpose", since=21)
@register("Transpose", since=23)
@register("Transpose", since=24)
@register("Transpose", since=25)
class Transpose(Op):
    """ONNX Transpose (``perm`` defaults to reversing the axes)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        perm = self.ctx.attr("perm")
        if perm is not None and len(perm) != x.ndim:
            raise _fail(self, f"perm {list(perm)} does not match input rank {x.ndim}")
        return (np.ascontiguousarray(np.transpose(x, None if perm is None else list(perm))),)


@register("Squeeze", since=1)
@register("Squeeze", since=11)
@register("Squeeze", since=13)
@register("Squeeze", since=21)
@register("Squeeze", since=23)
@register("Squeeze", since=24)
@register("Squeeze", since=25)
class Squeeze(Op):
    """ONNX Squeeze: drop the listed size-1 axes (all of them when none are listed)."""

    def run(self, x: np.ndarray, axes: np.ndarray | None = None) -> tuple[np.ndarray]:
        raw = self.ctx.attr("axes") if self.ctx.opset < 13 else axes
        if raw is None or len(np.asarray(raw).reshape(-1)) == 0:
            return (x.reshape([d for d in x.shape if d != 1]),)
        ax = sorted({_axis(self, a, x.ndim) for a in _int_list(raw)})
        for a in ax:
            if x.shape[a] != 1:
                raise _fail(self, f"cannot squeeze axis {a} of size {x.shape[a]} (input shape {x.shape})")
        return (x.reshape([d for i, d in enumerate(x.shape) if i not in ax]),)


@register("Unsqueeze", since=1)
@register("Unsqueeze", since=11)
@register("Unsqueeze", since=13)
@register("Unsqueeze", since=21)
@register("Unsqueeze", since=23)
@register("Unsqueeze", since=24)
@register("Unsqueeze", since=25)
class Unsqueeze(Op):
    """ONNX Unsqueeze: insert size-1 axes at the listed positions of the output."""

    def run(self, x: np.ndarray, axes: np.ndarray | None = None) -> tuple[np.ndarray]:
        raw = self.ctx.attr("axes") if self.ctx.opset < 13 else axes
        if raw is None:
            raise _fail(self, "axes are required")
        out_rank = x.ndim + len(_int_list(raw))
        ax = sorted(_axis(self, a, out_rank) for a in _int_list(raw))
        if len(set(ax)) != len(ax):
            raise _fail(self, f"axes {_int_list(raw)} repeat an axis")
        shape = list(x.shape)
        for a in ax:
            shape.insert(a, 1)
        return (x.reshape(shape),)


@register("Flatten", since=1)
@register("Flatten", since=9)
@register("Flatten", since=11)
@register("Flatten", since=13)
@register("Flatten", since=21)
@register("Flatten", since=23)
@register("Flatten", since=24)
@register("Flatten", since=25)
class Flatten(Op):
    """ONNX Flatten to 2-D around ``axis``."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        axis = int(self.ctx.attr("axis", 1))
        axis = axis + x.ndim if axis < 0 else axis
        if not 0 <= axis <= x.ndim:
            raise _fail(self, f"axis {axis} is out of range for rank {x.ndim}")
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        return (x.reshape(outer, int(np.prod(x.shape[axis:], dtype=np.int64))),)


@register("Concat", since=1)
@register("Concat", since=4)
@register("Concat", since=11)
@register("Concat", since=13)
class Concat(Op):
    """ONNX Concat along ``axis``."""

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray]:
        arrays = [x for x in xs if x is not None]
        axis = _axis(self, int(self.ctx.attr("axis", 1)), arrays[0].ndim)
        try:
            return (np.concatenate(arrays, axis=axis),)
        except ValueError as e:
            shapes = [a.shape for a in arrays]
            raise _fail(self, f"inputs {shapes} cannot be joined on axis {axis}: {e}") from None


@register("Split", since=1)
@register("Split", since=2)
@register("Split", since=11)
@register("Split", since=13)
@register("Split", since=18)
class Split(Op):
    """ONNX Split: sizes from the ``split`` input/attribute, else equal parts (``num_outputs``)."""

    def run(self, x: np.ndarray, split: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        axis = _axis(self, int(self.ctx.attr("axis", 0)), x.ndim)
        dim = x.shape[axis]
        n_out = int(self.ctx.attr("num_outputs", self.ctx.num_outputs))
        sizes: list[int] | None = None
        if self.ctx.opset >= 13 or (self.ctx.opset < 2 and split is not None):
            sizes = None if split is None or split.size == 0 else _int_list(split)
        if sizes is None and self.ctx.opset < 13:
            attr = self.ctx.attr("split")
            sizes = None if attr is None or len(attr) == 0 else _int_list(attr)
        if sizes is None:
            if self.ctx.opset >= 18 and self.ctx.attr("num_outputs") is not None:
                chunk = -(-dim // n_out)
                sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
                if len(sizes) != n_out:
                    raise _fail(self, f"cannot split a dimension of {dim} into {n_out} outputs")
            else:
                if dim % n_out:
                    raise _fail(self, f"dimension {dim} does not split into {n_out} equal parts")
                sizes = [dim // n_out] * n_out
        if sum(sizes) != dim or min(sizes) < 0:
            raise _fail(self, f"split sizes {sizes} do not add up to the axis length {dim}")
        bounds = np.cumsum(sizes)[:-1]
        return tuple(np.split(x, bounds, axis=axis))


@register("Slice", since=1)
@register("Slice", since=10)
@register("Slice", since=11)
@register("Slice", since=13)
class Slice(Op):
    """ONNX Slice: starts/ends clamped to the axis, negative steps allowed."""

    def run(
        self,
        x: np.ndarray,
        starts: np.ndarray | None = None,
        ends: np.ndarray | None = None,
        axes: np.ndarray | None = None,
        steps: np.ndarray | None = None,
    ) -> tuple[np.ndarray]:
        if self.ctx.opset < 10:
            s = _int_list(self.ctx.attr("starts"))
            e = _int_list(self.ctx.attr("ends"))
            a_raw = self.ctx.attr("axes")
            st = [1] * len(s)
        else:
            s, e = _int_list(starts), _int_list(ends)
            a_raw = axes
            st = [1] * len(s) if steps is None else _int_list(steps)
        ax = list(range(len(s))) if a_raw is None else [_axis(self, a, x.ndim) for a in _int_list(a_raw)]
        if not len(s) == len(e) == len(ax) == len(st):
            raise _fail(self, "starts, ends, axes and steps must have the same length")
        idx: list[slice] = [slice(None)] * x.ndim
        for a, b, c, step in zip(ax, s, e, st):
            dim = x.shape[a]
            if step == 0:
                raise _fail(self, "a step of 0 is not allowed")
            b = b + dim if b < 0 else b
            c = c + dim if c < 0 else c
            if step > 0:
                b, c = min(max(b, 0), dim), min(max(c, 0), dim)
            else:
                b, c = min(max(b, 0), dim - 1), min(max(c, -1), dim - 1)
            idx[a] = slice(b, c if c >= 0 else None, step)
        return (x[tuple(idx)],)


@register("Expand", since=8)
@register("Expand", since=13)
class Expand(Op):
    """ONNX Expand: broadcast the input against ``shape`` (both ways)."""

    def run(self, x: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray]:
        try:
            target = np.broadcast_shapes(x.shape, tuple(_int_list(shape)))
        except ValueError:
            raise _fail(self, f"cannot broadcast {x.shape} to {_int_list(shape)}") from None
        return (np.array(np.broadcast_to(x, target)),)


@register("Tile", since=6)
@register("Tile", since=13)
class Tile(Op):
    """ONNX Tile: repeat the input ``repeats[i]`` times along axis ``i``."""

    def run(self, x: np.ndarray, repeats: np.ndarray) -> tuple[np.ndarray]:
        reps = _int_list(repeats)
        if len(reps) != x.ndim or min(reps, default=0) < 0:
            raise _fail(self, f"repeats {reps} must be {x.ndim} non-negative numbers")
        return (np.tile(x, reps),)


@register("DepthToSpace", since=1)
@register("DepthToSpace", since=11)
@register("DepthToSpace", since=13)
@register("DepthToSpace", since=28)
class DepthToSpace(Op):
    """ONNX DepthToSpace in DCR (default) or CRD mode."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        bs = int(self.ctx.attr("blocksize"))
        mode = self.ctx.attr("mode", "DCR")
        n, c, h, w = x.shape
        if c % (bs * bs):
            raise _fail(self, f"{c} channels are not divisible by blocksize² = {bs * bs}")
        oc = c // (bs * bs)
        if mode == "DCR":
            y = x.reshape(n, bs, bs, oc, h, w).transpose(0, 3, 4, 1, 5, 2)
        elif mode == "CRD":
            y = x.reshape(n, oc, bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
        else:
            raise ModelFormatError(f"node {self.ctx.node_name!r}: DepthToSpace mode {mode!r} is not DCR or CRD")
        return (np.ascontiguousarray(y).reshape(n, oc, h * bs, w * bs),)


@register("SpaceToDepth", since=1)
@register("SpaceToDepth", since=13)
@register("SpaceToDepth", since=28)
class SpaceToDepth(Op):
    """ONNX SpaceToDepth (DCR ordering; CRD from opset 28)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        bs = int(self.ctx.attr("blocksize"))
        mode = self.ctx.attr("mode", "DCR")
        n, c, h, w = x.shape
        if h % bs or w % bs:
            raise _fail(self, f"spatial size {h}x{w} is not divisible by blocksize {bs}")
        y = x.reshape(n, c, h // bs, bs, w // bs, bs)
        y = y.transpose(0, 3, 5, 1, 2, 4) if mode == "DCR" else y.transpose(0, 1, 3, 5, 2, 4)
        return (np.ascontiguousarray(y).reshape(n, c * bs * bs, h // bs, w // bs),)


@register("Pad", since=1)
@register("Pad", since=2)
@register("Pad", since=11)
@register("Pad", since=13)
@register("Pad", since=18)
@register("Pad", since=19)
@register("Pad", since=21)
@register("Pad", since=23)
@register("Pad", since=24)
@register("Pad", since=25)
class Pad(Op):
    """ONNX Pad: constant, reflect, edge and wrap modes; negative pads crop; optional ``axes``."""

    _MODES = ("constant", "reflect", "edge", "wrap")

    def run(
        self,
        x: np.ndarray,
        pads: np.ndarray | None = None,
        value: np.ndarray | None = None,
        axes: np.ndarray | None = None,
    ) -> tuple[np.ndarray]:
        ctx = self.ctx
        mode = ctx.attr("mode", "constant")
        if mode not in self._MODES:
            raise ModelFormatError(f"node {ctx.node_name!r} (Pad): mode {mode!r} is not one of {list(self._MODES)}")
        if ctx.opset < 11:
            p = _int_list(ctx.attr("paddings" if ctx.opset < 2 else "pads"))
            cval: Any = float(ctx.attr("value", 0.0))
            ax = list(range(x.ndim))
        else:
            p = _int_list(pads)
            cval = 0 if value is None or value.size == 0 else value.reshape(-1)[0]
            ax = list(range(x.ndim)) if axes is None else [_axis(self, a, x.ndim) for a in _int_list(axes)]
        if len(p) != 2 * len(ax):
            raise _fail(self, f"pads {p} must hold a begin and an end for each of {len(ax)} axes")
        begin = [0] * x.ndim
        end = [0] * x.ndim
        for i, a in enumerate(ax):
            begin[a], end[a] = p[i], p[i + len(ax)]
        crop = tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in enumerate(zip(begin, end)))
        y = x[crop]
        widths = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
        if mode == "constant":
            return (np.pad(y, widths, mode="constant", constant_values=cval),)
        return (np.pad(y, widths, mode=mode),)


# ---------------------------------------------------------------- indexing


@register("Gather", since=1)
@register("Gather", since=11)
@register("Gather", since=13)
class Gather(Op):
    """ONNX Gather along ``axis`` (negative indices count from the end)."""

    def run(self, x: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray]:
        axis = _axis(self, int(self.ctx.attr("axis", 0)), x.ndim)
        try:
            return (np.take(x, indices.astype(np.int64, copy=False), axis=axis),)
        except IndexError as e:
            raise _fail(self, f"index out of range for axis {axis} of shape {x.shape}: {e}") from None


@register("GatherElements", since=11)
@register("GatherElements", since=13)
class GatherElements(Op):
    """ONNX GatherElements (numpy's ``take_along_axis``)."""

    def run(self, x: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray]:
        axis = _axis(self, int(self.ctx.attr("axis", 0)), x.ndim)
        idx = indices.astype(np.int64)
        idx = np.where(idx < 0, idx + x.shape[axis], idx)
        if idx.size and (idx.min() < 0 or idx.max() >= x.shape[axis]):
            raise _fail(self, f"an index is out of range for axis {axis} of shape {x.shape}")
        return (np.take_along_axis(x, idx, axis=axis),)


@register("GatherND", since=11)
@register("GatherND", since=12)
@register("GatherND", since=13)
class GatherND(Op):
    """ONNX GatherND with ``batch_dims``."""

    def run(self, x: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray]:
        b = int(self.ctx.attr("batch_dims", 0))
        k = indices.shape[-1]
        batch = x.shape[:b]
        nb = int(np.prod(batch, dtype=np.int64))
        xr = x.reshape((nb,) + x.shape[b:])
        ir = indices.astype(np.int64).reshape(nb, -1, k)
        sel = (np.arange(nb)[:, None],) + tuple(ir[:, :, j] for j in range(k))
        out = xr[sel]
        return (out.reshape(indices.shape[:-1] + x.shape[b + k :]),)


_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _reduction(op: Op) -> Any:
    name = op.ctx.attr("reduction", "none")
    if name == "none":
        return None
    if name not in _REDUCE:
        raise ModelFormatError(f"node {op.ctx.node_name!r}: reduction {name!r} is not none/add/mul/max/min")
    return _REDUCE[name]


@register("ScatterND", since=11)
@register("ScatterND", since=13)
@register("ScatterND", since=16)
@register("ScatterND", since=18)
class ScatterND(Op):
    """ONNX ScatterND, with ``reduction`` add/mul (16) and max/min (18)."""

    def run(self, x: np.ndarray, indices: np.ndarray, updates: np.ndarray) -> tuple[np.ndarray]:
        out = x.copy()
        k = indices.shape[-1]
        idx = tuple(indices[..., j].astype(np.int64) for j in range(k))
        ufunc = _reduction(self)
        if ufunc is None:
            out[idx] = updates
        else:
            ufunc.at(out, idx, updates)
        return (out,)


@register("ScatterElements", since=11)
@register("ScatterElements", since=13)
@register("ScatterElements", since=16)
@register("ScatterElements", since=18)
@register("Scatter", since=9)
@register("Scatter", since=11)
class ScatterElements(Op):
    """ONNX ScatterElements (and its deprecated name Scatter), with reductions."""

    def run(self, x: np.ndarray, indices: np.ndarray, updates: np.ndarray) -> tuple[np.ndarray]:
        axis = _axis(self, int(self.ctx.attr("axis", 0)), x.ndim)
        idx = indices.astype(np.int64)
        idx = np.where(idx < 0, idx + x.shape[axis], idx)
        grids = list(np.indices(idx.shape, sparse=True))
        grids[axis] = idx
        full = tuple(grids)
        out = x.copy()
        ufunc = _reduction(self)
        if ufunc is None:
            out[full] = updates
        else:
            ufunc.at(out, full, updates)
        return (out,)


@register("Compress", since=9)
@register("Compress", since=11)
@register("Compress", since=28)
class Compress(Op):
    """ONNX Compress: keep the slices whose ``condition`` is true (flattened when no axis)."""

    def run(self, x: np.ndarray, condition: np.ndarray) -> tuple[np.ndarray]:
        axis = self.ctx.attr("axis")
        cond = condition.astype(bool).reshape(-1)
        if axis is None:
            return (np.compress(cond, x.reshape(-1)),)
        return (np.compress(cond, x, axis=_axis(self, int(axis), x.ndim)),)


@register("ReverseSequence", since=10)
@register("ReverseSequence", since=28)
class ReverseSequence(Op):
    """ONNX ReverseSequence: reverse the first ``sequence_lens[b]`` steps of each batch entry."""

    def run(self, x: np.ndarray, sequence_lens: np.ndarray) -> tuple[np.ndarray]:
        b_axis = int(self.ctx.attr("batch_axis", 1))
        t_axis = int(self.ctx.attr("time_axis", 0))
        out = x.copy()
        for b, n in enumerate(_int_list(sequence_lens)):
            src: list[Any] = [slice(None)] * x.ndim
            src[b_axis] = b
            src[t_axis] = slice(n - 1, None, -1) if n > 0 else slice(0, 0)
            dst: list[Any] = [slice(None)] * x.ndim
            dst[b_axis] = b
            dst[t_axis] = slice(0, n)
            out[tuple(dst)] = x[tuple(src)]
        return (out,)


@register("OneHot", since=9)
@register("OneHot", since=11)
@register("OneHot", since=28)
class OneHot(Op):
    """ONNX OneHot: ``values[1]`` where ``indices`` hits, ``values[0]`` elsewhere."""

    def run(self, indices: np.ndarray, depth: np.ndarray, values: np.ndarray) -> tuple[np.ndarray]:
        d = int(np.asarray(depth).reshape(-1)[0])
        rank = indices.ndim + 1
        axis = _axis(self, int(self.ctx.attr("axis", -1)), rank)
        idx = indices.astype(np.int64)
        idx = np.where(idx < 0, idx + d, idx)
        hit = idx[..., None] == np.arange(d)
        hit = np.moveaxis(hit, -1, axis)
        return (np.where(hit, values[1], values[0]).astype(values.dtype),)


@register("Trilu", since=14)
class Trilu(Op):
    """ONNX Trilu: the upper (default) or lower triangle of the last two axes, shifted by ``k``."""

    def run(self, x: np.ndarray, k: np.ndarray | None = None) -> tuple[np.ndarray]:
        kk = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
        if int(self.ctx.attr("upper", 1)):
            return (np.triu(x, kk),)
        return (np.tril(x, kk),)


@register("EyeLike", since=9)
@register("EyeLike", since=22)
class EyeLike(Op):
    """ONNX EyeLike: a 2-D identity (diagonal shifted by ``k``) shaped like the input."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        if x.ndim != 2:
            raise _fail(self, f"the input must be 2-D, got shape {x.shape}")
        code = self.ctx.attr("dtype")
        dtype = x.dtype if code is None else _onnx_dtype(code)
        return (np.eye(x.shape[0], x.shape[1], int(self.ctx.attr("k", 0)), dtype=dtype),)


# ---------------------------------------------------------------- shapes and ranges


@register("Shape", since=1)
@register("Shape", since=13)
@register("Shape", since=15)
@register("Shape", since=19)
@register("Shape", since=21)
@register("Shape", since=23)
@register("Shape", since=24)
@register("Shape", since=25)
class Shape(Op):
    """ONNX Shape, with ``start``/``end`` (opset 15) clamped like Python slices."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        shape = np.array(x.shape, dtype=np.int64)
        start = int(self.ctx.attr("start", 0))
        end = self.ctx.attr("end")
        return (shape[start : None if end is None else int(end)],)


@register("Size", since=1)
@register("Size", since=13)
@register("Size", since=19)
@register("Size", since=21)
@register("Size", since=23)
@register("Size", since=24)
@register("Size", since=25)
class Size(Op):
    """ONNX Size: the element count as an int64 scalar."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        return (np.array(x.size, dtype=np.int64),)


@register("ConstantOfShape", since=9)
@register("ConstantOfShape", since=20)
@register("ConstantOfShape", since=21)
@register("ConstantOfShape", since=23)
@register("ConstantOfShape", since=24)
@register("ConstantOfShape", since=25)
class ConstantOfShape(Op):
    """ONNX ConstantOfShape: a tensor filled with ``value`` (float32 0 by default)."""

    def run(self, shape: np.ndarray) -> tuple[np.ndarray]:
        value = self.ctx.attr("value")
        fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
        dims = _int_list(shape)
        if min(dims, default=0) < 0:
            raise _fail(self, f"shape {dims} has a negative dimension")
        return (np.full(dims, fill[0], dtype=fill.dtype),)


@register("Range", since=11)
@register("Range", since=27)
class Range(Op):
    """ONNX Range: ``start, start + delta, ...`` up to (not including) ``limit``."""

    def run(self, start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray]:
        dtype = start.dtype
        s, lim, d = (np.asarray(v).reshape(()).item() for v in (start, limit, delta))
        if d == 0:
            raise _fail(self, "delta must not be 0")
        n = max(int(np.ceil((lim - s) / d)), 0)
        if dtype.kind in "iu":
            return (np.asarray(s + np.arange(n, dtype=np.int64) * d, dtype=dtype),)
        acc = np.float32 if dtype == np.float16 or str(dtype) == "bfloat16" else dtype
        return ((np.asarray(s, acc) + np.arange(n, dtype=acc) * np.asarray(d, acc)).astype(dtype),)


@register("NonZero", since=9)
@register("NonZero", since=13)
class NonZero(Op):
    """ONNX NonZero: the indices of non-zero elements, one row per axis (int64)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        if x.ndim == 0:
            return (np.zeros((0, int(bool(x))), dtype=np.int64),)
        return (np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1),)


@register("Dropout", since=1)
@register("Dropout", since=6)
@register("Dropout", since=7)
@register("Dropout", since=10)
@register("Dropout", since=12)
@register("Dropout", since=13)
@register("Dropout", since=22)
class Dropout(Op):
    """ONNX Dropout: the identity at inference; with ``training_mode`` (opset 12+) a random mask.

    The training mask draws ``uniform(0, 1) >= ratio`` from ``numpy.random.RandomState(seed)``
    (fresh entropy when no ``seed`` attribute), as ONNX's own test generator does.
    """

    def run(
        self, x: np.ndarray, ratio: np.ndarray | None = None, training_mode: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        ctx = self.ctx
        training = ctx.opset >= 12 and training_mode is not None and bool(np.asarray(training_mode))
        r = float(ctx.attr("ratio", 0.5)) if ratio is None else float(np.asarray(ratio))
        if not 0.0 <= r < 1.0 and training:
            raise _fail(self, f"ratio {r} must be in [0, 1)")
        if not training or r == 0.0:
            # the mask is bool from opset 10, the input's type before
            outs: tuple[np.ndarray, ...] = (x.copy(), np.ones(x.shape, bool if ctx.opset >= 10 else x.dtype))
        else:
            seed = ctx.attr("seed")
            rng = np.random.RandomState(None if seed is None else int(seed))
            mask = rng.uniform(0.0, 1.0, x.shape) >= r
            outs = ((x * mask / (1.0 - r)).astype(x.dtype), mask)
        return outs[: max(1, ctx.num_outputs)]


@register("CenterCropPad", since=18)
class CenterCropPad(Op):
    """ONNX CenterCropPad: crop or zero-pad the listed axes to ``shape``, keeping the centre."""

    def run(self, x: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray]:
        target = _int_list(shape)
        raw = self.ctx.attr("axes")
        axes = list(range(x.ndim)) if raw is None else [_axis(self, int(a), x.ndim) for a in raw]
        if len(target) != len(axes):
            raise _fail(self, f"shape {target} must have one length per axis {axes}")
        src: list[slice] = [slice(None)] * x.ndim
        dst: list[slice] = [slice(None)] * x.ndim
        out_shape = list(x.shape)
        for a, want in zip(axes, target):
            dim = x.shape[a]
            out_shape[a] = want
            if want < dim:  # the odd element goes at the end
                start = (dim - want) // 2
                src[a] = slice(start, start + want)
            elif want > dim:
                start = (want - dim) // 2
                dst[a] = slice(start, start + dim)
        out = np.zeros(out_shape, dtype=x.dtype)
        out[tuple(dst)] = x[tuple(src)]
        return (out,)


@register("Unique", since=11)
@register("Unique", since=28)
class Unique(Op):
    """ONNX Unique: the distinct values (or slices along ``axis``), sorted or in order of first
    appearance, with their first indices, the inverse mapping and the counts (all int64)."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        axis_attr = self.ctx.attr("axis")
        keep_sorted = bool(self.ctx.attr("sorted", 1))
        if axis_attr is None:
            data, axis = x.reshape(-1), 0
            y, first, inverse, counts = np.unique(data, return_index=True, return_inverse=True, return_counts=True)
        else:
            axis = _axis(self, int(axis_attr), x.ndim)
            y, first, inverse, counts = np.unique(
                x, return_index=True, return_inverse=True, return_counts=True, axis=axis
            )
        inverse = inverse.reshape(-1)
        if not keep_sorted:
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            y = np.take(y, order, axis=axis)
            first, counts, inverse = first[order], counts[order], rank[inverse]
        outs = (y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64))
        return outs[: max(1, self.ctx.num_outputs)]


@register("TensorScatter", since=24)
class TensorScatter(Op):
    """ONNX TensorScatter: write ``update`` into a copy of the cache along ``axis`` at each batch
    entry's write index (``linear``), or wrapping around (``circular``) - the KV-cache update."""

    def run(self, cache: np.ndarray, update: np.ndarray, write_indices: np.ndarray | None = None) -> tuple[np.ndarray]:
        axis = _axis(self, int(self.ctx.attr("axis", -2)), cache.ndim)
        mode = self.ctx.attr("mode", "linear")
        if axis == 0 or mode not in ("linear", "circular"):
            raise ModelFormatError(
                f"node {self.ctx.node_name!r} (TensorScatter): axis must not be the batch axis and mode "
                f"must be linear or circular (got axis={axis}, mode={mode!r})"
            )
        batch, max_len, seq = cache.shape[0], cache.shape[axis], update.shape[axis]
        starts = np.zeros(batch, np.int64) if write_indices is None else write_indices.astype(np.int64).reshape(-1)
        pos = starts[:, None] + np.arange(seq)[None, :]
        if mode == "circular":
            pos %= max_len
        elif pos.size and (pos.min() < 0 or pos.max() >= max_len):
            raise _fail(self, f"writing {seq} steps at {starts.tolist()} overruns the cache length {max_len}")
        out = cache.copy()
        # batch first, the sequence axis second: one fancy-indexed assignment writes everything
        view = np.moveaxis(out, axis, 1)
        view[np.arange(batch)[:, None], pos] = np.moveaxis(update, axis, 1)
        return (out,)
