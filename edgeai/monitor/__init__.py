"""Monitoring: latency per stage/partition/op, drift, utilization, energy, exporters.

Example:
    >>> import numpy as np, edgeai
    >>> sess = edgeai.Session(edgeai.demo.model_path(), monitor=True)
    >>> _ = sess.run({"image": np.zeros((1, 1, 8, 8), np.float32)})
    >>> sess.monitor.runs
    1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeai._lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover
    from edgeai.monitor.drift import DriftReport, ks_2samp, psi
    from edgeai.monitor.export import instrument_otel, prometheus_collector, prometheus_text
    from edgeai.monitor.latency import LatencyStats, LatencyWindow
    from edgeai.monitor.monitor import Monitor, MonitorSnapshot
    from edgeai.monitor.profiling import ort_op_latency
    from edgeai.monitor.resources import RaplMeter, ResourceSampler

__all__ = [
    "DriftReport",
    "LatencyStats",
    "LatencyWindow",
    "Monitor",
    "MonitorSnapshot",
    "RaplMeter",
    "ResourceSampler",
    "instrument_otel",
    "ks_2samp",
    "ort_op_latency",
    "prometheus_collector",
    "prometheus_text",
    "psi",
]

_LAZY = {
    "DriftReport": "edgeai.monitor.drift",
    "ks_2samp": "edgeai.monitor.drift",
    "psi": "edgeai.monitor.drift",
    "instrument_otel": "edgeai.monitor.export",
    "prometheus_collector": "edgeai.monitor.export",
    "prometheus_text": "edgeai.monitor.export",
    "LatencyStats": "edgeai.monitor.latency",
    "LatencyWindow": "edgeai.monitor.latency",
    "Monitor": "edgeai.monitor.monitor",
    "MonitorSnapshot": "edgeai.monitor.monitor",
    "ort_op_latency": "edgeai.monitor.profiling",
    "RaplMeter": "edgeai.monitor.resources",
    "ResourceSampler": "edgeai.monitor.resources",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
