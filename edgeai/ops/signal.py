"""Audio front-end ops in numpy: DFT, STFT, HannWindow, HammingWindow, BlackmanWindow, MelWeightMatrix.

Complex tensors follow ONNX's layout: a trailing dimension of 2 holds the
real and imaginary parts (1 for a real signal). DFT takes ``axis`` as an
attribute in opset 17 (default 1) and as an optional input from opset 20
(default -2); ``onesided=1`` is the real FFT forward (real input, ``n//2+1``
bins) and the inverse real FFT backward (complex input, a real signal of
``dft_length``, default ``2 * (bins - 1)``). Transforms run on numpy's
pocketfft in the input's precision: float32 stays float32 end to end,
float16 and bfloat16 are computed in float32 and rounded back once.

Windows and the mel filter bank are computed in float64 and cast once to
``output_datatype`` (integer types truncate, as ONNX's Cast does).

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> DFT = lookup("DFT", "", 20)
    >>> x = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 4, 1)
    >>> DFT(OpContext(node_name="d", op_type="DFT", opset=20, attrs={"onesided": 1})).run(x)[0][0]
    array([[10.,  0.],
           [-2.,  2.],
           [-2.,  0.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext, register
from edgeai.ops.elementwise import is_float

__all__ = ["dft", "mel_weight_matrix", "stft", "window"]


def _fail(ctx: OpContext, message: str) -> InferenceError:
    return InferenceError(f"{ctx.op_type} node {ctx.node_name!r} (opset {ctx.opset}): {message}")


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for float32/float16/bfloat16, float64 for float64: numpy's FFT runs in both."""
    if dtype == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _scalar_int(ctx: OpContext, value: Any, name: str) -> int:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise _fail(ctx, f"{name} must be one integer, got shape {arr.shape} of {arr.dtype}")
    return int(arr.reshape(-1)[0])


def _onnx_dtype(ctx: OpContext, code: int) -> np.dtype:
    from onnx.helper import tensor_dtype_to_np_dtype

    try:
        dtype = np.dtype(tensor_dtype_to_np_dtype(int(code)))
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(ctx, f"output_datatype={code} is not an ONNX tensor type") from exc
    if not (is_float(dtype) or dtype.kind in "iu"):
        raise _fail(ctx, f"output_datatype={code} ({dtype}) is not a numeric type; use a float or integer type")
    return dtype


# --------------------------------------------------------------------------- DFT


def dft(
    x: np.ndarray, axis: int, length: int | None = None, *, inverse: bool = False, onesided: bool = False
) -> np.ndarray:
    """The ONNX DFT of ``x`` (``[..., 1]`` real or ``[..., 2]`` complex) along ``axis``.

    Returns ``[..., 2]`` (``[..., 1]`` for the inverse real FFT) in ``x``'s dtype;
    ``axis`` is already normalized to ``[0, x.ndim - 2]``. Raises ``ValueError``
    for a layout ONNX does not define.

    >>> dft(np.array([[1.0], [1.0]], np.float32), axis=0)
    array([[2., 0.],
           [0., 0.]], dtype=float32)
    """
    parts = x.shape[-1]
    if parts not in (1, 2):
        raise ValueError(f"the last dimension must be 1 (real) or 2 (complex), got {parts}")
    if not 0 <= axis <= x.ndim - 2:
        raise ValueError(f"axis {axis} is not a signal axis of a rank-{x.ndim} input")
    work = x.astype(_compute_dtype(x.dtype), copy=False)
    signal = work[..., 0] if parts == 1 else work[..., 0] + 1j * work[..., 1]
    n = signal.shape[axis]
    if length is None:
        length = 2 * (n - 1) if inverse and onesided else n
    if length < 1:
        raise ValueError(f"dft_length must be at least 1, got {length}")
    if inverse and onesided:
        if parts != 2:
            raise ValueError("the inverse real FFT (inverse=1, onesided=1) needs a complex input (last dim 2)")
        real = np.fft.irfft(signal, n=length, axis=axis)
        return real[..., None].astype(x.dtype, copy=False)
    if inverse:
        out = np.fft.ifft(signal, n=length, axis=axis)
    elif onesided:
        if parts != 1:
            raise ValueError("a one-sided forward DFT (onesided=1) needs a real input (last dim 1)")
        out = np.fft.rfft(signal, n=length, axis=axis)
    else:
        out = np.fft.fft(signal, n=length, axis=axis)
    return np.stack((out.real, out.imag), axis=-1).astype(x.dtype, copy=False)


class _DFTBase(Op):
    axis_from_input: ClassVar[bool] = True

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._inverse = bool(ctx.attr("inverse", 0))
        self._onesided = bool(ctx.attr("onesided", 0))
        self._axis_attr = int(ctx.attr("axis", 1))

    def run(
        self, x: np.ndarray, dft_length: np.ndarray | None = None, axis: np.ndarray | None = None
    ) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if not is_float(x.dtype):
            raise _fail(self.ctx, f"input must be a float tensor, got {x.dtype}")
        if type(self).axis_from_input:
            ax = -2 if axis is None else _scalar_int(self.ctx, axis, "axis")
        else:
            ax = self._axis_attr
        rank = x.ndim
        if not (-rank <= ax <= -2 or 0 <= ax <= rank - 2):
            raise _fail(
                self.ctx,
                f"axis {ax} is invalid for an input of shape {x.shape}: it must name a signal axis, "
                f"in [{-rank}, -2] or [0, {rank - 2}] (the last dimension holds real/imaginary parts)",
            )
        length = None if dft_length is None else _scalar_int(self.ctx, dft_length, "dft_length")
        try:
            return (dft(x, ax % rank, length, inverse=self._inverse, onesided=self._onesided),)
        except ValueError as exc:
            raise _fail(self.ctx, f"{exc} (input shape {x.shape})") from None


@register("DFT", since=17)
class DFT17(_DFTBase):
    """DFT-17: ``axis`` is an attribute (default 1)."""

    axis_from_input = False


@register("DFT", since=20)
class DFT20(_DFTBase):
    """DFT-20: ``axis`` is an optional int64 input (default -2)."""

    axis_from_input = True


# --------------------------------------------------------------------------- STFT


def stft(
    signal: np.ndarray, frame_step: int, window: np.ndarray | None, frame_length: int, *, onesided: bool = True
) -> np.ndarray:
    """Frames of ``signal`` (``[batch, length, 1|2]``), windowed and transformed: ``[batch, frames, bins, 2]``.

    >>> stft(np.ones((1, 4, 1), np.float32), 2, None, 2)[0, :, :, 0]
    array([[2., 0.],
           [2., 0.]], dtype=float32)
    """
    length = signal.shape[1]
    frames = (length - frame_length) // frame_step + 1
    work = signal.astype(_compute_dtype(signal.dtype), copy=False)
    # [batch, length - L + 1, parts, L] -> every frame_step-th start -> [batch, frames, L, parts]
    view = np.lib.stride_tricks.sliding_window_view(work, frame_length, axis=1)[:, ::frame_step][:, :frames]
    framed = np.moveaxis(view, -1, 2)
    if window is not None:
        framed = framed * window.astype(work.dtype, copy=False)[:, None]
    return dft(framed, 2, frame_length, onesided=onesided).astype(signal.dtype, copy=False)


@register("STFT", since=17)
class STFT(Op):
    """STFT-17: frames of ``frame_length`` every ``frame_step`` samples, each windowed and DFT'd."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._onesided = bool(ctx.attr("onesided", 1))

    def run(
        self,
        signal: np.ndarray,
        frame_step: np.ndarray,
        window: np.ndarray | None = None,
        frame_length: np.ndarray | None = None,
    ) -> tuple[np.ndarray]:
        signal = np.asarray(signal)
        if signal.ndim != 3 or signal.shape[-1] not in (1, 2) or not is_float(signal.dtype):
            raise _fail(
                self.ctx,
                f"signal must be a float tensor [batch, length, 1 or 2], got shape {signal.shape} of {signal.dtype}",
            )
        if self._onesided and signal.shape[-1] == 2:
            raise _fail(self.ctx, "onesided=1 needs a real signal (last dim 1); set onesided=0 for complex input")
        step = _scalar_int(self.ctx, frame_step, "frame_step")
        if step < 1:
            raise _fail(self.ctx, f"frame_step must be at least 1, got {step}")
        if window is not None:
            window = np.asarray(window)
            if window.ndim != 1:
                raise _fail(self.ctx, f"window must be 1-D, got shape {window.shape}")
        if frame_length is not None:
            flen = _scalar_int(self.ctx, frame_length, "frame_length")
            if window is not None and window.shape[0] != flen:
                raise _fail(self.ctx, f"window has {window.shape[0]} samples but frame_length is {flen}")
        else:
            flen = window.shape[0] if window is not None else signal.shape[1]
        if not 1 <= flen <= signal.shape[1]:
            raise _fail(self.ctx, f"frame_length {flen} must be in [1, signal length {signal.shape[1]}]")
        return (stft(signal, step, window, flen, onesided=self._onesided),)


# --------------------------------------------------------------------------- windows

_COSINE_TERMS: dict[str, tuple[float, ...]] = {
    # w[n] = sum_k (-1)^k a_k cos(2 pi k n / N)
    "HannWindow": (0.5, 0.5),
    "HammingWindow": (25.0 / 46.0, 21.0 / 46.0),
    "BlackmanWindow": (0.42, 0.5, 0.08),
}


def window(kind: str, size: int, *, periodic: bool = True, dtype: Any = np.float32) -> np.ndarray:
    """A generalized cosine window (``"HannWindow"``, ``"HammingWindow"``, ``"BlackmanWindow"``).

    Periodic windows use ``N = size`` (for spectral analysis), symmetric ones ``N = size - 1``
    (a symmetric window of one sample is ``[1]``, where ONNX Runtime gives NaN).

    >>> window("HannWindow", 4)
    array([0. , 0.5, 1. , 0.5], dtype=float32)
    """
    terms = _COSINE_TERMS[kind]
    denom = size if periodic else size - 1
    if denom <= 0:  # 0/0 for a symmetric window of one sample: 1, as numpy, scipy and torch give
        return np.ones(max(size, 0), np.float64).astype(dtype)
    phase = 2.0 * np.pi * np.arange(size, dtype=np.float64) / denom
    out = np.zeros(size, np.float64)
    for k, a in enumerate(terms):
        out += (-1) ** k * a * np.cos(k * phase)
    return out.astype(dtype)


class _Window(Op):
    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._periodic = bool(ctx.attr("periodic", 1))
        self._dtype = _onnx_dtype(ctx, ctx.attr("output_datatype", 1))

    def run(self, size: np.ndarray) -> tuple[np.ndarray]:
        n = _scalar_int(self.ctx, size, "size")
        if n < 0:
            raise _fail(self.ctx, f"size must not be negative, got {n}")
        return (window(self.ctx.op_type, n, periodic=self._periodic, dtype=self._dtype),)


@register("HannWindow", since=17)
class HannWindow(_Window):
    """``0.5 - 0.5 cos(2 pi n / N)``."""


@register("HammingWindow", since=17)
class HammingWindow(_Window):
    """``25/46 - 21/46 cos(2 pi n / N)``."""


@register("BlackmanWindow", since=17)
class BlackmanWindow(_Window):
    """``0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)``."""


# --------------------------------------------------------------------------- MelWeightMatrix


def mel_weight_matrix(
    num_mel_bins: int, dft_length: int, sample_rate: int, lower_hz: float, upper_hz: float
) -> np.ndarray:
    """The ``[dft_length // 2 + 1, num_mel_bins]`` triangular mel filter bank of ONNX (float64).

    Band edges are spaced evenly on ``mel(f) = 2595 log10(1 + f / 700)`` and
    snapped down to DFT bins; each triangle peaks at 1.

    >>> mel_weight_matrix(2, 8, 8000, 0.0, 4000.0).shape
    (5, 2)
    """
    bins = dft_length // 2 + 1
    low_mel = 2595.0 * np.log1p(lower_hz / 700.0) / np.log(10.0)
    high_mel = 2595.0 * np.log1p(upper_hz / 700.0) / np.log(10.0)
    step = (high_mel - low_mel) / (num_mel_bins + 2)
    mels = np.arange(num_mel_bins + 2, dtype=np.float64) * step + low_mel
    hz = 700.0 * np.expm1(mels / 2595.0 * np.log(10.0))
    edges = np.floor_divide((dft_length + 1) * hz, float(sample_rate)).astype(np.int64)
    if edges[0] < 0 or edges[-1] >= bins:
        raise ValueError(
            f"the band edges fall on DFT bins {edges[0]}..{edges[-1]}, outside [0, {bins - 1}]: "
            f"keep 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2"
        )
    out = np.zeros((bins, num_mel_bins), np.float64)
    for i in range(num_mel_bins):
        left, center, right = int(edges[i]), int(edges[i + 1]), int(edges[i + 2])
        if center == left:
            out[center, i] = 1.0
        else:
            j = np.arange(left, center + 1)
            out[j, i] = (j - left) / (center - left)
        if right > center:
            j = np.arange(center, right)
            out[j, i] = (right - j) / (right - center)
    return out


@register("MelWeightMatrix", since=17)
class MelWeightMatrix(Op):
    """MelWeightMatrix-17: a filter bank that right-multiplies a ``[frames, bins]`` spectrogram."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._dtype = _onnx_dtype(ctx, ctx.attr("output_datatype", 1))

    def run(
        self,
        num_mel_bins: np.ndarray,
        dft_length: np.ndarray,
        sample_rate: np.ndarray,
        lower_edge_hertz: np.ndarray,
        upper_edge_hertz: np.ndarray,
    ) -> tuple[np.ndarray]:
        mels = _scalar_int(self.ctx, num_mel_bins, "num_mel_bins")
        length = _scalar_int(self.ctx, dft_length, "dft_length")
        rate = _scalar_int(self.ctx, sample_rate, "sample_rate")
        low = float(np.asarray(lower_edge_hertz, np.float64).reshape(-1)[0])
        high = float(np.asarray(upper_edge_hertz, np.float64).reshape(-1)[0])
        if mels < 1 or length < 1 or rate < 1:
            raise _fail(
                self.ctx,
                f"num_mel_bins ({mels}), dft_length ({length}) and sample_rate ({rate}) must be positive",
            )
        if not 0.0 <= low < high:
            raise _fail(self.ctx, f"need 0 <= lower_edge_hertz < upper_edge_hertz, got {low} and {high}")
        try:
            out = mel_weight_matrix(mels, length, rate, low, high)
        except ValueError as exc:
            raise _fail(self.ctx, str(exc)) from None
        return (out.astype(self._dtype),)
