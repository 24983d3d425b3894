"""MACs per node against hand counts and against torch forward hooks on the same architecture."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeai.optimize.macs import count_macs, total_macs


def test_demo_macs_match_hand_count(demo_float: Path) -> None:
    macs = count_macs(demo_float)
    # Conv: outputs (C x H x W) x (Cin x 3 x 3); Gemm: 10 x 128
    assert macs["/features/features.0/Conv"] == 16 * 8 * 8 * (1 * 9)
    assert macs["/features/features.2/Conv"] == 32 * 4 * 4 * (16 * 9)
    assert macs["/features/features.4/Conv"] == 32 * 4 * 4 * (32 * 9)
    assert macs["/head/Gemm"] == 10 * 128
    assert macs["/features/features.1/Relu"] == 0
    assert total_macs(demo_float, {"N": 4}) == 4 * sum(macs.values())


def _torch_macs(model, x) -> int:  # type: ignore[no-untyped-def]
    from torch import nn

    total = 0

    def hook(module, inputs, output) -> None:  # type: ignore[no-untyped-def]
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(x)
    for h in handles:
        h.remove()
    return total


def test_mobilenetv2_macs_match_torch_hooks(mobilenetv2_float: Path) -> None:
    torch = pytest.importorskip("torch")
    from models import build_mobilenetv2

    model = build_mobilenetv2(width=0.5, num_classes=100, seed=0)
    expected = _torch_macs(model, torch.zeros(1, 3, 96, 96))
    assert total_macs(mobilenetv2_float) == expected


def test_quantized_models_count_the_same_macs(
    mobilenetv2_float: Path, mobilenetv2_qdq: Path, mobilenetv2_qoperator: Path
) -> None:
    expected = total_macs(mobilenetv2_float)
    assert total_macs(mobilenetv2_qdq) == expected  # Conv/Gemm between Q/DQ pairs
    assert total_macs(mobilenetv2_qoperator) == expected  # QLinearConv / QGemm


def test_unnamed_nodes_get_positional_keys() -> None:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert count_macs(model) == {"MatMul_0": 2 * 3 * 4}
    assert count_macs(model, {"N": 5}) == {"MatMul_0": 5 * 2 * 3 * 4}
