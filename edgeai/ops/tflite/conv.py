"""TFLite int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (reference-kernel arithmetic).

``acc = sum((x - x_zp) * w) + bias`` in exact integers (products of int8
values summed in float64 BLAS are exact far beyond any int32 accumulator),
then per output channel ``MultiplyByQuantizedMultiplier(acc, m[c], shift[c])
+ y_zp``, clamped to the fused activation's range. ``m[c], shift[c]`` come
from ``double(x_scale) * double(w_scale[c]) / double(y_scale)``, as in
TFLite's ``PopulateConvolutionQuantizationParams``. Padding follows TFLite's
SAME/VALID rules (padded pixels contribute nothing, as in the reference
kernel that skips them). FULLY_CONNECTED rounds once in ai-edge-litert 2.x
(``TFLITE_SINGLE_ROUNDING``) and twice in tflite-runtime 2.14; a one-node
probe of the installed runtime picks (:func:`fully_connected_rounds_once`,
``tflite_fc_rounding`` session option to force). Layouts are TFLite's: NHWC inputs, OHWI conv
weights, ``[1, kH, kW, C*multiplier]`` depthwise weights, ``[units, K]``
fully connected weights.

Fast paths (the numpy code here is their reference; ``tflite_kernels=False``
runs it): convolutions build edgeai's INT8 kernel for the model's static
input shape when the session is created (NHWC, requantization fused); a 1x1
convolution without padding is one GEMM over the pixels
(:class:`PointwiseGemm`); a depth multiplier above 1 runs the depthwise kernel
over repeated input channels (:class:`RepeatedChannels`); FULLY_CONNECTED is one numba loop up to
``_LOOP_MACS`` multiply-adds, above that the GEMM kernels.

Example:
    >>> import numpy as np
    >>> from edgeai.ops.tflite.conv import conv_int8
    >>> x = np.full((1, 3, 3, 1), 10, np.int8); w = np.ones((1, 3, 3, 1), np.int8)
    >>> int(conv_int8(x, -10, w, None, 1, 1, 1, 1, 0, 0, 3, 3)[0, 0, 0, 0])   # 9 taps of (10 + 10)
    180
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from edgeai.errors import InputShapeError
from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.tflite._common import (
    activation_range,
    bad_model,
    multipliers,
    pad_and_out,
    quant_of,
    requant,
    requant_single_rounding,
)
from edgeai.ops.tflite.loops import fully_connected_rows, requant_rows

__all__ = [
    "Conv2D",
    "DepthwiseConv2D",
    "FullyConnected",
    "PointwiseGemm",
    "RepeatedChannels",
    "conv_int8",
    "fully_connected_rounds_once",
]


# Below this many multiply-adds a FULLY_CONNECTED runs as one numba loop (no kernel call overhead);
# above, on the INT8 GEMM kernels.
_LOOP_MACS = 32768


@functools.lru_cache(maxsize=1)
def fully_connected_rounds_once() -> bool:
    """Whether the installed TFLite runtime's int8 FULLY_CONNECTED rounds once.

    ai-edge-litert 2.x requantizes FULLY_CONNECTED with single rounding
    (``TFLITE_SINGLE_ROUNDING``: ``(acc * m + half) >> (31 - shift)``) while its
    convolutions keep gemmlowp's double rounding; tflite-runtime 2.14 rounds
    twice everywhere. One probe model whose only output differs between the
    two answers; with no runtime installed, current LiteRT's single rounding.
    """
    from edgeai.quant.requant import multiply_by_quantized_multiplier, quantize_multiplier

    try:
        from edgeai.backends.litert import _interpreter_module
        from edgeai.formats.tflite_format import schema

        module, _ = _interpreter_module()
        s = schema()
    except Exception:
        return True
    xs, ws, ys = float(np.float32(0.367684)), float(np.float32(0.0085137)), 0.25
    m, shift = quantize_multiplier(float(np.float32(xs) * np.float32(ws)) / ys)
    total = 31 - shift
    pick = None
    for x in range(1, 128):
        for w in range(1, 128):
            acc = x * w
            once = (acc * m + (1 << (total - 1))) >> total
            if once != multiply_by_quantized_multiplier(acc, m, shift) and once <= 127:
                pick = (x, w, once)
                break
        if pick:
            break
    if pick is None:
        return True
    import flatbuffers

    model = s.ModelT()
    model.version, model.buffers = 3, [s.BufferT(), s.BufferT()]
    model.buffers[1].data = np.array([pick[1]], np.int8).tobytes()
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model.operatorCodes = [code]
    sub = s.SubGraphT()
    sub.tensors = []
    for name, shape, scale, buf in (("x", [1, 1], xs, 0), ("w", [1, 1], ws, 1), ("y", [1, 1], ys, 0)):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, s.TensorType.INT8, buf
        t.quantization = s.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [0]
        sub.tensors.append(t)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, -1], [2]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT()
    sub.operators, sub.inputs, sub.outputs = [op], [0], [2]
    model.subgraphs = [sub]
    b = flatbuffers.Builder(256)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    try:
        it = module.Interpreter(
            model_content=bytes(b.Output()), experimental_op_resolver_type=module.OpResolverType.BUILTIN_REF
        )
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], np.array([[pick[0]]], np.int8))
        it.invoke()
        return int(it.get_tensor(it.get_output_details()[0]["index"])[0, 0]) == pick[2]
    except Exception:
        return True


def _windows(
    x: np.ndarray, zp: int, pt: int, pl: int, oh: int, ow: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int
) -> tuple[np.ndarray, int, int]:
    n, h, w, c = x.shape
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.full((n, max(need_h, pt + h), max(need_w, pl + w), c), zp, dtype=np.float64)
    xp[:, pt : pt + h, pl : pl + w, :] = x
    return xp - zp, need_h, need_w


def conv_int8(
    x: np.ndarray,
    x_zp: int,
    w: np.ndarray,
    bias: np.ndarray | None,
    sh: int,
    sw: int,
    dh: int,
    dw: int,
    pt: int,
    pl: int,
    oh: int,
    ow: int,
    depth_multiplier: int = 0,
) -> np.ndarray:
    """Exact int64 accumulators of an NHWC convolution (``depth_multiplier > 0``: depthwise)."""
    kh, kw = w.shape[1], w.shape[2]
    xs, _, _ = _windows(x, x_zp, pt, pl, oh, ow, kh, kw, sh, sw, dh, dw)
    if depth_multiplier:
        xs = np.repeat(xs, depth_multiplier, axis=-1)
    out_c = w.shape[3] if depth_multiplier else w.shape[0]
    acc = np.zeros((x.shape[0], oh, ow, out_c), np.float64)
    wf = w.astype(np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xs[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw, :]
            if depth_multiplier:
                acc += patch * wf[0, i, j, :]
            else:
                acc += patch @ wf[:, i, j, :].T
    out = acc.astype(np.int64)
    if bias is not None:
        out += bias.astype(np.int64)
    return out


class PointwiseGemm:
    """A 1x1 convolution without padding as one GEMM: ``[N*OH*OW, C] x [C, M]`` over the
    (strided) NHWC pixels, no staging. ``f(x, x_zp)`` like the convolution kernels."""

    def __init__(self, gemm: Any, sh: int, sw: int, out_channels: int) -> None:
        self.gemm, self.sh, self.sw, self.m = gemm, sh, sw, out_channels

    def __call__(self, x: np.ndarray, x_zp: int) -> np.ndarray:
        if self.sh != 1 or self.sw != 1:
            x = x[:, :: self.sh, :: self.sw]
        n, h, w, c = x.shape
        return self.gemm(np.ascontiguousarray(x).reshape(n * h * w, c), x_zp).reshape(n, h, w, self.m)


class RepeatedChannels:
    """A depthwise convolution with depth multiplier ``mult`` as a plain depthwise one over the input
    with every channel repeated ``mult`` times (channel ``c`` feeds outputs ``c * mult .. c * mult + mult - 1``)."""

    def __init__(self, kernel: Any, mult: int) -> None:
        self.kernel, self.mult = kernel, mult

    def __call__(self, x: np.ndarray, x_zp: int) -> np.ndarray:
        return self.kernel(np.repeat(x, self.mult, axis=3), x_zp)  # type: ignore[no-any-return]


class _ConvBase(Op):
    depthwise = False

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        vals = ctx.input_values
        if len(vals) < 2 or vals[1] is None:
            raise bad_model(ctx, "needs an input and a filter")
        xq = quant_of(ctx, vals[0], "input")
        wq = quant_of(ctx, vals[1], "filter")
        yq = quant_of(ctx, ctx.output_values[0], "output")
        self.w = ctx.input_consts[1]
        if self.w is None or self.w.ndim != 4:
            raise bad_model(ctx, "the filter must be a constant 4-D tensor")
        self.bias = ctx.input_consts[2] if len(ctx.input_consts) > 2 else None
        if len(vals) > 2 and vals[2] is not None and self.bias is None:
            raise bad_model(ctx, "the bias must be a constant")
        if self.bias is not None and self.bias.dtype != np.int32:
            raise bad_model(ctx, f"an int8 convolution needs an int32 bias, got {self.bias.dtype}")
        n_out = self.w.shape[3] if self.depthwise else self.w.shape[0]
        w_scales = np.asarray(wq.scale, np.float64)
        if w_scales.size not in (1, n_out):
            raise bad_model(ctx, f"filter has {w_scales.size} scales for {n_out} output channels")
        real = np.float64(xq.scale[0]) * np.broadcast_to(w_scales, (n_out,)) / np.float64(yq.scale[0])
        self.m, self.shift = multipliers(real)
        self.x_zp, self.y_zp = int(xq.zero_point[0]), int(yq.zero_point[0])
        self.lo, self.hi = activation_range(ctx, yq)
        self.sh, self.sw = int(ctx.attr("strideH", 1)), int(ctx.attr("strideW", 1))
        self.dh, self.dw = int(ctx.attr("dilationHFactor", 1) or 1), int(ctx.attr("dilationWFactor", 1) or 1)
        self.padding = int(ctx.attr("padding", 0))
        self.mult = 0
        if self.depthwise:
            self.mult = int(ctx.attr("depthMultiplier", 1) or 1)
            in_c = vals[0].shape[-1] if vals[0].shape and isinstance(vals[0].shape[-1], int) else None
            if in_c:
                self.mult = n_out // in_c

        self._kernels: dict[tuple[int, ...], Any] = {}
        self.use_kernel = bool(ctx.options.get("tflite_kernels", True))
        # TFLite shapes are static: build the kernel for the model's input shape now
        self._shape: tuple[int, ...] | None = None
        self._fast: Any = None
        shape = getattr(vals[0], "shape", None)
        if self.use_kernel and shape and len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape):
            self._fast = self._kernel(tuple(shape))
            self._shape = tuple(shape)

    def _geometry(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(output height, padding top, output width, padding left) for an NHWC input shape."""
        kh, kw = self.w.shape[1], self.w.shape[2]
        oh, pt = pad_and_out(self.padding, shape[1], kh, self.sh, self.dh)
        ow, pl = pad_and_out(self.padding, shape[2], kw, self.sw, self.dw)
        return oh, pt, ow, pl

    def _kernel(self, shape: tuple[int, ...]) -> Any:
        """edgeai's numba INT8 convolution for this input shape (None: use the numpy reference).

        It takes ONNX's OIHW weights (NHWC data in and out) and the same fixed-point
        requantization, so its output is the reference's bit for bit (the tests check both)."""
        key = shape[1:]
        if key in self._kernels:
            return self._kernels[key]
        from edgeai.kernels.api import Requant, prepare_conv, prepare_gemm

        oh, pt, ow, pl = self._geometry(shape)
        kh, kw = self.w.shape[1], self.w.shape[2]
        pb = max((oh - 1) * self.sh + (kh - 1) * self.dh + 1 - shape[1] - pt, 0)
        pr = max((ow - 1) * self.sw + (kw - 1) * self.dw + 1 - shape[2] - pl, 0)
        kernel = None
        if self.depthwise and (shape[3] < 1 or self.w.shape[3] % shape[3]):
            pass  # filter channels that are no multiple of the input's: the reference path says what is wrong
        else:
            mult = self.w.shape[3] // shape[3] if self.depthwise else 1
            if self.depthwise:  # output channel c * mult + j reads input channel c (its mult-fold copy)
                w_oihw, group = self.w.transpose(3, 0, 1, 2), self.w.shape[3]
            else:
                w_oihw, group = self.w.transpose(0, 3, 1, 2), 1
            n_out = w_oihw.shape[0]
            rq = Requant(
                "tflite",
                None,
                np.broadcast_to(self.m, (n_out,)).astype(np.int32),
                np.broadcast_to(self.shift, (n_out,)).astype(np.int32),
                zero_point=self.y_zp,
                dtype=np.dtype(np.int8),
                act_min=self.lo,
                act_max=self.hi,
            )
            threads = int(self.ctx.options.get("threads") or 1)
            try:
                if not self.depthwise and kh == kw == 1 and pt == pl == pb == pr == 0:
                    gemm = prepare_gemm(
                        np.ascontiguousarray(self.w[:, 0, 0, :].T), 0, a_dtype=np.int8, bias=self.bias,
                        requant=rq, threads=threads,
                    )  # fmt: skip
                    kernel = None if gemm is None else PointwiseGemm(gemm, self.sh, self.sw, n_out)
                else:
                    kernel = prepare_conv(
                        np.ascontiguousarray(w_oihw), 0, x_dtype=np.int8, strides=(self.sh, self.sw),
                        pads=(pt, pl, pb, pr), dilations=(self.dh, self.dw), group=group,
                        bias=self.bias, requant=rq, threads=threads, layout="NHWC",
                    )  # fmt: skip
                    if kernel is not None and mult > 1:
                        kernel = RepeatedChannels(kernel, mult)
            except Exception:
                kernel = None  # a shape the kernels do not take: the reference path
        if len(self._kernels) < 16:
            self._kernels[key] = kernel
        return kernel

    def run(self, x: np.ndarray, *_: Any) -> tuple[np.ndarray]:
        if x.shape == self._shape and self._fast is not None:
            return (self._fast(x, self.x_zp),)
        kernel = self._kernel(x.shape) if self.use_kernel and x.ndim == 4 else None
        if kernel is not None:
            return (kernel(x, self.x_zp),)
        if x.ndim != 4:
            raise InputShapeError(
                f"node {self.ctx.node_name!r} (tflite {self.ctx.op_type}) needs a 4-D NHWC input, got shape {x.shape}"
            )
        oh, pt, ow, pl = self._geometry(x.shape)
        mult = self.w.shape[3] // x.shape[3] if self.depthwise else 0
        acc = conv_int8(x, self.x_zp, self.w, self.bias, self.sh, self.sw, self.dh, self.dw, pt, pl, oh, ow, mult)
        return (requant(acc, self.m, self.shift, self.y_zp, self.lo, self.hi),)


@register("CONV_2D", domain="tflite", since=1)
class Conv2D(_ConvBase):
    """int8 CONV_2D (per-tensor or per-channel filters)."""


@register("DEPTHWISE_CONV_2D", domain="tflite", since=1)
class DepthwiseConv2D(_ConvBase):
    """int8 DEPTHWISE_CONV_2D (any depth multiplier)."""

    depthwise = True


@register("FULLY_CONNECTED", domain="tflite", since=1)
class FullyConnected(Op):
    """int8 FULLY_CONNECTED: ``[.., K] x [units, K]^T``, per-tensor or per-channel filters."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        vals = ctx.input_values
        xq = quant_of(ctx, vals[0], "input")
        wq = quant_of(ctx, vals[1], "filter")
        yq = quant_of(ctx, ctx.output_values[0], "output")
        if int(ctx.attr("weightsFormat", 0) or 0) != 0:
            raise bad_model(ctx, "only the DEFAULT weights format is implemented (not shuffled 4x16)")
        self.w = ctx.input_consts[1]
        self.bias = ctx.input_consts[2] if len(ctx.input_consts) > 2 else None
        if len(vals) > 2 and vals[2] is not None and self.bias is None:
            raise bad_model(ctx, "the bias must be a constant")
        units = vals[1].shape[0] if vals[1].shape else None
        w_scales = np.asarray(wq.scale, np.float64)
        n = units if isinstance(units, int) else w_scales.size
        if w_scales.size == 1:
            # per-tensor: TFLite's GetQuantizedConvolutionMultipler multiplies the scales in float32 first
            product = np.float64(np.float32(xq.scale[0]) * np.float32(w_scales[0]))
            real = np.full(n, product / np.float64(yq.scale[0]))
        else:
            real = np.float64(xq.scale[0]) * w_scales / np.float64(yq.scale[0])
        self.m, self.shift = multipliers(real)
        self.x_zp, self.w_zp, self.y_zp = int(xq.zero_point[0]), int(wq.zero_point[0]), int(yq.zero_point[0])
        self.lo, self.hi = activation_range(ctx, yq)
        self.keep = bool(ctx.attr("keepNumDims", False))
        rounding = ctx.options.get("tflite_fc_rounding")  # "single" or "double"; default: as the installed runtime
        self.single_rounding = fully_connected_rounds_once() if rounding is None else rounding == "single"
        self.wf = None if self.w is None else (self.w.astype(np.float64) - self.w_zp).T
        self.loop: tuple[Any, ...] | None = None
        self.gemm: Any = None
        if ctx.options.get("tflite_kernels", True) and self.w is not None and self.w.ndim == 2 and self.w.size:
            units, k = self.w.shape
            self.m_units = np.ascontiguousarray(np.broadcast_to(self.m, (units,)), dtype=np.int64)
            self.shift_units = np.ascontiguousarray(np.broadcast_to(self.shift, (units,)), dtype=np.int64)
            if k < 65536:  # int8 x int16 dot products of K terms stay in int32
                w16 = np.ascontiguousarray(self.w.astype(np.int32) - self.w_zp, dtype=np.int16)
                bias = np.zeros(units, np.int64) if self.bias is None else self.bias.astype(np.int64)
                bias = np.ascontiguousarray(np.broadcast_to(bias, (units,)))
                self.loop = (
                    self.x_zp, w16, w16.sum(axis=1, dtype=np.int64), bias,
                    self.m_units, self.shift_units, self.y_zp, self.lo, self.hi, self.single_rounding,
                )  # fmt: skip
            self.gemm = self._gemm()

    def _gemm(self) -> Any:
        """The INT8 GEMM kernel for large layers: requantization fused when it rounds twice like the
        kernels' epilogue, else int32 accumulators requantized by :func:`requant_rows` (None: no kernel)."""
        from edgeai.kernels.api import Requant, prepare_gemm

        rq = None
        if not self.single_rounding:
            rq = Requant(
                "tflite", None, self.m_units.astype(np.int32), self.shift_units.astype(np.int32),
                zero_point=self.y_zp, dtype=np.dtype(np.int8), act_min=self.lo, act_max=self.hi,
            )  # fmt: skip
        try:
            return prepare_gemm(
                np.ascontiguousarray(self.w.T), self.w_zp, a_dtype=np.int8, bias=self.bias, requant=rq,
                threads=int(self.ctx.options.get("threads") or 1),
            )  # fmt: skip
        except Exception:
            return None  # weights the kernels do not take: the loop or the reference

    def run(self, x: np.ndarray, w: np.ndarray | None = None, *_: Any) -> tuple[np.ndarray]:
        if (self.loop is not None or self.gemm is not None) and x.dtype == np.int8:
            k = self.w.shape[1]
            if x.size % k:
                raise bad_model(self.ctx, f"input of shape {x.shape} does not split into rows of {k}")
            rows = x.reshape(-1, k)
            if self.gemm is not None and (self.loop is None or rows.shape[0] * self.w.size > _LOOP_MACS):
                if self.single_rounding:
                    acc = self.gemm(rows, self.x_zp)
                    y = np.empty(acc.shape, np.int8)
                    requant_rows(acc, self.m_units, self.shift_units, self.y_zp, self.lo, self.hi, True, y)
                else:
                    y = self.gemm(rows, self.x_zp)
            else:
                y = np.empty((rows.shape[0], self.w.shape[0]), np.int8)
                fully_connected_rows(rows, *self.loop, y)
            return (y.reshape(*x.shape[:-1], -1) if self.keep else y,)
        wf = self.wf if self.wf is not None else (np.asarray(w).astype(np.float64) - self.w_zp).T
        k = wf.shape[0]
        if x.size % k:
            raise bad_model(self.ctx, f"input of shape {x.shape} does not split into rows of {k}")
        acc = ((x.reshape(-1, k).astype(np.float64) - self.x_zp) @ wf).astype(np.int64)
        if self.bias is not None:
            acc += self.bias.astype(np.int64)
        if self.single_rounding:
            y = requant_single_rounding(acc, self.m, self.shift, self.y_zp, self.lo, self.hi)
        else:
            y = requant(acc, self.m, self.shift, self.y_zp, self.lo, self.hi)
        return (y.reshape(*x.shape[:-1], -1) if self.keep else y,)
