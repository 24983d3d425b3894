"""Shared plumbing of the quantized ops: parameter checks, requantization, kernel hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeai.errors import ModelFormatError, UnsupportedOpError
from edgeai.ops._base import OpContext
from edgeai.quant.params import qrange
from edgeai.quant.requant import quantize_multiplier, requantize_onnx, requantize_tflite

_INT_TYPES = ("int8", "uint8", "int16", "uint16", "int4", "uint4")


def unsupported(ctx: OpContext, what: str) -> UnsupportedOpError:
    return UnsupportedOpError(
        f"{ctx.op_type} node {ctx.node_name!r}: {what} is not supported by the native INT8 engine; "
        "run this model on ONNX Runtime (device='cpu')",
        op_type=ctx.op_type,
        domain=ctx.domain,
        opset=ctx.opset,
        node=ctx.node_name,
    )


def bad_model(ctx: OpContext, what: str) -> ModelFormatError:
    return ModelFormatError(f"{ctx.op_type} node {ctx.node_name!r}: {what}; fix the model")


def const_input(ctx: OpContext, i: int) -> np.ndarray | None:
    return ctx.input_consts[i] if i < len(ctx.input_consts) else None


def check_int_dtype(ctx: OpContext, arr: np.ndarray, what: str, allowed: tuple[str, ...] = _INT_TYPES) -> None:
    if arr.dtype.name not in allowed:
        raise unsupported(ctx, f"{what} of type {arr.dtype.name} (supported: {', '.join(allowed)})")


def scalar(ctx: OpContext, arr: Any, what: str) -> np.ndarray:
    """A per-tensor quantization parameter (scalar or one-element 1-D) as a 0-d array."""
    a = np.asarray(arr)
    if a.size != 1 or a.ndim > 1:
        raise bad_model(ctx, f"{what} must be a scalar (per-tensor), got shape {a.shape}")
    return a.reshape(())


def per_channel(ctx: OpContext, arr: Any, n: int, what: str) -> np.ndarray:
    """A scalar or a 1-D parameter with ``n`` entries, as a 1-D array of ``n``."""
    a = np.asarray(arr)
    if a.size == 1 and a.ndim <= 1:
        return np.broadcast_to(a.reshape(()), (n,))
    if a.ndim != 1 or a.shape[0] != n:
        raise bad_model(ctx, f"{what} must be a scalar or have {n} entries, got shape {a.shape}")
    return a


def zero_point_or_default(zp: np.ndarray | None, dtype: Any = np.uint8) -> np.ndarray:
    return np.zeros((), dtype=dtype) if zp is None else np.asarray(zp)


def onnx_scale(*num: np.ndarray, den: np.ndarray | None = None) -> np.ndarray:
    """ORT's float32 requantization scale: ``((n0 * n1) * ...) / den``, each step rounded to float32."""
    s = np.asarray(num[0], dtype=np.float32)
    for v in num[1:]:
        s = (s * np.asarray(v, dtype=np.float32)).astype(np.float32)
    if den is not None:
        s = (s / np.asarray(den, dtype=np.float32)).astype(np.float32)
    return s


def requantize(
    ctx: OpContext,
    acc: np.ndarray,
    num: tuple[np.ndarray, ...],
    den: np.ndarray,
    zero_point: np.ndarray,
    out_dtype: Any,
) -> np.ndarray:
    """Requantize int32 accumulators in the session's mode (ONNX or TFLite).

    ``num`` are the scales whose product over ``den`` is the real multiplier
    (e.g. ``(x_scale, w_scale)`` over ``y_scale``); they broadcast against ``acc``.
    """
    qmin, qmax = qrange(out_dtype)
    if ctx.requant_mode == "tflite":
        real = np.asarray(num[0], dtype=np.float64)
        for v in num[1:]:
            real = real * np.asarray(v, dtype=np.float64)
        real = real / np.asarray(den, dtype=np.float64)
        flat = [quantize_multiplier(float(r)) for r in np.ravel(real)]
        m = np.array([f[0] for f in flat], dtype=np.int64).reshape(real.shape)
        s = np.array([f[1] for f in flat], dtype=np.int64).reshape(real.shape)
        return requantize_tflite(acc, m, s, zero_point.astype(np.int32), qmin, qmax, dtype=out_dtype)
    if ctx.requant_mode != "onnx":
        raise bad_model(ctx, f"requant_mode must be 'onnx' or 'tflite', got {ctx.requant_mode!r}")
    scale = onnx_scale(*num, den=den)
    return requantize_onnx(acc, scale, zero_point.astype(np.int32), qmin, qmax, dtype=out_dtype)


MACS_PER_THREAD = 16_000_000
"""A kernel call runs on ``min(threads, macs // MACS_PER_THREAD)`` threads (at least one) when its
work is known when the session is created. A parallel region costs far more than it saves on the
small layers of edge models: on the 2-core test machine under load, every two-thread call of a
MobileNetV2 convolution (at most 3.5 M multiply-adds) took 0.4-15 ms against 0.1-0.9 ms on one
thread, and even a 29 M multiply-add 3x3 convolution gained nothing."""


def kernel_threads(ctx: OpContext, macs: int | None) -> int:
    """Threads for a kernel call of ``macs`` multiply-adds (None: unknown, the session's threads)."""
    threads = int(ctx.options.get("threads") or 1)
    if macs is None or threads == 1:
        return threads
    return max(1, min(threads, macs // MACS_PER_THREAD))


def static_size(dims: Any) -> int:
    """The product of static dims; a symbolic or unknown dim (a batch size) counts as 1."""
    size = 1
    for d in dims:
        size *= d if isinstance(d, int) and d > 0 else 1
    return size


def try_kernel(
    ctx: OpContext, factory: str, *args: Any, macs: int | None = None, **kwargs: Any
) -> Callable[..., np.ndarray] | None:
    """A fast kernel from :mod:`edgeai.kernels.api`, or None (module missing, no fit, or disabled).

    ``macs``: the multiply-adds of one call when known (see :data:`MACS_PER_THREAD`).
    The kernel contract: NCHW/row-major integer arrays in, exact int32
    accumulators out, the same numbers as :mod:`edgeai.ops.quantized.reference`.
    """
    if not ctx.options.get("int8_kernels", True):
        return None
    try:
        from edgeai.kernels import api
    except ImportError:
        return None
    prepare = getattr(api, factory, None)
    if prepare is None:
        return None
    try:
        fn: Callable[..., np.ndarray] | None = prepare(*args, threads=kernel_threads(ctx, macs), **kwargs)
    except ValueError:  # the kernel API's "no kernel takes these weights" (KernelArgumentError)
        return None
    return fn


def onnx_mode_only(ctx: OpContext) -> None:
    """Refuse ``requant_mode="tflite"`` in an op whose TFLite arithmetic is not implemented."""
    if ctx.requant_mode == "tflite":
        raise unsupported(ctx, "requant_mode='tflite' (only ONNX Runtime's arithmetic is implemented)")


def kernel_requant(ctx: OpContext, num: tuple[Any, ...], den: Any, zero_point: np.ndarray) -> Any:
    """The :class:`edgeai.kernels.api.Requant` for this op's output, or None (no kernel API,
    kernels disabled, or a parameter layout the fused store does not take)."""
    if not ctx.options.get("int8_kernels", True):
        return None
    try:
        from edgeai.kernels.api import Requant
    except ImportError:
        return None
    zp = np.asarray(zero_point)
    if zp.size != 1:
        return None
    if ctx.requant_mode == "tflite":
        real = np.asarray(num[0], dtype=np.float64)
        for v in num[1:]:
            real = real * np.asarray(v, dtype=np.float64)
        real = np.ravel(real / np.asarray(den, dtype=np.float64))
        pairs = [quantize_multiplier(float(r)) for r in real]
        mult = np.array([p[0] for p in pairs], dtype=np.int32)
        shift = np.array([p[1] for p in pairs], dtype=np.int32)
        if mult.size == 1:
            mult, shift = mult.reshape(()), shift.reshape(())
        return Requant("tflite", None, mult, shift, zero_point=int(zp), dtype=zp.dtype)
    scale = onnx_scale(*num, den=den)
    scale = scale.reshape(()) if scale.size == 1 else scale.reshape(-1)
    return Requant("onnx", scale, None, None, zero_point=int(zp), dtype=zp.dtype)


def c_order(x: Any) -> Any:
    """``x`` as a C-contiguous array when it is a strided array (numpy's elementwise results keep
    their input's memory order, and a reader that did not ask for views must get C order)."""
    if type(x) is np.ndarray and not x.flags.c_contiguous:
        return np.ascontiguousarray(x)
    return x
