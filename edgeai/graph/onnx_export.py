"""Graph IR back to ONNX: a whole graph or any subset of its nodes.

:func:`subgraph_to_onnx` cuts a partition out of a graph as a valid,
self-contained ONNX model, so that a partition can be handed to ONNX Runtime
(or any ONNX consumer). Its inputs are the values the subset reads but does
not produce (initializers are carried along as initializers); its outputs
are the values it produces that are read outside the subset or are outputs
of the whole graph.

Example:
    >>> import edgeai
    >>> from edgeai.graph.onnx_import import import_onnx
    >>> from edgeai.graph.onnx_export import subgraph_to_onnx
    >>> g = import_onnx(edgeai.demo.model_path())
    >>> part = subgraph_to_onnx(g, [n.name for n in g.nodes[:2]])
    >>> [i.name for i in part.graph.input], len(part.graph.node)
    (['image'], 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from edgeai.graph.ir import Graph, Node, Value

__all__ = ["graph_to_onnx", "subgraph_to_onnx"]


def _elem_type(dtype: np.dtype[Any] | None) -> int:
    from onnx import TensorProto, helper

    if dtype is None:
        return TensorProto.UNDEFINED
    if dtype == np.dtype(object):
        return TensorProto.STRING
    try:
        return int(helper.np_dtype_to_tensor_dtype(dtype))
    except (KeyError, TypeError, ValueError):
        return TensorProto.UNDEFINED


def _value_info(value: Value) -> Any:
    from onnx import helper

    elem = _elem_type(value.dtype)
    shape = None if value.shape is None else list(value.shape)
    if value.kind == "sequence":
        return helper.make_tensor_sequence_value_info(value.name, elem, shape)
    if value.kind == "optional":
        inner = helper.make_tensor_type_proto(elem, shape)
        return helper.make_value_info(value.name, helper.make_optional_type_proto(inner))
    if value.kind in ("map", "unknown") and value.dtype is None:
        return helper.make_empty_tensor_value_info(value.name)
    return helper.make_tensor_value_info(value.name, elem, shape)


def _attribute(node: Node, name: str, value: Any, opsets: dict[str, int]) -> Any:
    from onnx import AttributeProto, TypeProto, helper, numpy_helper

    if isinstance(value, Graph):
        return helper.make_attribute(name, _graph_proto(value, opsets))
    if isinstance(value, np.ndarray):
        return helper.make_attribute(name, numpy_helper.from_array(value, name=""))
    if isinstance(value, TypeProto):
        return helper.make_attribute(name, value)
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            return helper.make_attribute(name, [], attr_type=_schema_attr_type(node, name, opsets))
        if isinstance(items[0], Graph):
            return helper.make_attribute(name, [_graph_proto(g, opsets) for g in items])
        if isinstance(items[0], np.ndarray):
            return helper.make_attribute(name, [numpy_helper.from_array(t, name="") for t in items])
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return helper.make_attribute(name, items, attr_type=AttributeProto.INTS)
        if all(isinstance(v, (int, float)) for v in items):
            return helper.make_attribute(name, [float(v) for v in items], attr_type=AttributeProto.FLOATS)
        return helper.make_attribute(name, items)
    if isinstance(value, bool):
        return helper.make_attribute(name, int(value))
    return helper.make_attribute(name, value)


def _schema_attr_type(node: Node, name: str, opsets: dict[str, int]) -> int:
    """The declared type of an attribute (needed to write an empty list)."""
    from onnx import AttributeProto, defs

    try:
        schema = defs.get_schema(node.op_type, opsets.get(node.domain, 1), node.domain)
        return int(schema.attributes[name].type)
    except Exception:  # unknown op or attribute: an empty list of ints is the common case
        return int(AttributeProto.INTS)


def _node_proto(node: Node, opsets: dict[str, int]) -> Any:
    from onnx import helper

    proto = helper.make_node(
        node.op_type, list(node.inputs), list(node.outputs), name=node.name, domain=node.domain or None
    )
    proto.attribute.extend(_attribute(node, k, v, opsets) for k, v in node.attrs.items())
    return proto


def _graph_proto(
    graph: Graph,
    opsets: dict[str, int],
    *,
    nodes: Iterable[Node] | None = None,
    inputs: Iterable[str] | None = None,
    outputs: Iterable[str] | None = None,
    initializer_names: Iterable[str] | None = None,
    name: str | None = None,
) -> Any:
    from onnx import helper, numpy_helper

    nodes = list(graph.nodes if nodes is None else nodes)
    inputs = list(graph.inputs if inputs is None else inputs)
    outputs = list(graph.outputs if outputs is None else outputs)
    init_names = list(graph.initializers if initializer_names is None else initializer_names)
    io = set(inputs) | set(outputs) | set(init_names)
    value_info = [
        _value_info(graph.value(o))
        for n in nodes
        for o in n.outputs
        if o and o not in io and graph.value(o).dtype is not None
    ]
    overridable = set(graph.overridable)
    graph_inputs = [_value_info(graph.value(i)) for i in inputs]
    # An initializer that the original graph also lists as an input stays overridable.
    graph_inputs += [_value_info(graph.value(i)) for i in init_names if i in overridable and i not in inputs]
    return helper.make_graph(
        [_node_proto(n, opsets) for n in nodes],
        name or graph.name,
        graph_inputs,
        [_value_info(graph.value(o)) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(graph.initializers[k]), name=k) for k in init_names],
        value_info=value_info,
    )


def _model(graph_proto: Any, graph: Graph) -> Any:
    from onnx import helper

    opsets = [helper.make_opsetid(d, int(v)) for d, v in sorted(graph.opsets.items())]
    kwargs: dict[str, Any] = {"opset_imports": opsets, "producer_name": "edgeai"}
    ir_version = graph.metadata.get("ir_version")
    if ir_version:
        kwargs["ir_version"] = int(ir_version)
    return helper.make_model(graph_proto, **kwargs)


def graph_to_onnx(graph: Graph) -> Any:
    """The whole graph as an ``onnx.ModelProto``."""
    opsets = dict(graph.opsets)
    return _model(_graph_proto(graph, opsets), graph)


def subgraph_to_onnx(graph: Graph, node_names: Iterable[str], *, check: bool = True) -> Any:
    """The nodes named ``node_names`` as a valid, standalone ``onnx.ModelProto``.

    Inputs: values the subset reads but neither produces nor holds as
    initializers. Outputs: values it produces that nodes outside the subset
    read (subgraphs included) or that are outputs of ``graph``. The model
    passes ``onnx.checker.check_model`` (``check=False`` skips the check).
    Raises ``KeyError`` naming any node that ``graph`` does not have.
    """
    import onnx

    part = graph.extract(node_names, name=f"{graph.name}_part")
    proto = _graph_proto(part, dict(graph.opsets))
    model = _model(proto, part)
    if check:
        onnx.checker.check_model(model)
    return model
