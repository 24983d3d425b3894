"""Tensor specs: what a model takes and returns.

``TensorSpec`` and ``QuantParams`` are small frozen dataclasses rather than
pydantic models: they are read on every ``Session.run`` validation path and
must cost nothing to access.

Example:
    >>> import numpy as np
    >>> from edgeai.specs import TensorSpec
    >>> spec = TensorSpec("x", np.dtype("float32"), ("N", 3))
    >>> spec.rank, spec.is_dynamic
    (2, True)
    >>> str(spec)
    'x: float32[N, 3]'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Dim = int | str | None
"""One dimension: a fixed size, a symbolic name, or ``None`` when unknown."""

__all__ = ["Dim", "QuantParams", "TensorSpec", "onnx_elem_type_to_dtype", "ort_type_to_dtype"]


@dataclass(frozen=True, slots=True)
class QuantParams:
    """Affine quantization: ``real = scale * (q - zero_point)``.

    ``scale`` and ``zero_point`` are tuples: one element for per-tensor
    quantization, one per channel along ``axis`` for per-axis quantization.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None
    dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype("uint8"))

    @property
    def per_tensor(self) -> bool:
        return len(self.scale) == 1

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Quantize a float array (round half to even, saturate), as ONNX QuantizeLinear."""
        info = np.iinfo(self.dtype)
        scale = np.asarray(self.scale, dtype=np.float32)
        zp = np.asarray(self.zero_point, dtype=np.int32)
        if self.axis is not None and not self.per_tensor:
            shape = [1] * x.ndim
            shape[self.axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        q = np.rint(np.asarray(x, dtype=np.float32) / scale) + zp
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Dequantize to float32, as ONNX DequantizeLinear."""
        scale = np.asarray(self.scale, dtype=np.float32)
        zp = np.asarray(self.zero_point, dtype=np.int32)
        if self.axis is not None and not self.per_tensor:
            shape = [1] * q.ndim
            shape[self.axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Name, dtype and shape of one model input or output.

    Symbolic dimensions keep their name from the model (``"N"``, ``"batch"``);
    unknown ones are ``None``.
    """

    name: str
    dtype: np.dtype[Any]
    shape: tuple[Dim, ...] | None
    quant: QuantParams | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_dynamic(self) -> bool:
        return self.shape is None or any(not isinstance(d, int) for d in self.shape)

    def matches_shape(self, shape: tuple[int, ...]) -> bool:
        if self.shape is None:
            return True
        if len(shape) != len(self.shape):
            return False
        return all(not isinstance(d, int) or d == s for d, s in zip(self.shape, shape))

    def __str__(self) -> str:
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
        q = ""
        if self.quant is not None:
            q = f" (quant scale={_fmt_seq(self.quant.scale)} zp={_fmt_seq(self.quant.zero_point)})"
        return f"{self.name}: {self.dtype}[{dims}]{q}"


def _fmt_seq(values: tuple[Any, ...]) -> str:
    if len(values) == 1:
        return f"{values[0]:g}" if isinstance(values[0], float) else str(values[0])
    return f"[{len(values)} per-channel]"


# ONNX TensorProto element types -> numpy. Kept here (not via onnx.helper) so
# that specs work without importing onnx.
_ONNX_ELEM: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "object",  # string
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
}

_ORT_TYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(uint16)": "uint16",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(string)": "object",
    "tensor(bool)": "bool",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(complex64)": "complex64",
    "tensor(complex128)": "complex128",
}


def onnx_elem_type_to_dtype(elem_type: int) -> np.dtype[Any]:
    """Map an ONNX ``TensorProto`` element type to a numpy dtype.

    Types numpy lacks (bfloat16, float8, int4) map to ``object``; use
    ``ml_dtypes`` for their data.

    >>> onnx_elem_type_to_dtype(1)
    dtype('float32')
    """
    return np.dtype(_ONNX_ELEM.get(elem_type, "object"))


def ort_type_to_dtype(type_str: str) -> np.dtype[Any]:
    """Map an ONNX Runtime type string such as ``'tensor(float)'`` to a numpy dtype.

    >>> ort_type_to_dtype("tensor(uint8)")
    dtype('uint8')
    """
    return np.dtype(_ORT_TYPES.get(type_str, "object"))
