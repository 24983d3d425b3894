"""Lazy imports of optional or heavy dependencies, with an actionable error."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgeai.errors import MissingDependencyError

# module name -> (pip extra, human name)
_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "PyTorch"),
    "executorch": ("executorch", "ExecuTorch"),
    "coremltools": ("coreml", "coremltools"),
    "ai_edge_litert": ("litert", "LiteRT (ai-edge-litert)"),
    "tflite_runtime": ("tflite", "tflite-runtime"),
    "prometheus_client": ("monitor", "prometheus-client"),
    "opentelemetry": ("otel", "OpenTelemetry"),
    "matplotlib": ("plot", "matplotlib"),
}


def import_optional(name: str, *, purpose: str = "") -> ModuleType:
    """Import ``name`` or raise :class:`MissingDependencyError` naming the pip command.

    Example:
        >>> np = import_optional("numpy")
        >>> np.__name__
        'numpy'
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        extra, human = _EXTRAS.get(top, ("", top))
        cmd = f'pip install "edgeai[{extra}]"' if extra else f"pip install {top}"
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{human} is needed{why} but is not installed ({exc}). Install it with: {cmd}"
        ) from exc
