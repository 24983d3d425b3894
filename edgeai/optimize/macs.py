"""Multiply-accumulate counts per node of an ONNX model.

Counts the MACs of the ops that do the arithmetic of a network: convolutions
(``Conv``, ``ConvTranspose``, ``ConvInteger``, ``QLinearConv``), matrix products
(``Gemm``, ``MatMul``, ``MatMulInteger``, ``QLinearMatMul``, ``QGemm``,
``MatMulIntegerToFloat``, ``DynamicQuantizeMatMul``) and recurrent layers (``LSTM``,
``GRU``, ``RNN``, ``DynamicQuantizeLSTM``). Every other node counts 0. Shapes come
from ONNX shape inference with symbolic dimensions fixed (1 by default, or as
given), so the count is per batch of that size. A node whose shapes cannot be
inferred counts 0.

Example:
    >>> import edgeai
    >>> from edgeai.optimize.macs import count_macs
    >>> macs = count_macs(edgeai.demo.model_path())
    >>> macs["/features/features.0/Conv"]  # 16 x 8 x 8 outputs x (1 x 3 x 3)
    9216
    >>> sum(macs.values())
    231680
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

__all__ = ["count_macs", "node_key", "total_macs"]

# op type -> (index of the activation input, index of the weight input)
_CONV = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL = {
    "MatMul": (0, 1),
    "MatMulInteger": (0, 1),
    "QLinearMatMul": (0, 3),
    "MatMulIntegerToFloat": (0, 1),
    "DynamicQuantizeMatMul": (0, 1),
    "FusedMatMul": (0, 1),
}
_GEMM = {"Gemm": (0, 1), "QGemm": (0, 3)}
_RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "DynamicQuantizeLSTM": 4}


def node_key(node: Any, index: int) -> str:
    """The key a node has in :func:`count_macs`: its name, or ``<op_type>_<index>`` when unnamed."""
    return node.name or f"{node.op_type}_{index}"


def _prod(dims: Any) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _fixed_shapes(proto: Any, dims: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Static shapes of every tensor, with symbolic input dims fixed, via ONNX shape inference."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    inits = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                size = int(dims.get(d.dim_param, 1)) if d.dim_param else 1
                d.Clear()
                d.dim_value = size
    shapes: dict[str, tuple[int, ...]] = {}
    # ONNX shape inference stops at ops it has no schema for (com.microsoft's QLinearAdd
    # and friends); their shapes are filled in here and inference runs again past them.
    for _ in range(64):
        with contextlib.suppress(Exception):  # best effort: unknown shapes count 0
            model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        shapes, types = _known(model)
        added = 0
        for node in model.graph.node:
            if not node.output or node.output[0] in shapes:
                continue
            shape = _contrib_shape(node, shapes)
            if shape is not None and node.input[0] in types:
                model.graph.value_info.append(
                    onnx.helper.make_tensor_value_info(node.output[0], types[node.input[0]], shape)
                )
                added += 1
        if not added:
            break
    return shapes


def _known(model: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    shapes: dict[str, tuple[int, ...]] = {}
    types: dict[str, int] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        t = vi.type.tensor_type
        types[vi.name] = t.elem_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = tuple(int(d.dim_value) for d in t.shape.dim)
    for init in model.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
        types[init.name] = init.data_type
    return shapes, types


def _contrib_shape(node: Any, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...] | None:
    """Output shape of the com.microsoft quantized ops ONNX shape inference does not know."""
    import numpy as np

    ins = [shapes.get(i) if i else None for i in node.input]
    op = node.op_type
    if op in ("QLinearAdd", "QLinearMul") and len(ins) > 3 and ins[0] is not None and ins[3] is not None:
        return tuple(np.broadcast_shapes(ins[0], ins[3]))
    if op in ("QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax") and ins[0] is not None:
        return ins[0]
    if op == "QLinearGlobalAveragePool" and ins[0] is not None:
        x = ins[0]
        if _attr(node, "channels_last", 0):
            return (x[0], *([1] * (len(x) - 2)), x[-1])
        return (x[0], x[1], *([1] * (len(x) - 2)))
    return None


def _node_macs(node: Any, shapes: Mapping[str, tuple[int, ...]]) -> int:
    def shape(i: int) -> tuple[int, ...] | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        return shapes.get(node.input[i])

    out = shapes.get(node.output[0]) if node.output else None
    op = node.op_type
    if op in _CONV:
        w = shape(_CONV[op][1])
        return _prod(out) * _prod(w[1:]) if out is not None and w is not None else 0
    if op == "ConvTranspose":
        x, w = shape(0), shape(1)
        return _prod(x) * _prod(w[1:]) if x is not None and w is not None else 0
    if op in _GEMM:
        a, b = shape(_GEMM[op][0]), shape(_GEMM[op][1])
        if a is None or b is None or len(a) != 2 or len(b) != 2:
            return 0
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else a
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return int(m) * int(n) * int(k)
    if op in _MATMUL:
        a = shape(_MATMUL[op][0])
        return _prod(out) * int(a[-1]) if out is not None and a is not None else 0
    if op in _RNN_GATES:
        x, w = shape(0), shape(1)
        if x is None or w is None:
            return 0
        seq, batch, in_size = x if not _attr(node, "layout", 0) else (x[1], x[0], x[2])
        directions, gates_hidden = w[0], w[1]
        hidden = gates_hidden // _RNN_GATES[op]
        return int(directions * seq * batch * gates_hidden * (in_size + hidden))
    return 0


def count_macs(model: Any, dims: Mapping[str, int] | None = None) -> dict[str, int]:
    """MACs of every node of ``model`` (path, bytes or ``onnx.ModelProto``), keyed by node.

    Args:
        model: an ONNX model.
        dims: sizes for symbolic input dimensions by name (``{"N": 8}``); others are 1.

    Returns:
        ``{node_key: macs}`` for every top-level node, in graph order (see :func:`node_key`).
    """
    from edgeai.optimize._model import as_proto

    proto = as_proto(model)
    shapes = _fixed_shapes(proto, dims or {})
    return {node_key(n, i): _node_macs(n, shapes) for i, n in enumerate(proto.graph.node)}


def total_macs(model: Any, dims: Mapping[str, int] | None = None) -> int:
    """Sum of :func:`count_macs` over the model.

    >>> import edgeai
    >>> total_macs(edgeai.demo.model_path(), {"N": 2})
    463360
    """
    return sum(count_macs(model, dims).values())
