"""Tiny versioned models for the lifecycle tests, with their float64 reference outputs."""

from __future__ import annotations

import numpy as np


def affine_onnx(scale: float, bias: float = 1.0) -> bytes:
    """y = scale * x + bias over float32[N, 4]; each version of the 'model' has its own scale."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    a = numpy_helper.from_array(np.full((4,), scale, np.float32), "a")
    b = numpy_helper.from_array(np.full((4,), bias, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "a"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [a, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()  # type: ignore[no-any-return]


SAMPLE = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
SCALES = {"1.0.0": 2.0, "1.1.0": 3.0, "2.0.0": 4.0, "2.1.0": 5.0}


def expected(version: str, x: np.ndarray = SAMPLE) -> np.ndarray:
    """The reference output of a version, in float64 numpy."""
    return x.astype(np.float64) * SCALES[version] + 1.0
