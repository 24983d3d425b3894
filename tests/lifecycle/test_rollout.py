"""A/B bucketing: stable, proportional, monotonic for staged rollouts; regression rollback."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from edgeai.lifecycle import RegressionPolicy, Rollout, bucket

IDS = [f"device-{i:05d}" for i in range(20_000)]


def test_bucket_matches_its_definition_and_pinned_values() -> None:
    # The definition (docs/lifecycle.md): SHA-256(experiment NUL device) first 8 bytes / 2**64 * 100.
    digest = hashlib.sha256(b"exp-1\x00device-00042").digest()
    assert bucket("device-00042", experiment="exp-1") == int.from_bytes(digest[:8], "big") / 2**64 * 100
    # Pinned values: changing the function would silently reshuffle every fleet.
    assert bucket("device-00042", experiment="exp-1") == pytest.approx(0.3355440855574186, abs=1e-12)
    assert bucket("a") == pytest.approx(0.8459656010795119, abs=1e-12)
    assert bucket("rpi-7f3a", experiment="digits-2.0") == pytest.approx(47.15642323444284, abs=1e-12)


def test_bucketing_is_stable_across_processes() -> None:
    code = (
        "from edgeai.lifecycle import Rollout\n"
        "r = Rollout({'a': 30, 'b': 70}, experiment='exp-2')\n"
        "print(''.join(r.assign(f'device-{i:05d}') for i in range(500)))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    here = Rollout({"a": 30, "b": 70}, experiment="exp-2")
    assert other.stdout.strip() == "".join(here.assign(d) for d in IDS[:500])


def test_shares_match_percentages() -> None:
    rollout = Rollout({"a": 10, "b": 25, "c": 65}, experiment="exp-3")
    arms = [rollout.assign(d) for d in IDS]
    n = len(IDS)
    for arm, pct in rollout.arms.items():
        share = arms.count(arm) / n
        sigma = np.sqrt(pct / 100 * (1 - pct / 100) / n)
        assert abs(share - pct / 100) < 5 * sigma, (arm, share)


def test_staged_rollout_only_adds_devices() -> None:
    previous: set[str] = set()
    for pct in (1, 5, 20, 50, 100):
        rollout = Rollout.staged(pct, experiment="digits-2.0")
        now = {d for d in IDS if rollout.assign(d) == "candidate"}
        assert previous <= now
        previous = now
    assert len(previous) == len(IDS)


def test_experiments_bucket_independently() -> None:
    a = np.array([bucket(d, experiment="x") < 50 for d in IDS])
    b = np.array([bucket(d, experiment="y") < 50 for d in IDS])
    agreement = (a == b).mean()
    assert abs(agreement - 0.5) < 0.02


def test_regression_triggers_one_rollback() -> None:
    rng = np.random.default_rng(0)
    rollout = Rollout.staged(50, experiment="e")
    for _ in range(200):
        rollout.record("control", float(rng.normal(10, 0.5)), confidence=0.9)
        rollout.record("candidate", float(rng.normal(10.2, 0.5)), confidence=0.89)
    decision = rollout.enforce(RegressionPolicy())
    assert decision.ready and not decision.rollback
    calls = []
    for _ in range(300):
        rollout.record("candidate", float(rng.normal(16, 0.5)), error=rng.random() < 0.05, confidence=0.7)
    for _ in range(2):
        decision = rollout.enforce(RegressionPolicy(), on_rollback=calls.append)
    assert decision.rollback
    assert len(calls) == 1
    assert any("p90 latency" in r for r in decision.reasons)
    assert any("error rate" in r for r in decision.reasons)
    assert any("confidence" in r for r in decision.reasons)
    assert {rollout.assign(d) for d in IDS[:1000]} == {"control"}


def test_not_ready_below_min_runs_and_bad_percentages() -> None:
    rollout = Rollout.staged(10, experiment="e")
    rollout.record("candidate", 100.0, error=True)
    assert not rollout.evaluate().ready
    with pytest.raises(ValueError, match="sum to 100"):
        Rollout({"a": 50, "b": 40}, experiment="e")
