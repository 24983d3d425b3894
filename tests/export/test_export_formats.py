"""edgeai.export: one small torch CNN to every format, each run back through edgeai.Session."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgeai  # noqa: E402
from edgeai.errors import EdgeAIError, MissingDependencyError  # noqa: E402
from edgeai.export import ExportResult, export  # noqa: E402
from edgeai.export._api import ExportCheckError  # noqa: E402
from edgeai.export._converters import tflite_converter_status  # noqa: E402
from edgeai.export._files import atomic_output  # noqa: E402

HAS_EXECUTORCH = importlib.util.find_spec("executorch") is not None and (
    importlib.util.find_spec("executorch.runtime") is not None
)
HAS_COREML = importlib.util.find_spec("coremltools") is not None


from torch_models import SmallCNN  # noqa: E402


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(a) * torch.sigmoid(b)
        return h, h.sum(1)


@pytest.fixture(scope="module")
def cnn() -> tuple[torch.nn.Module, torch.Tensor, np.ndarray]:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        return model, x, model(x).numpy()


def _run(path: Path, x: torch.Tensor) -> tuple[np.ndarray, edgeai.Session]:
    sess = edgeai.Session(path)
    return sess.run({sess.inputs[0].name: x.numpy()})[sess.outputs[0].name], sess


def test_onnx(cnn, tmp_path: Path) -> None:
    model, x, want = cnn
    result = export(model, x, "onnx", tmp_path / "cnn")
    assert isinstance(result, ExportResult)
    assert result.path == tmp_path / "cnn.onnx" and result.device == "onnxruntime:cpu"
    out, sess = _run(result.path, x)
    assert [s.name for s in sess.inputs] == ["input"] and [s.name for s in sess.outputs] == ["output"]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert result.max_abs_error == pytest.approx(float(np.abs(out - want).max()), abs=1e-9)


@pytest.mark.skipif(not HAS_EXECUTORCH, reason='needs the executorch extra: pip install "edgeai[executorch]"')
def test_pte_float_and_int8(cnn, tmp_path: Path) -> None:
    model, x, want = cnn
    result = export(model, (x,), "pte", tmp_path / "cnn.pte")
    out, sess = _run(result.path, x)
    assert sess.device.backend == "executorch"
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    assert "executorch:xnnpack" in sess.placement.device_share()

    calib = [(torch.randn(1, 3, 16, 16),) for _ in range(4)] + [(x,)]
    q = export(model, (x,), "pte", tmp_path / "cnn_int8.pte", quantize="int8", calibration=calib)
    assert q.quantize == "int8" and "int8" in q.reference
    out8, sess8 = _run(q.path, x)
    assert q.path.stat().st_size < result.path.stat().st_size  # int8 weights
    err = float(np.abs(out8 - want).max())
    assert 0 < err < 0.1 * float(np.abs(want).max())  # quantized, and still close to the float model
    ops = [n.op_type for n in sess8.placement.nodes if n.device == "executorch:xnnpack"]
    assert ops.count("Conv2d") == 2 and "FullyConnected" in ops


@pytest.mark.skipif(not HAS_COREML, reason='needs the coreml extra: pip install "edgeai[coreml]"')
def test_coreml_float32_float16_int8(cnn, tmp_path: Path) -> None:
    model, x, want = cnn
    r32 = export(model, x, "coreml", tmp_path / "cnn32", precision="float32")
    assert r32.path.suffix == ".mlpackage" and r32.path.is_dir()
    out, sess = _run(r32.path, x)
    assert sess.inputs[0].dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)

    r16 = export(model, x, "coreml", tmp_path / "cnn16.mlpackage")
    out16, _ = _run(r16.path, x)
    assert 0 < np.abs(out16 - want).max() < 2e-2 * np.abs(want).max()  # fp16 weights

    r8 = export(model, x, "coreml", tmp_path / "cnn8.mlpackage", quantize="int8")
    out8, _ = _run(r8.path, x)
    from edgeai.formats.coreml_mil import import_coreml

    assert len(import_coreml(r8.path).metadata["int8_weights"]) == 3
    assert 0 < np.abs(out8 - want).max() < 5e-2 * np.abs(want).max()


def test_tflite_needs_a_converter(cnn, tmp_path: Path) -> None:
    model, x, want = cnn
    name, _ = tflite_converter_status()
    if name is None:
        with pytest.raises(MissingDependencyError, match="litert-torch") as info:
            export(model, x, "tflite", tmp_path / "cnn.tflite")
        from importlib.metadata import version

        major, minor = (int(p) for p in version("pydantic").split(".")[:2])
        if (major, minor) >= (2, 12):
            assert "pydantic" in str(info.value)
        assert not list(tmp_path.iterdir())
    else:  # a converter is installed: the export must round-trip
        result = export(model, x, "tflite", tmp_path / "cnn.tflite")
        out, _ = _run(result.path, x)
        np.testing.assert_allclose(out, want, rtol=1e-3, atol=1e-4)


def test_multi_input_output_names(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = TwoHeads().eval()
    a, b = torch.randn(3, 6), torch.randn(3, 4)
    result = export(model, (a, b), "onnx", tmp_path / "heads.onnx", output_names=["h", "total"])
    sess = edgeai.Session(result.path)
    assert [s.name for s in sess.inputs] == ["input_0", "input_1"]
    out = sess.run({"input_0": a.numpy(), "input_1": b.numpy()})
    with torch.no_grad():
        h, total = model(a, b)
    np.testing.assert_allclose(out["h"], h.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["total"], total.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not HAS_COREML, reason='needs the coreml extra: pip install "edgeai[coreml]"')
def test_failed_check_leaves_existing_file_untouched(cnn, tmp_path: Path) -> None:
    model, x, _ = cnn
    target = tmp_path / "cnn.mlpackage"
    target.mkdir()
    (target / "marker").write_text("previous export")
    with pytest.raises(ExportCheckError, match=r"off by .* allowed 0\.00%"):
        export(model, x, "coreml", target, tolerance=0.0)  # float16 cannot be exact
    assert (target / "marker").read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.mlpackage"]


def test_a_wrong_model_is_caught_by_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Corrupt what the converter writes: the comparison with torch must fail."""
    import onnx

    from edgeai.export import _converters

    real = _converters.to_onnx

    def sabotaged(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        path = args[2]
        proto = onnx.load(str(path))
        for init in proto.graph.initializer:
            if init.name.endswith("bias"):
                arr = onnx.numpy_helper.to_array(init) + 1.0
                init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), init.name))
        onnx.save(proto, str(path))

    monkeypatch.setattr(_converters, "to_onnx", sabotaged)
    torch.manual_seed(0)
    with pytest.raises(ExportCheckError, match="disagrees with torch"):
        export(torch.nn.Linear(4, 3).eval(), torch.randn(2, 4), "onnx", tmp_path / "lin.onnx")
    assert not list(tmp_path.iterdir())


def test_bad_arguments(cnn, tmp_path: Path) -> None:
    model, x, _ = cnn
    with pytest.raises(ValueError, match="unknown export format"):
        export(model, x, "savedmodel", tmp_path / "m")
    with pytest.raises(ValueError, match="quantize"):
        export(model, x, "onnx", tmp_path / "m", quantize="int8")
    with pytest.raises(ValueError, match="quantize must be"):
        export(model, x, "pte", tmp_path / "m", quantize="int4")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        export(lambda t: t, x, "onnx", tmp_path / "m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"not a torch\.Tensor"):
        export(model, (x.numpy(),), "onnx", tmp_path / "m")
    with pytest.raises(ValueError, match="input_names"):
        export(model, x, "onnx", tmp_path / "m", input_names=["a", "b"])
    if importlib.util.find_spec("onnxscript") is None:
        with pytest.raises(MissingDependencyError, match="onnxscript"):
            export(model, x, "onnx", tmp_path / "m", dynamo=True)
    assert not list(tmp_path.iterdir())


def test_atomic_output(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("converter crashed")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    folder = tmp_path / "m.mlpackage"
    with atomic_output(folder) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
    with atomic_output(folder) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("2")
    assert [p.name for p in folder.iterdir()] == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlpackage", "model.bin"]


def test_cli_export(tmp_path: Path) -> None:
    from edgeai.cli import main

    src = tmp_path / "zoo.py"
    src.write_text(
        textwrap.dedent(
            """
            import torch

            def make():
                torch.manual_seed(3)
                return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
            """
        )
    )
    out = tmp_path / "zoo.onnx"
    assert main(["export", f"{src}:make", "--input-shape", "1,2,6,6", "-o", str(out), "--json"]) == 0
    sess = edgeai.Session(out)
    x = torch.randn(1, 2, 6, 6)
    spec = importlib.util.spec_from_file_location("zoo", src)
    assert spec is not None and spec.loader is not None
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    with torch.no_grad():
        want = zoo.make().eval()(x).numpy()
    np.testing.assert_allclose(sess.run(x.numpy())["output"], want, rtol=1e-5, atol=1e-6)

    # a torch.export archive carries its example inputs
    program = torch.export.export(zoo.make().eval(), (x,))
    torch.export.save(program, str(tmp_path / "zoo.pt2"))
    assert main(["export", str(tmp_path / "zoo.pt2"), "-o", str(tmp_path / "from_pt2.onnx")]) == 0
    assert (tmp_path / "from_pt2.onnx").exists()

    assert main(["export", "no_colon_here", "--input-shape", "1,2"]) == 2
    assert main(["export", f"{src}:missing", "--input-shape", "1,2"]) == 2


def test_cli_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgeai.cli import main

    src = tmp_path / "lin.py"
    src.write_text("import torch\nmodel = torch.nn.Linear(3, 2)\n")
    args = ["export", f"{src}:model", "--input-shape", "4,3", "-o", str(tmp_path / "lin.onnx"), "--json"]
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "onnx" and info["relative_error"] <= info["tolerance"]
    assert main(["export", f"{src}:model", "--input-shape", "4,a"]) == 2
    assert "must be integers" in capsys.readouterr().err
    assert main(["export", f"{src}:model", "--input-shape", "4x5"]) == 2
    assert "fails on the example inputs (shapes (4, 5))" in capsys.readouterr().err
    assert main(["export", f"{src}:model", "--format", "savedmodel", "--input-shape", "4,3"]) == 2
    assert "unknown export format" in capsys.readouterr().err
    assert main(["export", f"{src}:model"]) == 2
    assert "--input-shape" in capsys.readouterr().err
    assert issubclass(ExportCheckError, EdgeAIError)


def test_edgeai_export_is_callable(tmp_path: Path) -> None:
    import edgeai.export as export_package

    torch.manual_seed(5)
    model = torch.nn.Linear(3, 2).eval()
    x = torch.randn(1, 3)
    result = export_package(model, x, "onnx", tmp_path / "lin.onnx")  # the package calls export()
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(edgeai.Session(result.path).run(x.numpy())["output"], want, rtol=1e-6)
