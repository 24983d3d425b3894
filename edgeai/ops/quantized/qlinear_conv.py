"""QLinearConv and ConvInteger: integer convolution, then (for QLinearConv) requantization.

``acc = conv(x - x_zp, w - w_zp) + bias`` in int32 (N-d, groups, depthwise,
strides, dilations, pads, auto_pad), then QLinearConv requantizes with the
float32 scale ``x_scale * w_scale[m] / y_scale`` (ONNX mode, as ONNX
Runtime) or the equivalent fixed-point multiplier (TFLite mode).

With constant weights and parameters and static padding, QLinearConv packs an
NHWC kernel (bias and requantization fused) when the session is created; a 1x1,
stride-1, unpadded convolution is packed as one GEMM over the pixels. It reads
``x.transpose(0, 2, 3, 1)`` (free when ``x`` is the NCHW view another
convolution handed on) and hands on an NCHW view of its NHWC result where the
executor allows it (``nhwc_views``), else a C-contiguous array.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext
    >>> from edgeai.ops.quantized.qlinear_conv import ConvInteger
    >>> x = np.arange(9, dtype=np.uint8).reshape(1, 1, 3, 3); w = np.ones((1, 1, 2, 2), np.uint8)
    >>> ConvInteger(OpContext("c", "ConvInteger", opset=10)).run(x, w, np.uint8(1))[0][0, 0]
    array([[ 4,  8],
           [16, 20]], dtype=int32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeai.errors import EdgeAIError
from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.quantized._common import (
    bad_model,
    c_order,
    check_int_dtype,
    const_input,
    kernel_requant,
    per_channel,
    requantize,
    scalar,
    try_kernel,
    zero_point_or_default,
)
from edgeai.ops.quantized.reference import conv_int32, conv_output_pads, wrap_int32

__all__ = ["ConvInteger", "QLinearConv", "QLinearConvMS"]


class _IntegerConv(Op):
    """Shared attribute handling and the integer core (kernel when one fits, else the reference)."""

    _w_index = 1

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.group = int(ctx.attr("group", 1))
        self.auto_pad = ctx.attr("auto_pad", "NOTSET")
        if isinstance(self.auto_pad, bytes):
            self.auto_pad = self.auto_pad.decode()
        self.kernel_shape = ctx.attr("kernel_shape")
        self.pads_attr = ctx.attr("pads")
        self.strides_attr = ctx.attr("strides")
        self.dilations_attr = ctx.attr("dilations")
        if self.group < 1:
            raise bad_model(ctx, f"group must be >= 1, got {self.group}")
        self._kernels: dict[tuple[Any, ...], Callable[..., np.ndarray] | None] = {}

    def _geometry(self, x: np.ndarray, w: np.ndarray) -> tuple[list[int], list[int], list[int]]:
        nsp = w.ndim - 2
        if x.ndim != w.ndim:
            raise bad_model(self.ctx, f"input rank {x.ndim} does not match weight rank {w.ndim}")
        if self.kernel_shape is not None and list(self.kernel_shape) != list(w.shape[2:]):
            raise bad_model(self.ctx, f"kernel_shape {self.kernel_shape} does not match weight {w.shape}")
        strides = list(self.strides_attr or [1] * nsp)
        dilations = list(self.dilations_attr or [1] * nsp)
        if len(strides) != nsp or len(dilations) != nsp or min(strides + dilations) < 1:
            raise bad_model(self.ctx, f"strides {strides} / dilations {dilations} must be {nsp} positive ints")
        pads = conv_output_pads(x.shape[2:], w.shape[2:], strides, dilations, self.pads_attr, self.auto_pad)
        return strides, pads, dilations

    def _accumulate(self, x: np.ndarray, x_zp: np.ndarray, w: np.ndarray, w_zp: np.ndarray) -> np.ndarray:
        """int32 accumulators: the fast kernel when one takes these weights, else the reference."""
        strides, pads, dilations = self._geometry(x, w)
        if const_input(self.ctx, self._w_index) is not None and min(pads, default=0) >= 0:
            key = (x.dtype.str, tuple(pads))
            if key not in self._kernels:
                self._kernels[key] = try_kernel(
                    self.ctx, "prepare_conv", w, w_zp, x_dtype=x.dtype, strides=strides, pads=pads,
                    dilations=dilations, group=self.group,
                )  # fmt: skip
            kernel = self._kernels[key]
            if kernel is not None:
                return kernel(x, int(x_zp))
        return conv_int32(x, x_zp, w, w_zp, strides=strides, pads=pads, dilations=dilations, group=self.group)


@register("ConvInteger", since=10)
class ConvInteger(_IntegerConv):
    """ONNX ConvInteger: int32 ``conv(x - x_zp, w - w_zp)``; ``w_zp`` may be per output channel."""

    def run(
        self,
        x: np.ndarray,
        w: np.ndarray,
        x_zero_point: np.ndarray | None = None,
        w_zero_point: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        check_int_dtype(self.ctx, x, "input", ("int8", "uint8"))
        check_int_dtype(self.ctx, w, "weight", ("int8", "uint8"))
        xz = scalar(self.ctx, zero_point_or_default(x_zero_point, x.dtype), "x_zero_point")
        wz = zero_point_or_default(w_zero_point, w.dtype)
        wz = wz.reshape(()) if wz.size == 1 else per_channel(self.ctx, wz, w.shape[0], "w_zero_point")
        return (self._accumulate(x, xz, w, wz),)


class PointwiseConv:
    """An NHWC 1x1 convolution (stride 1, no padding, one group) run as one GEMM over the pixels:
    ``[N*H*W, C] x [C, M]``, bias and requantization fused (the GEMM driver has a smaller fixed
    cost per call than the convolution's staging: 8-12 us against 20-25 us at 3x3 to 6x6 pixels)."""

    __slots__ = ("gemm", "m", "threads")

    def __init__(self, gemm: Any, m: int) -> None:
        self.gemm, self.m, self.threads = gemm, m, int(getattr(gemm, "threads", 1))

    def __call__(self, x: np.ndarray, x_zp: int) -> np.ndarray:
        n, h, w, c = x.shape
        return self.gemm(x.reshape(n * h * w, c), x_zp).reshape(n, h, w, self.m)


@register("QLinearConv", since=10)
class QLinearConv(_IntegerConv):
    """ONNX QLinearConv: integer convolution + bias, requantized per output channel."""

    _w_index = 3
    accepts_nhwc_views = True  # an NCHW view of an NHWC array is the NHWC kernel's input as it is
    program_safe = True  # the bound step's work is kernel calls, chosen by shapes and constants

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        # every parameter constant: the kernel can fuse bias and requantization into its store
        self._fusable = all(const_input(ctx, i) is not None for i in (1, 2, 3, 4, 5, 6, 7))
        self._requant: Any = None
        self._fast: dict[tuple[Any, ...], Callable[[np.ndarray], np.ndarray]] = {}
        self.nhwc_views = False
        """Whether results may be NCHW views of NHWC arrays (set by the executor when every consumer
        takes such views); when False, results are C-contiguous NCHW."""
        self.nhwc_kernel: Callable[..., np.ndarray] | None = None
        """The NHWC kernel, packed here when the weights, every parameter and the padding are
        static (None otherwise: the kernel is then prepared at the first run)."""
        self._nhwc_key: tuple[np.dtype, bool] | None = None
        self._same_spatial: tuple[int, ...] | None = None
        self._xz_int = 0
        self._channels_in = -1
        if self._fusable:
            try:
                self._prepare_nhwc()
            except EdgeAIError:
                self.nhwc_kernel = None  # a bad parameter: run() reports it with the reference checks

    def _prepare_nhwc(self) -> None:
        """Pack the fused NHWC kernel now (see :attr:`nhwc_kernel`), when everything is static."""
        ctx = self.ctx
        n_in = len(ctx.input_consts)
        bias = const_input(ctx, 8)
        bias_absent = n_in <= 8 or (len(ctx.input_values) > 8 and ctx.input_values[8] is None)
        if bias is None and not bias_absent:
            return  # a bias computed at run time
        w = np.asarray(const_input(ctx, 3))
        xz = scalar(ctx, const_input(ctx, 2), "x_zero_point")
        if w.ndim != 4 or w.dtype.name not in ("int8", "uint8") or xz.dtype.name not in ("int8", "uint8"):
            return
        m = w.shape[0]
        strides = list(self.strides_attr or [1, 1])
        dilations = list(self.dilations_attr or [1, 1])
        if self.kernel_shape is not None and list(self.kernel_shape) != list(w.shape[2:]):
            return
        if len(strides) != 2 or len(dilations) != 2 or min(strides + dilations) < 1:
            return
        shape = getattr(ctx.input_values[0], "shape", None) if ctx.input_values else None
        if shape is not None and len(shape) == 4 and int(ctx.attr("channels_last", 0)):
            shape = (shape[0], shape[3], shape[1], shape[2])  # com.microsoft channels_last: NHWC declared
        static = shape is not None and len(shape) == 4 and all(isinstance(d, int) for d in shape[2:])
        spatial: Any = shape[2:] if static else (0, 0)
        if self.auto_pad not in ("NOTSET", "", "VALID") and not static:
            return  # SAME padding of an input whose size is known only at run time
        pads = conv_output_pads(spatial, w.shape[2:], strides, dilations, self.pads_attr, self.auto_pad)
        if min(pads) < 0:
            return
        macs = None  # per image: the kernel runs the images of a batch one after the other
        if static:
            out = [
                (spatial[i] + pads[i] + pads[i + 2] - dilations[i] * (w.shape[2 + i] - 1) - 1) // strides[i] + 1
                for i in (0, 1)
            ]
            macs = max(0, out[0]) * max(0, out[1]) * int(np.prod(w.shape))
        wz = np.asarray(const_input(ctx, 5))
        wz = wz.reshape(()) if wz.size == 1 else per_channel(ctx, wz, m, "w_zero_point")
        ws = per_channel(ctx, const_input(ctx, 4), m, "w_scale")
        yz = scalar(ctx, const_input(ctx, 7), "y_zero_point")
        requant = kernel_requant(ctx, (scalar(ctx, const_input(ctx, 1), "x_scale"), ws), const_input(ctx, 6), yz)
        if requant is None:
            return
        kernel: Any = None
        if w.shape[2:] == (1, 1) and self.group == 1 and strides == [1, 1] and not any(pads):
            gemm = try_kernel(
                ctx, "prepare_gemm", np.ascontiguousarray(w[:, :, 0, 0].T), wz, a_dtype=xz.dtype, bias=bias,
                requant=requant, macs=macs,
            )  # fmt: skip
            kernel = None if gemm is None else PointwiseConv(gemm, m)
        if kernel is None:
            kernel = try_kernel(
                ctx, "prepare_conv", w, wz, x_dtype=xz.dtype, strides=strides, pads=pads, dilations=dilations,
                group=self.group, bias=bias, requant=requant, layout="NHWC", macs=macs,
            )  # fmt: skip
        if kernel is not None:
            self.nhwc_kernel, self._nhwc_key, self._xz_int = kernel, (xz.dtype, bias is None), int(xz)
            self._channels_in = w.shape[1] * self.group  # another count: run()'s checks name the node
            if self.auto_pad not in ("NOTSET", "", "VALID"):  # SAME pads computed for this input size
                self._same_spatial = tuple(spatial)

    @property
    def nhwc_raw_inputs(self) -> tuple[int, ...]:
        """``(0,)`` when :meth:`bind_static` binds: its step then takes ``x`` as an NHWC array."""
        return (0,) if self._bindable() else ()

    @property
    def nhwc_raw_output(self) -> bool:
        """Whether the bound step can hand its result on as the NHWC array itself."""
        return self._bindable()

    def _bindable(self) -> bool:
        return (
            self.nhwc_kernel is not None and self._nhwc_key is not None and not int(self.ctx.attr("channels_last", 0))
        )

    def bind_static(
        self, nhwc_in: frozenset[int] = frozenset(), nhwc_out: bool = False
    ) -> tuple[Callable[[np.ndarray], tuple[Any, ...]], tuple[int, ...]] | None:
        """``(step, (0,))``: a function of ``x`` alone that the executor calls instead of :meth:`run`
        when the NHWC kernel was packed at creation (every other input is then a constant this op
        holds); None otherwise. Called once after the executor has set :attr:`nhwc_views`.

        The step runs the kernel on the NHWC layout of ``x`` with no re-checks of the constant
        parameters (about 1 us of a small convolution's 8-15 us), and hands anything else (another
        dtype, rank or SAME-padded size) to :meth:`run` with the constants. With ``0 in nhwc_in``
        ``x`` comes as an NHWC array, and with ``nhwc_out`` the result goes as one (see
        :mod:`edgeai.graph.executor`): no view is made or unmade.
        """
        if not self._bindable():
            return None  # (com.microsoft channels_last: run() moves the axes)
        kernel, key = self.nhwc_kernel, self._nhwc_key
        assert kernel is not None and key is not None
        # inputs 1-8 are constants here (_prepare_nhwc packed nothing otherwise); an absent bias is None
        consts = tuple(self.ctx.input_consts[1:9]) + (None,) * max(0, 9 - len(self.ctx.input_consts))
        run, xz, dtype, views, same = self.run, self._xz_int, key[0], self.nhwc_views, self._same_spatial
        ndarray, contiguous, cin = np.ndarray, np.ascontiguousarray, self._channels_in
        raw_in, raw_out = 0 in nhwc_in, nhwc_out

        def other(x: np.ndarray) -> tuple[Any, ...]:
            """Anything the kernel does not take, through run() (NCHW in and out)."""
            y = run(x.transpose(0, 3, 1, 2) if raw_in else x, *consts)[0]
            return (y.transpose(0, 2, 3, 1),) if raw_out else (y,)

        if isinstance(kernel, PointwiseConv):
            gemm, m = kernel.gemm, kernel.m

            def pointwise(x: np.ndarray) -> tuple[Any, ...]:
                if type(x) is ndarray and x.ndim == 4 and x.dtype == dtype:
                    xn = x if raw_in else x.transpose(0, 2, 3, 1)
                    n, h, w, c = xn.shape
                    if c == cin and (same is None or (h, w) == same):
                        y = gemm(xn.reshape(n * h * w, c), xz).reshape(n, h, w, m)
                        if raw_out:
                            return (y,)
                        return (y.transpose(0, 3, 1, 2),) if views else (contiguous(y.transpose(0, 3, 1, 2)),)
                return other(x)

            return pointwise, (0,)

        def step(x: np.ndarray) -> tuple[Any, ...]:
            if type(x) is ndarray and x.ndim == 4 and x.dtype == dtype:
                xn = x if raw_in else x.transpose(0, 2, 3, 1)
                if xn.shape[3] == cin and (same is None or xn.shape[1:3] == same):
                    y = kernel(xn, xz)
                    if raw_out:
                        return (y,)
                    return (y.transpose(0, 3, 1, 2),) if views else (contiguous(y.transpose(0, 3, 1, 2)),)
            return other(x)

        return step, (0,)

    def _fused_kernel(
        self, x: np.ndarray, w: np.ndarray, wz: np.ndarray, bias: np.ndarray | None
    ) -> Callable[..., np.ndarray] | None:
        """The fast kernel with bias and requantization fused, for this input shape, or None."""
        strides, pads, dilations = self._geometry(x, w)
        if min(pads, default=0) < 0:
            return None
        key = (x.dtype.str, tuple(pads), "fused", bias is None)
        if key not in self._kernels:
            self._kernels[key] = try_kernel(
                self.ctx, "prepare_conv", w, wz, x_dtype=x.dtype, strides=strides, pads=pads,
                dilations=dilations, group=self.group, bias=bias, requant=self._requant,
            )  # fmt: skip
        return self._kernels[key]

    def run(
        self,
        x: np.ndarray,
        x_scale: np.ndarray,
        x_zero_point: np.ndarray,
        w: np.ndarray,
        w_scale: np.ndarray,
        w_zero_point: np.ndarray,
        y_scale: np.ndarray,
        y_zero_point: np.ndarray,
        bias: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        kernel = self.nhwc_kernel
        if (
            kernel is not None
            and type(x) is np.ndarray
            and x.ndim == 4
            and x.shape[1] == self._channels_in
            and (x.dtype, bias is None) == self._nhwc_key
            and (self._same_spatial is None or x.shape[2:] == self._same_spatial)
        ):
            # NHWC inside: x.transpose is free (and C-contiguous) when x is the view a QLinearConv handed on
            y = kernel(x.transpose(0, 2, 3, 1), self._xz_int).transpose(0, 3, 1, 2)
            return (y if self.nhwc_views else np.ascontiguousarray(y),)
        x = c_order(x)
        fast = self._fast.get((x.shape, x.dtype.str, bias is None))
        if fast is not None:  # constant parameters, this input shape seen and checked before
            return (fast(x),)
        ctx = self.ctx
        check_int_dtype(ctx, x, "input", ("int8", "uint8"))
        check_int_dtype(ctx, w, "weight", ("int8", "uint8"))
        m = w.shape[0]
        xz = scalar(ctx, x_zero_point, "x_zero_point")
        wz = np.asarray(w_zero_point)
        wz = wz.reshape(()) if wz.size == 1 else per_channel(ctx, wz, m, "w_zero_point")
        ws = per_channel(ctx, w_scale, m, "w_scale")
        yz = scalar(ctx, y_zero_point, "y_zero_point")
        if self._fusable and (bias is None or const_input(ctx, 8) is not None):
            if self._requant is None:
                self._requant = kernel_requant(ctx, (scalar(ctx, x_scale, "x_scale"), ws), y_scale, yz)
            if self._requant is not None:
                kernel = self._fused_kernel(x, w, wz, bias)
                if kernel is not None:
                    xz_int = int(xz)
                    self._fast[(x.shape, x.dtype.str, bias is None)] = lambda x_: kernel(x_, xz_int)
                    return (kernel(x, xz_int),)
        acc = self._accumulate(x, xz, w, wz)
        chan = (-1,) + (1,) * (acc.ndim - 2)
        if bias is not None:
            b = np.asarray(bias)
            if b.dtype != np.int32 or b.shape != (m,):
                raise bad_model(ctx, f"bias must be int32 of shape ({m},), got {b.dtype} {b.shape}")
            acc = wrap_int32(acc.astype(np.int64) + b.reshape(chan))
        y = requantize(
            ctx,
            acc,
            (scalar(ctx, x_scale, "x_scale"), ws.reshape(chan)),
            scalar(ctx, y_scale, "y_scale"),
            yz,
            yz.dtype,
        )
        return (y,)


@register("QLinearConv", domain="com.microsoft", since=1)
class QLinearConvMS(QLinearConv):
    """com.microsoft QLinearConv (what ONNX Runtime's optimizer writes): ``channels_last=1`` takes NHWC."""

    def run(self, x: np.ndarray, *rest: Any) -> tuple[Any, ...]:
        if not int(self.ctx.attr("channels_last", 0)):
            return super().run(x, *rest)
        y = super().run(np.moveaxis(np.asarray(x), -1, 1), *rest)[0]
        return (np.ascontiguousarray(np.moveaxis(y, 1, -1)),)
