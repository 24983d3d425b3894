"""Bad models get clear edgeai errors: missing, empty, truncated, corrupt, external data escaping."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeai
from edgeai.errors import (
    EdgeAIError,
    ExternalDataError,
    ModelFormatError,
    ModelNotFoundError,
    UnsupportedOpError,
)


def test_missing_path() -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        edgeai.Session("no/such/model.onnx")
    assert issubclass(ModelNotFoundError, FileNotFoundError)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        edgeai.Session(path)
    with pytest.raises(ModelFormatError, match="empty"):
        edgeai.Session(b"")


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="directory"):
        edgeai.Session(tmp_path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file(tmp_path: Path, fraction: float) -> None:
    data = edgeai.demo.model_path().read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFormatError):
        edgeai.Session(path)


def test_garbage_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.onnx"
    path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFormatError):
        edgeai.Session(path)


def test_flipped_bytes_never_crash(tmp_path: Path) -> None:
    """Corrupt a valid model in many places: every outcome is a result or an EdgeAIError."""
    data = bytearray(edgeai.demo.model_path().read_bytes())
    rng = np.random.default_rng(1)
    x = np.zeros((1, 1, 8, 8), np.float32)
    for i in range(40):
        corrupt = bytearray(data)
        for pos in rng.integers(0, len(corrupt), 8):
            corrupt[pos] ^= 0xFF
        path = tmp_path / f"c{i}.onnx"
        path.write_bytes(bytes(corrupt))
        with contextlib.suppress(EdgeAIError):
            edgeai.Session(path).run({"image": x})


def test_wrong_object_type() -> None:
    with pytest.raises(ModelFormatError, match="cannot open a model from int"):
        edgeai.Session(42)


def _model_with_external(tmp_path: Path, location: str) -> Path:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = numpy_helper.from_array(w, "W")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(w.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[tensor],
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    path = model_dir / "ext.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_external_data_inside_folder_works(tmp_path: Path) -> None:
    path = _model_with_external(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(np.arange(12, dtype=np.float32).tobytes())
    x = np.ones((1, 3), np.float32)
    got = edgeai.Session(path)(x)["y"]
    np.testing.assert_array_equal(got, x @ np.arange(12, dtype=np.float32).reshape(3, 4))


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin"])
def test_external_data_outside_folder_is_refused(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(np.zeros(12, np.float32).tobytes())
    path = _model_with_external(tmp_path, location)
    with pytest.raises(ExternalDataError, match="outside the model's folder"):
        edgeai.Session(path)


def test_external_data_absolute_path_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "abs.bin"
    secret.write_bytes(np.zeros(12, np.float32).tobytes())
    path = _model_with_external(tmp_path, str(secret))
    with pytest.raises(ExternalDataError, match="relative path"):
        edgeai.Session(path)


def test_external_data_symlink_escape_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(np.zeros(12, np.float32).tobytes())
    path = _model_with_external(tmp_path, "link.bin")
    (path.parent / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(ExternalDataError, match="outside the model's folder"):
        edgeai.Session(path)


def test_external_data_missing_or_short(tmp_path: Path) -> None:
    path = _model_with_external(tmp_path, "weights.bin")
    with pytest.raises(ExternalDataError, match="missing"):
        edgeai.Session(path)
    (path.parent / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ExternalDataError, match="truncated"):
        edgeai.Session(path)


def test_external_data_given_as_bytes(tmp_path: Path) -> None:
    path = _model_with_external(tmp_path, "weights.bin")
    with pytest.raises(ExternalDataError, match="given as bytes"):
        edgeai.Session(path.read_bytes())


def test_op_onnxruntime_cannot_run_names_op_and_node(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("FancyOp", ["x"], ["y"], name="the_node", domain="example.custom")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)]
    )
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    with pytest.raises((UnsupportedOpError, ModelFormatError), match="FancyOp"):
        edgeai.Session(path, device="onnxruntime")


def test_model_without_graph(tmp_path: Path) -> None:
    path = tmp_path / "nograph.onnx"
    path.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())
    with pytest.raises(ModelFormatError):
        edgeai.Session(path)
