"""Exceptions of the optimization tools.

They subclass :class:`edgeai.errors.EdgeAIError` (and ``ValueError``) so that
``except EdgeAIError`` catches them. They are meant to move into
``edgeai/errors.py`` (under ``EdgeAIError``); until then they live here and are
re-exported by :mod:`edgeai.optimize`.
"""

from __future__ import annotations

from edgeai.errors import EdgeAIError

__all__ = ["AlreadyQuantizedError", "CalibrationError", "OptimizationError"]


class OptimizationError(EdgeAIError, ValueError):
    """A model or option cannot be optimized as asked."""


class CalibrationError(OptimizationError):
    """The calibration data is empty or does not match the model."""


class AlreadyQuantizedError(OptimizationError):
    """The model holds quantized operators already; quantize the float model instead."""
