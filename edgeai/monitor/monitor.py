"""``Monitor``: latency per stage, partition and op; input and confidence drift; resources; energy.

``Session(model, monitor=True)`` builds one and wraps every run in
:meth:`Monitor.measure` (or reports through :meth:`Monitor.record_run`). The
per-run path is a clock read and a list store; input features and output
confidence are computed for sampled runs only, one per ``sample_interval``
(2 ms) of inference time, in batches. Monitoring never changes results.

Example:
    >>> import numpy as np, edgeai
    >>> sess = edgeai.Session(edgeai.demo.model_path(), monitor=True)
    >>> images, _ = edgeai.demo.samples()
    >>> for i in range(32):
    ...     with sess.monitor.stage("preprocess"):
    ...         x = images[i : i + 1] * 1.0
    ...     _ = sess.run({"image": x})
    >>> snap = sess.monitor.snapshot()
    >>> snap.runs, sorted(snap.stages)
    (32, ['inference', 'preprocess'])
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from time import perf_counter
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from edgeai.monitor.drift import DriftReport, FeatureDrift, compare, input_features
from edgeai.monitor.latency import LatencyStats, LatencyWindow
from edgeai.monitor.resources import (
    EnergyReading,
    RaplMeter,
    ResourceSampler,
    ResourceSnapshot,
    power_from_profile,
)

__all__ = ["Measurement", "Monitor", "MonitorSnapshot"]

F = TypeVar("F", bound=Callable[..., Any])


class MonitorSnapshot(BaseModel):
    """Everything a monitor knows at one moment."""

    name: str
    runs: int
    errors: int
    stages: dict[str, LatencyStats]
    partitions: dict[str, LatencyStats]
    ops: dict[str, LatencyStats]
    mean_confidence: float | None
    drift: DriftReport | None
    resources: ResourceSnapshot | None
    energy: EnergyReading | None
    alerts: list[str]


class Measurement:
    """One run being measured; the caller sets ``outputs`` (a dict, or a list) before the block ends."""

    __slots__ = ("_feeds", "_monitor", "_t0", "outputs")

    def __enter__(self) -> Measurement:
        self._t0 = perf_counter()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        elapsed = perf_counter() - self._t0
        m = self._monitor
        if exc_type is not None:
            m.errors += 1
            return
        w = m._inference  # LatencyWindow.add, inlined: this runs on every inference
        n = w.total
        w._buf[n & w._mask] = elapsed
        w.total = n + 1
        m._budget -= elapsed
        if m._budget <= 0.0:
            m._budget = m.sample_interval
            m._keep(self._feeds, self.outputs)


_new_measurement = Measurement.__new__


class Monitor:
    """Records a model's runs.

    Safe to share between threads: the per-run path takes no lock (so under
    heavy contention a count may miss an increment); aggregation and drift
    state are guarded by a lock.

    Args:
        name: the model's name in reports and exported metrics.
        window: how many recent latencies (per stage) and feature samples to keep.
        sample_interval: seconds of inference time between two sampled runs (input
            features and confidence are computed for sampled runs only); ``0``
            samples every run. Sampling then costs a bounded share of inference
            time whatever the model's speed: fast models are sampled 1 run in
            many, slow ones every run.
        sample_rows: at most this many samples (rows of axis 0) are taken from a
            sampled run's batch.
        reference_size: feature samples that form the drift reference (the first
            ones seen, unless :meth:`set_reference` is called).
        psi_threshold, ks_alpha: a feature drifts when PSI exceeds the threshold
            or the KS p-value falls below alpha.
        max_confidence_drop: alert when mean confidence falls this much below the reference.
        power_watts, profile: a power figure (or a target profile holding one) for
            the energy estimate when RAPL counters cannot be read.
    """

    def __init__(
        self,
        name: str = "model",
        *,
        window: int = 4096,
        sample_interval: float = 0.002,
        sample_rows: int = 4,
        reference_size: int = 500,
        psi_threshold: float = 0.2,
        ks_alpha: float = 0.01,
        max_confidence_drop: float = 0.05,
        power_watts: float | None = None,
        profile: Any = None,
    ) -> None:
        if sample_interval < 0:
            raise ValueError(f"sample_interval must be >= 0 seconds, not {sample_interval}")
        self.name = name
        self.window = window
        self.sample_interval = sample_interval
        self.sample_rows = max(1, sample_rows)
        self.reference_size = reference_size
        self.psi_threshold = psi_threshold
        self.ks_alpha = ks_alpha
        self.max_confidence_drop = max_confidence_drop
        self.power_watts = power_watts if power_watts is not None else power_from_profile(profile)
        self.errors = 0
        self._budget = 0.0  # the first run is sampled
        self._inference = LatencyWindow(window)
        self._stages: dict[str, LatencyWindow] = {"inference": self._inference}
        self._partitions: dict[str, LatencyWindow] = {}
        self._partition_seen: dict[int, int] = {}
        self._ops: dict[str, LatencyWindow] = {}
        self._lock = threading.Lock()
        self._reference: dict[str, list[float]] = {}
        self._reference_frozen = False
        self._current: dict[str, deque[float]] = {}
        self._conf_ref: list[float] = []
        self._conf_cur: deque[float] = deque(maxlen=window)
        self._pending: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]] = []
        self._drain_at = 256
        self._resources: ResourceSampler | None = None
        self._rapl = RaplMeter()
        self._rapl_runs = 0

    @property
    def runs(self) -> int:
        """Inferences recorded (the inference stage's sample count, not capped by the window)."""
        return self._inference.total

    # -- recording ------------------------------------------------------------
    def measure(self, feeds: Mapping[str, np.ndarray]) -> Measurement:
        """Context manager around one inference; set ``.outputs`` on what it yields."""
        rec = _new_measurement(Measurement)
        rec._monitor = self
        rec._feeds = feeds
        rec.outputs = None
        return rec

    def record_run(self, seconds: float, feeds: Mapping[str, np.ndarray], outputs: Any = None) -> None:
        """Record one finished inference: the cheapest hook, for callers that time runs themselves.

        Example:
            >>> from time import perf_counter
            >>> m = Monitor("x")
            >>> t0 = perf_counter()
            >>> m.record_run(perf_counter() - t0, {})
            >>> m.runs
            1
        """
        w = self._inference
        n = w.total
        w._buf[n & w._mask] = seconds
        w.total = n + 1
        self._budget -= seconds
        if self._budget <= 0.0:
            self._budget = self.sample_interval
            self._keep(feeds, outputs)

    def _keep(self, feeds: Mapping[str, np.ndarray], outputs: Any) -> None:
        """Keep a sampled run; its features are computed later, in a batch.

        At most ``sample_rows`` rows of a batch are kept, so a large batch costs no
        more than a small one. Feeds are copied (callers often refill the same
        buffers); outputs are kept by reference (runtimes return new arrays).
        """
        k = self.sample_rows
        if outputs is not None:
            values = outputs.values() if isinstance(outputs, Mapping) else outputs
            outputs = {str(i): _rows(np.asarray(v), k) for i, v in enumerate(values)}
        kept = {name: np.array(_rows(np.asarray(v), k)) for name, v in feeds.items()}
        self._pending.append((kept, outputs))
        if len(self._pending) >= self._drain_at:
            self._drain()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block as stage ``name`` (``"preprocess"``, ``"postprocess"``, ...)."""
        t0 = perf_counter()
        try:
            yield
        finally:
            self._window(self._stages, name).add(perf_counter() - t0)

    def timed(self, stage: str) -> Callable[[F], F]:
        """Decorator form of :meth:`stage`."""

        def wrap(fn: F) -> F:
            @functools.wraps(fn)
            def inner(*args: Any, **kwargs: Any) -> Any:
                with self.stage(stage):
                    return fn(*args, **kwargs)

            return inner  # type: ignore[return-value]

        return wrap

    def record_stage(self, name: str, seconds: float) -> None:
        self._window(self._stages, name).add(seconds)

    def record_partition(self, partition: str | int, seconds: float) -> None:
        """Time of one partition of a placed model (called by the plan executor)."""
        self._window(self._partitions, str(partition)).add(seconds)

    def record_op(self, op: str, seconds: float) -> None:
        """Time of one op (the native engine's timers report here)."""
        self._window(self._ops, op).add(seconds)

    def add_partition_times(self, session: Any) -> int:
        """Pull per-partition run times from a planned session made with ``profile=True``.

        Partitions are named ``"<index>:<device id>"``; each call adds only the
        runs since the previous call. Returns how many partition times were added.
        """
        from edgeai.errors import EdgeAIError

        exe = getattr(session, "_exec", session)
        times = getattr(exe, "partition_times", None)
        if times is None:
            raise EdgeAIError(
                "this session has no per-partition timings: they exist for planned sessions "
                "(pin=, forbid=, require= or target=) created with profile=True"
            )
        report = session.placement if hasattr(session, "placement") else exe.placement()
        names = [f"{p.index}:{p.device}" for p in report.partitions]
        added = 0
        for k, values in enumerate(times):
            seen = self._partition_seen.get(k, 0)
            for seconds in values[seen:]:
                self.record_partition(names[k] if k < len(names) else str(k), seconds)
                added += 1
            self._partition_seen[k] = len(values)
        return added

    def record_native_profile(self, timings: Any) -> None:
        """Add the native engine's per-step timings: ``(node name, op type, seconds)`` tuples."""
        for node, _op_type, seconds in timings:
            self.record_op(node, seconds)

    def profile_native_ops(self, session: Any, feeds: Mapping[str, np.ndarray], runs: int = 10) -> list[np.ndarray]:
        """Run a native-engine session ``runs`` times with per-op timers; returns the last outputs.

        Uses the engine's separate profiled loop, so ordinary runs pay nothing for it.
        """
        from edgeai.errors import EdgeAIError

        compiled = getattr(getattr(session, "_exec", session), "_compiled", None)
        profiled = getattr(compiled, "run_profiled", None)
        if profiled is None:
            raise EdgeAIError(
                "per-op timers need a session on the native engine (device='native'); for ONNX Runtime "
                "use Session(..., profile=True) and Monitor.add_ort_profile()"
            )
        outs: list[np.ndarray] = []
        for _ in range(runs):
            outs, timings = profiled(dict(feeds))
            self.record_native_profile(timings)
        return outs

    def add_ort_profile(self, path: str) -> None:
        """Add per-op times from an ONNX Runtime profiler JSON file."""

        from edgeai.monitor.profiling import ort_kernel_events

        for node, _op_type, _provider, seconds in ort_kernel_events(path):
            self.record_op(node, seconds)

    def _window(self, table: dict[str, LatencyWindow], name: str) -> LatencyWindow:
        w = table.get(name)
        if w is None:
            with self._lock:
                w = table.setdefault(name, LatencyWindow(self.window))
        return w

    def _drain(self) -> None:
        """Compute features of the sampled runs in one vectorised pass (off the per-run path)."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        feeds = _stack([p[0] for p in pending])
        outs = [p[1] for p in pending if p[1] is not None]
        if feeds is None:  # shapes vary between runs: one sample at a time
            for f, o in pending:
                self._ingest(input_features(f), _confidence(o) if o else None)
            return
        # Runs recorded without outputs add no confidence; outputs of varying shapes go one by one.
        stacked_outs = _stack(outs) if outs else None
        if stacked_outs is not None:
            conf = _confidence(stacked_outs)
        else:
            parts = [c for c in (_confidence(o) for o in outs) if c is not None]
            conf = np.concatenate(parts) if parts else None
        self._ingest(input_features(feeds), conf)

    def _ingest(self, feats: dict[str, np.ndarray], conf: np.ndarray | None) -> None:
        """The first ``reference_size`` samples fill the reference; later ones the current window."""
        with self._lock:
            fill_ref = not self._reference_frozen
            for name, values in feats.items():
                rest = self._fill(self._reference.setdefault(name, []), values) if fill_ref else values
                self._current.setdefault(name, deque(maxlen=self.window)).extend(rest.tolist())
            if conf is not None:
                rest = self._fill(self._conf_ref, conf) if fill_ref else conf
                self._conf_cur.extend(rest.tolist())
            if fill_ref and all(len(v) >= self.reference_size for v in self._reference.values()):
                self._reference_frozen = True

    def _fill(self, reference: list[float], values: np.ndarray) -> np.ndarray:
        room = max(0, self.reference_size - len(reference))
        reference.extend(values[:room].tolist())
        return values[room:]

    def set_reference(self, feeds: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray] | None = None) -> None:
        """Use these inputs (a batch, e.g. the validation set) and outputs as the drift reference."""
        feats = input_features(feeds)
        conf = _confidence(outputs) if outputs else None
        with self._lock:
            self._pending.clear()
            self._reference = {k: v.tolist() for k, v in feats.items()}
            self._conf_ref = [] if conf is None else conf.tolist()
            self._reference_frozen = True
            self._current.clear()
            self._conf_cur.clear()

    # -- reading --------------------------------------------------------------
    def latency(self, stage: str = "inference") -> LatencyStats | None:
        """p50/p90/p99 of a stage over the window."""
        w = self._stages.get(stage)
        return None if w is None else w.stats()

    def drift(self, min_samples: int = 50) -> DriftReport | None:
        """Drift of every input feature and of confidence, once both windows hold ``min_samples``."""
        self._drain()
        with self._lock:
            ref = {k: np.asarray(v) for k, v in self._reference.items()}
            cur = {k: np.asarray(v) for k, v in self._current.items()}
            conf_ref, conf_cur = np.asarray(self._conf_ref), np.asarray(self._conf_cur)
        feats: list[FeatureDrift] = []
        alerts: list[str] = []
        for name in sorted(ref):
            if ref[name].size >= min_samples and cur.get(name, np.empty(0)).size >= min_samples:
                fd = compare(name, ref[name], cur[name], psi_threshold=self.psi_threshold, ks_alpha=self.ks_alpha)
                feats.append(fd)
                if fd.alert:
                    alerts.append(
                        f"input drift on {name}: PSI {fd.psi:.3f} (limit {self.psi_threshold}), "
                        f"KS p={fd.ks_pvalue:.2g} (alpha {self.ks_alpha}); mean {fd.reference_mean:.4g} -> "
                        f"{fd.current_mean:.4g}"
                    )
        if conf_ref.size >= min_samples and conf_cur.size >= min_samples:
            fd = compare("confidence", conf_ref, conf_cur, psi_threshold=self.psi_threshold, ks_alpha=self.ks_alpha)
            drop = fd.reference_mean - fd.current_mean
            fd = fd.model_copy(update={"alert": fd.alert or drop > self.max_confidence_drop})
            feats.append(fd)
            if fd.alert:
                alerts.append(
                    f"confidence drift: mean {fd.reference_mean:.3f} -> {fd.current_mean:.3f}, "
                    f"PSI {fd.psi:.3f}, KS p={fd.ks_pvalue:.2g}"
                )
        if not feats:
            return None
        sizes = [v.size for v in ref.values()] or [0]
        cur_sizes = [v.size for v in cur.values()] or [0]
        return DriftReport(reference_size=min(sizes), current_size=min(cur_sizes), features=feats, alerts=alerts)

    def resources(self) -> ResourceSnapshot:
        """CPU (since the previous call), memory, GPU and battery now."""
        if self._resources is None:
            self._resources = ResourceSampler()
        return self._resources.sample()

    def energy(self) -> EnergyReading | None:
        """Energy per inference since the previous call: RAPL if readable, else the power estimate."""
        runs = self.runs - self._rapl_runs
        if self._rapl.available:
            before = self._rapl.joules
            joules = self._rapl.update() - before
            self._rapl_runs = self.runs
            if runs > 0:
                return EnergyReading(
                    joules_per_inference=joules / runs,
                    source="rapl (whole CPU package, all processes)",
                    estimate=False,
                )
        stats = self._inference.stats()
        if self.power_watts is not None and stats is not None:
            return EnergyReading(
                joules_per_inference=self.power_watts * stats.mean_ms / 1e3,
                source=f"estimate: {self.power_watts:g} W x mean inference time",
                estimate=True,
            )
        return None

    def mean_confidence(self) -> float | None:
        """Mean top-class probability over the recent window (the reference before it fills)."""
        self._drain()
        with self._lock:
            values = list(self._conf_cur) or list(self._conf_ref)
        return float(np.mean(values)) if values else None

    def snapshot(self, *, resources: bool = True) -> MonitorSnapshot:
        """All current figures, and the alerts they raise."""
        drift = self.drift()
        alerts = list(drift.alerts) if drift else []
        return MonitorSnapshot(
            name=self.name,
            runs=self.runs,
            errors=self.errors,
            stages=_stats(self._stages),
            partitions=_stats(self._partitions),
            ops=_stats(self._ops),
            mean_confidence=self.mean_confidence(),
            drift=drift,
            resources=self.resources() if resources else None,
            energy=self.energy(),
            alerts=alerts,
        )

    def prometheus(self) -> str:
        """The monitor's metrics in the Prometheus text format (needs prometheus-client)."""
        from edgeai.monitor.export import prometheus_text

        return prometheus_text(self)

    def __repr__(self) -> str:
        return f"Monitor({self.name!r}, runs={self.runs}, errors={self.errors})"


def _stats(table: dict[str, LatencyWindow]) -> dict[str, LatencyStats]:
    out = {}
    for name, w in list(table.items()):
        s = w.stats()
        if s is not None:
            out[name] = s
    return out


def _rows(value: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` samples (axis 0) of a batched array; other arrays as they are."""
    return value[:k] if value.ndim >= 2 and value.shape[0] > k else value


def _stack(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray] | None:
    """Concatenate sampled feeds along the batch axis; ``None`` when shapes differ."""
    first = samples[0]
    out = {}
    for name, value in first.items():
        parts = [s.get(name) for s in samples]
        if any(p is None or p.shape[1:] != value.shape[1:] or p.ndim == 0 for p in parts):
            return None
        out[name] = np.concatenate(parts, axis=0)  # type: ignore[arg-type]
    return out


def _confidence(outputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Per-sample top-class probability of the first classifier-like output, else ``None``.

    Outputs that already are probabilities (in [0, 1], rows summing to 1) are
    used as they are; other float outputs are treated as logits (softmax).
    """
    for value in outputs.values():
        arr = np.asarray(value)
        if arr.dtype.kind != "f" or arr.ndim < 1 or arr.shape[-1] < 2:
            continue
        rows = arr.reshape(-1, arr.shape[-1]).astype(np.float64)
        if rows.min() >= 0 and rows.max() <= 1 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
            return rows.max(axis=1)  # type: ignore[no-any-return]
        shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
        return shifted.max(axis=1) / shifted.sum(axis=1)  # type: ignore[no-any-return]
    return None
