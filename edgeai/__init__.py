"""edgeai: one Session API over on-device ML runtimes.

Importing edgeai is cheap: runtimes (ONNX Runtime, numba, LiteRT, torch, ...)
load on first use. Public names are re-exported lazily from private modules.

Example:
    >>> import edgeai
    >>> sess = edgeai.Session(edgeai.demo.model_path())
    >>> [spec.name for spec in sess.inputs]
    ['image']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgeai import errors
from edgeai._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from edgeai import demo, export
    from edgeai.hardware import Device, DeviceKind, devices
    from edgeai.placement import plan
    from edgeai.session import Session
    from edgeai.specs import QuantParams, TensorSpec

__all__ = [
    "Device",
    "DeviceKind",
    "QuantParams",
    "Session",
    "TensorSpec",
    "__version__",
    "demo",
    "devices",
    "errors",
    "export",
    "plan",
]

# name -> module that defines it; imported on first attribute access (PEP 562)
_LAZY: dict[str, str] = {
    "Session": "edgeai.session",
    "Device": "edgeai.hardware",
    "DeviceKind": "edgeai.hardware",
    "devices": "edgeai.hardware",
    "TensorSpec": "edgeai.specs",
    "plan": "edgeai.placement",
    "QuantParams": "edgeai.specs",
}
_LAZY_MODULES = {"demo", "export", "lifecycle", "security", "monitor", "optimize"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        module = importlib.import_module(f"edgeai.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'edgeai' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
