"""A/B tests and staged rollouts: deterministic bucketing, per-arm metrics, automatic rollback.

A device's bucket is a number in [0, 100) from SHA-256 of the experiment name
and the device id: the same device lands in the same arm on every run and
every machine, and different experiments bucket independently. Arms take
consecutive ranges in the order given, so listing the candidate first makes a
staged rollout monotonic: raising its share from 5% to 20% keeps every device
that already had it.

Example:
    >>> from edgeai.lifecycle import Rollout
    >>> rollout = Rollout.staged(10, experiment="digits-2.0")
    >>> rollout.assign("device-42") in ("candidate", "control")
    True
    >>> rollout.record("candidate", latency_ms=4.2, confidence=0.93)
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ArmMetrics", "ArmSummary", "RegressionPolicy", "Rollout", "RolloutDecision", "bucket"]


def bucket(device_id: str, *, experiment: str = "") -> float:
    """The device's bucket in [0, 100) for ``experiment``; stable across runs and machines."""
    digest = hashlib.sha256(f"{experiment}\x00{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 * 100.0


class ArmSummary(BaseModel):
    """Aggregated metrics of one arm."""

    model_config = ConfigDict(frozen=True)
    arm: str
    runs: int
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    mean_confidence: float | None


class ArmMetrics:
    """Latency, error and confidence records of one arm (a bounded window of latencies)."""

    def __init__(self, arm: str, window: int = 10_000) -> None:
        self.arm = arm
        self._latency: deque[float] = deque(maxlen=window)
        self._runs = 0
        self._errors = 0
        self._conf_sum = 0.0
        self._conf_n = 0
        self._lock = threading.Lock()

    def record(self, latency_ms: float | None = None, *, error: bool = False, confidence: float | None = None) -> None:
        with self._lock:
            self._runs += 1
            self._errors += bool(error)
            if latency_ms is not None and not error:
                self._latency.append(float(latency_ms))
            if confidence is not None and not error:
                self._conf_sum += float(confidence)
                self._conf_n += 1

    def summary(self) -> ArmSummary:
        with self._lock:
            lat = np.asarray(self._latency, dtype=np.float64)
            p50, p90 = (float(v) for v in np.percentile(lat, [50, 90])) if lat.size else (None, None)
            return ArmSummary(
                arm=self.arm,
                runs=self._runs,
                errors=self._errors,
                error_rate=self._errors / self._runs if self._runs else 0.0,
                latency_p50_ms=p50,
                latency_p90_ms=p90,
                mean_confidence=self._conf_sum / self._conf_n if self._conf_n else None,
            )


class RegressionPolicy(BaseModel):
    """When a candidate arm counts as regressed against control.

    The candidate is rolled back when, with at least ``min_runs`` in both arms,
    its p90 latency is more than ``max_latency_increase`` (relative) above
    control's, its error rate more than ``max_error_rate_increase`` (absolute)
    above, or its mean confidence more than ``max_confidence_drop`` (absolute) below.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_latency_increase: float = Field(default=0.20, ge=0)
    max_error_rate_increase: float = Field(default=0.01, ge=0)
    max_confidence_drop: float = Field(default=0.05, ge=0)
    min_runs: int = Field(default=100, ge=1)


class RolloutDecision(BaseModel):
    """The outcome of comparing the candidate arm with control."""

    rollback: bool
    ready: bool = Field(description="both arms have enough runs to judge")
    reasons: list[str] = Field(default_factory=list)
    control: ArmSummary
    candidate: ArmSummary


class Rollout:
    """Arms with percentages (summing to 100), deterministic assignment and per-arm metrics.

    Args:
        arms: arm name to percentage, in bucket order.
        experiment: salts the bucketing so experiments are independent.
    """

    def __init__(self, arms: Mapping[str, float], *, experiment: str) -> None:
        if not arms:
            raise ValueError("a rollout needs at least one arm")
        if any(p < 0 for p in arms.values()) or abs(sum(arms.values()) - 100.0) > 1e-9:
            raise ValueError(f"arm percentages must be >= 0 and sum to 100, got {dict(arms)}")
        self.experiment = experiment
        self.arms = dict(arms)
        self.metrics = {arm: ArmMetrics(arm) for arm in self.arms}
        self.rolled_back = False

    @classmethod
    def staged(cls, candidate_percent: float, *, experiment: str) -> Rollout:
        """``candidate`` on ``candidate_percent``% of devices, ``control`` on the rest."""
        return cls({"candidate": candidate_percent, "control": 100.0 - candidate_percent}, experiment=experiment)

    def assign(self, device_id: str) -> str:
        """The arm of ``device_id`` (``control`` for everyone once rolled back)."""
        if self.rolled_back and "control" in self.arms:
            return "control"
        b = bucket(device_id, experiment=self.experiment)
        edge = 0.0
        last = ""
        for arm, pct in self.arms.items():
            edge += pct
            if pct > 0:
                last = arm
            if b < edge and pct > 0:
                return arm
        return last  # float rounding at the top edge

    def record(
        self,
        arm: str,
        latency_ms: float | None = None,
        *,
        error: bool = False,
        confidence: float | None = None,
    ) -> None:
        """Record one run of ``arm``."""
        if arm not in self.metrics:
            raise KeyError(f"unknown arm {arm!r}; arms: {list(self.arms)}")
        self.metrics[arm].record(latency_ms, error=error, confidence=confidence)

    def evaluate(
        self,
        policy: RegressionPolicy | None = None,
        *,
        control: str = "control",
        candidate: str = "candidate",
    ) -> RolloutDecision:
        """Compare ``candidate`` with ``control`` under ``policy``."""
        policy = policy or RegressionPolicy()
        c, n = self.metrics[control].summary(), self.metrics[candidate].summary()
        ready = c.runs >= policy.min_runs and n.runs >= policy.min_runs
        reasons: list[str] = []
        if ready:
            if c.latency_p90_ms and n.latency_p90_ms is not None:
                rise = n.latency_p90_ms / c.latency_p90_ms - 1.0
                if rise > policy.max_latency_increase:
                    reasons.append(
                        f"p90 latency {n.latency_p90_ms:.3f} ms is {rise:+.0%} vs control "
                        f"{c.latency_p90_ms:.3f} ms (limit {policy.max_latency_increase:+.0%})"
                    )
            if n.error_rate - c.error_rate > policy.max_error_rate_increase:
                reasons.append(
                    f"error rate {n.error_rate:.2%} vs control {c.error_rate:.2%} "
                    f"(limit +{policy.max_error_rate_increase:.2%})"
                )
            if (
                c.mean_confidence is not None
                and n.mean_confidence is not None
                and c.mean_confidence - n.mean_confidence > policy.max_confidence_drop
            ):
                reasons.append(
                    f"mean confidence {n.mean_confidence:.3f} vs control {c.mean_confidence:.3f} "
                    f"(limit -{policy.max_confidence_drop:.3f})"
                )
        return RolloutDecision(rollback=bool(reasons), ready=ready, reasons=reasons, control=c, candidate=n)

    def enforce(
        self,
        policy: RegressionPolicy | None = None,
        *,
        on_rollback: Callable[[RolloutDecision], Any] | None = None,
    ) -> RolloutDecision:
        """Evaluate; on regression send every device to control and call ``on_rollback`` once.

        ``on_rollback`` is typically ``lambda d: store.rollback()``.
        """
        decision = self.evaluate(policy)
        if decision.rollback and not self.rolled_back:
            self.rolled_back = True
            if on_rollback is not None:
                on_rollback(decision)
        return decision
