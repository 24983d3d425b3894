"""Values handed between the INT8 ops as NHWC arrays (``CompiledGraph.nhwc_raw``): which values go
that way, and that every path through the bound steps (kernels and fallbacks) gives ONNX Runtime's
bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgeai.errors import InputShapeError
from edgeai.graph.executor import CompiledGraph
from edgeai.graph.onnx_import import import_onnx


def _model(dims: list[Any], *, identity_reader: bool = False, keepdims: int = 1) -> bytes:
    """f32 x -> QuantizeLinear -> q -> QLinearConv 3x3 -> c1 -> QLinearConv 1x1 -> c2;
    QLinearAdd(c1, c2) -> a -> QLinearConv 3x3 stride 2 SAME_UPPER -> c3 -> DequantizeLinear -> d
    -> ReduceMean over H, W -> y; with ``identity_reader`` also c2 -> Identity -> y2."""
    rng = np.random.default_rng(5)
    t = lambda name, v: onnx.numpy_helper.from_array(np.asarray(v), name)  # noqa: E731
    inits = [
        t("xs", np.float32(0.03)), t("xz", np.uint8(128)),
        t("s1", rng.uniform(0.002, 0.01, 8).astype(np.float32)), t("z8", np.zeros(8, np.int8)),
        t("w1", rng.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)), t("b1", rng.integers(-900, 900, 8).astype(np.int32)),
        t("w2", rng.integers(-127, 128, (8, 8, 1, 1)).astype(np.int8)), t("s2", rng.uniform(0.002, 0.01, 8).astype(np.float32)),
        t("w3", rng.integers(-127, 128, (6, 8, 3, 3)).astype(np.int8)), t("s3", rng.uniform(0.002, 0.01, 6).astype(np.float32)),
        t("z6", np.zeros(6, np.int8)),
        t("cs", np.float32(0.2)), t("cz", np.uint8(110)), t("as", np.float32(0.3)), t("az", np.uint8(100)),
        t("es", np.float32(0.25)), t("ez", np.uint8(90)),
    ]  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
        helper.make_node("QLinearConv", ["q", "xs", "xz", "w1", "s1", "z8", "cs", "cz", "b1"], ["c1"], pads=[1] * 4),
        helper.make_node("QLinearConv", ["c1", "cs", "cz", "w2", "s2", "z8", "cs", "cz"], ["c2"]),
        helper.make_node("QLinearAdd", ["c1", "cs", "cz", "c2", "cs", "cz", "as", "az"], ["a"], domain="com.microsoft"),
        helper.make_node(
            "QLinearConv",
            ["a", "as", "az", "w3", "s3", "z6", "es", "ez"],
            ["c3"],
            auto_pad="SAME_UPPER",
            strides=[2, 2],
        ),
        helper.make_node("DequantizeLinear", ["c3", "es", "ez"], ["d"]),
        helper.make_node("ReduceMean", ["d"], ["y"], axes=[2, 3], keepdims=keepdims),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if identity_reader:
        nodes.append(helper.make_node("Identity", ["c2"], ["y2"]))
        outputs.append(helper.make_tensor_value_info("y2", TensorProto.UINT8, None))
    graph = helper.make_graph(
        nodes, "raw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)], outputs, inits
    )
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def _ort(model: bytes) -> Any:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _same(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.flags.c_contiguous
        assert g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_int8_chain_goes_as_nhwc_arrays_with_ort_bytes(keepdims: int) -> None:
    model = _model([1, 4, 9, 7], keepdims=keepdims)
    compiled = CompiledGraph(import_onnx(model))
    assert compiled.nhwc_raw == {"q", "c1", "c2", "a", "c3", "d"}
    reference = CompiledGraph(import_onnx(model), options={"int8_kernels": False})
    assert reference.nhwc_raw == {"d"}  # no packed kernels: the convolutions run through run() in NCHW
    ref = _ort(model)
    rng = np.random.default_rng(6)
    for _ in range(3):
        x = rng.uniform(-4, 4, (1, 4, 9, 7)).astype(np.float32)
        want = ref.run(None, {"x": x})
        _same(compiled.run({"x": x}), want)
        _same(compiled.run_profiled({"x": x})[0], want)
        _same(reference.run({"x": x}), want)


def test_a_value_with_a_reader_that_takes_no_nhwc_array_is_not_one() -> None:
    model = _model([1, 4, 9, 7], identity_reader=True)
    compiled = CompiledGraph(import_onnx(model))
    assert compiled.nhwc_raw == {"q", "c1", "a", "c3", "d"}  # c2 is read by Identity
    x = np.random.default_rng(7).uniform(-4, 4, (1, 4, 9, 7)).astype(np.float32)
    _same(compiled.run({"x": x}), _ort(model).run(None, {"x": x}))


def test_fallbacks_of_the_bound_steps_keep_ort_bytes() -> None:
    """Compiled for 9x7 and fed 11x8 (CompiledGraph.run does not check shapes): the SAME-padded
    convolution goes through run() and hands on a transposed (not C-contiguous) NHWC array, which the
    DequantizeLinear and ReduceMean steps read through their own fallbacks; a strided float input
    reaches QuantizeLinear's fallback."""
    compiled = CompiledGraph(import_onnx(_model([1, 4, 9, 7])))
    ref = _ort(_model([1, 4, "H", "W"]))
    rng = np.random.default_rng(8)
    x = rng.uniform(-4, 4, (1, 4, 11, 8)).astype(np.float32)
    _same(compiled.run({"x": x}), ref.run(None, {"x": x}))
    wide = rng.uniform(-4, 4, (1, 4, 9, 14)).astype(np.float32)
    x = wide[..., ::2]
    _same(compiled.run({"x": x}), ref.run(None, {"x": np.ascontiguousarray(x)}))


def test_wrong_rank_into_an_nhwc_producer_is_a_clear_error() -> None:
    compiled = CompiledGraph(import_onnx(_model([1, 4, 9, 7])))
    with pytest.raises(InputShapeError, match="rank-4"):
        compiled.run({"x": np.zeros((4, 9, 7), np.float32)})
