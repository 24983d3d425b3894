"""Fast INT8 GEMM and convolution kernels for the native engine.

The public surface is :mod:`edgeai.kernels.api` (``prepare_gemm``,
``prepare_conv``, ``Requant``, ``cpu_features``, ``set_kernel_path``);
this package imports nothing heavy until one of them is used.

Example:
    >>> import edgeai.kernels as k
    >>> k.kernel_path() in ("amx", "vnni", "avx2", "portable")
    True
"""

from __future__ import annotations

from edgeai._lazy import lazy_attributes

__all__ = [
    "KernelArgumentError",
    "Requant",
    "available_paths",
    "cpu_features",
    "kernel_path",
    "prepare_conv",
    "prepare_gemm",
    "set_kernel_path",
]

_LAZY = {
    "KernelArgumentError": "edgeai.kernels.api",
    "Requant": "edgeai.kernels.api",
    "prepare_conv": "edgeai.kernels.api",
    "prepare_gemm": "edgeai.kernels.api",
    "available_paths": "edgeai.kernels.cpu",
    "cpu_features": "edgeai.kernels.cpu",
    "kernel_path": "edgeai.kernels.cpu",
    "set_kernel_path": "edgeai.kernels.cpu",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
