"""Exporters: Prometheus text format (prometheus-client) and OpenTelemetry metrics (optional).

Example:
    >>> from edgeai.monitor import Monitor
    >>> m = Monitor("digits")
    >>> m.record_stage("inference", 0.002)
    >>> "edgeai_latency_seconds" in m.prometheus()
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edgeai._optional import import_optional

__all__ = ["instrument_otel", "prometheus_collector", "prometheus_text"]


def prometheus_collector(*monitors: Any) -> Any:
    """A prometheus-client collector for ``monitors``; register it on any registry."""
    import_optional("prometheus_client", purpose="the Prometheus exporter")
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    class MonitorCollector(Collector):
        def collect(self) -> Iterator[Any]:
            runs = CounterMetricFamily("edgeai_inference_runs", "Inferences run", labels=["model"])
            errors = CounterMetricFamily("edgeai_inference_errors", "Inferences that raised", labels=["model"])
            latency = GaugeMetricFamily(
                "edgeai_latency_seconds",
                "Latency percentile over the recent window, per stage",
                labels=["model", "stage", "quantile"],
            )
            part = GaugeMetricFamily(
                "edgeai_partition_latency_seconds",
                "Latency percentile per partition",
                labels=["model", "partition", "quantile"],
            )
            op = GaugeMetricFamily(
                "edgeai_op_latency_seconds", "Latency percentile per op", labels=["model", "op", "quantile"]
            )
            conf = GaugeMetricFamily("edgeai_mean_confidence", "Mean top-class probability", labels=["model"])
            psi = GaugeMetricFamily("edgeai_drift_psi", "PSI against the reference", labels=["model", "feature"])
            ks = GaugeMetricFamily("edgeai_drift_ks_pvalue", "KS p-value", labels=["model", "feature"])
            alerts = GaugeMetricFamily("edgeai_drift_alerts", "Active drift alerts", labels=["model"])
            cpu = GaugeMetricFamily("edgeai_process_cpu_percent", "Process CPU use", labels=["model"])
            rss = GaugeMetricFamily("edgeai_process_rss_bytes", "Process resident memory", labels=["model"])
            energy = GaugeMetricFamily(
                "edgeai_energy_joules_per_inference",
                "Energy per inference",
                labels=["model", "source", "estimate"],
            )
            for m in monitors:
                snap = m.snapshot()
                runs.add_metric([m.name], snap.runs)
                errors.add_metric([m.name], snap.errors)
                for family, table in ((latency, snap.stages), (part, snap.partitions), (op, snap.ops)):
                    for key, st in table.items():
                        for q, v in (("0.5", st.p50_ms), ("0.9", st.p90_ms), ("0.99", st.p99_ms)):
                            family.add_metric([m.name, key, q], v / 1e3)
                if snap.mean_confidence is not None:
                    conf.add_metric([m.name], snap.mean_confidence)
                if snap.drift is not None:
                    for fd in snap.drift.features:
                        psi.add_metric([m.name, fd.feature], fd.psi)
                        ks.add_metric([m.name, fd.feature], fd.ks_pvalue)
                alerts.add_metric([m.name], len(snap.alerts))
                if snap.resources is not None:
                    cpu.add_metric([m.name], snap.resources.cpu_percent)
                    rss.add_metric([m.name], snap.resources.rss_bytes)
                if snap.energy is not None:
                    energy.add_metric(
                        [m.name, snap.energy.source, str(snap.energy.estimate).lower()],
                        snap.energy.joules_per_inference,
                    )
            yield from (runs, errors, latency, part, op, conf, psi, ks, alerts, cpu, rss, energy)

    return MonitorCollector()


def prometheus_text(*monitors: Any) -> str:
    """The metrics of ``monitors`` in the Prometheus text exposition format."""
    import_optional("prometheus_client", purpose="the Prometheus exporter")
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(prometheus_collector(*monitors))
    return generate_latest(registry).decode()  # type: ignore[no-any-return]


def instrument_otel(monitor: Any, meter_provider: Any = None) -> Any:
    """Publish a monitor's figures as OpenTelemetry observable gauges; returns the meter.

    Needs the ``otel`` extra (``pip install "edgeai[otel]"``). The gauges are read
    when the SDK's metric reader collects.
    """
    metrics = import_optional("opentelemetry.metrics", purpose="OpenTelemetry metrics")
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("edgeai")

    def _latency(_options: Any) -> Iterator[Any]:
        snap = monitor.snapshot(resources=False)
        for stage, st in snap.stages.items():
            for q, v in (("0.5", st.p50_ms), ("0.9", st.p90_ms), ("0.99", st.p99_ms)):
                yield metrics.Observation(v / 1e3, {"model": monitor.name, "stage": stage, "quantile": q})

    def _runs(_options: Any) -> Iterator[Any]:
        yield metrics.Observation(monitor.runs, {"model": monitor.name})

    def _errors(_options: Any) -> Iterator[Any]:
        yield metrics.Observation(monitor.errors, {"model": monitor.name})

    def _confidence(_options: Any) -> Iterator[Any]:
        value = monitor.mean_confidence()
        if value is not None:
            yield metrics.Observation(value, {"model": monitor.name})

    meter.create_observable_gauge("edgeai.latency", callbacks=[_latency], unit="s")
    meter.create_observable_counter("edgeai.inference.runs", callbacks=[_runs])
    meter.create_observable_counter("edgeai.inference.errors", callbacks=[_errors])
    meter.create_observable_gauge("edgeai.confidence.mean", callbacks=[_confidence])
    return meter
