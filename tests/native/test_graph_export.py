"""subgraph_to_onnx: node subsets written back as valid ONNX, checked by running them.

The oracle is ONNX Runtime: a model cut into pieces, each piece run in ONNX
Runtime and its outputs handed to the next, must give what the whole model
gives.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx_node_data import light_model_paths, load_light_case

import edgeai
from edgeai.graph.onnx_export import graph_to_onnx, subgraph_to_onnx
from edgeai.graph.onnx_import import import_onnx


def _ort(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run_in_pieces(graph, pieces: list[list[str]], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    known = dict(feeds)
    for names in pieces:
        sess = _ort(subgraph_to_onnx(graph, names))
        inputs = {i.name: known[i.name] for i in sess.get_inputs()}
        outs = sess.run(None, inputs)
        known.update(zip([o.name for o in sess.get_outputs()], outs))
    return known


@pytest.mark.parametrize("cuts", [2, 3, 7])
def test_light_resnet50_split_matches_whole(cuts: int) -> None:
    path = next(p for p in light_model_paths() if p.stem == "light_resnet50")
    graph = import_onnx(path)
    case = load_light_case(path)
    names = [n.name for n in graph.nodes]
    bounds = np.linspace(0, len(names), cuts + 1).astype(int)
    pieces = [names[a:b] for a, b in itertools.pairwise(bounds)]
    feeds = {graph.inputs[0]: case.inputs[0]}
    known = _run_in_pieces(graph, pieces, feeds)
    whole = _ort(onnx.load(str(path))).run(None, feeds)[0]
    np.testing.assert_allclose(known[graph.outputs[0]], whole, rtol=1e-5, atol=1e-6)


def test_demo_model_every_single_node_piece() -> None:
    """Each node alone is a valid model; chained one by one they give the whole model's output."""
    graph = import_onnx(edgeai.demo.model_path())
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    known = _run_in_pieces(graph, [[n.name] for n in graph.nodes], {"image": x})
    whole = _ort(onnx.load(str(edgeai.demo.model_path()))).run(None, {"image": x})[0]
    np.testing.assert_allclose(known["probabilities"], whole, rtol=1e-6, atol=1e-7)


def test_inputs_and_outputs_of_a_middle_piece() -> None:
    graph = import_onnx(edgeai.demo.model_path())
    middle = [n.name for n in graph.nodes[2:5]]
    model = subgraph_to_onnx(graph, middle)
    first_in = graph.nodes[2].inputs[0]
    assert [i.name for i in model.graph.input] == [first_in]
    assert [o.name for o in model.graph.output] == [graph.nodes[4].outputs[0]]
    used_inits = {x for n in graph.nodes[2:5] for x in n.inputs if x in graph.initializers}
    assert {t.name for t in model.graph.initializer} == used_inits


def test_value_used_inside_and_outside_becomes_an_output() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Neg", ["a"], ["b"], name="neg"),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    graph = import_onnx(model)
    part = subgraph_to_onnx(graph, ["relu", "neg"])
    assert [o.name for o in part.graph.output] == ["a", "b"]
    data = np.array([-1.0, 0.5, 2.0], np.float32)
    a, b = _ort(part).run(None, {"x": data})
    np.testing.assert_array_equal(a, np.maximum(data, 0))
    np.testing.assert_array_equal(b, -np.maximum(data, 0))


def test_subgraph_reading_outer_values_keeps_them_as_inputs() -> None:
    """An If whose branches read an outer value: that value becomes an input of the piece."""
    f = TensorProto.FLOAT
    then = helper.make_graph(
        [helper.make_node("Add", ["s", "s"], ["t"])], "then", [], [helper.make_tensor_value_info("t", f, [2])]
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["s"], ["e"])], "else", [], [helper.make_tensor_value_info("e", f, [2])]
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["s"], name="relu"),
        helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other),
    ]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", f, [2]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
            [helper.make_tensor_value_info("y", f, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    graph = import_onnx(model)
    part = subgraph_to_onnx(graph, ["if"])
    assert sorted(i.name for i in part.graph.input) == ["c", "s"]
    s = np.array([1.5, 2.0], np.float32)
    for cond in (True, False):
        (out,) = _ort(part).run(None, {"c": np.array(cond), "s": s})
        np.testing.assert_array_equal(out, s + s if cond else -s)


def test_whole_graph_round_trip_runs_the_same() -> None:
    path = next(p for p in light_model_paths() if p.stem == "light_squeezenet")
    case = load_light_case(path)
    graph = import_onnx(path)
    model = graph_to_onnx(graph)
    onnx.checker.check_model(model)
    out = _ort(model).run(None, {graph.inputs[0]: case.inputs[0]})[0]
    np.testing.assert_allclose(out, case.outputs[0], rtol=1e-3, atol=1e-7)


def test_unknown_node_name_is_named() -> None:
    graph = import_onnx(edgeai.demo.model_path())
    with pytest.raises(KeyError, match="no-such-node"):
        subgraph_to_onnx(graph, ["no-such-node"])


def test_every_onnx_node_test_model_round_trips_through_the_ir() -> None:
    """All 1765 node-test models (opsets 1 to 25, subgraphs, sequences, optionals, custom
    domains) import, and write back as models that pass onnx.checker."""
    from onnx_node_data import node_test_dirs

    dirs = node_test_dirs()
    assert len(dirs) > 1500
    for case_dir in dirs:
        graph = import_onnx(case_dir / "model.onnx")
        model = graph_to_onnx(graph)
        onnx.checker.check_model(model)
        original = onnx.load(str(case_dir / "model.onnx"))
        assert [n.op_type for n in model.graph.node] == [n.op_type for n in original.graph.node]
        assert [o.name for o in model.graph.output] == [o.name for o in original.graph.output]
