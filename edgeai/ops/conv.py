"""Conv, ConvTranspose, DeformConv, Col2Im and CausalConvWithState for the native engine.

Conv is im2col made of one strided slice per kernel tap followed by a single
batched matmul over all groups; depthwise convolutions skip the matmul and
multiply-accumulate tap by tap. ConvTranspose is the adjoint: one matmul,
then col2im by adding each tap's plane into a strided slice of the output
(Col2Im is that last step on its own). DeformConv gathers bilinear samples
at the learned offsets into the im2col matrix, then does the same matmul.

The window arithmetic (``auto_pad``, output sizes, strided tap slices) lives
here and is shared with :mod:`edgeai.ops.pooling`.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.conv import Conv
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 2, 2), np.float32)
    >>> op = Conv(OpContext(node_name="c", op_type="Conv", opset=11, attrs={"strides": [2, 2]}))
    >>> op.run(x, w, None)[0]
    array([[[[10., 18.],
             [42., 50.]]]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from edgeai.errors import InferenceError, ModelFormatError
from edgeai.ops._base import Op, OpContext, register

__all__ = ["CausalConvWithState", "Col2Im", "Conv", "ConvTranspose", "DeformConv", "pads_for", "tap_slice"]

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _ints(value: Any, n: int, default: int) -> list[int]:
    if value is None or len(value) == 0:
        return [default] * n
    return [int(v) for v in value]


def check_auto_pad(ctx: OpContext) -> str:
    """The node's ``auto_pad`` attribute, validated."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in _AUTO_PADS:
        raise ModelFormatError(
            f"node {ctx.node_name!r} ({ctx.op_type}): auto_pad={auto_pad!r} is not one of {_AUTO_PADS}; "
            "fix the attribute in the model"
        )
    return auto_pad


def pads_for(
    auto_pad: str,
    in_size: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
) -> tuple[list[int], list[int]]:
    """Begin and end padding of each spatial axis for a forward window op.

    ``SAME_UPPER`` puts the odd pixel at the end, ``SAME_LOWER`` at the
    beginning; ``NOTSET`` uses the explicit ``pads`` (begins then ends).

    Example:
        >>> pads_for("SAME_UPPER", [5], [2], [1], [1], None)
        ([0], [1])
    """
    n = len(in_size)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            out = -(-in_size[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_size[i])
            small = total // 2
            big = total - small
            begin.append(small if auto_pad == "SAME_UPPER" else big)
            end.append(big if auto_pad == "SAME_UPPER" else small)
        return begin, end
    if auto_pad == "VALID" or pads is None or len(pads) == 0:
        return [0] * n, [0] * n
    return [int(p) for p in pads[:n]], [int(p) for p in pads[n:]]


def tap_slice(offset: int, stride: int, count: int) -> slice:
    """The slice of a padded axis that a kernel tap at ``offset`` reads for ``count`` outputs."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def pad_spatial(x: np.ndarray, begin: Sequence[int], end: Sequence[int], value: Any = 0) -> np.ndarray:
    """``x`` padded on its trailing spatial axes (after N and C); a no-op when all pads are 0."""
    if not any(begin) and not any(end):
        return x
    if min(begin) < 0 or min(end) < 0:
        # negative pads crop
        idx = (slice(None), slice(None)) + tuple(
            slice(max(0, -b), x.shape[2 + i] - max(0, -e)) for i, (b, e) in enumerate(zip(begin, end))
        )
        x = x[idx]
        begin = [max(0, b) for b in begin]
        end = [max(0, e) for e in end]
    # a filled buffer plus one copy: several times cheaper than np.pad on small maps
    shape = x.shape[:2] + tuple(x.shape[2 + i] + b + e for i, (b, e) in enumerate(zip(begin, end)))
    out = np.full(shape, value, dtype=x.dtype)
    inner = (slice(None), slice(None)) + tuple(slice(b, b + x.shape[2 + i]) for i, b in enumerate(begin))
    out[inner] = x
    return out


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    # float16 accumulates badly over long dot products; compute in float32.
    return np.dtype(np.float32) if dtype == np.float16 else dtype


class _ConvPlan(NamedTuple):
    begin: list[int]
    end: list[int]
    out_sz: tuple[int, ...]
    taps: list[tuple[slice, ...]]
    """The index of the padded input each kernel tap reads."""
    pointwise: bool
    """A 1x1 kernel at stride 1: the input is already the im2col matrix."""


@register("Conv", since=1)
@register("Conv", since=11)
@register("Conv", since=22)
class Conv(Op):
    """ONNX Conv: N-D convolution with groups, strides, dilations, pads and ``auto_pad``."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.auto_pad = check_auto_pad(ctx)
        self.group = int(ctx.attr("group", 1))
        self.kernel_attr = ctx.attr("kernel_shape")
        self.strides_attr = ctx.attr("strides")
        self.dilations_attr = ctx.attr("dilations")
        self.pads_attr = ctx.attr("pads")
        self._plans: dict[tuple[tuple[int, ...], tuple[int, ...]], _ConvPlan] = {}
        consts = tuple(ctx.input_consts) + (None, None, None)
        self._packed: tuple[np.ndarray, np.ndarray | None] | None = None
        w = consts[1]
        if w is not None:
            self._packed = self._pack(np.asarray(w), consts[2])

    def _pack(self, w: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        m = w.shape[0]
        if m % self.group:
            raise ModelFormatError(
                f"node {self.ctx.node_name!r} (Conv): {m} output channels are not divisible by "
                f"group={self.group}; fix the weights or the group attribute"
            )
        cdt = _compute_dtype(w.dtype)
        k = int(np.prod(w.shape[2:], dtype=np.int64))
        packed = w.astype(cdt, copy=False).reshape(self.group, m // self.group, w.shape[1] * k)
        bias = None if b is None else np.asarray(b).astype(cdt, copy=False)
        return np.ascontiguousarray(packed), bias

    def _plan(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> _ConvPlan:
        """Geometry of this node for one input shape (cached: shapes rarely change)."""
        key = (x_shape, w_shape)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        nsp = len(x_shape) - 2
        if nsp < 1 or len(w_shape) != len(x_shape):
            raise InferenceError(
                f"node {self.ctx.node_name!r} (Conv): input {list(x_shape)} and weights {list(w_shape)} "
                "must both be (N, C, *spatial) with the same rank"
            )
        ksize = list(w_shape[2:])
        if self.kernel_attr is not None and len(self.kernel_attr) and list(self.kernel_attr) != ksize:
            raise InferenceError(
                f"node {self.ctx.node_name!r} (Conv): kernel_shape {list(self.kernel_attr)} does not match "
                f"the weight shape {list(w_shape)}"
            )
        if x_shape[1] != w_shape[1] * self.group:
            raise InferenceError(
                f"node {self.ctx.node_name!r} (Conv): input has {x_shape[1]} channels but the weights "
                f"expect {w_shape[1]} x group {self.group}; check the input shape"
            )
        strides = _ints(self.strides_attr, nsp, 1)
        dil = _ints(self.dilations_attr, nsp, 1)
        begin, end = pads_for(self.auto_pad, x_shape[2:], ksize, strides, dil, self.pads_attr)
        padded = [x_shape[2 + i] + begin[i] + end[i] for i in range(nsp)]
        out_sz = tuple((padded[i] - ((ksize[i] - 1) * dil[i] + 1)) // strides[i] + 1 for i in range(nsp))
        if min(out_sz) <= 0:
            raise InferenceError(
                f"node {self.ctx.node_name!r} (Conv): the kernel {ksize} (dilations {dil}) is larger than "
                f"the padded input {padded}"
            )
        taps = [
            (slice(None), slice(None)) + tuple(tap_slice(t[i] * dil[i], strides[i], out_sz[i]) for i in range(nsp))
            for t in np.ndindex(*ksize)
        ]
        pointwise = len(taps) == 1 and all(v == 1 for v in strides)
        plan = _ConvPlan(begin, end, out_sz, taps, pointwise)
        if len(self._plans) < 8:
            self._plans[key] = plan
        return plan

    def run(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray]:
        if self._packed is None:
            packed, bias = self._pack(w, b)
        else:
            packed, bias = self._packed
            if bias is None and b is not None:  # weights constant, bias fed at run time
                bias = b.astype(packed.dtype, copy=False)
        plan = self._plan(x.shape, w.shape)
        nsp = x.ndim - 2
        out_dtype = x.dtype
        xp = pad_spatial(x.astype(_compute_dtype(x.dtype), copy=False), plan.begin, plan.end)
        n, c_in = x.shape[:2]
        g = self.group
        cg = c_in // g
        mg = packed.shape[1]
        k = len(plan.taps)
        p = int(np.prod(plan.out_sz, dtype=np.int64))
        if cg == 1 and mg == 1 and k > 1:
            # depthwise: one multiply-accumulate per tap beats g tiny matmuls
            wk = packed.reshape((g, k) + (1,) * nsp)
            acc = xp[plan.taps[0]] * wk[:, 0]
            tmp = np.empty_like(acc)
            for j in range(1, k):
                np.multiply(xp[plan.taps[j]], wk[:, j], out=tmp)
                acc += tmp
            out = acc
        elif n == 1 and g == 1:
            cols = xp.reshape(c_in, p) if plan.pointwise else self._im2col(xp, plan, k).reshape(c_in * k, p)
            out = np.matmul(packed[0], cols)
        else:
            cols = xp.reshape(n, g, cg, p) if plan.pointwise else self._im2col(xp, plan, k)
            out = np.matmul(packed, cols.reshape(n, g, cg * k, p))  # (n, g, mg, p)
        out = out.reshape((n, g * mg, *plan.out_sz))
        if bias is not None:
            out += bias.reshape((1, -1) + (1,) * nsp)
        return (out.astype(out_dtype, copy=False),)

    @staticmethod
    def _im2col(xp: np.ndarray, plan: _ConvPlan, k: int) -> np.ndarray:
        cols = np.empty((xp.shape[0], xp.shape[1], k, *plan.out_sz), dtype=xp.dtype)
        for j, idx in enumerate(plan.taps):
            cols[:, :, j] = xp[idx]
        return cols


@register("ConvTranspose", since=1)
@register("ConvTranspose", since=11)
@register("ConvTranspose", since=22)
class ConvTranspose(Op):
    """ONNX ConvTranspose: groups, strides, dilations, pads, ``output_padding``, ``output_shape``.

    Example:
        >>> import numpy as np
        >>> from edgeai.ops._base import OpContext
        >>> x = np.ones((1, 1, 2), np.float32)
        >>> w = np.ones((1, 1, 3), np.float32)
        >>> ConvTranspose(OpContext(node_name="t", op_type="ConvTranspose", opset=11)).run(x, w)[0]
        array([[[1., 2., 2., 1.]]], dtype=float32)
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.auto_pad = check_auto_pad(ctx)
        self.group = int(ctx.attr("group", 1))
        self.consts = tuple(ctx.input_consts) + (None, None, None)
        self._packed: np.ndarray | None = None
        if self.consts[1] is not None:
            self._packed = self._pack(np.asarray(self.consts[1]))

    def _pack(self, w: np.ndarray) -> np.ndarray:
        c = w.shape[0]
        if c % self.group:
            raise ModelFormatError(
                f"node {self.ctx.node_name!r} (ConvTranspose): {c} input channels are not divisible by "
                f"group={self.group}; fix the weights or the group attribute"
            )
        cg = c // self.group
        k = int(np.prod(w.shape[2:], dtype=np.int64))
        # (g, cg, mg*k) -> transposed for cols = W^T @ x
        wg = w.astype(_compute_dtype(w.dtype), copy=False).reshape(self.group, cg, w.shape[1] * k)
        return np.ascontiguousarray(wg.transpose(0, 2, 1))

    def run(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray]:
        ctx = self.ctx
        if x.ndim < 3 or w.ndim != x.ndim:
            raise InferenceError(
                f"node {ctx.node_name!r} (ConvTranspose): input {list(x.shape)} and weights "
                f"{list(w.shape)} must both be (N, C, *spatial) with the same rank"
            )
        packed = self._packed if self._packed is not None else self._pack(w)
        nsp = x.ndim - 2
        ksize = list(w.shape[2:])
        strides = _ints(ctx.attr("strides"), nsp, 1)
        dil = _ints(ctx.attr("dilations"), nsp, 1)
        opad = _ints(ctx.attr("output_padding"), nsp, 0)
        in_sz = list(x.shape[2:])
        g = self.group
        n, c_in = x.shape[:2]
        if c_in != w.shape[0]:
            raise InferenceError(
                f"node {ctx.node_name!r} (ConvTranspose): input has {c_in} channels, weights expect "
                f"{w.shape[0]}; check the input shape"
            )
        mg = w.shape[1]
        full = [strides[i] * (in_sz[i] - 1) + opad[i] + (ksize[i] - 1) * dil[i] + 1 for i in range(nsp)]
        out_shape = ctx.attr("output_shape")
        pads = ctx.attr("pads")
        if out_shape is not None and len(out_shape):
            out_sz = [int(v) for v in list(out_shape)[-nsp:]]
            begin, end = [], []
            for i in range(nsp):
                total = full[i] - out_sz[i]
                if self.auto_pad == "SAME_UPPER":
                    begin.append(total // 2)
                else:
                    begin.append(total - total // 2)
                end.append(total - begin[-1])
        elif self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out_sz = [in_sz[i] * strides[i] for i in range(nsp)]
            begin = []
            for i in range(nsp):
                total = max(0, full[i] - out_sz[i])
                begin.append(total // 2 if self.auto_pad == "SAME_UPPER" else total - total // 2)
        else:
            if self.auto_pad == "VALID" or pads is None or len(pads) == 0:
                begin, end = [0] * nsp, [0] * nsp
            else:
                begin, end = [int(v) for v in pads[:nsp]], [int(v) for v in pads[nsp:]]
            out_sz = [full[i] - begin[i] - end[i] for i in range(nsp)]
        k = int(np.prod(ksize, dtype=np.int64))
        p = int(np.prod(in_sz, dtype=np.int64))
        cdt = packed.dtype
        xg = x.astype(cdt, copy=False).reshape(n, g, c_in // g, p)
        cols = np.matmul(packed, xg).reshape((n, g * mg, k) + tuple(in_sz))
        lead = [max(0, -bb) for bb in begin]
        buf_sz = [max(full[i] + lead[i], lead[i] + begin[i] + out_sz[i]) for i in range(nsp)]
        buf = np.zeros((n, g * mg) + tuple(buf_sz), dtype=cdt)
        for j, t in enumerate(np.ndindex(*ksize)):
            idx = (slice(None), slice(None)) + tuple(
                tap_slice(lead[i] + t[i] * dil[i], strides[i], in_sz[i]) for i in range(nsp)
            )
            buf[idx] += cols[:, :, j]
        crop = (slice(None), slice(None)) + tuple(
            slice(lead[i] + begin[i], lead[i] + begin[i] + out_sz[i]) for i in range(nsp)
        )
        out = buf[crop]
        if b is not None:
            out = out + np.asarray(b).astype(cdt, copy=False).reshape((1, -1) + (1,) * nsp)
        return (np.ascontiguousarray(out).astype(x.dtype, copy=False),)


@register("Col2Im", since=18)
class Col2Im(Op):
    """ONNX Col2Im: sum sliding blocks (N, C·∏block, L) back into an image (N, C, *image_shape).

    Example:
        >>> import numpy as np
        >>> from edgeai.ops._base import OpContext
        >>> op = Col2Im(OpContext(node_name="c", op_type="Col2Im", opset=18))
        >>> cols = np.ones((1, 2, 2), np.float32)                   # 1 channel, 1x2 blocks, 2 of them
        >>> op.run(cols, np.array([1, 3]), np.array([1, 2]))[0]
        array([[[[1., 2., 1.]]]], dtype=float32)
    """

    def run(self, x: np.ndarray, image_shape: np.ndarray, block_shape: np.ndarray) -> tuple[np.ndarray]:
        ctx = self.ctx
        image = [int(v) for v in np.asarray(image_shape).reshape(-1)]
        block = [int(v) for v in np.asarray(block_shape).reshape(-1)]
        nsp = len(image)
        strides = _ints(ctx.attr("strides"), nsp, 1)
        dil = _ints(ctx.attr("dilations"), nsp, 1)
        pads = _ints(ctx.attr("pads"), 2 * nsp, 0)
        k = int(np.prod(block, dtype=np.int64))
        n, ck, length = x.shape
        blocks = [
            (image[i] + pads[i] + pads[nsp + i] - ((block[i] - 1) * dil[i] + 1)) // strides[i] + 1 for i in range(nsp)
        ]
        if ck % k or int(np.prod(blocks, dtype=np.int64)) != length:
            raise InferenceError(
                f"node {ctx.node_name!r} (Col2Im): input {x.shape} does not hold {blocks} blocks of "
                f"{block} for an image {image} (strides {strides}, dilations {dil}, pads {pads})"
            )
        c = ck // k
        cols = x.reshape(n, c, k, *blocks)
        buf = np.zeros((n, c, *(image[i] + pads[i] + pads[nsp + i] for i in range(nsp))), dtype=x.dtype)
        for j, t in enumerate(np.ndindex(*block)):
            idx = (slice(None), slice(None)) + tuple(
                tap_slice(t[i] * dil[i], strides[i], blocks[i]) for i in range(nsp)
            )
            buf[idx] += cols[:, :, j]
        crop = (slice(None), slice(None)) + tuple(slice(pads[i], pads[i] + image[i]) for i in range(nsp))
        return (np.ascontiguousarray(buf[crop]),)


@register("DeformConv", since=19)
@register("DeformConv", since=22)
class DeformConv(Op):
    """ONNX DeformConv: convolution whose taps read bilinear samples at learned offsets.

    ``offset`` holds, per offset group and kernel tap, one shift per spatial axis
    (y then x for 2-D); the optional ``mask`` scales each sample. Samples outside
    the input read zeros (torchvision's ``deform_conv2d`` convention).
    """

    def run(
        self,
        x: np.ndarray,
        w: np.ndarray,
        offset: np.ndarray,
        b: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray]:
        ctx = self.ctx
        nsp = x.ndim - 2
        ksize = list(w.shape[2:])
        k = int(np.prod(ksize, dtype=np.int64))
        group = int(ctx.attr("group", 1))
        og = int(ctx.attr("offset_group", 1))
        strides = _ints(ctx.attr("strides"), nsp, 1)
        dil = _ints(ctx.attr("dilations"), nsp, 1)
        pads = _ints(ctx.attr("pads"), 2 * nsp, 0)
        n, c = x.shape[:2]
        in_sz = x.shape[2:]
        out_sz = tuple(
            (in_sz[i] + pads[i] + pads[nsp + i] - ((ksize[i] - 1) * dil[i] + 1)) // strides[i] + 1 for i in range(nsp)
        )
        if c % og or c != w.shape[1] * group or offset.shape != (n, og * k * nsp, *out_sz):
            raise InferenceError(
                f"node {ctx.node_name!r} (DeformConv): shapes do not agree: X {x.shape}, W {w.shape}, "
                f"offset {offset.shape} (expected {(n, og * k * nsp, *out_sz)}), group {group}, "
                f"offset_group {og}"
            )
        cdt = _compute_dtype(x.dtype)
        xs = x.astype(cdt, copy=False).reshape(n, og, c // og, *in_sz)
        off = offset.astype(cdt, copy=False).reshape(n, og, k, nsp, *out_sz)
        msk = None if mask is None else mask.astype(cdt, copy=False).reshape(n, og, k, *out_sz)
        grids = np.meshgrid(*(np.arange(o) for o in out_sz), indexing="ij")
        lead = (np.arange(n).reshape((n, 1) + (1,) * nsp), np.arange(og).reshape((1, og) + (1,) * nsp))
        cols = np.zeros((n, og, k, *out_sz, c // og), dtype=cdt)
        for j, t in enumerate(np.ndindex(*ksize)):
            pos = [grids[i] * strides[i] - pads[i] + t[i] * dil[i] + off[:, :, j, i] for i in range(nsp)]
            inside = np.ones(pos[0].shape, dtype=bool)
            for i in range(nsp):
                inside &= (pos[i] > -1) & (pos[i] < in_sz[i])
            base = [np.floor(p) for p in pos]
            for corner in np.ndindex(*([2] * nsp)):
                weight = inside.astype(cdt)
                index = []
                for i in range(nsp):
                    idx = base[i] + corner[i]
                    weight = weight * (1 - np.abs(pos[i] - idx)) * ((idx >= 0) & (idx < in_sz[i]))
                    index.append(np.clip(idx, 0, in_sz[i] - 1).astype(np.int64))
                cols[:, :, j] += xs[(*lead, slice(None), *index)] * weight[..., None]
            if msk is not None:
                cols[:, :, j] *= msk[:, :, j][..., None]
        # (n, og, k, *out, cg) -> (n, c, k, p): channels-major im2col
        p = int(np.prod(out_sz, dtype=np.int64))
        cols = np.moveaxis(cols, -1, 2).reshape(n, c, k, p)
        m = w.shape[0]
        packed = w.astype(cdt, copy=False).reshape(group, m // group, (c // group) * k)
        out = np.matmul(packed, cols.reshape(n, group, (c // group) * k, p)).reshape(n, m, *out_sz)
        if b is not None:
            out = out + b.astype(cdt).reshape((1, -1) + (1,) * nsp)
        return (out.astype(x.dtype, copy=False),)


@register("CausalConvWithState", since=27)
class CausalConvWithState(Op):
    """ONNX CausalConvWithState: a causal depthwise 1-D convolution that carries its last
    ``k - 1`` input steps as state (the decode-time conv of Mamba / Gated DeltaNet).

    Example:
        >>> import numpy as np
        >>> from edgeai.ops._base import OpContext
        >>> op = CausalConvWithState(OpContext(node_name="c", op_type="CausalConvWithState", opset=27,
        ...                                    num_outputs=2))
        >>> y, state = op.run(np.array([[[1, 2, 3]]], np.float32), np.ones((1, 1, 2), np.float32))
        >>> y.tolist(), state.tolist()
        ([[[1.0, 3.0, 5.0]]], [[[3.0]]])
    """

    def run(
        self,
        x: np.ndarray,
        w: np.ndarray,
        bias: np.ndarray | None = None,
        past_state: np.ndarray | None = None,
    ) -> tuple[np.ndarray, ...]:
        ctx = self.ctx
        activation = ctx.attr("activation", "none")
        if activation not in ("none", "silu", "swish"):
            raise ModelFormatError(
                f"node {ctx.node_name!r} (CausalConvWithState): activation {activation!r} is not none, silu or swish"
            )
        if x.ndim != 3 or w.ndim != 3 or w.shape[0] != x.shape[1] or w.shape[1] != 1:
            raise InferenceError(
                f"node {ctx.node_name!r} (CausalConvWithState): expected input (B, C, L) and weight "
                f"(C, 1, k), got {x.shape} and {w.shape}"
            )
        b, c, length = x.shape
        k = w.shape[2]
        cdt = _compute_dtype(x.dtype)
        if past_state is None:
            past = np.zeros((b, c, k - 1), dtype=cdt)
        elif past_state.shape != (b, c, k - 1):
            raise InferenceError(
                f"node {ctx.node_name!r} (CausalConvWithState): past_state {past_state.shape} should be {(b, c, k - 1)}"
            )
        else:
            past = past_state.astype(cdt, copy=False)
        padded = np.concatenate([past, x.astype(cdt, copy=False)], axis=2)
        wk = w.astype(cdt, copy=False)[:, 0, :]  # (c, k)
        y = padded[:, :, 0:length] * wk[None, :, 0:1]
        for j in range(1, k):
            y += padded[:, :, j : j + length] * wk[None, :, j : j + 1]
        if bias is not None:
            y += bias.astype(cdt, copy=False)[None, :, None]
        if activation != "none":
            y = y * (0.5 * (1.0 + np.tanh(0.5 * y)))
        state = padded[:, :, padded.shape[2] - (k - 1) :]
        outs = (y.astype(x.dtype, copy=False), np.ascontiguousarray(state).astype(x.dtype, copy=False))
        return outs[: max(1, ctx.num_outputs)]
