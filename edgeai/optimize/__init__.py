"""Model optimization: INT8 quantization, pruning, distillation, evaluation.

Everything here works on ONNX models (path, bytes or ``onnx.ModelProto``) and
returns pydantic reports. Names load on first use, so importing this package
is cheap.

Example:
    >>> import edgeai
    >>> from edgeai import optimize
    >>> optimize.count_macs(edgeai.demo.model_path())["/head/Gemm"]
    1280
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgeai.optimize._errors import AlreadyQuantizedError, CalibrationError, OptimizationError

if TYPE_CHECKING:  # pragma: no cover
    from edgeai.optimize.distill import DistillationResult, distill, distillation_loss
    from edgeai.optimize.evaluate import EvaluationReport, evaluate
    from edgeai.optimize.macs import count_macs, total_macs
    from edgeai.optimize.prune import PruningReport, prune_channels, prune_magnitude
    from edgeai.optimize.quantize import QuantizationResult, quantize, quantize_dynamic, sqnr_db

__all__ = [
    "AlreadyQuantizedError",
    "CalibrationError",
    "DistillationResult",
    "EvaluationReport",
    "OptimizationError",
    "PruningReport",
    "QuantizationResult",
    "count_macs",
    "distill",
    "distillation_loss",
    "evaluate",
    "prune_channels",
    "prune_magnitude",
    "quantize",
    "quantize_dynamic",
    "sqnr_db",
    "total_macs",
]

_LAZY: dict[str, str] = {
    "quantize": "edgeai.optimize.quantize",
    "quantize_dynamic": "edgeai.optimize.quantize",
    "QuantizationResult": "edgeai.optimize.quantize",
    "sqnr_db": "edgeai.optimize.quantize",
    "count_macs": "edgeai.optimize.macs",
    "total_macs": "edgeai.optimize.macs",
    "prune_channels": "edgeai.optimize.prune",
    "prune_magnitude": "edgeai.optimize.prune",
    "PruningReport": "edgeai.optimize.prune",
    "evaluate": "edgeai.optimize.evaluate",
    "EvaluationReport": "edgeai.optimize.evaluate",
    "distill": "edgeai.optimize.distill",
    "distillation_loss": "edgeai.optimize.distill",
    "DistillationResult": "edgeai.optimize.distill",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgeai.optimize' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
