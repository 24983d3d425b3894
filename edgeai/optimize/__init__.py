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

from typing import TYPE_CHECKING

from edgeai._lazy import lazy_attributes
from edgeai.optimize._errors import AlreadyQuantizedError, CalibrationError, OptimizationError

if TYPE_CHECKING:  # pragma: no cover
    from edgeai.optimize.distillation import DistillationResult, distill, distillation_loss
    from edgeai.optimize.evaluation import EvaluationReport, evaluate
    from edgeai.optimize.macs import count_macs, total_macs
    from edgeai.optimize.prune import PruningReport, prune_channels, prune_magnitude
    from edgeai.optimize.quantization import QuantizationResult, quantize, quantize_dynamic, sqnr_db

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
    "quantize": "edgeai.optimize.quantization",
    "quantize_dynamic": "edgeai.optimize.quantization",
    "QuantizationResult": "edgeai.optimize.quantization",
    "sqnr_db": "edgeai.optimize.quantization",
    "count_macs": "edgeai.optimize.macs",
    "total_macs": "edgeai.optimize.macs",
    "prune_channels": "edgeai.optimize.prune",
    "prune_magnitude": "edgeai.optimize.prune",
    "PruningReport": "edgeai.optimize.prune",
    "evaluate": "edgeai.optimize.evaluation",
    "EvaluationReport": "edgeai.optimize.evaluation",
    "distill": "edgeai.optimize.distillation",
    "distillation_loss": "edgeai.optimize.distillation",
    "DistillationResult": "edgeai.optimize.distillation",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
