"""Backends: one module per runtime, one small protocol, one registry.

A backend module ``edgeai/backends/<name>.py`` defines ``BACKEND``, an object
with the :class:`Backend` protocol below. Adding a runtime is adding a module
and one line in ``_MODULES``. Modules are imported only when asked for, and a
backend's runtime only inside its methods, so ``import edgeai`` stays light.

Example:
    >>> from edgeai.backends import get_backend
    >>> get_backend("onnxruntime").available()
    True
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from edgeai.formats import ModelSource
    from edgeai.hardware import Device
    from edgeai.placement.report import PlacementReport
    from edgeai.specs import TensorSpec

__all__ = [
    "Backend",
    "Executable",
    "Support",
    "available_backends",
    "backend_names",
    "get_backend",
]

# Order matters only for listing; selection is by device kind priority.
_MODULES: dict[str, str] = {
    "onnxruntime": "edgeai.backends.onnxruntime",
    "native": "edgeai.backends.native",
    "litert": "edgeai.backends.litert",
    "executorch": "edgeai.backends.executorch",
    "coreml": "edgeai.backends.coreml",
}


@dataclass(frozen=True)
class Support:
    """A backend's answer to "can you run this node on this device?"; falsy when not."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@runtime_checkable
class Executable(Protocol):
    """A model (or partition) compiled for one device, ready to run."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    device: Device

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        """Run on ``feeds``; return the outputs named (all, in model order, by default)."""
        ...

    def placement(self) -> PlacementReport:
        """Where every node ran, from the runtime's own record."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """The contract every runtime module fulfils."""

    name: str
    formats: tuple[str, ...]
    """Model formats this backend can load whole (``"onnx"``, ``"tflite"``, ...)."""

    def available(self) -> bool:
        """True when the runtime is importable. Must not raise."""
        ...

    def devices(self) -> list[Device]:
        """The devices this runtime exposes on this machine."""
        ...

    def supports(self, node: Any, device: Device) -> Support:
        """Whether ``device`` can run ``node``, with the reason when it cannot."""
        ...

    def load(self, source: ModelSource, device: Device, options: dict[str, Any]) -> Executable:
        """Compile a whole model for ``device``."""
        ...


_instances: dict[str, Backend] = {}


def backend_names() -> list[str]:
    """Names of every backend edgeai knows, installed or not."""
    return list(_MODULES)


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (its module imported on first use)."""
    if name not in _instances:
        if name not in _MODULES:
            raise KeyError(f"unknown backend {name!r}; known: {', '.join(_MODULES)}")
        try:
            module = importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name == _MODULES[name]:
                raise KeyError(f"backend {name!r} is not part of this edgeai build") from exc
            raise
        _instances[name] = module.BACKEND
    return _instances[name]


def available_backends() -> list[Backend]:
    """The backends whose runtime is installed."""
    found = []
    for name in _MODULES:
        try:
            backend = get_backend(name)
        except KeyError:
            continue
        if backend.available():
            found.append(backend)
    return found
