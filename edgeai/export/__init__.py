"""Export a ``torch.nn.Module`` to an on-device format, checked before it is returned.

:func:`export` writes the model as ONNX, an ExecuTorch ``.pte`` (XNNPACK
lowered, float or int8), a Core ML ``.mlpackage`` (ML program) or a LiteRT
``.tflite`` (where a converter is installed), then opens the result with
:class:`edgeai.Session` and compares its outputs with the torch model's on the
example inputs. A file that does not load or does not agree is not left
behind: the error says by how much it missed.

torch and the converters are imported only when :func:`export` runs.

Example:
    >>> import torch, edgeai.export
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    >>> result = edgeai.export.export(model, (torch.randn(1, 4),), "onnx", "/tmp/doc_linear.onnx")
    >>> result.path.name, result.max_abs_error < 1e-5
    ('doc_linear.onnx', True)
"""

from __future__ import annotations

import sys
import types
from typing import Any

from edgeai.export._api import FORMATS, ExportResult, export

__all__ = ["FORMATS", "ExportResult", "export"]


class _CallableModule(types.ModuleType):
    """``edgeai.export`` is both this package and the function: ``import edgeai.export``
    binds the package to ``edgeai.export``, so the package itself is callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> ExportResult:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
