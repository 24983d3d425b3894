"""The ONNX importer and the IR: values, shapes, subgraphs, external data, attributes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeai
from edgeai.errors import ExternalDataError, ModelFormatError
from edgeai.graph import Graph
from edgeai.graph.onnx_import import context_from_onnx_node, import_onnx


def _vi(name: str, shape: Any, elem: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], **kw: Any) -> onnx.ModelProto:
    opsets = kw.pop("opsets", [helper.make_opsetid("", 17)])
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, **kw), opset_imports=opsets)


def test_demo_model_values_keep_symbolic_dims() -> None:
    g = import_onnx(edgeai.demo.model_path())
    x = g.value("image")
    assert (x.dtype, x.shape) == (np.dtype("float32"), ("N", 1, 8, 8))
    assert g.value("probabilities").shape == ("N", 10)
    assert g.opsets[""] >= 13
    assert all(n.name for n in g.nodes)
    assert set(g.initializers) <= set(g.values)


def test_ir_is_immutable() -> None:
    g = import_onnx(edgeai.demo.model_path())
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.nodes[0].op_type = "Relu"  # type: ignore[misc]
    with pytest.raises(TypeError):
        g.nodes[0].attrs["x"] = 1  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        next(iter(g.initializers.values()))[...] = 0


def test_shape_inference_fills_intermediate_values() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
        helper.make_node("Cast", ["t"], ["y"], to=TensorProto.INT32),
    ]
    model = _model(nodes, [_vi("x", ["B", 3])], [_vi("y", None, TensorProto.INT32)])
    g = import_onnx(model)
    assert (g.value("t").dtype, g.value("t").shape) == (np.dtype("float32"), (3, "B"))
    assert g.value("y").dtype == np.dtype("int32")
    assert import_onnx(model, infer_shapes=False).value("t").shape is None


def test_external_data_is_loaded_after_the_location_check(tmp_path: Path) -> None:
    w = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [_vi("x", [1, 64])],
        [_vi("y", [1, 64])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    assert (tmp_path / "w.bin").is_file()
    g = import_onnx(path)
    np.testing.assert_array_equal(g.initializers["w"], w)
    x = np.ones((1, 64), np.float32)
    with edgeai.Session(path, device="native") as sess:
        np.testing.assert_allclose(sess.run({"x": x})["y"], x @ w, rtol=1e-6)

    # The same model pointing outside its folder is refused before anything is read.
    evil = onnx.load(str(path), load_external_data=False)
    for entry in evil.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../outside.bin"
    (tmp_path / "sub").mkdir()
    onnx.save_model(evil, str(tmp_path / "sub" / "evil.onnx"))
    with pytest.raises(ExternalDataError, match="outside"):
        import_onnx(tmp_path / "sub" / "evil.onnx")


def test_subgraphs_record_the_outer_names_they_read() -> None:
    then = helper.make_graph([helper.make_node("Add", ["a", "b"], ["t"])], "then", [], [_vi("t", [2])])
    other = helper.make_graph([helper.make_node("Neg", ["a"], ["e"])], "else", [], [_vi("e", [2])])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other),
    ]
    model = _model(nodes, [_vi("x", [2]), _vi("b", [2]), _vi("c", [], TensorProto.BOOL)], [_vi("y", [2])])
    g = import_onnx(model)
    node = g.node("if")
    then_g, else_g = node.attrs["then_branch"], node.attrs["else_branch"]
    assert isinstance(then_g, Graph) and then_g.outer_names == ("a", "b")
    assert else_g.outer_names == ("a",)
    assert node.implicit_inputs() == ("a", "b")
    assert {n.name for n in g.consumers()["a"]} == {"if"}
    assert ("", "Neg") in g.op_types()


def test_undefined_value_is_a_clear_error() -> None:
    model = _model([helper.make_node("Relu", ["nowhere"], ["y"], name="r")], [_vi("x", [2])], [_vi("y", [2])])
    with pytest.raises(ModelFormatError, match="'nowhere'"):
        import_onnx(model)


def test_custom_domain_nodes_are_kept() -> None:
    model = _model(
        [helper.make_node("Fancy", ["x"], ["y"], domain="com.vendor", gain=2.5, name="f")],
        [_vi("x", [2])],
        [_vi("y", [2])],
        opsets=[helper.make_opsetid("", 17), helper.make_opsetid("com.vendor", 2)],
    )
    g = import_onnx(model)
    node = g.node("f")
    assert (node.domain, node.op_type, node.attrs["gain"]) == ("com.vendor", "Fancy", 2.5)
    assert g.opsets["com.vendor"] == 2


def test_qdq_values_carry_quant_params() -> None:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
    ]
    model = _model(
        nodes,
        [_vi("x", [4])],
        [_vi("y", [4])],
        initializer=[
            numpy_helper.from_array(np.array(0.5, np.float32), "s"),
            numpy_helper.from_array(np.array(3, np.uint8), "z"),
        ],
    )
    q = import_onnx(model).value("q")
    assert q.quant is not None
    assert (q.quant.scale, q.quant.zero_point, q.quant.dtype) == ((0.5,), (3,), np.dtype("uint8"))


def test_node_context_converts_attributes_to_python_values() -> None:
    body = helper.make_graph([helper.make_node("Identity", ["outer"], ["o"])], "body", [], [_vi("o", [1])])
    node = helper.make_node(
        "Custom",
        ["a", "", "w"],
        ["y"],
        name="n",
        domain="ai.onnx",
        f=1.5,
        i=3,
        s="text",
        t=numpy_helper.from_array(np.array([1, 2], np.int32)),
        fs=[0.5, 1.0],
        ints=[1, 2, 3],
        strs=["a", "b"],
        g=body,
    )
    w = np.ones(3, np.float32)
    ctx = context_from_onnx_node(node, {"": 13}, {"w": w}, outer_scope=["outer"])
    assert (ctx.node_name, ctx.domain, ctx.opset, ctx.num_outputs) == ("n", "", 13, 1)
    assert ctx.attrs["f"] == 1.5 and ctx.attrs["i"] == 3 and ctx.attrs["s"] == "text"
    assert ctx.attrs["fs"] == [0.5, 1.0] and ctx.attrs["ints"] == [1, 2, 3] and ctx.attrs["strs"] == ["a", "b"]
    np.testing.assert_array_equal(ctx.attrs["t"], np.array([1, 2], np.int32))
    assert isinstance(ctx.attrs["g"], Graph) and ctx.attrs["g"].outer_names == ("outer",)
    assert ctx.input_consts[0] is None and ctx.input_consts[1] is None and ctx.input_consts[2] is w


def test_model_local_functions_are_inlined_and_run() -> None:
    import onnxruntime as ort

    fn = helper.make_function(
        "my.fn",
        "AddTwice",
        ["a", "b"],
        ["c"],
        [helper.make_node("Add", ["a", "b"], ["t"]), helper.make_node("Add", ["t", "b"], ["c"])],
        [helper.make_opsetid("", 17)],
    )
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("AddTwice", ["x", "y"], ["z"], domain="my.fn")],
            "g",
            [_vi("x", [2]), _vi("y", [2])],
            [_vi("z", [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.fn", 1)],
        functions=[fn],
    )
    assert [n.op_type for n in import_onnx(model).nodes] == ["Add", "Add"]
    feeds = {"x": np.array([1, 2], np.float32), "y": np.array([3, 4], np.float32)}
    want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    with edgeai.Session(model, device="native") as sess:
        np.testing.assert_array_equal(sess.run(None, feeds)[0], want[0])
