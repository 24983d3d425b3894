"""Fixtures for the security tests: a tiny ONNX model keeps byte-by-byte tests fast."""

from __future__ import annotations

import pytest


def tiny_onnx_bytes() -> bytes:
    """y = 2 * x + 1 over float32[N, 4]: small enough to flip every byte of its bundle."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    two = numpy_helper.from_array(np.full((4,), 2.0, np.float32), "two")
    one = numpy_helper.from_array(np.ones((4,), np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [two, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def tiny_model() -> bytes:
    return tiny_onnx_bytes()
