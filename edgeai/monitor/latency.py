"""Latency windows and their percentiles.

Example:
    >>> from edgeai.monitor.latency import LatencyWindow
    >>> w = LatencyWindow(capacity=100)
    >>> for ms in range(1, 101):
    ...     w.add(ms / 1000)
    >>> w.stats().p50_ms
    50.5
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = ["LatencyStats", "LatencyWindow"]


class LatencyStats(BaseModel):
    """Percentiles of one stage's latency over the window, in milliseconds."""

    model_config = ConfigDict(frozen=True)
    count: int
    total: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class LatencyWindow:
    """The last ``capacity`` durations (seconds) of one stage; O(1) to add.

    ``capacity`` is rounded up to a power of two so that adding is one masked
    list store and one increment, cheap enough for every inference;
    percentiles are computed when asked for. Under concurrent writers an
    occasional sample may be overwritten; counts stay close.
    """

    __slots__ = ("_buf", "_mask", "capacity", "total")

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = 1 << (capacity - 1).bit_length()
        self._mask = self.capacity - 1
        self._buf: list[float] = [0.0] * self.capacity
        self.total = 0

    def add(self, seconds: float) -> None:
        n = self.total
        self._buf[n & self._mask] = seconds
        self.total = n + 1

    def values_ms(self) -> np.ndarray:
        """The window's values in milliseconds (oldest first once it has wrapped)."""
        n = self.total
        if n <= self.capacity:
            vals = self._buf[:n]
        else:
            i = n & self._mask
            vals = self._buf[i:] + self._buf[:i]
        return np.asarray(vals, dtype=np.float64) * 1e3

    def stats(self) -> LatencyStats | None:
        """Percentiles over the window (``None`` before the first sample)."""
        ms = self.values_ms()
        if ms.size == 0:
            return None
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return LatencyStats(
            count=int(ms.size),
            total=self.total,
            mean_ms=float(ms.mean()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            max_ms=float(ms.max()),
        )
