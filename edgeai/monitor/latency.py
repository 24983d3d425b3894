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

    Adding is a list store and two integer updates, cheap enough for every
    inference; percentiles are computed when asked for. Under concurrent
    writers an occasional sample may be overwritten; counts stay close.
    """

    __slots__ = ("_buf", "_i", "capacity", "total")

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._buf: list[float] = []
        self._i = 0
        self.total = 0

    def add(self, seconds: float) -> None:
        if self.total < self.capacity:
            self._buf.append(seconds)
        else:
            self._buf[self._i] = seconds
        self._i = (self._i + 1) % self.capacity
        self.total += 1

    def values_ms(self) -> np.ndarray:
        return np.asarray(self._buf, dtype=np.float64) * 1e3

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
