"""Monitor: latency percentiles, Session integration, drift, per-op profiles, resources, exporters."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import edgeai
from edgeai.monitor import LatencyWindow, Monitor
from edgeai.monitor.drift import input_features, kolmogorov_sf, ks_2samp, psi

MODEL = edgeai.demo.model_path()


def test_latency_percentiles_match_numpy_over_the_window() -> None:
    rng = np.random.default_rng(0)
    values = rng.exponential(0.01, size=5000)
    w = LatencyWindow(capacity=1000)
    assert w.capacity == 1024  # rounded up to a power of two
    for v in values:
        w.add(float(v))
    st = w.stats()
    assert st is not None and st.count == 1024 and st.total == 5000
    last = values[-1024:] * 1e3  # the window holds the most recent 1024, oldest first
    np.testing.assert_allclose(w.values_ms(), last)
    assert st.p50_ms == pytest.approx(np.percentile(last, 50))
    assert st.p90_ms == pytest.approx(np.percentile(last, 90))
    assert st.p99_ms == pytest.approx(np.percentile(last, 99))


def test_stage_context_manager_and_decorator_time_real_work() -> None:
    m = Monitor("t")

    @m.timed("postprocess")
    def post() -> int:
        time.sleep(0.002)
        return 7

    for _ in range(5):
        with m.stage("preprocess"):
            time.sleep(0.001)
        assert post() == 7
    pre, post_st = m.latency("preprocess"), m.latency("postprocess")
    assert pre is not None and post_st is not None
    assert pre.count == 5 and post_st.count == 5
    assert pre.p50_ms >= 1.0 and post_st.p50_ms >= 2.0
    assert m.latency("missing") is None


def test_session_monitor_records_without_changing_results() -> None:
    images, _ = edgeai.demo.samples()
    plain = edgeai.Session(MODEL)
    watched = edgeai.Session(MODEL, monitor=Monitor("digits", sample_interval=0, reference_size=8))
    for i in range(len(images)):
        x = images[i : i + 1]
        np.testing.assert_array_equal(
            watched.run({"image": x})["probabilities"], plain.run({"image": x})["probabilities"]
        )
    snap = watched.monitor.snapshot()
    assert snap.runs == len(images) and snap.errors == 0
    assert snap.stages["inference"].count == len(images)
    # mean confidence equals the top-class probability computed independently
    probs = plain.run({"image": images})["probabilities"].astype(np.float64)
    assert snap.mean_confidence == pytest.approx(probs[8:].max(axis=1).mean(), rel=1e-6)
    with pytest.raises(edgeai.errors.InputError):
        watched.run({"image": np.zeros((1, 1, 8, 9), np.float32)})
    assert edgeai.Session(MODEL, monitor=True).monitor.name.endswith("digits_cnn.onnx")


def test_monitor_counts_runtime_errors() -> None:
    m = Monitor("e")
    with pytest.raises(RuntimeError), m.measure({}):
        raise RuntimeError("boom")
    assert (m.errors, m.runs) == (1, 0)


def test_psi_against_hand_computed_value() -> None:
    # reference deciles of 0..999 are 100 values each; current puts 30% in the first decile
    ref = np.arange(1000, dtype=np.float64)
    cur = np.concatenate([np.full(300, 5.0), np.linspace(100, 999, 700)])
    expected_frac = np.full(10, 0.1)
    actual_frac = np.array([0.3] + [np.mean((cur >= lo) & (cur < lo + 100)) for lo in range(100, 1000, 100)])
    want = float(np.sum((actual_frac - expected_frac) * np.log(actual_frac / expected_frac)))
    assert psi(ref, cur) == pytest.approx(want, rel=1e-9)
    assert psi(ref, ref) == 0.0


def test_ks_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy comes with scikit-learn in the test extra")
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 700), rng.normal(0.15, 1.1, 400)
    d, p = ks_2samp(a, b)
    assert d == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert p == pytest.approx(stats.kstwobign.sf(d * np.sqrt(700 * 400 / 1100)), rel=1e-9)
    for z in (0.05, 0.4, 0.9, 1.17, 1.19, 1.6, 2.5, 4.0):
        assert kolmogorov_sf(z) == pytest.approx(stats.kstwobign.sf(z), rel=1e-9, abs=1e-15)


def test_input_features_tabular_and_images() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    feats = input_features({"t": x, "img": np.ones((2, 3, 4, 4), np.float32)})
    np.testing.assert_array_equal(feats["t[2]"], [2, 6, 10])
    np.testing.assert_array_equal(feats["img.mean"], [1, 1])
    np.testing.assert_array_equal(feats["img.std"], [0, 0])


def test_drift_alerts_on_shift_and_not_on_same_distribution() -> None:
    rng = np.random.default_rng(1)
    m = Monitor("tab", sample_interval=0, reference_size=600)
    m.set_reference({"x": rng.normal(0, 1, (600, 3)).astype(np.float32)})

    def feed(batch: np.ndarray) -> None:
        with m.measure({"x": batch}) as rec:
            rec.outputs = {"p": np.tile([0.9, 0.1], (len(batch), 1)).astype(np.float32)}

    for _ in range(30):
        feed(rng.normal(0, 1, (20, 3)).astype(np.float32))
    report = m.drift()
    assert report is not None and report.alerts == []
    for _ in range(30):
        shifted = rng.normal(0, 1, (20, 3)).astype(np.float32)
        shifted[:, 1] += 1.5  # only column 1 moves
        feed(shifted)
    report = m.drift()
    assert report is not None
    flagged = {f.feature for f in report.features if f.alert}
    assert flagged == {"x[1]"}
    assert any("x[1]" in a for a in report.alerts)


def test_confidence_drift_alert() -> None:
    m = Monitor("c", sample_interval=0, reference_size=100)
    rng = np.random.default_rng(2)

    def run(conf: float) -> None:
        with m.measure({"x": np.zeros((1, 2), np.float32)}) as rec:
            top = conf + rng.normal(0, 0.01)
            rec.outputs = {"p": np.array([[top, 1 - top]], np.float32)}

    for _ in range(100):
        run(0.95)
    for _ in range(100):
        run(0.70)
    report = m.drift()
    assert report is not None
    assert any(a.startswith("confidence drift") for a in report.alerts)


def test_ort_profile_per_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    from edgeai.monitor.profiling import ort_op_latency

    monkeypatch.chdir(tmp_path)  # ONNX Runtime writes its profile into the working directory
    sess = edgeai.Session(MODEL, profile=True, optimization="none")
    for _ in range(5):
        sess.run({"image": np.zeros((1, 1, 8, 8), np.float32)})
    path = sess._exec.end_profiling()  # type: ignore[attr-defined]
    ops = ort_op_latency(path)
    model = onnx.load(str(MODEL))
    assert {n.op_type for n in model.graph.node} == {o.op_type for o in ops.values()}
    assert all(o.stats.count == 5 for o in ops.values())
    m = Monitor("p")
    m.add_ort_profile(path)
    assert set(m.snapshot(resources=False).ops) == set(ops)
    with pytest.raises(edgeai.errors.ModelFormatError):
        ort_op_latency(tmp_path / "missing.json")


def test_native_engine_per_op_timers() -> None:
    import onnx

    sess = edgeai.Session(MODEL, device="native")
    x = edgeai.demo.samples()[0][:2]
    m = Monitor("native")
    outs = m.profile_native_ops(sess, {"image": x}, runs=4)
    np.testing.assert_allclose(
        outs[0], edgeai.Session(MODEL, device="onnxruntime").run({"image": x})["probabilities"], rtol=1e-5, atol=1e-6
    )
    ops = m.snapshot(resources=False).ops
    nodes = {n.name for n in onnx.load(str(MODEL)).graph.node}
    assert set(ops) <= nodes and len(ops) >= len(nodes) - 2  # the engine may fuse a node or two
    assert all(st.count == 4 and st.p50_ms > 0 for st in ops.values())
    with pytest.raises(edgeai.errors.EdgeAIError, match="native engine"):
        m.profile_native_ops(edgeai.Session(MODEL, device="onnxruntime"), {"image": x})


def test_partition_latency_from_a_planned_session() -> None:
    sess = edgeai.Session(MODEL, pin={"Relu": "native"}, profile=True)
    x = edgeai.demo.samples()[0][:1]
    for _ in range(6):
        sess.run({"image": x})
    m = Monitor("planned")
    report = sess.placement
    assert len(report.partitions) >= 2
    assert m.add_partition_times(sess) == 6 * len(report.partitions)
    assert m.add_partition_times(sess) == 0  # nothing new
    parts = m.snapshot(resources=False).partitions
    assert sorted(parts) == sorted(f"{p.index}:{p.device}" for p in report.partitions)
    for p in report.partitions:
        st = parts[f"{p.index}:{p.device}"]
        assert st.count == 6
        assert st.mean_ms == pytest.approx(p.time_ms, rel=1e-9)  # the placement report's own mean
    with pytest.raises(edgeai.errors.EdgeAIError, match="profile=True"):
        m.add_partition_times(edgeai.Session(MODEL))


def test_rapl_reader_with_wraparound(tmp_path: Path) -> None:
    from edgeai.monitor.resources import RaplMeter

    pkg = tmp_path / "intel-rapl:0"
    sub = tmp_path / "intel-rapl:0:0"
    for d in (pkg, sub):
        d.mkdir()
        (d / "name").write_text("package-0\n")
        (d / "max_energy_range_uj").write_text("1000000\n")
    (pkg / "energy_uj").write_text("999000\n")
    (sub / "energy_uj").write_text("5\n")
    meter = RaplMeter(tmp_path)
    assert [d[0] for d in meter.domains] == ["package-0"]  # sub-domains are not double counted
    (pkg / "energy_uj").write_text("1000\n")  # wrapped: 1000 uJ to the top, then 1000 more (+1)
    assert meter.update() == pytest.approx((1000 + 1 + 1000) / 1e6)
    assert not RaplMeter(tmp_path / "absent").available


def test_energy_estimate_is_labelled_and_resources_are_real() -> None:
    import psutil

    m = Monitor("e", power_watts=5.0)
    m._rapl.domains = []  # this machine's counters, if any, are not the point here
    for _ in range(10):
        m.record_stage("inference", 0.004)
    energy = m.energy()
    assert energy is not None and energy.estimate and "estimate" in energy.source
    assert energy.joules_per_inference == pytest.approx(5.0 * 0.004)
    assert Monitor("none").energy() is None or Monitor("none")._rapl.available is not False
    res = m.resources()
    assert res.rss_bytes == pytest.approx(psutil.Process().memory_info().rss, rel=0.2)
    assert res.threads >= 1


def test_prometheus_text_parses_and_matches_snapshot() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    images, _ = edgeai.demo.samples()
    sess = edgeai.Session(MODEL, monitor=Monitor("digits", sample_interval=0, reference_size=4))
    for i in range(16):
        sess.run({"image": images[i : i + 1]})
    text = sess.monitor.prometheus()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    runs = families["edgeai_inference_runs"].samples
    assert [(s.name, s.labels["model"], s.value) for s in runs if s.name.endswith("_total")] == [
        ("edgeai_inference_runs_total", "digits", 16.0)
    ]
    lat = {
        s.labels["quantile"]: s.value
        for s in families["edgeai_latency_seconds"].samples
        if s.labels["stage"] == "inference"
    }
    st = sess.monitor.latency()
    assert st is not None
    assert lat["0.5"] == pytest.approx(st.p50_ms / 1e3)
    assert lat["0.99"] == pytest.approx(st.p99_ms / 1e3)
    conf = families["edgeai_mean_confidence"].samples[0].value
    assert conf == pytest.approx(sess.monitor.mean_confidence())


def test_opentelemetry_export_or_clear_missing_dependency() -> None:
    from edgeai.monitor import instrument_otel

    m = Monitor("digits")
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        with pytest.raises(edgeai.errors.MissingDependencyError, match=r"edgeai\[otel\]"):
            instrument_otel(m)
        return
    for _ in range(3):
        with m.measure({"x": np.zeros((1, 2), np.float32)}):
            pass
    reader = InMemoryMetricReader()
    instrument_otel(m, MeterProvider(metric_readers=[reader]))
    data = reader.get_metrics_data()
    metrics = {metric.name: metric for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics}
    assert {"edgeai.latency", "edgeai.inference.runs"} <= set(metrics)
    st = m.latency("inference")
    assert st is not None
    points = {
        (p.attributes["stage"], p.attributes["quantile"]): p.value for p in metrics["edgeai.latency"].data.data_points
    }
    assert points[("inference", "0.5")] == pytest.approx(st.p50_ms / 1e3)
    assert [p.value for p in metrics["edgeai.inference.runs"].data.data_points] == [3]
