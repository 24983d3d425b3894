"""Random DAGs: the memory plan never frees a value too early, and export round-trips.

Hypothesis draws graphs of elementwise ops where each node reads arbitrary
earlier values and any values may be outputs. The oracle is ONNX Runtime
running the same graph written back to ONNX by ``graph_to_onnx``.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeai.graph import Graph, Node, Value
from edgeai.graph.executor import CompiledGraph
from edgeai.graph.onnx_export import graph_to_onnx

F32 = np.dtype("float32")
UNARY = ("Neg", "Relu", "Identity", "Abs")
BINARY = ("Add", "Mul", "Sub", "Max")


@st.composite
def dags(draw: st.DrawFn) -> Graph:
    n_inputs = draw(st.integers(1, 3))
    names = [f"in{i}" for i in range(n_inputs)]
    nodes = []
    for k in range(draw(st.integers(1, 25))):
        op = draw(st.sampled_from(UNARY + BINARY))
        arity = 1 if op in UNARY else 2
        ins = tuple(draw(st.sampled_from(names)) for _ in range(arity))
        out = f"v{k}"
        nodes.append(Node(f"n{k}", op, inputs=ins, outputs=(out,)))
        names.append(out)
    produced = [n.outputs[0] for n in nodes]
    outs = draw(st.lists(st.sampled_from(produced), min_size=1, max_size=4, unique=True))
    return Graph.build(
        nodes,
        [Value(f"in{i}", F32, (3,)) for i in range(n_inputs)],
        [Value(o, F32, (3,)) for o in outs],
        values=[Value(p, F32, (3,)) for p in produced],
        opsets={"": 17},
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=dags(), seed=st.integers(0, 2**16))
def test_random_dag_matches_onnxruntime(graph: Graph, seed: int) -> None:
    rng = np.random.default_rng(seed)
    feeds = {name: rng.standard_normal(3).astype(np.float32) for name in graph.inputs}
    compiled = CompiledGraph(graph)
    got = compiled.run(feeds)
    sess = ort.InferenceSession(graph_to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(list(graph.outputs), feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
