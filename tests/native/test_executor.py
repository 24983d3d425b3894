"""The native executor: memory plan, compile-once, control flow, errors, threads.

Ops registered here live in the ``test.edgeai`` domain so they never shadow a
real op.
"""

from __future__ import annotations

import sys
import threading
import types
import weakref
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import edgeai
from edgeai.errors import InferenceError, UnsupportedOpError
from edgeai.graph import Graph, Node, Value
from edgeai.graph.executor import CompiledGraph
from edgeai.graph.onnx_import import import_onnx
from edgeai.ops._base import Op, OpContext, register

F32 = np.dtype("float32")
DOMAIN = "test.edgeai"


class _Tracker:
    """Weak references to every array the Track op produced, to count the live ones."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[np.ndarray]] = []
        self.peak_alive = 0
        self.built = 0

    def alive(self) -> int:
        return sum(r() is not None for r in self.refs)


TRACK = _Tracker()


@register("Track", domain=DOMAIN, since=1)
class Track(Op):
    """y = x + 1, in a fresh array; records how many earlier outputs are still alive."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        TRACK.built += 1
        self.offset = ctx.input_consts[1] if len(ctx.input_consts) > 1 else None

    def run(self, x: np.ndarray, offset: np.ndarray | None = None) -> tuple[Any, ...]:
        TRACK.peak_alive = max(TRACK.peak_alive, TRACK.alive())
        y = x + (1 if offset is None else offset)
        TRACK.refs.append(weakref.ref(y))
        return (y,)


def _chain(n: int, extra_outputs: tuple[str, ...] = ()) -> Graph:
    nodes = [
        Node(f"t{i}", "Track", DOMAIN, inputs=("x" if i == 0 else f"v{i - 1}",), outputs=(f"v{i}",)) for i in range(n)
    ]
    outputs = [Value(f"v{n - 1}", F32, (4,)), *(Value(o, F32, (4,)) for o in extra_outputs)]
    return Graph.build(nodes, [Value("x", F32, (4,))], outputs, opsets={"": 21, DOMAIN: 1})


def test_memory_plan_frees_each_value_after_its_last_consumer() -> None:
    n = 60
    compiled = CompiledGraph(_chain(n))
    TRACK.refs.clear()
    TRACK.peak_alive = 0
    (y,) = compiled.run({"x": np.zeros(4, np.float32)})
    np.testing.assert_array_equal(y, np.full(4, n, np.float32))
    # When each op runs, only its own input (the previous output) is still alive:
    # the n - 1 earlier intermediates were released. Without a plan this would reach n - 1.
    assert TRACK.peak_alive == 1
    assert compiled.peak_live_values() == 2  # the value being read and the one being written
    del y
    assert TRACK.alive() == 0


def test_graph_outputs_in_the_middle_of_a_chain_are_kept() -> None:
    compiled = CompiledGraph(_chain(10, extra_outputs=("v3",)))
    last, mid = compiled.run({"x": np.zeros(4, np.float32)})
    np.testing.assert_array_equal(mid, np.full(4, 4, np.float32))
    np.testing.assert_array_equal(last, np.full(4, 10, np.float32))


def test_value_with_two_consumers_lives_until_the_second() -> None:
    nodes = [
        Node("a", "Track", DOMAIN, ("x",), ("a",)),
        Node("b", "Track", DOMAIN, ("a",), ("b",)),
        Node("c", "Track", DOMAIN, ("b",), ("c",)),
        Node("d", "Add", "", ("a", "c"), ("y",)),
    ]
    g = Graph.build(nodes, [Value("x", F32, (4,))], [Value("y", F32, (4,))], opsets={"": 14, DOMAIN: 1})
    (y,) = CompiledGraph(g).run({"x": np.zeros(4, np.float32)})
    np.testing.assert_array_equal(y, np.full(4, 1 + 3, np.float32))


def test_ops_are_built_once_with_their_constant_inputs() -> None:
    nodes = [Node(f"t{i}", "Track", DOMAIN, ("x" if i == 0 else f"v{i - 1}", "k"), (f"v{i}",)) for i in range(5)]
    g = Graph.build(
        nodes,
        [Value("x", F32, (4,))],
        [Value("v4", F32, (4,))],
        initializers={"k": np.full(4, 2, np.float32)},
        opsets={"": 21, DOMAIN: 1},
    )
    TRACK.built = 0
    compiled = CompiledGraph(g)
    assert TRACK.built == 5
    for _ in range(3):
        (y,) = compiled.run({"x": np.zeros(4, np.float32)})
    assert TRACK.built == 5
    assert all(np.array_equal(op.offset, np.full(4, 2, np.float32)) for op in compiled.ops)
    np.testing.assert_array_equal(y, np.full(4, 10, np.float32))


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], opset: int = 17, **kw: Any) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, **kw)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name: str, shape: list[Any], elem: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, elem, shape)


def test_loop_with_outer_scope_reads_matches_onnxruntime() -> None:
    """A Loop body reading a value of the enclosing graph, with a carried value and a scan output."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["acc_in", "step"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Mul", ["acc_out", "scale"], ["scanned"]),
        ],
        "body",
        [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("acc_in", [3])],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("acc_out", [3]), _vi("scanned", [3])],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["step"]),
        helper.make_node("Loop", ["n", "", "init"], ["final", "stacked"], body=body),
    ]
    model = _model(
        nodes,
        [_vi("x", [3]), _vi("init", [3]), _vi("n", [], TensorProto.INT64), _vi("scale", [3])],
        [_vi("final", [3]), _vi("stacked", [None, 3])],
    )
    rng = np.random.default_rng(1)
    feeds = {
        "x": rng.standard_normal(3).astype(np.float32),
        "init": rng.standard_normal(3).astype(np.float32),
        "n": np.array(4, np.int64),
        "scale": rng.standard_normal(3).astype(np.float32),
    }
    want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    with edgeai.Session(model, device="native") as sess:
        got = sess.run(None, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    assert got[1].shape == (4, 3)


def test_scan_matches_onnxruntime() -> None:
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x_t"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["y_t"])],
        "body",
        [_vi("s_in", [2]), _vi("x_t", [2])],
        [_vi("s_out", [2]), _vi("y_t", [2])],
    )
    node = helper.make_node("Scan", ["s0", "xs"], ["s", "ys"], body=body, num_scan_inputs=1, scan_input_directions=[1])
    model = _model([node], [_vi("s0", [2]), _vi("xs", [5, 2])], [_vi("s", [2]), _vi("ys", [5, 2])])
    feeds = {"s0": np.zeros(2, np.float32), "xs": np.arange(10, dtype=np.float32).reshape(5, 2)}
    want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    with edgeai.Session(model, device="native") as sess:
        got = sess.run(None, feeds)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_unsupported_ops_are_all_named_with_node_and_opset() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("Frobnicate", ["a"], ["b"], name="frob_1"),
        helper.make_node("Frobnicate", ["b"], ["c"], name="frob_2"),
        helper.make_node("Warp", ["c"], ["y"], name="warp", domain="com.example"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [_vi("x", [2])], [_vi("y", [2])]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 3)],
    )
    with pytest.raises(UnsupportedOpError) as info:
        edgeai.Session(model, device="native")
    msg = str(info.value)
    assert "Frobnicate (opset 17" in msg and "'frob_1'" in msg and "'frob_2'" in msg
    assert "com.example:Warp (opset 3)" in msg and "'warp'" in msg
    assert "Relu" not in msg
    assert (info.value.op_type, info.value.opset, info.value.node) == ("Frobnicate", 17, "frob_1")


def test_unsupported_op_inside_a_subgraph_is_found_at_load() -> None:
    then = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["t"], name="deep")], "then", [], [_vi("t", [2])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [_vi("e", [2])])
    node = helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other)
    model = _model([node], [_vi("x", [2]), _vi("c", [], TensorProto.BOOL)], [_vi("y", [2])])
    with pytest.raises(UnsupportedOpError, match="'deep'"):
        edgeai.Session(model, device="native")


def test_op_failure_names_the_node() -> None:
    model = _model(
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="bad_reshape")],
        [_vi("x", [6]), _vi("s", [2], TensorProto.INT64)],
        [_vi("y", None)],
    )
    with edgeai.Session(model, device="native") as sess, pytest.raises(InferenceError, match="bad_reshape"):
        sess.run({"x": np.zeros(6, np.float32), "s": np.array([4, 4], np.int64)})


def test_concurrent_runs_give_the_same_results() -> None:
    sess = edgeai.Session(edgeai.demo.model_path(), device="native")
    rng = np.random.default_rng(0)
    xs = [rng.random((3, 1, 8, 8), dtype=np.float32) for _ in range(8)]
    want = [sess.run({"image": x})["probabilities"] for x in xs]
    got: list[Any] = [None] * len(xs)

    def work(i: int) -> None:
        for _ in range(5):
            got[i] = sess.run({"image": xs[i]})["probabilities"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_demo_model_matches_onnxruntime_and_reports_placement() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 8, 8), dtype=np.float32)
    with edgeai.Session(edgeai.demo.model_path(), device="native") as native:
        got = native.run({"image": x})["probabilities"]
        report = native.placement
    with edgeai.Session(edgeai.demo.model_path(), device="onnxruntime") as ref:
        want = ref.run({"image": x})["probabilities"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert native.device.id == "native:cpu"
    assert {n.device for n in report.nodes} == {"native:cpu"}
    assert len(report.nodes) == len(import_onnx(edgeai.demo.model_path()).nodes)
    assert all("implements" in n.reason and n.op_type in n.reason for n in report.nodes)


def test_bad_feeds_get_clear_input_errors() -> None:
    with edgeai.Session(edgeai.demo.model_path(), device="native") as sess:
        with pytest.raises(edgeai.errors.InputTypeError, match="float32"):
            sess.run({"image": np.zeros((1, 1, 8, 8), np.float64)})
        with pytest.raises(edgeai.errors.InputShapeError, match="axis 2"):
            sess.run({"image": np.zeros((1, 1, 7, 8), np.float32)})
        with pytest.raises(edgeai.errors.InputNameError):
            sess.run({"img": np.zeros((1, 1, 8, 8), np.float32)})


def test_graph_passes_run_in_order_and_missing_modules_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    module = types.ModuleType("edgeai_test_pass_module")

    def rename_outputs(graph: Graph) -> Graph:
        seen.append(graph.name)
        return graph.replace(name="rewritten")

    module.rename_outputs = rename_outputs  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edgeai_test_pass_module", module)
    from edgeai.backends.native import GRAPH_PASSES, apply_passes

    assert "edgeai.graph.qdq_fusion:fuse_qdq" in GRAPH_PASSES
    g = import_onnx(edgeai.demo.model_path())
    out = apply_passes(g, ("edgeai_does_not_exist.pass:run", "edgeai_test_pass_module:rename_outputs"))
    assert seen == [g.name] and out.name == "rewritten"
    sess = edgeai.Session(
        edgeai.demo.model_path(), device="native", graph_passes=("edgeai_test_pass_module:rename_outputs",)
    )
    assert seen == [g.name, g.name]
    assert sess.run({"image": np.zeros((1, 1, 8, 8), np.float32)})["probabilities"].shape == (1, 10)


def test_backend_supports_answers_from_the_registry() -> None:
    from edgeai.backends import get_backend
    from edgeai.hardware import Device, DeviceKind

    backend = get_backend("native")
    (device,) = backend.devices()
    assert (device.id, device.kind, device.backend, device.provider) == (
        "native:cpu",
        DeviceKind.CPU,
        "native",
        "edgeai-native",
    )
    yes = backend.supports(Node("i", "Identity", inputs=("x",), outputs=("y",)), device, opset=14)
    assert yes and "Identity" in yes.reason and "control_flow" in yes.reason
    no = backend.supports(Node("f", "Frobnicate"), device, opset=17)
    assert not no and "Frobnicate" in no.reason and "17" in no.reason
    other = Device("onnxruntime:cpu", DeviceKind.CPU, "cpu", "x", "onnxruntime")
    assert not backend.supports(Node("i", "Identity"), other)


def test_outputs_that_are_inputs_or_initializers() -> None:
    k = np.arange(3, dtype=np.float32)
    g = Graph.build(
        [Node("n", "Identity", inputs=("x",), outputs=("y",))],
        [Value("x", F32, (3,))],
        [Value("y", F32, (3,)), Value("x", F32, (3,)), Value("k", F32, (3,))],
        initializers={"k": k},
    )
    x = np.ones(3, np.float32)
    compiled = CompiledGraph(g)
    y, x_out, k_out = compiled.run({"x": x})
    np.testing.assert_array_equal(y, x)
    assert x_out is x
    np.testing.assert_array_equal(k_out, k)
    k_out += 100  # the caller owns what it gets: the constant itself is untouched
    np.testing.assert_array_equal(compiled.run({"x": x})[2], k)


def test_ops_see_the_graph_values_of_their_inputs_and_outputs() -> None:
    seen: list[OpContext] = []

    @register("Peek", domain=DOMAIN, since=1)
    class Peek(Op):
        def __init__(self, ctx: OpContext) -> None:
            super().__init__(ctx)
            seen.append(ctx)

        def run(self, x: np.ndarray, *_: Any) -> tuple[Any, ...]:
            return (x,)

    g = Graph.build(
        [Node("p", "Peek", DOMAIN, inputs=("x", ""), outputs=("y",))],
        [Value("x", np.dtype("int8"), ("N", 3))],
        [Value("y", np.dtype("int8"), ("N", 3))],
        opsets={DOMAIN: 1},
    )
    CompiledGraph(g)
    (ctx,) = seen
    assert ctx.input_values[0].dtype == np.dtype("int8") and ctx.input_values[0].shape == ("N", 3)
    assert ctx.input_values[1] is None
    assert ctx.output_values[0].name == "y"


def _reshape_model(overridable: bool = False) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Constant", [], ["c1"], value_ints=[2]),
        helper.make_node("Concat", ["c1", "c2"], ["shape"], axis=0, name="concat"),
        helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
        helper.make_node("Add", ["r", "k"], ["y"], name="add"),
    ]
    inits = [
        helper.make_tensor("c2", TensorProto.INT64, [1], [3]),
        helper.make_tensor("k", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0]),
    ]
    inputs = [_vi("x", [6])] + ([_vi("k", [3])] if overridable else [])
    return _model(nodes, inputs, [_vi("y", [2, 3])], initializer=inits)


def test_nodes_on_constants_are_folded_and_seen_as_constant_inputs() -> None:
    compiled = CompiledGraph(import_onnx(_reshape_model()))
    assert compiled.folded == ["concat"]
    reshape = next(op for op in compiled.ops if op.ctx.node_name == "reshape")
    np.testing.assert_array_equal(reshape.ctx.input_consts[1], [2, 3])
    assert compiled.steps == 2  # Reshape and Add; Constant and Concat ran at compile time
    x = np.arange(6, dtype=np.float32)
    (y,) = compiled.run({"x": x})
    np.testing.assert_array_equal(y, x.reshape(2, 3) + np.array([1, 2, 3], np.float32))
    unfolded = CompiledGraph(import_onnx(_reshape_model()), options={"constant_folding": False})
    assert unfolded.folded == [] and unfolded.steps == 3
    np.testing.assert_array_equal(unfolded.run({"x": x})[0], y)


def test_initializers_a_feed_may_replace_are_not_constants() -> None:
    compiled = CompiledGraph(import_onnx(_reshape_model(overridable=True)))
    add = next(op for op in compiled.ops if op.ctx.node_name == "add")
    assert add.ctx.input_consts[1] is None
    x = np.zeros(6, np.float32)
    np.testing.assert_array_equal(compiled.run({"x": x})[0], np.tile([1.0, 2.0, 3.0], (2, 1)))
    k = np.full(3, 7, np.float32)
    np.testing.assert_array_equal(compiled.run({"x": x, "k": k})[0], np.full((2, 3), 7, np.float32))


def test_loop_of_zero_iterations_matches_onnxruntime() -> None:
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["c"], ["co"]),
            helper.make_node("Add", ["a", "a"], ["ao"]),
            helper.make_node("Identity", ["ao"], ["sc"]),
        ],
        "body",
        [_vi("i", [], TensorProto.INT64), _vi("c", [], TensorProto.BOOL), _vi("a", [3])],
        [_vi("co", [], TensorProto.BOOL), _vi("ao", [3]), _vi("sc", [3])],
    )
    model = _model(
        [helper.make_node("Loop", ["n", "", "a0"], ["final", "scan"], body=body)],
        [_vi("n", [], TensorProto.INT64), _vi("a0", [3])],
        [_vi("final", [3]), _vi("scan", [None, 3])],
    )
    ref = ort.InferenceSession(model.SerializeToString())
    with edgeai.Session(model, device="native") as sess:
        for n in (0, 3):
            feeds = {"n": np.array(n, np.int64), "a0": np.arange(3, dtype=np.float32)}
            got, want = sess.run(None, feeds), ref.run(None, feeds)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)


def test_partitions_compiled_natively_chain_to_the_whole_model() -> None:
    from edgeai.backends import get_backend

    native = get_backend("native")
    device = native.devices()[0]
    graph = import_onnx(edgeai.demo.model_path())
    names = [n.name for n in graph.nodes]
    pieces = [names[:3], names[3:7], names[7:]]
    x = np.random.default_rng(3).random((2, 1, 8, 8), dtype=np.float32)
    known: dict[str, Any] = {"image": x}
    for piece in pieces:
        part = graph.extract(piece)
        exe = native.compile(part, device, {})
        assert [s.name for s in exe.inputs] == list(part.inputs)
        outs = exe.run({k: known[k] for k in part.inputs})
        known.update(zip(exe.output_names, outs))
        assert {n.name for n in exe.placement().nodes} == set(piece)
    want = ort.InferenceSession(str(edgeai.demo.model_path())).run(None, {"image": x})[0]
    np.testing.assert_allclose(known["probabilities"], want, rtol=1e-5, atol=1e-6)


def test_torch_exported_mobilenetv2_matches_onnxruntime(mobilenetv2_float: Any) -> None:
    x = np.random.default_rng(0).random((2, 3, 96, 96), dtype=np.float32)
    with edgeai.Session(mobilenetv2_float, device="native") as native:
        name = native.inputs[0].name
        got = native.run({name: x})
    with edgeai.Session(mobilenetv2_float, device="onnxruntime") as ref:
        want = ref.run({name: x})
    assert got.keys() == want.keys()
    for key in got:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5)


def test_run_profiled_times_every_step_and_gives_the_same_outputs() -> None:
    graph = import_onnx(edgeai.demo.model_path())
    compiled = CompiledGraph(graph)
    x = np.random.default_rng(5).random((2, 1, 8, 8), dtype=np.float32)
    outs, timings = compiled.run_profiled({"image": x})
    np.testing.assert_array_equal(outs[0], compiled.run({"image": x})[0])
    assert [(name, op) for name, op, _ in timings] == [
        (n.name, n.op_type) for n in graph.nodes if n.name not in compiled.folded
    ]
    assert all(t >= 0 for _, _, t in timings)


def test_memory_plan_on_a_real_network_holds_a_handful_of_tensors(mobilenetv2_float: Any) -> None:
    """MobileNetV2 (99 ops, residual connections): at most 3 activations alive at once
    (a block's input kept for its residual add, plus the op's input and output)."""
    compiled = CompiledGraph(import_onnx(mobilenetv2_float))
    assert compiled.steps > 90
    assert compiled.peak_live_values() == 3


def _qconv_chain_model() -> bytes:
    """u8 x -> QLinearConv (3x3) -> QLinearConv (1x1, depthwise-free) -> y1 (a graph output, also read
    by QLinearAdd with the first conv's result) -> y2; and the first conv's result -> Identity -> y3."""
    rng = np.random.default_rng(11)
    t = lambda name, v: onnx.numpy_helper.from_array(np.asarray(v), name)  # noqa: E731
    inits = [
        t("xs", np.float32(0.05)), t("xz", np.uint8(120)), t("ys", np.float32(0.4)), t("yz", np.uint8(100)),
        t("w1", rng.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)), t("s1", rng.uniform(0.002, 0.01, 8).astype(np.float32)),
        t("z1", np.zeros(8, np.int8)), t("b1", rng.integers(-500, 500, 8).astype(np.int32)),
        t("w2", rng.integers(-127, 128, (8, 8, 1, 1)).astype(np.int8)), t("s2", rng.uniform(0.002, 0.01, 8).astype(np.float32)),
        t("z2", np.zeros(8, np.int8)),
    ]  # fmt: skip
    nodes = [
        helper.make_node("QLinearConv", ["x", "xs", "xz", "w1", "s1", "z1", "ys", "yz", "b1"], ["c1"], pads=[1] * 4),
        helper.make_node("QLinearConv", ["c1", "ys", "yz", "w2", "s2", "z2", "ys", "yz"], ["y1"]),
        helper.make_node(
            "QLinearAdd", ["c1", "ys", "yz", "y1", "ys", "yz", "ys", "yz"], ["y2"], domain="com.microsoft"
        ),
        helper.make_node("Identity", ["c1"], ["y3"]),
    ]
    u8 = TensorProto.UINT8
    graph = helper.make_graph(
        nodes, "qconv", [helper.make_tensor_value_info("x", u8, [1, 4, 9, 7])],
        [helper.make_tensor_value_info(n, u8, None) for n in ("y1", "y2", "y3")], inits,
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def test_nhwc_views_only_where_every_reader_takes_them() -> None:
    """QLinearConv hands on NCHW views of NHWC results only to readers that take them (here a
    conv read by an Identity does not); graph outputs are C-contiguous; bytes equal ONNX Runtime's
    and the reference path's (int8_kernels=False)."""
    model = _qconv_chain_model()
    graph = import_onnx(model)
    fast = CompiledGraph(graph)
    convs = [op for op in fast.ops if op.ctx.op_type == "QLinearConv"]
    assert all(op.nhwc_kernel is not None for op in convs)  # packed when the graph was compiled
    c1, c2 = convs
    assert not c1.nhwc_views  # read by Identity as well
    assert c2.nhwc_views  # y1: a graph output and read by QLinearAdd
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(12).integers(0, 256, (1, 4, 9, 7)).astype(np.uint8)
    want = ref.run(None, {"x": x})
    slow = CompiledGraph(graph, options={"int8_kernels": False}).run({"x": x})
    for got in (fast.run({"x": x}), fast.run_profiled({"x": x})[0]):
        for g, w, s in zip(got, want, slow):
            assert g.flags.c_contiguous
            assert g.dtype == w.dtype and np.array_equal(g, w) and np.array_equal(g, s)
    c1.nhwc_views = True  # the Identity would now hand a strided array on: still the same bytes, in C order
    got = fast.run({"x": x})
    assert all(g.flags.c_contiguous and np.array_equal(g, w) for g, w in zip(got, want))


def test_op_returning_a_bare_array_and_bound_steps_are_named_in_errors() -> None:
    """An op must return a tuple: a bare array (whose first row would otherwise pass for the output)
    is an InferenceError naming the node, here the third step, and a step bound by ``bind_static``
    that raises is named the same way."""

    @register("BareArray", domain=DOMAIN, since=1)
    class BareArray(Op):
        def run(self, x: np.ndarray) -> Any:
            return x + 1

    @register("BoundFails", domain=DOMAIN, since=1)
    class BoundFails(Op):
        def run(self, x: np.ndarray, scale: np.ndarray) -> tuple[Any, ...]:
            return (x * scale,)

        def bind_static(self) -> Any:
            scale = self.ctx.input_consts[1]

            def step(x: np.ndarray) -> tuple[Any, ...]:
                if x.shape != (4,):
                    raise ValueError("only 4 values")
                return (x * scale,)

            return step, (0,)

    def graph(kind: str) -> Graph:
        nodes = [
            Node("t0", "Track", DOMAIN, inputs=("x",), outputs=("a",)),
            Node("t1", "Track", DOMAIN, inputs=("a",), outputs=("b",)),
            Node("odd", kind, DOMAIN, inputs=("b",) if kind == "BareArray" else ("b", "s"), outputs=("c",)),
            Node("t3", "Track", DOMAIN, inputs=("c",), outputs=("y",)),
        ]
        inits = {} if kind == "BareArray" else {"s": np.array(2.0, F32)}
        return Graph.build(
            nodes, [Value("x", F32, None)], [Value("y", F32, None)], initializers=inits, opsets={"": 21, DOMAIN: 1}
        )

    with pytest.raises(InferenceError, match=r"node 'odd' \(BareArray\).*not a tuple"):
        CompiledGraph(graph("BareArray")).run({"x": np.zeros(4, F32)})
    bound = CompiledGraph(graph("BoundFails"))
    np.testing.assert_array_equal(bound.run({"x": np.zeros(4, F32)})[0], np.full(4, 5.0, F32))
    with pytest.raises(InferenceError, match=r"node 'odd' \(BoundFails\).*only 4 values"):
        bound.run({"x": np.zeros(3, F32)})


def test_written_out_runner_keeps_the_step_loop_semantics() -> None:
    """The run loop written out as one function (``_RunnerSource``): an op may return a list, or fewer
    results than it has outputs (the rest are None); a result no one reads is dropped; an
    overridable initializer left out of the feeds keeps its value; outputs can be picked by name."""

    @register("TwoOrOne", domain=DOMAIN, since=1)
    class TwoOrOne(Op):
        def run(self, x: np.ndarray) -> Any:
            return [x * 2] if float(x.sum()) < 0 else [x * 2, x * 3]

    nodes = [
        Node("split", "TwoOrOne", DOMAIN, inputs=("x",), outputs=("a", "b")),
        Node("unread", "Track", DOMAIN, inputs=("a",), outputs=("dropped",)),
        Node("add", "Add", inputs=("a", "k"), outputs=("y",)),
        Node("opt", "Identity", inputs=("b",), outputs=("z",)),
    ]
    g = Graph.build(
        nodes,
        [Value("x", F32, (2,))],
        [Value("y", F32, (2,)), Value("z", F32, None)],
        initializers={"k": np.array([10.0, 20.0], F32)},
        opsets={"": 21, DOMAIN: 1},
    ).replace(overridable=("k",))
    compiled = CompiledGraph(g)
    y, z = compiled.run({"x": np.array([1.0, 2.0], F32)})
    np.testing.assert_array_equal(y, [12.0, 24.0])
    np.testing.assert_array_equal(z, [3.0, 6.0])
    y, z = compiled.run({"x": np.array([-1.0, -2.0], F32), "k": np.zeros(2, F32)})
    np.testing.assert_array_equal(y, [-2.0, -4.0])
    assert z is None  # the op left its second output out
    (z_only,) = compiled.run({"x": np.ones(2, F32)}, ["z"])
    np.testing.assert_array_equal(z_only, [3.0, 3.0])
    with pytest.raises(edgeai.errors.InputNameError, match="unknown output name 'nope'"):
        compiled.run({"x": np.ones(2, F32)}, ["nope"])
    with pytest.raises(edgeai.errors.InputNameError, match="missing input 'x'"):
        compiled.run({"k": np.ones(2, F32)})


def test_bound_step_must_return_exactly_its_outputs() -> None:
    """The runner unpacks a bound single-output step directly: a step returning two values for its
    one output is an InferenceError naming the node (the loop once kept the first silently)."""

    @register("BoundTwo", domain=DOMAIN, since=1)
    class BoundTwo(Op):
        def run(self, x: np.ndarray) -> tuple[Any, ...]:
            return (x,)

        def bind_static(self) -> Any:
            return (lambda x: (x, x) if x.shape == (3,) else (x + 1,)), (0,)

    g = Graph.build(
        [Node("two", "BoundTwo", DOMAIN, inputs=("x",), outputs=("y",))],
        [Value("x", F32, None)],
        [Value("y", F32, None)],
        opsets={"": 21, DOMAIN: 1},
    )
    compiled = CompiledGraph(g)
    np.testing.assert_array_equal(compiled.run({"x": np.zeros(4, F32)})[0], np.ones(4, F32))
    with pytest.raises(InferenceError, match=r"node 'two' \(BoundTwo\).*ValueError"):
        compiled.run({"x": np.zeros(3, F32)})


def test_large_graphs_keep_the_step_loop_with_the_same_results_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above ``WRITE_OUT_STEPS`` steps the runner is a loop (compiling written-out source would cost
    more than it saves): the same outputs, missing-input and node-naming errors."""
    import edgeai.graph.executor as executor

    model = _qconv_chain_model()
    x = np.random.default_rng(3).integers(0, 256, (1, 4, 9, 7)).astype(np.uint8)
    written = CompiledGraph(import_onnx(model))
    assert written._runner_code is not None
    monkeypatch.setattr(executor, "WRITE_OUT_STEPS", 0)
    looped = CompiledGraph(import_onnx(model))
    assert looped._runner_code is None
    for g, w in zip(looped.run({"x": x}), written.run({"x": x})):
        assert g.dtype == w.dtype and np.array_equal(g, w)
    with pytest.raises(edgeai.errors.InputNameError, match="missing input 'x'"):
        looped.run({})

    @register("BareArrayLoop", domain=DOMAIN, since=1)
    class BareArrayLoop(Op):
        def run(self, x: np.ndarray) -> Any:
            return x + 1

    g = Graph.build(
        [
            Node("t0", "Track", DOMAIN, inputs=("x",), outputs=("a",)),
            Node("odd", "BareArrayLoop", DOMAIN, inputs=("a",), outputs=("y",)),
        ],
        [Value("x", F32, None)],
        [Value("y", F32, None)],
        opsets={"": 21, DOMAIN: 1},
    )
    with pytest.raises(InferenceError, match=r"node 'odd' \(BareArrayLoop\).*not a tuple"):
        CompiledGraph(g).run({"x": np.zeros(4, F32)})


def test_native_executable_checks_feeds_itself() -> None:
    """NativeExecutable's own feed checks (Session's fast path trusts them): dtype, rank, fixed dims
    and symbolic dims shared by several inputs; a dim named once takes any size; a list is converted
    without touching the caller's dict."""
    from edgeai.backends import get_backend

    g = Graph.build(
        [Node("add", "Add", inputs=("a", "b"), outputs=("y",))],
        [Value("a", F32, ("N", 3)), Value("b", F32, ("N", "free"))],
        [Value("y", F32, None)],
        opsets={"": 17},
    )
    native = get_backend("native")
    exe = native.compile(g, native.devices()[0], {})
    feeds: dict[str, Any] = {"a": [[1.0, 2.0, 3.0]], "b": np.ones((1, 3), F32)}
    np.testing.assert_array_equal(exe.run(feeds)[0], [[2.0, 3.0, 4.0]])
    assert isinstance(feeds["a"], list)  # the caller's dict is not changed
    np.testing.assert_array_equal(
        exe.run({"a": np.ones((2, 3), F32), "b": np.ones((2, 1), F32)})[0], np.full((2, 3), 2)
    )
    with pytest.raises(edgeai.errors.InputShapeError, match="'N' of input 'b' is 1, but 2 elsewhere"):
        exe.run({"a": np.ones((2, 3), F32), "b": np.ones((1, 3), F32)})
    with pytest.raises(edgeai.errors.InputShapeError, match=r"expects shape \('N', 3\)"):
        exe.run({"a": np.ones((2, 4), F32), "b": np.ones((2, 4), F32)})
    with pytest.raises(edgeai.errors.InputShapeError, match="expects rank 2"):
        exe.run({"a": np.ones(3, F32), "b": np.ones((1, 3), F32)})
    with pytest.raises(edgeai.errors.InputTypeError, match="float32"):
        exe.run({"a": np.ones((1, 3), np.float64), "b": np.ones((1, 3), F32)})
    with pytest.raises(edgeai.errors.InputNameError, match="missing input 'b'"):
        exe.run({"a": np.ones((1, 3), F32)})


def test_a_result_does_not_outlive_its_slot_in_the_runner() -> None:
    """The written-out runner keeps an op's result tuple in a local while it unpacks it: that local is
    dropped too, so a value freed by the memory plan is gone even when only bound steps follow."""
    alive_at: list[int] = []

    @register("BoundAlive", domain=DOMAIN, since=1)
    class BoundAlive(Op):
        def run(self, x: np.ndarray) -> tuple[Any, ...]:
            return (x * 2,)

        def bind_static(self) -> Any:
            def step(x: np.ndarray) -> tuple[Any, ...]:
                alive_at.append(TRACK.alive())
                return (x * 2,)

            return step, (0,)

    g = Graph.build(
        [
            Node("t0", "Track", DOMAIN, inputs=("x",), outputs=("a",)),
            Node("b1", "BoundAlive", DOMAIN, inputs=("a",), outputs=("b",)),
            Node("b2", "BoundAlive", DOMAIN, inputs=("b",), outputs=("c",)),
            Node("b3", "BoundAlive", DOMAIN, inputs=("c",), outputs=("y",)),
        ],
        [Value("x", F32, (4,))],
        [Value("y", F32, (4,))],
        opsets={"": 21, DOMAIN: 1},
    )
    TRACK.refs.clear()
    np.testing.assert_array_equal(CompiledGraph(g).run({"x": np.zeros(4, F32)})[0], np.full(4, 8, F32))
    assert alive_at == [1, 0, 0]  # "a" is alive while b1 reads it, freed before b2
