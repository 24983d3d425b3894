"""evaluate(): accuracy, agreement, SQNR and cosine against numpy computed from ONNX Runtime outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeai.optimize import OptimizationError, evaluate, quantize
from edgeai.optimize.evaluation import topk_accuracy


def _ort(model: onnx.ModelProto | Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, feed)[0]


@pytest.fixture(scope="module")
def quantized_demo(demo_float: Path, demo_calibration: list[np.ndarray]) -> onnx.ModelProto:
    return quantize(demo_float, demo_calibration, method="entropy", progress=False).model


def test_metrics_match_numpy(quantized_demo: onnx.ModelProto, demo_float: Path, digits: dict[str, np.ndarray]) -> None:
    x, y = digits["x_test"], digits["y_test"]
    report = evaluate(quantized_demo, x, y, reference=demo_float, batch_size=100)
    q = _ort(quantized_demo, {"image": x}).astype(np.float64)
    f = _ort(demo_float, {"image": x}).astype(np.float64)
    assert report.samples == len(y)
    assert report.top1 == pytest.approx(np.mean(q.argmax(1) == y))
    top5 = np.argsort(-q, axis=1)[:, :5]
    assert report.top5 == pytest.approx(np.mean([y[i] in top5[i] for i in range(len(y))]))
    assert report.reference_top1 == pytest.approx(np.mean(f.argmax(1) == y))
    assert report.accuracy_drop == pytest.approx(report.reference_top1 - report.top1)
    assert report.agreement == pytest.approx(np.mean(q.argmax(1) == f.argmax(1)))
    out = report.outputs[0]
    assert out.cosine_similarity == pytest.approx((q * f).sum() / np.sqrt((q * q).sum() * (f * f).sum()), rel=1e-9)
    assert out.sqnr_db == pytest.approx(10 * np.log10((f * f).sum() / ((f - q) ** 2).sum()), rel=1e-9)
    assert out.max_abs_error == pytest.approx(np.abs(f - q).max())
    assert report.macs == report.reference_macs == 231680
    assert report.size_bytes < report.reference_size_bytes  # type: ignore[operator]
    # per-layer: quantized activations of every Conv+Relu, ordered as in the graph
    tensors = [layer.tensor for layer in report.layers]
    assert tensors[:3] == [f"/features/features.{i}/Relu_output_0" for i in (1, 3, 5)]
    assert all(10 < layer.sqnr_db < 80 for layer in report.layers)
    assert "top-1" in report.summary()


def test_layer_sqnr_against_onnx_reference(
    quantized_demo: onnx.ModelProto, demo_float: Path, digits: dict[str, np.ndarray]
) -> None:
    from onnx.reference import ReferenceEvaluator

    x = digits["x_test"][:16]
    report = evaluate(quantized_demo, x, reference=demo_float)
    ref = ReferenceEvaluator(str(demo_float)).run(None, {"image": x}, intermediate=True)
    # onnx.reference implements DequantizeLinear from opset 19; the ops of this model mean
    # the same in opsets 17 and 19, so a copy declaring 19 runs there unchanged.
    as19 = onnx.ModelProto()
    as19.CopyFrom(quantized_demo)
    for imp in as19.opset_import:
        if imp.domain in ("", "ai.onnx"):
            imp.version = 19
    got = ReferenceEvaluator(as19).run(None, {"image": x}, intermediate=True)
    name = "/features/features.3/Relu_output_0"
    a = ref[name].astype(np.float64)
    b = got[f"{name}_DequantizeLinear_Output"].astype(np.float64)
    expected = 10 * np.log10((a * a).sum() / ((a - b) ** 2).sum())
    layer = next(layer for layer in report.layers if layer.tensor == name)
    assert layer.sqnr_db == pytest.approx(expected, abs=0.05)


def test_layer_sqnr_of_a_qoperator_model(
    demo_float: Path, demo_calibration: list[np.ndarray], digits: dict[str, np.ndarray]
) -> None:
    """QLinear ops keep activations as integers; they are dequantized with their own scale."""
    x = digits["x_test"][:64]
    qdq = quantize(demo_float, demo_calibration, progress=False).model
    qop = quantize(demo_float, demo_calibration, format="qoperator", progress=False).model
    by_qdq = {layer.tensor: layer.sqnr_db for layer in evaluate(qdq, x, reference=demo_float).layers}
    by_qop = {layer.tensor: layer.sqnr_db for layer in evaluate(qop, x, reference=demo_float).layers}
    relus = [f"/features/features.{i}/Relu_output_0" for i in (1, 3, 5)]
    for name in relus:
        # the same activation, quantized with the same range: QLinearConv requantizes its
        # int32 sums where QDQ rounds the float result, so the two agree closely
        assert by_qop[name] == pytest.approx(by_qdq[name], abs=1.0)


def test_model_against_itself_is_exact(demo_float: Path, digits: dict[str, np.ndarray]) -> None:
    report = evaluate(demo_float, digits["x_test"][:20], digits["y_test"][:20], reference=demo_float)
    assert report.agreement == 1.0 and report.accuracy_drop == 0.0
    assert report.outputs[0].sqnr_db == float("inf") and report.outputs[0].cosine_similarity == pytest.approx(1)
    assert all(layer.sqnr_db == float("inf") for layer in report.layers)


def test_feeds_iterable_and_native_device(quantized_demo: onnx.ModelProto, digits: dict[str, np.ndarray]) -> None:
    x, y = digits["x_test"][:40], digits["y_test"][:40]
    batched = evaluate(quantized_demo, x, y)
    listed = evaluate(quantized_demo, [{"image": x[i : i + 8]} for i in range(0, 40, 8)], y)
    native = evaluate(quantized_demo, x, y, device="native")
    assert batched.top1 == listed.top1 == native.top1
    assert native.device.startswith("native")


def test_plot_layer_sqnr(quantized_demo: onnx.ModelProto, demo_float: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    x = np.zeros((4, 1, 8, 8), np.float32) + 0.5
    report = evaluate(quantized_demo, x, reference=demo_float)
    path = report.plot_layer_sqnr(tmp_path / "sqnr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sqnr.png"]


def test_topk_accuracy_and_errors(demo_float: Path) -> None:
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
    assert topk_accuracy(scores, np.array([2, 0]), 1) == 0.5
    assert topk_accuracy(scores, np.array([2, 0]), 2) == 1.0
    x = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(OptimizationError, match="labels"):
        evaluate(demo_float, x, np.zeros(3, np.int64))
    with pytest.raises(OptimizationError, match="empty"):
        evaluate(demo_float, [])
    with pytest.raises(OptimizationError, match="no per-layer"):
        evaluate(demo_float, x).plot_layer_sqnr("unused.png")
