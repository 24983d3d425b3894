"""Quantization parameters: integer ranges and broadcasting of scales/zero points.

ONNX quantization parameters come in three layouts:

* per tensor: a scalar (or a one-element 1-D tensor),
* per axis: a 1-D tensor with one entry per slice along ``axis``,
* blocked (opset 21): a tensor of the input's rank whose ``axis`` dimension is
  ``ceil(shape[axis] / block_size)``; every entry covers ``block_size``
  consecutive elements along ``axis``.

:func:`expand_param` turns any of them into an array that broadcasts
against the input.

Example:
    >>> import numpy as np
    >>> from edgeai.quant.params import expand_param, qrange
    >>> qrange(np.dtype("int8"))
    (-128, 127)
    >>> expand_param(np.array([1.0, 2.0]), (2, 3), axis=0).shape
    (2, 1)
    >>> expand_param(np.array([[1.0], [2.0]]), (2, 4), axis=1, block_size=4).shape
    (2, 4)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.errors import ModelFormatError

__all__ = ["expand_param", "is_int4", "normalize_axis", "qrange"]

_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1),
    "int4": (-8, 7),
    "uint4": (0, 15),
    "int2": (-2, 1),
    "uint2": (0, 3),
}


def qrange(dtype: Any) -> tuple[int, int]:
    """``(qmin, qmax)`` of an integer quantized type (numpy, or ml_dtypes int4/uint4/int2/uint2)."""
    name = np.dtype(dtype).name
    if name not in _RANGES:
        raise ModelFormatError(f"{name} is not a supported quantized integer type; use one of {', '.join(_RANGES)}")
    return _RANGES[name]


def is_int4(dtype: Any) -> bool:
    return np.dtype(dtype).name in ("int4", "uint4")


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ModelFormatError(f"{what}={axis} is out of range for a tensor of rank {rank}")
    return axis % max(rank, 1)


def expand_param(param: np.ndarray, x_shape: tuple[int, ...], axis: int = 1, block_size: int = 0) -> np.ndarray:
    """Shape a scale or zero point so that it broadcasts against an input of ``x_shape``."""
    p = np.asarray(param)
    rank = len(x_shape)
    if p.size == 1 and p.ndim <= 1 and block_size == 0:
        return p.reshape(())
    if block_size > 0:
        ax = normalize_axis(axis, rank)
        if p.ndim != rank:
            raise ModelFormatError(
                f"blocked quantization needs scale/zero point of rank {rank} (the input's), got shape {p.shape}"
            )
        want = -(-x_shape[ax] // block_size)
        if p.shape[ax] != want or any(p.shape[d] != x_shape[d] for d in range(rank) if d != ax):
            raise ModelFormatError(
                f"blocked quantization: scale/zero point shape {p.shape} does not match input {x_shape} "
                f"with block_size={block_size} on axis {ax} (expected {want} blocks)"
            )
        return np.repeat(p, block_size, axis=ax)[tuple(slice(0, n) for n in x_shape)]
    if p.ndim != 1:
        raise ModelFormatError(
            f"per-axis scale/zero point must be 1-D, got shape {p.shape}; use block_size for blocked quantization"
        )
    ax = normalize_axis(axis, rank)
    if p.shape[0] != x_shape[ax]:
        raise ModelFormatError(
            f"per-axis scale/zero point has {p.shape[0]} entries but the input has {x_shape[ax]} along axis {ax}"
        )
    shape = [1] * rank
    shape[ax] = -1
    return p.reshape(shape)
