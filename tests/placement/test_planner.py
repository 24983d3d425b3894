"""The device-selection layer: capability, planner, heterogeneous runs, contracts, target plans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeai
from edgeai.errors import DeviceNotAvailableError, PlacementError, UnsupportedOpError
from edgeai.graph.onnx_import import import_onnx
from edgeai.hardware import Device, DeviceKind, devices_for_format
from edgeai.hardware.targets import load_target, target_names
from edgeai.ops._base import Op, register
from edgeai.placement import plan_graph
from edgeai.placement.capability import Capability


@register("ScaledTanh", domain="test.edgeai", since=1)
class ScaledTanh(Op):
    """alpha * tanh(beta * x): a custom-domain op only edgeai's native engine knows."""

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        alpha = float(self.ctx.attr("alpha", 1.0))
        beta = float(self.ctx.attr("beta", 1.0))
        return ((alpha * np.tanh(beta * x.astype(np.float64))).astype(x.dtype),)


def _custom_op_model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 16)).astype(np.float32)
    w2 = rng.standard_normal((16, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W1"], ["h"], name="mm1"),
            helper.make_node("ScaledTanh", ["h"], ["t"], name="custom", domain="test.edgeai", alpha=1.5, beta=0.5),
            helper.make_node("MatMul", ["t", "W2"], ["y"], name="mm2"),
        ],
        "custom_middle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("test.edgeai", 1)])
    onnx.save(model, str(path))
    return path


def test_custom_op_onnxruntime_lacks_runs_split(tmp_path: Path) -> None:
    path = _custom_op_model(tmp_path / "custom.onnx")
    with pytest.raises(Exception, match="ScaledTanh"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sess = edgeai.Session(path)  # auto: ONNX Runtime cannot run it whole, so edgeai splits it
    report = sess.placement
    by_node = {n.name: n.device for n in report.nodes}
    assert by_node["custom"] == "native:cpu"
    assert "ScaledTanh" in next(n.reason for n in report.nodes if n.name == "custom")
    assert any(p.device == "native:cpu" for p in report.partitions)
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    proto = onnx.load(str(path))
    w1 = numpy_helper.to_array(proto.graph.initializer[0]).astype(np.float64)
    w2 = numpy_helper.to_array(proto.graph.initializer[1]).astype(np.float64)
    expected = (1.5 * np.tanh(0.5 * (x.astype(np.float64) @ w1))) @ w2
    np.testing.assert_allclose(sess(x)["y"], expected, rtol=1e-5, atol=1e-5)


def test_explicit_device_that_cannot_run_an_op_raises(tmp_path: Path) -> None:
    path = _custom_op_model(tmp_path / "custom.onnx")
    with pytest.raises(UnsupportedOpError, match="ScaledTanh"):
        edgeai.Session(path, device="onnxruntime")


def test_pinning_an_op_type_splits_and_matches(tmp_path: Path) -> None:
    path = edgeai.demo.model_path()
    x, _ = edgeai.demo.samples()
    ref = edgeai.Session(path)(x)["probabilities"]
    sess = edgeai.Session(path, pin={"Softmax": "native"}, profile=True)
    report = sess.placement
    assert {n.device for n in report.nodes if n.op_type == "Softmax"} == {"native:cpu"}
    assert report.partitions[-1].device == "native:cpu"
    np.testing.assert_allclose(sess(x)["probabilities"], ref, rtol=1e-5, atol=1e-6)
    for _ in range(3):
        sess(x)
    timed = sess.placement
    assert all(p.time_ms is not None and p.time_ms > 0 for p in timed.partitions)


def test_pin_to_device_that_cannot_run_it(tmp_path: Path) -> None:
    path = _custom_op_model(tmp_path / "custom.onnx")
    with pytest.raises(PlacementError, match=r"pinned to onnxruntime:cpu, which cannot run it"):
        edgeai.Session(path, pin={"custom": "onnxruntime:cpu"})


def test_forbid_and_unknown_device_errors(tmp_path: Path) -> None:
    path = _custom_op_model(tmp_path / "custom.onnx")
    with pytest.raises(PlacementError, match="no available device can run node 'custom'"):
        edgeai.Session(path, forbid=["native"])
    with pytest.raises(DeviceNotAvailableError):
        edgeai.Session(edgeai.demo.model_path(), pin={"Relu": "npu"})


def test_contract_that_cannot_be_met_fails_before_running() -> None:
    with pytest.raises(PlacementError, match=r"placement contract not met: 0\.0% of MACs on NPU, 90% required"):
        edgeai.Session(edgeai.demo.model_path(), require={"npu": 0.9})
    with pytest.raises(PlacementError, match="unknown device kind"):
        edgeai.Session(edgeai.demo.model_path(), require={"tpu": 0.5})
    sess = edgeai.Session(edgeai.demo.model_path(), require={"cpu": 1.0})
    assert sess.device.kind is DeviceKind.CPU


def test_partitions_keep_graph_acyclic() -> None:
    """Alternating devices on a diamond graph: every partition only reads earlier partitions."""
    graph = import_onnx(_diamond())
    cpu = next(d for d in devices_for_format("onnx") if d.id == "onnxruntime:cpu")
    native = next(d for d in devices_for_format("onnx") if d.id == "native:cpu")
    plan = plan_graph(graph, [cpu, native], pin={"Tanh": native}, cost_check=False)
    produced_by: dict[str, int] = {}
    for p in plan.partitions:
        for v in p.inputs:
            assert v in graph.inputs or produced_by[v] < p.index
        for n in p.nodes:
            for o in n.outputs:
                produced_by[o] = p.index
    assert len(plan.partitions) >= 2


def _diamond() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="a"),
        helper.make_node("Tanh", ["a"], ["b"], name="b"),
        helper.make_node("Sigmoid", ["a"], ["c"], name="c"),
        helper.make_node("Tanh", ["c"], ["d"], name="d"),
        helper.make_node("Add", ["b", "d"], ["y"], name="y"),
    ]
    graph = helper.make_graph(
        nodes,
        "diamond",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_diamond_split_matches_onnxruntime() -> None:
    model = _diamond()
    x = np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    sess = edgeai.Session(model, pin={"Tanh": "native"})
    # the cost check folds the tiny ONNX Runtime islands into the native partition
    assert {n.device for n in sess.placement.nodes if n.op_type == "Tanh"} == {"native:cpu"}
    np.testing.assert_allclose(sess(x)["y"], ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", target_names())
def test_every_target_plans_the_demo_model(name: str) -> None:
    report = edgeai.plan(edgeai.demo.model_path(), target=name)
    profile = load_target(name)
    assert len(report.nodes) == 10
    assert report.estimate is not None and report.estimate.latency_ms > 0
    assert report.estimate.fits_in_memory
    assert profile.sources, "every profile cites its sources"
    text = str(report)
    assert "estimate on" in text and "assumption" in text


@pytest.mark.parametrize("name", target_names())
def test_every_target_plans_mobilenetv2(name: str, mobilenetv2_float: Path, mobilenetv2_qdq: Path) -> None:
    for model in (mobilenetv2_float, mobilenetv2_qdq):
        report = edgeai.plan(model, target=name)
        assert report.nodes and report.estimate is not None


def test_edge_tpu_on_float_model_explains_why_nothing_runs_there() -> None:
    report = edgeai.plan(edgeai.demo.model_path(), target="google-edge-tpu")
    assert all(n.device == "google-edge-tpu:host-cpu" for n in report.nodes)
    assert any("executes only integer-quantized ops" in note and "quantize" in note for note in report.notes)


def test_edge_tpu_takes_quantized_convs(mobilenetv2_qdq: Path) -> None:
    report = edgeai.plan(mobilenetv2_qdq, target="google-edge-tpu")
    on_tpu = [n for n in report.nodes if n.device == "google-edge-tpu"]
    assert any(n.op_type == "Conv" for n in on_tpu)
    assert report.device_share("macs").get("google-edge-tpu", 0) > 0.9


def test_hexagon_contract_on_quantized_model(mobilenetv2_qdq: Path) -> None:
    report = edgeai.plan(mobilenetv2_qdq, target="qualcomm-hexagon-npu", require={"npu": 0.9})
    assert report.device_share("macs")["qualcomm-hexagon-npu"] >= 0.9
    with pytest.raises(PlacementError, match="contract not met"):
        edgeai.plan(edgeai.demo.model_path(), target="qualcomm-hexagon-npu", require={"npu": 0.5})


def test_unknown_target() -> None:
    with pytest.raises(DeviceNotAvailableError, match="unknown target 'tpu-v9'"):
        edgeai.plan(edgeai.demo.model_path(), target="tpu-v9")
    with pytest.raises(DeviceNotAvailableError, match="emulate=True"):
        edgeai.Session(edgeai.demo.model_path(), target="google-edge-tpu")


def test_emulated_target_runs_and_marks_devices(mobilenetv2_qdq: Path) -> None:
    x = np.random.default_rng(3).standard_normal((1, 3, 96, 96)).astype(np.float32)
    ref = ort.InferenceSession(str(mobilenetv2_qdq), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    sess = edgeai.Session(mobilenetv2_qdq, target="google-edge-tpu", emulate=True)
    report = sess.placement
    assert all(p.emulated for p in report.partitions)
    assert {p.device for p in report.partitions} <= {"google-edge-tpu", "google-edge-tpu:host-cpu"}
    out = sess(x)["logits"]
    # int8 everywhere on the emulated TPU: same quantized math as ONNX Runtime, within one int8 step
    step = float(np.abs(ref).max()) / 100
    np.testing.assert_allclose(out, ref, atol=step)


def test_capability_reasons_come_from_runtimes(tmp_path: Path) -> None:
    graph = import_onnx(_custom_op_model(tmp_path / "c.onnx"))
    cap = Capability(graph)
    cpu = next(d for d in devices_for_format("onnx") if d.id == "onnxruntime:cpu")
    native = next(d for d in devices_for_format("onnx") if d.id == "native:cpu")
    custom = graph.node("custom")
    refusal = cap.supports(custom, cpu)
    assert not refusal and "ScaledTanh" in refusal.reason
    assert cap.supports(custom, native)
    assert cap.supports(graph.node("mm1"), cpu)
    fake = Device("litert:gpu", DeviceKind.GPU, "gpu", "x", "litert")
    assert not cap.supports(custom, fake)


@pytest.mark.parametrize("fixture", ["mobilenetv2_qdq", "mobilenetv2_qoperator"])
def test_int8_mobilenetv2_with_native_partition_in_the_middle_is_bit_exact(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(fixture)
    proto = onnx.load(str(path))
    adds = [n.name for n in proto.graph.node if n.op_type in ("Add", "QLinearAdd")]
    middle = adds[len(adds) // 2]
    x = np.random.default_rng(4).standard_normal((1, 3, 96, 96)).astype(np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    sess = edgeai.Session(path, pin={middle: "native"})
    devices = [p.device for p in sess.placement.partitions]
    assert devices[0] == "onnxruntime:cpu" and "native:cpu" in devices
    np.testing.assert_array_equal(sess(x)["logits"], ref)
