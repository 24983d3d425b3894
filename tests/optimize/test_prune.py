"""Pruning: structured channel removal against a torch model of the pruned architecture, and
unstructured magnitude pruning against numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeai.optimize import OptimizationError, prune_channels, prune_magnitude, quantize
from edgeai.optimize.macs import total_macs


def _inits(path_or_proto: Path | onnx.ModelProto) -> dict[str, np.ndarray]:
    proto = path_or_proto if isinstance(path_or_proto, onnx.ModelProto) else onnx.load(str(path_or_proto))
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


def _ort(model: onnx.ModelProto | Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, feed)[0]


def _pruned_digits_cnn(c1: int, c2: int, c3: int):  # type: ignore[no-untyped-def]
    """The demo's architecture (scripts/train_demo.py) with c1/c2/c3 channels, in torch."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, c1, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(c1, c2, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(c2, c3, 3, padding=1),
                nn.ReLU(),
            )
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.head = nn.Linear(c3 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.head(self.pool(self.features(x)).flatten(1)), dim=1)

    return Net().eval()


def test_structured_half_channels_matches_torch_reference(
    demo_float: Path, digits: dict[str, np.ndarray], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    report = prune_channels(demo_float, 0.5, tmp_path / "pruned.onnx")
    w = _inits(demo_float)
    keep = {layer.name: np.array(layer.kept_channels) for layer in report.layers}
    k1 = keep["/features/features.0/Conv"]
    k2 = keep["/features/features.2/Conv"]
    k3 = keep["/features/features.4/Conv"]
    assert (len(k1), len(k2), len(k3)) == (8, 16, 16)
    # kept channels are those with the largest L1 norm of their weights, counted over the
    # input channels that are still there (layers are pruned in graph order)
    for k, weights in (
        (k1, w["features.0.weight"]),
        (k2, w["features.2.weight"][:, k1]),
        (k3, w["features.4.weight"][:, k2]),
    ):
        norms = np.abs(weights).reshape(len(weights), -1).sum(1)
        assert set(k.tolist()) == set(np.argsort(-norms)[: len(k)].tolist())
    # the torch reference of the pruned architecture, weights sliced here with numpy
    net = _pruned_digits_cnn(8, 16, 16)
    cols = (k3[:, None] * 4 + np.arange(4)[None, :]).ravel()  # Flatten of 16 x 2 x 2
    state = {
        "features.0.weight": w["features.0.weight"][k1],
        "features.0.bias": w["features.0.bias"][k1],
        "features.2.weight": w["features.2.weight"][k2][:, k1],
        "features.2.bias": w["features.2.bias"][k2],
        "features.4.weight": w["features.4.weight"][k3][:, k2],
        "features.4.bias": w["features.4.bias"][k3],
        "head.weight": w["head.weight"][:, cols],
        "head.bias": w["head.bias"],
    }
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    x = digits["x_test"][:64]
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = _ort(tmp_path / "pruned.onnx", {"image": x})
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # MACs and size shrink by the share the pruned architecture implies
    expected_macs = 8 * 64 * 9 + 16 * 16 * (8 * 9) + 16 * 16 * (16 * 9) + 10 * 64
    assert report.macs_after == total_macs(tmp_path / "pruned.onnx") == expected_macs
    assert report.macs_before == 231680
    params_after = sum(p.numel() for p in net.parameters())
    assert report.params_after == params_after
    removed_bytes = 4 * (report.params_before - params_after)
    size = (tmp_path / "pruned.onnx").stat().st_size
    assert abs(size - (demo_float.stat().st_size - removed_bytes)) < 200  # only weights left the file
    assert [s.name for s in report.skipped] == ["/head/Gemm"]  # its output is the softmax'd graph output


def test_structured_pruning_of_mobilenetv2(mobilenetv2_float: Path) -> None:
    report = prune_channels(mobilenetv2_float, 0.5)
    model = report.model
    onnx.checker.check_model(model)
    pruned = {layer.name: layer for layer in report.layers}
    # expansion 1x1 convs are pruned (and the depthwise conv after them follows)
    expand = pruned["/features/features.2/conv/conv.0/conv.0.0/Conv"]
    assert expand.channels_after == expand.channels_before // 2
    assert "/features/features.2/conv/conv.1/conv.1.0/Conv" in expand.consumers_fixed
    # projections into residual Adds keep their channels, with the reason
    reasons = {s.name: s.reason for s in report.skipped}
    assert "Add" in reasons["/features/features.2/conv/conv.2/conv.2.0/Conv"]
    depthwise = next(n for n in model.graph.node if n.name == "/features/features.2/conv/conv.1/conv.1.0/Conv")
    group = next(a.i for a in depthwise.attribute if a.name == "group")
    assert group == expand.channels_after
    assert report.macs_after < 0.5 * report.macs_before
    assert report.size_after < 0.5 * report.size_before
    x = np.random.default_rng(0).standard_normal((2, 3, 96, 96)).astype(np.float32)
    assert _ort(model, {"input": x}).shape == (2, 100)
    # pruning then quantizing works
    q = quantize(model, [{"input": x[:1]}], progress=False)
    assert _ort(q.model, {"input": x}).shape == (2, 100)


def test_magnitude_pruning_per_layer(demo_float: Path, digits: dict[str, np.ndarray]) -> None:
    report = prune_magnitude(demo_float, 0.6)
    before, after = _inits(demo_float), _inits(report.model)
    for layer in report.layers:
        w, p = before[layer.weight], after[layer.weight]
        k = round(0.6 * w.size)
        assert int((p == 0).sum()) == k == layer.zeros
        kept = np.abs(w[p != 0])
        assert kept.min() >= np.abs(w[p == 0]).max()  # the smallest magnitudes went
        np.testing.assert_array_equal(p[p != 0], w[p != 0])
    assert after["features.0.bias"].all()  # biases untouched
    # the pruned model computes what the float graph computes with the same masked weights
    masked = onnx.load(str(demo_float))
    for i, init in enumerate(masked.graph.initializer):
        w = before[init.name]
        if init.name in {layer.weight for layer in report.layers}:
            thresh = np.sort(np.abs(w).ravel(), kind="stable")[round(0.6 * w.size) - 1]
            w = np.where(np.abs(w) > thresh, w, 0).astype(np.float32)
        masked.graph.initializer[i].CopyFrom(numpy_helper.from_array(w, init.name))
    x = digits["x_test"][:32]
    np.testing.assert_allclose(_ort(report.model, {"image": x}), _ort(masked, {"image": x}), atol=1e-6)
    assert report.compressed_size_after < report.compressed_size_before
    assert report.size_after == pytest.approx(report.size_before, rel=0.01)  # dense storage does not shrink


def test_magnitude_pruning_global_threshold(demo_float: Path) -> None:
    report = prune_magnitude(demo_float, 0.5, scope="global")
    before, after = _inits(demo_float), _inits(report.model)
    names = [layer.weight for layer in report.layers]
    all_w = np.concatenate([np.abs(before[n]).ravel() for n in names])
    threshold = np.sort(all_w)[round(0.5 * all_w.size) - 1]
    for n in names:
        np.testing.assert_array_equal(after[n] == 0, np.abs(before[n]) <= threshold)
    total_zeros = sum(layer.zeros for layer in report.layers)
    assert total_zeros == pytest.approx(0.5 * all_w.size, abs=2)
    assert len({round(layer.sparsity, 2) for layer in report.layers}) > 1  # layers differ


def test_finetune_hook_receives_the_pruned_model(demo_float: Path) -> None:
    seen = {}

    def finetune(model: onnx.ModelProto, report) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
        seen["channels"] = [layer.channels_after for layer in report.layers]
        model.doc_string = "fine-tuned"
        return model

    report = prune_channels(demo_float, 0.25, finetune=finetune)
    assert seen["channels"] == [12, 24, 24]
    assert report.finetuned and report.model.doc_string == "fine-tuned"


def test_pruning_errors(demo_float: Path, mobilenetv2_qdq: Path) -> None:
    with pytest.raises(OptimizationError, match="ratio"):
        prune_channels(demo_float, 1.0)
    with pytest.raises(OptimizationError, match="sparsity"):
        prune_magnitude(demo_float, -0.1)
    with pytest.raises(OptimizationError, match="quantized"):
        prune_channels(mobilenetv2_qdq, 0.5)
    with pytest.raises(OptimizationError, match="does not have"):
        prune_channels(demo_float, 0.5, nodes=["nope"])
    with pytest.raises(OptimizationError, match="scope"):
        prune_magnitude(demo_float, 0.5, scope="row")


def _bn_depthwise_model(c: int, seed: int = 0) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Conv(3->c) -> BatchNorm -> Relu -> depthwise Conv(c) -> Relu -> Conv(c->4) -> GlobalAvgPool
    -> Flatten -> Gemm(4->3)-> output, built by hand (BN not folded)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    w = {
        "w1": rng.standard_normal((c, 3, 3, 3)).astype(np.float32),
        "b1": rng.standard_normal(c).astype(np.float32),
        "gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "beta": rng.standard_normal(c).astype(np.float32),
        "mean": rng.standard_normal(c).astype(np.float32),
        "var": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "wd": rng.standard_normal((c, 1, 3, 3)).astype(np.float32),
        "bd": rng.standard_normal(c).astype(np.float32),
        "w2": rng.standard_normal((4, c, 1, 1)).astype(np.float32),
        "wg": rng.standard_normal((3, 4)).astype(np.float32),
        "bg": rng.standard_normal(3).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["dw"], name="dw", group=c, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["dw"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w2"], ["c2"], name="conv2"),
        helper.make_node("GlobalAveragePool", ["c2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "wg", "bg"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "bn_dw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(v, k) for k, v in w.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), w


def test_structured_pruning_through_batchnorm_and_depthwise() -> None:
    from onnx.reference import ReferenceEvaluator

    model, w = _bn_depthwise_model(8)
    report = prune_channels(model, 0.5, nodes=["conv1"])
    (layer,) = report.layers
    k = np.array(layer.kept_channels)
    assert len(k) == 4 and layer.consumers_fixed == ["bn", "relu1", "dw", "relu2", "conv2"]
    norms = np.abs(w["w1"]).reshape(8, -1).sum(1)
    assert set(k.tolist()) == set(np.argsort(-norms)[:4].tolist())
    # the same graph built from weights sliced here, run by onnx.reference
    small, _ = _bn_depthwise_model(4)
    sliced = {
        "w1": w["w1"][k], "b1": w["b1"][k], "gamma": w["gamma"][k], "beta": w["beta"][k],
        "mean": w["mean"][k], "var": w["var"][k], "wd": w["wd"][k], "bd": w["bd"][k],
        "w2": w["w2"][:, k], "wg": w["wg"], "bg": w["bg"],
    }  # fmt: skip
    for i, init in enumerate(small.graph.initializer):
        small.graph.initializer[i].CopyFrom(numpy_helper.from_array(sliced[init.name], init.name))
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    expected = ReferenceEvaluator(small).run(None, {"x": x})[0]
    np.testing.assert_allclose(_ort(report.model, {"x": x}), expected, rtol=1e-4, atol=1e-5)
    dw = next(n for n in report.model.graph.node if n.name == "dw")
    assert next(a.i for a in dw.attribute if a.name == "group") == 4


def test_structured_pruning_of_an_mlp_matches_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    big = torch.nn.Sequential(
        torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)
    ).eval()
    x = torch.randn(4, 20)
    path = tmp_path / "mlp.onnx"
    torch.onnx.export(big, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    report = prune_channels(path, 0.5)
    keep = [np.array(layer.kept_channels) for layer in report.layers]
    assert [len(k) for k in keep] == [16, 8]
    small = torch.nn.Sequential(
        torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5)
    ).eval()
    k1, k2 = (torch.from_numpy(k) for k in keep)
    with torch.no_grad():
        small[0].weight.copy_(big[0].weight[k1])
        small[0].bias.copy_(big[0].bias[k1])
        small[2].weight.copy_(big[2].weight[k2][:, k1])
        small[2].bias.copy_(big[2].bias[k2])
        small[4].weight.copy_(big[4].weight[:, k2])
        small[4].bias.copy_(big[4].bias)
        expected = small(x).numpy()
    np.testing.assert_allclose(_ort(report.model, {"x": x.numpy()}), expected, atol=1e-5)
    assert report.macs_after == 4 * (20 * 16 + 16 * 8 + 8 * 5)  # exported with a fixed batch of 4
