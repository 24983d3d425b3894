"""`.tflite` models through edgeai.Session, checked against LiteRT's own interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tflite_builder import custom_op_model, float_add_mul, int8_cnn, stateful_accumulator

import edgeai
from edgeai.backends.litert import _interpreter_module, dequantize_tflite, find_delegates, quantize_tflite
from edgeai.errors import DeviceNotAvailableError, InputShapeError, UnsupportedOpError
from edgeai.specs import QuantParams

# the interpreter edgeai picks (ai-edge-litert, or tflite-runtime in the numpy<2 environment)
litert, INTERPRETER = _interpreter_module()


def _raw(model: bytes, feeds: list[np.ndarray]) -> list[np.ndarray]:
    it = litert.Interpreter(model_content=model)
    for d, x in zip(it.get_input_details(), feeds):
        if tuple(d["shape"]) != x.shape:
            it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tfl") / "int8_cnn.tflite"
    path.write_bytes(int8_cnn())
    return path


def test_int8_cnn_matches_raw_interpreter(cnn_path: Path) -> None:
    rng = np.random.default_rng(0)
    sess = edgeai.Session(cnn_path)
    assert sess.format == "tflite" and sess.device.backend == "litert"
    (inp,), (out,) = sess.inputs, sess.outputs
    assert inp.shape == (None, 8, 8, 1) and inp.dtype == np.int8
    assert inp.quant is not None and inp.quant.zero_point == (-128,)
    assert out.quant is not None and out.quant.scale == pytest.approx((1 / 256,))
    for batch in (1, 3, 1, 5):  # dynamic batch: resized to each fed shape
        x = rng.integers(-128, 128, (batch, 8, 8, 1)).astype(np.int8)
        np.testing.assert_array_equal(sess(x)["probs"], _raw(cnn_path.read_bytes(), [x])[0])


def test_quantize_io_uses_tflite_formulas(cnn_path: Path) -> None:
    rng = np.random.default_rng(1)
    plain = edgeai.Session(cnn_path)
    floats = edgeai.Session(cnn_path, quantize_io=True)
    assert floats.inputs[0].dtype == np.float32
    x = rng.random((2, 8, 8, 1)).astype(np.float32)
    q = plain.inputs[0].quant
    assert q is not None
    xq = quantize_tflite(x, q)
    # reference in float64: round half away from zero, saturate
    ref = np.clip(np.sign(x / q.scale[0]) * np.floor(np.abs(x / np.float32(q.scale[0])) + 0.5) - 128, -128, 127)
    np.testing.assert_array_equal(xq, ref.astype(np.int8))
    out_q = plain(xq)["probs"]
    oq = plain.outputs[0].quant
    assert oq is not None
    np.testing.assert_array_equal(floats(x)["probs"], (out_q.astype(np.float32) + 128) * np.float32(oq.scale[0]))


def test_rounding_half_away_from_zero() -> None:
    q = QuantParams(scale=(0.5,), zero_point=(0,), dtype=np.dtype(np.int8))
    x = np.array([0.25, -0.25, 0.75, -0.75, 100.0, -100.0], np.float32)  # x/scale = +-0.5, +-1.5, +-200
    np.testing.assert_array_equal(quantize_tflite(x, q), [1, -1, 2, -2, 127, -128])
    np.testing.assert_array_equal(dequantize_tflite(np.array([2, -3], np.int8), q), [1.0, -1.5])


def test_float_model_against_numpy(tmp_path: Path) -> None:
    path = tmp_path / "f.tflite"
    path.write_bytes(float_add_mul())
    sess = edgeai.Session(path)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, np.float32)
    np.testing.assert_array_equal(sess.run({"a": a, "b": b})["y"], (a + b) * a)
    np.testing.assert_array_equal(sess.run(None, {"a": a, "b": b})[0], (a + b) * a)


def test_wrong_feeds(cnn_path: Path, tmp_path: Path) -> None:
    sess = edgeai.Session(cnn_path)
    with pytest.raises(edgeai.errors.InputTypeError, match="expects dtype int8"):
        sess(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(InputShapeError, match="axis 1"):
        sess(np.zeros((1, 9, 8, 1), np.int8))
    fixed = tmp_path / "fixed.tflite"
    fixed.write_bytes(int8_cnn(batch_signature=False))
    with pytest.raises(InputShapeError, match="axis 0"):
        edgeai.Session(fixed)(np.zeros((2, 8, 8, 1), np.int8))


def test_unknown_custom_op_is_named(tmp_path: Path) -> None:
    path = tmp_path / "custom.tflite"
    path.write_bytes(custom_op_model("EdgeAIUnknownOp"))
    with pytest.raises(UnsupportedOpError, match="EdgeAIUnknownOp"):
        edgeai.Session(path)


def test_stateful_model_keeps_and_resets_state(tmp_path: Path) -> None:
    path = tmp_path / "state.tflite"
    path.write_bytes(stateful_accumulator())
    sess = edgeai.Session(path)
    x = np.ones((1, 4), np.float32)
    for k in range(1, 4):
        np.testing.assert_array_equal(sess(x)["y"], np.full((1, 4), k, np.float32))
    sess.reset_state()
    np.testing.assert_array_equal(sess(2 * x)["y"], np.full((1, 4), 2, np.float32))


def test_placement_reports_delegated_nodes(cnn_path: Path) -> None:
    report = edgeai.Session(cnn_path).placement
    assert [n.op_type for n in report.nodes] == ["CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert all("XNNPACK delegate" in n.reason or "LiteRT builtin kernel" in n.reason for n in report.nodes)
    assert INTERPRETER in report.source


def test_missing_delegate_library_is_a_clear_error(
    cnn_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEAI_TFLITE_DELEGATES", "edgetpu=/nonexistent/libedgetpu.so.1")
    assert find_delegates()["edgetpu"] == Path("/nonexistent/libedgetpu.so.1")
    devs = {d.id: d for d in edgeai.devices(refresh=True) if d.backend == "litert"}
    assert devs["litert:edgetpu"].kind == "NPU"
    with pytest.raises(DeviceNotAvailableError, match="cannot be loaded"):
        edgeai.Session(cnn_path, device="litert:edgetpu")
    assert "AttributeError" not in capfd.readouterr().err
    edgeai.devices(refresh=True)


def test_litert_cpu_device_is_xnnpack() -> None:
    cpu = next(d for d in edgeai.devices() if d.id == "litert:cpu")
    assert "XNNPACK" in cpu.provider and cpu.properties["interpreter"] == INTERPRETER
