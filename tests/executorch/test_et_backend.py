"""edgeai.Session over ExecuTorch programs, checked against torch and the raw ExecuTorch runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edgeai
from edgeai.backends import get_backend
from edgeai.errors import (
    DeviceNotAvailableError,
    InputNameError,
    InputShapeError,
    InputTypeError,
    ModelFormatError,
    PlacementError,
    SessionClosedError,
    UnsupportedOpError,
)
from edgeai.formats import open_model
from edgeai.hardware import Device, DeviceKind


def _raw_run(path: Path, inputs: list[torch.Tensor], method: str = "forward") -> list[np.ndarray]:
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(path)
    return [o.numpy() for o in program.load_method(method).execute(inputs)]


def test_xnnpack_program_matches_torch_and_raw_runtime(cnn, cnn_xnnpack: Path) -> None:
    model, x = cnn
    with edgeai.Session(cnn_xnnpack) as sess:
        assert sess.format == "pte"
        assert sess.device.backend == "executorch"
        out = sess.run({"input": x.numpy()})["output"]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out, _raw_run(cnn_xnnpack, [x])[0])


def test_program_from_bytes(cnn, cnn_xnnpack: Path) -> None:
    model, x = cnn
    sess = edgeai.Session(cnn_xnnpack.read_bytes())
    assert sess.format == "pte"
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(x.numpy())["output"], model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_specs_come_from_method_metadata(cnn_xnnpack: Path, two_methods: Path) -> None:
    sess = edgeai.Session(cnn_xnnpack)
    assert [(s.name, s.dtype, s.shape) for s in sess.inputs] == [("input", np.float32, (1, 3, 16, 16))]
    assert [(s.name, s.dtype, s.shape) for s in sess.outputs] == [("output", np.float32, (1, 10))]
    multi = edgeai.Session(two_methods)
    assert [s.name for s in multi.inputs] == ["input_0", "input_1"]
    assert [(s.name, s.shape) for s in multi.outputs] == [("output_0", (2, 5)), ("output_1", (2,))]


def test_multi_io_and_named_method(two_methods: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 2, 5), dtype=np.float32)
    sess = edgeai.Session(two_methods)
    out = sess.run([a, b])
    np.testing.assert_allclose(out["output_0"], a + b, rtol=1e-6)
    np.testing.assert_allclose(out["output_1"], (a * b).sum(1), rtol=1e-5, atol=1e-6)
    # ONNX Runtime's call form: chosen outputs, in the order asked
    second, first = sess.run(["output_1", "output_0"], {"input_0": a, "input_1": b})
    np.testing.assert_array_equal(first, out["output_0"])
    np.testing.assert_array_equal(second, out["output_1"])
    scaled = edgeai.Session(two_methods, method="scaled").run([a, b])
    np.testing.assert_allclose(scaled["output_0"], 3 * a, rtol=1e-6)
    np.testing.assert_allclose(scaled["output_1"], b - a, rtol=1e-6)
    named = edgeai.Session(two_methods, input_names=["a", "b"], output_names=["total", "dot"])
    assert [i.name for i in named.inputs] == ["a", "b"]
    np.testing.assert_array_equal(named.run({"a": a, "b": b})["dot"], out["output_1"])
    with pytest.raises(InputNameError, match="input_names has 1 names but method 'forward'"):
        edgeai.Session(two_methods, input_names=["a"])
    with pytest.raises(ModelFormatError, match=r"no method 'nope'.*forward, scaled"):
        edgeai.Session(two_methods, method="nope")


def test_placement_from_program_instructions(cnn_xnnpack: Path, cnn_portable: Path) -> None:
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DelegateCall, KernelCall

    report = edgeai.Session(cnn_xnnpack).placement
    plan = deserialize_pte_binary(cnn_xnnpack.read_bytes()).program.execution_plan[0]
    calls = [i.instr_args for c in plan.chains for i in c.instructions]
    delegates = [c for c in calls if isinstance(c, DelegateCall)]
    kernels = [c for c in calls if isinstance(c, KernelCall)]
    assert delegates and kernels  # conv/linear delegated, the global mean is not
    on_xnn = [n for n in report.nodes if n.device == "executorch:xnnpack"]
    on_cpu = [n for n in report.nodes if n.device == "executorch:portable"]
    # every delegate call is listed through the XNNPACK nodes decoded from its blob
    assert {n.name.split("/")[0] for n in on_xnn} == {f"delegate_{d.delegate_index}" for d in delegates}
    assert len(on_cpu) == len(kernels)
    assert {n.op_type for n in on_cpu} == {"aten::mean.out"}
    xnn_ops = [n.op_type for n in on_xnn]
    assert xnn_ops.count("Conv2d") == 2 and xnn_ops.count("FullyConnected") == 1  # the model's layers
    assert all(p.device_kind == "CPU" for p in report.partitions)
    assert len(report.partitions) == 3  # xnnpack | portable mean | xnnpack

    portable = edgeai.Session(cnn_portable, device="executorch:portable").placement
    assert portable.device_share() == {"executorch:portable": 1.0}
    assert {"aten::convolution.out", "aten::relu.out"} <= {n.op_type for n in portable.nodes}


def test_unreadable_delegate_blob_falls_back_to_one_node() -> None:
    from edgeai.backends.executorch import xnnpack_nodes

    assert xnnpack_nodes(b"\x00" * 64) is None
    assert xnnpack_nodes(b"\x00\x00\x00\x00XH00" + b"\xff" * 40) is None


def test_devices_come_from_the_runtime_registry() -> None:
    from executorch.runtime import Runtime

    registry = Runtime.get().backend_registry
    found = get_backend("executorch").devices()
    ids = {d.id for d in found}
    assert "executorch:portable" in ids
    assert ("executorch:xnnpack" in ids) == registry.is_available("XnnpackBackend")
    for d in found:
        if d.provider != "portable":
            assert d.provider in registry.registered_backend_names
    # OpenVINO is linked into the wheel but reports itself unavailable without its runtime
    if not registry.is_available("OpenvinoBackend"):
        assert "executorch:openvino" not in ids


def _rewrite(src: Path, dst: Path, *, op: str | None = None, delegate: str | None = None) -> Path:
    """A copy of ``src`` with its first operator or delegate renamed (ExecuTorch's own serializer)."""
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(src.read_bytes())
    plan = pte.program.execution_plan[0]
    if op is not None:
        plan.operators[0].name = op
    if delegate is not None:
        for d in plan.delegates:
            d.id = delegate
    dst.write_bytes(bytes(serialize_pte_binary(pte)))
    return dst


def test_missing_operator_fails_at_load_naming_it(cnn_portable: Path, tmp_path: Path) -> None:
    bad = _rewrite(cnn_portable, tmp_path / "bad_op.pte", op="edgeai_test::no_such_op")
    with pytest.raises(UnsupportedOpError, match=r"edgeai_test::no_such_op") as info:
        edgeai.Session(bad)
    assert info.value.op_type is not None and info.value.op_type.startswith("edgeai_test::no_such_op")


def test_missing_backend_fails_at_load_naming_it(cnn_xnnpack: Path, tmp_path: Path) -> None:
    bad = _rewrite(cnn_xnnpack, tmp_path / "bad_backend.pte", delegate="EdgeaiTestBackend")
    with pytest.raises(DeviceNotAvailableError, match=r"EdgeaiTestBackend.*does not register"):
        edgeai.Session(bad)


def test_unusable_backend_fails_at_load(cnn_xnnpack: Path, tmp_path: Path) -> None:
    from executorch.runtime import Runtime

    if Runtime.get().backend_registry.is_available("OpenvinoBackend"):
        pytest.skip("OpenVINO runtime is present here")
    bad = _rewrite(cnn_xnnpack, tmp_path / "openvino.pte", delegate="OpenvinoBackend")
    with pytest.raises(DeviceNotAvailableError, match=r"OpenvinoBackend.*not usable"):
        edgeai.Session(bad)


def test_device_the_program_was_not_lowered_for(cnn_xnnpack: Path) -> None:
    npu = Device("executorch:qnn", DeviceKind.NPU, "QnnBackend", "Qualcomm", "executorch", "QnnBackend")
    with pytest.raises(PlacementError, match=r"lowered for XnnpackBackend"):
        get_backend("executorch").load(open_model(cnn_xnnpack), npu, {})
    with pytest.raises(DeviceNotAvailableError):
        edgeai.Session(cnn_xnnpack, device="executorch:qnn")


def test_bad_feeds_get_clear_errors(cnn_xnnpack: Path) -> None:
    sess = edgeai.Session(cnn_xnnpack)
    x = np.zeros((1, 3, 16, 16), np.float32)
    with pytest.raises(InputTypeError, match="float32"):
        sess.run({"input": x.astype(np.float64)})
    with pytest.raises(InputShapeError, match="axis 2"):
        sess.run({"input": np.zeros((1, 3, 8, 16), np.float32)})
    with pytest.raises(InputNameError, match="unknown input"):
        sess.run({"image": x})
    with pytest.raises(InputNameError, match="unknown output"):
        sess.run(["logits"], {"input": x})
    sess.close()
    with pytest.raises(SessionClosedError):
        sess.run({"input": x})


def test_corrupt_programs(cnn_xnnpack: Path, tmp_path: Path) -> None:
    data = cnn_xnnpack.read_bytes()
    truncated = tmp_path / "truncated.pte"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFormatError):
        edgeai.Session(truncated)
    garbage = tmp_path / "garbage.pte"
    garbage.write_bytes(data[:8] + bytes(range(256)) * 4)
    with pytest.raises(ModelFormatError):
        edgeai.Session(garbage)


def test_non_contiguous_feed(cnn, cnn_xnnpack: Path) -> None:
    model, x = cnn
    wide = np.zeros((1, 3, 16, 32), np.float32)
    wide[..., ::2] = x.numpy()
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    out = edgeai.Session(cnn_xnnpack).run(view)["output"]
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_import_edgeai_stays_free_of_torch() -> None:
    code = (
        "import sys, edgeai, edgeai.backends.executorch, edgeai.export, edgeai.formats.coreml_mil;"
        "import edgeai.backends.coreml;"
        "bad = [m for m in ('torch', 'executorch', 'coremltools') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
