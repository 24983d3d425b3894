"""Exceptions of the optimization tools, re-exported from :mod:`edgeai.errors`."""

from __future__ import annotations

from edgeai.errors import AlreadyQuantizedError, CalibrationError, OptimizationError

__all__ = ["AlreadyQuantizedError", "CalibrationError", "OptimizationError"]
