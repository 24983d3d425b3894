"""Run one ONNX node on ONNX Runtime (the oracle of the INT8 op tests)."""

from __future__ import annotations

from typing import Any

import numpy as np


def ort_node(
    op_type: str,
    inputs: list[np.ndarray | None],
    *,
    n_feeds: int = 1,
    n_outputs: int = 1,
    attrs: dict[str, Any] | None = None,
    domain: str = "",
    opset: int = 21,
    optimize: bool = False,
) -> list[np.ndarray]:
    """Run ``op_type`` on ORT: the first ``n_feeds`` inputs are graph inputs, the rest initializers.

    ``None`` marks an omitted optional input. Graph optimizations are off by
    default so ORT runs the node's own kernel.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    names, graph_inputs, inits = [], [], []
    for i, arr in enumerate(inputs):
        if arr is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        arr = np.asarray(arr)
        if i < n_feeds:
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, arr.shape))
        else:
            inits.append(numpy_helper.from_array(arr, name))
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, domain=domain, **(attrs or {}))
    graph = helper.make_graph(
        [node], "single", graph_inputs, [helper.make_value_info(o, onnx.TypeProto()) for o in outs], inits
    )
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    so = ort.SessionOptions()
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {names[i]: np.asarray(inputs[i]) for i in range(n_feeds) if inputs[i] is not None}
    return sess.run(None, feeds)
