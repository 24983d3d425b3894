"""Latency measurement for sessions: warm-up, repeated runs, percentiles.

Example:
    >>> import edgeai
    >>> from edgeai.benchmarking import benchmark, random_feeds
    >>> sess = edgeai.Session(edgeai.demo.model_path())
    >>> result = benchmark(sess, random_feeds(sess.inputs), warmup=2, runs=5)
    >>> result.runs
    5
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from edgeai.specs import TensorSpec

__all__ = ["BenchResult", "benchmark", "interleaved", "random_feeds", "time_calls"]


class BenchResult(BaseModel):
    """Latency statistics of repeated runs, in milliseconds."""

    model: str = ""
    device: str = ""
    runs: int
    warmup: int
    batch: int = 1
    mean_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput_per_s: float
    """Items (batch elements) per second at the median latency."""


def random_feeds(
    specs: Sequence[TensorSpec], dims: Mapping[str, int] | None = None, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random arrays matching ``specs``; symbolic dims take ``dims[name]`` or 1.

    Integer inputs are drawn from their quantization range when quantized,
    else from [0, 10); floats from a standard normal.
    """
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = tuple(d if isinstance(d, int) else dims.get(str(d), 1) for d in (spec.shape or (1,)))
        if spec.dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype.kind in "iu":
            info = np.iinfo(spec.dtype)
            lo, hi = (info.min, info.max) if spec.quant is not None else (0, 10)
            feeds[spec.name] = rng.integers(max(lo, info.min), hi, shape, endpoint=True).astype(spec.dtype)
        elif spec.dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            raise ValueError(f"cannot make random data for input {spec}")
    return feeds


def benchmark(
    session: Any,
    feeds: Mapping[str, np.ndarray],
    *,
    warmup: int = 10,
    runs: int = 100,
    progress: Callable[[int], None] | None = None,
) -> BenchResult:
    """Time ``session.run(feeds)`` ``runs`` times after ``warmup`` untimed runs."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    feeds = dict(feeds)
    for _ in range(warmup):
        session.run(feeds)
    times = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter
    for i in range(runs):
        t0 = clock()
        session.run(feeds)
        times[i] = clock() - t0
        if progress is not None:
            progress(i + 1)
    ms = times * 1e3
    batch = 1
    first = next(iter(feeds.values()), None)
    if first is not None and getattr(first, "ndim", 0) > 0:
        batch = int(first.shape[0])
    p50 = float(np.percentile(ms, 50))
    return BenchResult(
        model=str(getattr(getattr(session, "_source", None), "display_name", "")),
        device=str(getattr(getattr(session, "device", None), "id", "")),
        runs=runs,
        warmup=warmup,
        batch=batch,
        mean_ms=float(ms.mean()),
        min_ms=float(ms.min()),
        p50_ms=p50,
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        max_ms=float(ms.max()),
        throughput_per_s=batch * 1e3 / p50 if p50 > 0 else float("inf"),
    )


def time_calls(fn: Callable[[], Any], calls: int) -> float:
    """Mean seconds per call of ``fn`` over ``calls`` back-to-back calls.

    >>> time_calls(lambda: None, 10) >= 0
    True
    """
    clock = time.perf_counter
    t0 = clock()
    for _ in range(calls):
        fn()
    return (clock() - t0) / calls


def interleaved(fns: Mapping[str, Callable[[], Any]], rounds: int, calls: int) -> dict[str, float]:
    """Median seconds per call of each function, measured in rounds that rotate the order.

    Interleaving puts every contender under the same machine noise, so their
    ratios hold where absolute times do not.

    >>> t = interleaved({"a": lambda: None, "b": lambda: None}, rounds=3, calls=10)
    >>> sorted(t)
    ['a', 'b']
    """
    for fn in fns.values():
        time_calls(fn, max(1, calls // 4))
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(time_calls(fns[name], calls))
    return {k: statistics.median(v) for k, v in times.items()}


def ort_peer_session(model: Any, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session set up as the benchmarks' peer: ``threads`` intra-op threads, one
    inter-op thread, spinning off (a spinning pool stalls numba's parallel regions on small machines
    and takes the core the other contender is timed on), warnings not logged.

    ``model`` is a path or serialized bytes. Needs ``pip install onnxruntime``.

    >>> import edgeai
    >>> sess = ort_peer_session(edgeai.demo.model_path())
    >>> sess.get_session_options().intra_op_num_threads
    1
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        model if isinstance(model, bytes) else str(model), so, providers=["CPUExecutionProvider"]
    )
