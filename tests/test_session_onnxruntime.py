"""edgeai.Session over ONNX Runtime: every output against a raw InferenceSession."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeai
from edgeai.errors import (
    InputNameError,
    InputShapeError,
    InputTypeError,
    SessionClosedError,
)


def _raw(path: Path | bytes) -> ort.InferenceSession:
    arg = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(arg, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def two_input_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """y = MatMul(a, W) + b; z = Relu(y) * c, with a symbolic batch shared by a and c."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["a", "W"], ["m"], name="mm"),
            helper.make_node("Relu", ["m"], ["y"], name="relu"),
            helper.make_node("Mul", ["y", "c"], ["z"], name="mul"),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("c", TensorProto.FLOAT, ["batch", 3]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3]),
        ],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("two") / "two.onnx"
    onnx.save(model, str(path))
    return path


def test_demo_model_matches_raw_onnxruntime() -> None:
    path = edgeai.demo.model_path()
    images, _ = edgeai.demo.samples()
    expected = _raw(path).run(None, {"image": images})
    with edgeai.Session(path) as sess:
        got = sess.run({"image": images})
    np.testing.assert_array_equal(got["probabilities"], expected[0])


def test_all_call_forms_agree(two_input_model: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 4)).astype(np.float32)
    c = rng.standard_normal((5, 3)).astype(np.float32)
    expected = _raw(two_input_model).run(None, {"a": a, "c": c})
    sess = edgeai.Session(two_input_model)
    as_dict = sess.run({"a": a, "c": c})
    assert list(as_dict) == ["y", "z"]
    for name, exp in zip(["y", "z"], expected):
        np.testing.assert_array_equal(as_dict[name], exp)
    as_list = sess.run([a, c])
    np.testing.assert_array_equal(as_list["z"], expected[1])
    # ONNX Runtime's call form returns a list, in the order asked
    ort_form = sess.run(["z", "y"], {"a": a, "c": c})
    assert isinstance(ort_form, list)
    np.testing.assert_array_equal(ort_form[0], expected[1])
    np.testing.assert_array_equal(ort_form[1], expected[0])
    all_outputs = sess.run(None, {"a": a, "c": c})
    np.testing.assert_array_equal(all_outputs[0], expected[0])
    np.testing.assert_array_equal(sess(a=a, c=c)["y"], expected[0])


def test_single_array_for_one_input_model() -> None:
    sess = edgeai.Session(edgeai.demo.model_path())
    x = np.zeros((3, 1, 8, 8), np.float32)
    np.testing.assert_array_equal(sess(x)["probabilities"], sess.run({"image": x})["probabilities"])
    # nested lists are converted to the input dtype, like ONNX Runtime does
    np.testing.assert_array_equal(sess.run(x.tolist())["probabilities"], sess(x)["probabilities"])


def test_model_given_as_bytes_and_proto(two_input_model: Path) -> None:
    data = two_input_model.read_bytes()
    proto = onnx.load(str(two_input_model))
    a = np.ones((2, 4), np.float32)
    c = np.ones((2, 3), np.float32)
    ref = edgeai.Session(two_input_model).run({"a": a, "c": c})
    for model in (data, proto):
        got = edgeai.Session(model).run({"a": a, "c": c})
        np.testing.assert_array_equal(got["z"], ref["z"])


def test_specs_keep_symbolic_dims(two_input_model: Path) -> None:
    sess = edgeai.Session(two_input_model)
    assert [(s.name, s.dtype, s.shape) for s in sess.inputs] == [
        ("a", np.dtype("float32"), ("batch", 4)),
        ("c", np.dtype("float32"), ("batch", 3)),
    ]
    assert [s.name for s in sess.outputs] == ["y", "z"]
    assert all(s.quant is None for s in sess.inputs)


def test_quantized_io_specs_carry_quant_params(tmp_path: Path) -> None:
    """A uint8 input feeding DequantizeLinear carries its scale and zero point."""
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["x"], name="dq"),
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("QuantizeLinear", ["r", "s", "zp"], ["out"], name="q_out"),
        ],
        "qio",
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [1, 4])],
        [helper.make_tensor_value_info("out", TensorProto.UINT8, [1, 4])],
        initializer=[
            numpy_helper.from_array(np.array(0.05, np.float32), "s"),
            numpy_helper.from_array(np.array(128, np.uint8), "zp"),
        ],
    )
    path = tmp_path / "qio.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    sess = edgeai.Session(path)
    (inp,), (out,) = sess.inputs, sess.outputs
    assert inp.quant is not None and out.quant is not None
    assert inp.quant.scale == pytest.approx((0.05,)) and inp.quant.zero_point == (128,)
    q = np.array([[0, 100, 128, 255]], np.uint8)
    expected = _raw(path).run(None, {"q": q})[0]
    np.testing.assert_array_equal(sess(q)["out"], expected)
    # the spec's own (de)quantize follows the ONNX formulas
    np.testing.assert_array_equal(out.quant.quantize(inp.quant.dequantize(q).clip(0)), expected)


def test_wrong_feeds_get_clear_errors(two_input_model: Path) -> None:
    sess = edgeai.Session(two_input_model)
    a = np.ones((2, 4), np.float32)
    c = np.ones((2, 3), np.float32)
    with pytest.raises(InputNameError, match=r"unknown input name\(s\) \['x'\].*a: float32\[batch, 4\]"):
        sess.run({"a": a, "x": c})
    with pytest.raises(InputNameError, match=r"missing input\(s\) \['c'\]"):
        sess.run({"a": a})
    with pytest.raises(InputTypeError, match=r"expects dtype float32.*got float64"):
        sess.run({"a": a.astype(np.float64), "c": c})
    with pytest.raises(InputShapeError, match=r"expects rank 2.*rank 3"):
        sess.run({"a": a[None], "c": c})
    with pytest.raises(InputShapeError, match="expects size 4 on axis 1"):
        sess.run({"a": np.ones((2, 5), np.float32), "c": c})
    with pytest.raises(InputShapeError, match="dimension 'batch' is 2 in input 'a' but 3"):
        sess.run({"a": a, "c": np.ones((3, 3), np.float32)})
    with pytest.raises(InputNameError, match=r"2 inputs"):
        sess.run(a)
    with pytest.raises(InputNameError, match=r"unknown output name\(s\) \['nope'\]"):
        sess.run(["nope"], {"a": a, "c": c})
    with pytest.raises(InputTypeError, match="cannot be converted"):
        sess.run({"a": "text", "c": c})
    # error classes are also the builtin ones, for callers that catch those
    assert issubclass(InputTypeError, TypeError) and issubclass(InputShapeError, ValueError)


def test_threads_share_one_session(two_input_model: Path) -> None:
    sess = edgeai.Session(two_input_model)
    raw = _raw(two_input_model)
    rng = np.random.default_rng(2)
    feeds = [
        {
            "a": rng.standard_normal((3, 4)).astype(np.float32),
            "c": rng.standard_normal((3, 3)).astype(np.float32),
        }
        for _ in range(8)
    ]
    expected = [raw.run(None, f)[1] for f in feeds]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(200):
                j = (i + k) % len(feeds)
                np.testing.assert_array_equal(sess.run(feeds[j])["z"], expected[j])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_close_and_context_manager(two_input_model: Path) -> None:
    feeds = {"a": np.ones((1, 4), np.float32), "c": np.ones((1, 3), np.float32)}
    with edgeai.Session(two_input_model) as sess:
        sess.run(feeds)
    with pytest.raises(SessionClosedError, match="closed"):
        sess.run(feeds)
    with pytest.raises(SessionClosedError):
        sess.run(None, feeds)
    with pytest.raises(SessionClosedError):
        _ = sess.placement
    sess.close()  # closing twice is harmless
    assert "closed" in repr(sess)


def test_placement_comes_from_onnxruntime_record(two_input_model: Path) -> None:
    sess = edgeai.Session(two_input_model)
    report = sess.placement
    assert {n.name for n in report.nodes} == {"mm", "relu", "mul"}
    assert {n.device for n in report.nodes} == {"onnxruntime:cpu"}
    assert "graph-assignment" in report.source
    assert report.device_share() == {"onnxruntime:cpu": 1.0}
    data = report.to_dict()
    assert data["nodes"][0]["device"] == "onnxruntime:cpu"
    text = str(report)
    assert "mm" in text and "MatMul" in text
    assert "<table>" in report._repr_html_()


def test_optimization_and_threads_options(two_input_model: Path) -> None:
    feeds = {"a": np.ones((2, 4), np.float32), "c": np.ones((2, 3), np.float32)}
    ref = _raw(two_input_model).run(None, feeds)
    sess = edgeai.Session(two_input_model, optimization="none", threads=1)
    np.testing.assert_array_equal(sess.run(feeds)["z"], ref[1])
    with pytest.raises(ValueError, match="optimization must be"):
        edgeai.Session(two_input_model, optimization="max")
