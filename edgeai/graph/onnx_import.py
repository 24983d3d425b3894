"""ONNX to graph IR: initializers, external data, nested subgraphs, inferred shapes.

:func:`import_onnx` turns a model (path, bytes, ``onnx.ModelProto`` or
:class:`~edgeai.formats.ModelSource`) into a :class:`~edgeai.graph.Graph`.
External data is read only after
:func:`edgeai.formats.onnx_format.check_external_data` approved every
location. Where the model leaves dtypes or shapes out, ``onnx.shape_inference``
fills them in (symbolic dimension names kept). Ops in custom domains are kept
as they are; model-local functions are inlined.

:func:`context_from_onnx_node` builds the :class:`~edgeai.ops._base.OpContext`
of one ``onnx.NodeProto``, for tests and tools that drive a single op.

Example:
    >>> import edgeai
    >>> from edgeai.graph.onnx_import import import_onnx
    >>> g = import_onnx(edgeai.demo.model_path())
    >>> g.inputs, g.value(g.inputs[0]).shape
    (('image',), ('N', 1, 8, 8))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.errors import ModelFormatError
from edgeai.graph.ir import Graph, Node, Value
from edgeai.ops._base import OpContext
from edgeai.specs import Dim, QuantParams, onnx_elem_type_to_dtype

__all__ = ["attribute_value", "context_from_onnx_node", "import_graph", "import_onnx"]


_GRAPH_TYPES = (5, 10)
"""``onnx.AttributeProto.GRAPH`` and ``GRAPHS``: the attribute types that hold subgraphs."""


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def attribute_value(attr: Any, outer_scope: Iterable[str] = (), opsets: Mapping[str, int] | None = None) -> Any:
    """One ``onnx.AttributeProto`` as a Python value.

    ints and floats as ``int``/``float``, strings decoded (UTF-8; bytes that
    are not UTF-8 stay ``bytes``), tensors as numpy arrays, lists as lists,
    graphs as :class:`Graph` (``outer_scope``: the names visible around it).
    """
    from onnx import AttributeProto, numpy_helper

    t = attr.type
    if t == AttributeProto.FLOAT:
        return float(attr.f)
    if t == AttributeProto.INT:
        return int(attr.i)
    if t == AttributeProto.STRING:
        return _decode(attr.s)
    if t == AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    if t == AttributeProto.GRAPH:
        return import_graph(attr.g, outer_scope=outer_scope, opsets=opsets)
    if t == AttributeProto.SPARSE_TENSOR:
        return _sparse_to_dense(attr.sparse_tensor)
    if t == AttributeProto.FLOATS:
        return [float(v) for v in attr.floats]
    if t == AttributeProto.INTS:
        return [int(v) for v in attr.ints]
    if t == AttributeProto.STRINGS:
        return [_decode(s) for s in attr.strings]
    if t == AttributeProto.TENSORS:
        return [numpy_helper.to_array(v) for v in attr.tensors]
    if t == AttributeProto.GRAPHS:
        return [import_graph(g, outer_scope=outer_scope, opsets=opsets) for g in attr.graphs]
    if t == AttributeProto.SPARSE_TENSORS:
        return [_sparse_to_dense(s) for s in attr.sparse_tensors]
    if t == AttributeProto.TYPE_PROTO:
        return attr.tp
    if t == AttributeProto.TYPE_PROTOS:
        return list(attr.type_protos)
    raise ModelFormatError(f"attribute {attr.name!r} has an unknown type {t}")


def _decode(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _sparse_to_dense(sparse: Any) -> np.ndarray:
    from onnx import numpy_helper

    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    dims = tuple(int(d) for d in sparse.dims)
    dense = np.zeros(int(np.prod(dims)), dtype=values.dtype)
    if indices.ndim == 2:  # one coordinate tuple per value
        indices = np.ravel_multi_index(indices.T, dims)
    dense[indices.ravel()] = values.ravel()
    return dense.reshape(dims)


def context_from_onnx_node(
    node: Any,
    opset: int | Mapping[str, int],
    consts: Mapping[str, np.ndarray] | None = None,
    *,
    outer_scope: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
    requant_mode: str = "onnx",
) -> OpContext:
    """The :class:`OpContext` of an ``onnx.NodeProto``.

    ``opset`` is the model's opset for the node's domain (or a dict of
    domain to opset); ``consts`` holds the values of constant inputs
    (initializers) by name.

    Example:
        >>> import numpy as np
        >>> from onnx import helper
        >>> node = helper.make_node("Gemm", ["a", "b"], ["y"], alpha=0.5, transB=1)
        >>> ctx = context_from_onnx_node(node, 13, {"b": np.eye(2, dtype=np.float32)})
        >>> ctx.attrs["alpha"], ctx.attrs["transB"], ctx.input_consts[1].shape, ctx.input_consts[0]
        (0.5, 1, (2, 2), None)
    """
    consts = consts or {}
    domain = _norm_domain(node.domain)
    if isinstance(opset, Mapping):
        opsets = {_norm_domain(k): int(v) for k, v in opset.items()}
        version = opsets.get(domain, 1)
    else:
        version = int(opset)
        opsets = {domain: version}
    scope = set(outer_scope) | set(consts) | {n for n in node.input if n}
    attrs = {a.name: attribute_value(a, scope, opsets) for a in node.attribute}
    return OpContext(
        node_name=node.name or f"{node.op_type}_node",
        op_type=node.op_type,
        domain=domain,
        opset=version,
        attrs=attrs,
        input_consts=tuple(consts.get(n) if n else None for n in node.input),
        num_outputs=len(node.output),
        requant_mode=requant_mode,
        options=dict(options or {}),
    )


# -- whole models ---------------------------------------------------------------


def import_onnx(model: Any, *, infer_shapes: bool = True) -> Graph:
    """Import an ONNX model as a :class:`Graph` (see the module docstring)."""
    from edgeai.formats import ModelSource, open_model
    from edgeai.formats.onnx_format import load_onnx

    source: ModelSource = open_model(model)
    if source.format != "onnx":
        raise ModelFormatError(f"{source.display_name} is a {source.format!r} model, not ONNX")
    proto = load_onnx(source)  # checks external data locations
    base = source.path.parent if source.path is not None else None
    return import_model_proto(proto, base_dir=base, what=source.display_name, infer_shapes=infer_shapes)


def import_model_proto(
    proto: Any,
    *,
    base_dir: Path | None = None,
    what: str = "the model",
    infer_shapes: bool = True,
) -> Graph:
    """Import an ``onnx.ModelProto`` (external data resolved against ``base_dir``).

    The proto given is not modified.
    """
    import onnx

    from edgeai.formats.onnx_format import check_external_data

    # Idempotent and cheap: approve every external location before anything reads it.
    check_external_data(proto, base_dir, what)
    if proto.functions:
        from onnx import inliner

        # On failure the calls stay: they then show up, by name, as ops the engine lacks.
        with contextlib.suppress(Exception):
            proto = inliner.inline_local_functions(proto)
    opsets = {_norm_domain(o.domain): int(o.version) for o in proto.opset_import}
    if infer_shapes:
        proto = _with_inferred_shapes(proto)
    if _has_external_data(proto.graph):
        from onnx.external_data_helper import load_external_data_for_model

        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        proto = copy
        # Locations were approved by check_external_data above.
        load_external_data_for_model(proto, str(base_dir))
    metadata = {
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "ir_version": int(proto.ir_version),
        "model_metadata": {p.key: p.value for p in proto.metadata_props},
        "source": what,
    }
    graph = import_graph(proto.graph, opsets=opsets)
    return graph.replace(metadata={**graph.metadata, **metadata})


def _has_external_data(graph: Any) -> bool:
    from edgeai.formats.onnx_format import _all_tensors

    return any(t.data_location == 1 for t in _all_tensors(graph))


def _with_inferred_shapes(proto: Any) -> Any:
    """The model with value_info filled by onnx's shape inference (unchanged on failure)."""
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # inference is a convenience: a model it cannot handle still imports
        return proto


def _type_to_value(name: str, type_proto: Any) -> Value:
    which = type_proto.WhichOneof("value")
    if which == "tensor_type" or which == "sparse_tensor_type":
        tt = getattr(type_proto, which)
        dtype = _elem_dtype(tt.elem_type) if tt.elem_type else None
        shape = _shape(tt) if tt.HasField("shape") else None
        return Value(name, dtype, shape, kind="tensor")
    if which == "sequence_type":
        inner = _type_to_value(name, type_proto.sequence_type.elem_type)
        return Value(name, inner.dtype, inner.shape, kind="sequence")
    if which == "optional_type":
        inner = _type_to_value(name, type_proto.optional_type.elem_type)
        return Value(name, inner.dtype, inner.shape, kind="optional")
    if which == "map_type":
        return Value(name, None, None, kind="map")
    return Value(name, None, None, kind="unknown")


def _elem_dtype(elem_type: int) -> np.dtype[Any]:
    """numpy dtype of an ONNX element type; float8, int4, int2 and bfloat16 as their
    ml_dtypes types (what ``numpy_helper.to_array`` produces), strings as object."""
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return onnx_elem_type_to_dtype(elem_type)


def _shape(tensor_type: Any) -> tuple[Dim, ...]:
    dims: list[Dim] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def import_graph(
    gp: Any,
    *,
    outer_scope: Iterable[str] = (),
    opsets: Mapping[str, int] | None = None,
) -> Graph:
    """Import an ``onnx.GraphProto``. For a subgraph, ``outer_scope`` holds the names
    visible in its enclosing graphs; the ones it reads become ``Graph.outer_names``."""
    from onnx import numpy_helper

    opsets = dict(opsets or {"": 1})
    outer = set(outer_scope)
    values: dict[str, Value] = {}
    initializers: dict[str, np.ndarray] = {}
    for init in gp.initializer:
        arr = numpy_helper.to_array(init)
        initializers[init.name] = arr
        values[init.name] = Value(init.name, arr.dtype, tuple(int(d) for d in arr.shape))
    for init in gp.sparse_initializer:
        arr = _sparse_to_dense(init)
        name = init.values.name
        initializers[name] = arr
        values[name] = Value(name, arr.dtype, tuple(arr.shape))
    for vi in (*gp.value_info, *gp.input, *gp.output):
        if vi.name in initializers or not vi.HasField("type"):
            values.setdefault(vi.name, Value(vi.name, None, None, kind="unknown"))
            continue
        values[vi.name] = _type_to_value(vi.name, vi.type)
    inputs = tuple(vi.name for vi in gp.input if vi.name not in initializers)
    overridable = tuple(vi.name for vi in gp.input if vi.name in initializers)

    local: set[str] = set(initializers) | {vi.name for vi in gp.input}
    nodes: list[Node] = []
    used_names: set[str] = set()
    reads_outer: dict[str, None] = {}
    for index, np_node in enumerate(gp.node):
        attrs = {
            # only a subgraph needs the names visible around it (a set union per node is O(n^2) in all)
            a.name: attribute_value(a, outer | local, opsets) if a.type in _GRAPH_TYPES else attribute_value(a)
            for a in np_node.attribute
        }
        name = np_node.name or f"{np_node.op_type}_{index}"
        while name in used_names:
            name = f"{name}_{index}"
        used_names.add(name)
        node = Node(
            name=name,
            op_type=np_node.op_type,
            domain=_norm_domain(np_node.domain),
            inputs=tuple(np_node.input),
            outputs=tuple(np_node.output),
            attrs=attrs,
        )
        for read in (*node.inputs, *node.implicit_inputs()):
            if read and read not in local:
                if read in outer:
                    reads_outer.setdefault(read, None)
                else:
                    raise ModelFormatError(
                        f"node {name!r} ({np_node.op_type}) of graph {gp.name!r} reads {read!r}, "
                        "which no earlier node, input or initializer defines: the graph is not in "
                        "topological order or is missing a value"
                    )
        nodes.append(node)
        local.update(o for o in np_node.output if o)
    for out in gp.output:
        if out.name not in local:
            if out.name in outer:
                reads_outer.setdefault(out.name, None)
            else:
                raise ModelFormatError(f"graph output {out.name!r} of graph {gp.name!r} is never produced")
    _attach_quant(nodes, values, initializers)
    return Graph(
        name=gp.name or "graph",
        nodes=tuple(nodes),
        inputs=inputs,
        outputs=tuple(o.name for o in gp.output),
        values=values,
        initializers=initializers,
        opsets=opsets,
        outer_names=tuple(reads_outer),
        overridable=overridable,
    )


def _attach_quant(nodes: list[Node], values: dict[str, Value], consts: Mapping[str, np.ndarray]) -> None:
    """Give the quantized values of Q/DQ pairs their QuantParams (scale, zero point, axis)."""
    for node in nodes:
        if node.domain != "" or node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        quant_name = node.outputs[0] if node.op_type == "QuantizeLinear" else node.inputs[0]
        params = _quant_params(node, consts)
        if params is None or not quant_name:
            continue
        old = values.get(quant_name) or Value(quant_name, params.dtype, None)
        values[quant_name] = old.with_quant(params)


def _quant_params(node: Node, consts: Mapping[str, np.ndarray]) -> QuantParams | None:
    scale = consts.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if scale is None:
        return None
    zp_name = node.inputs[2] if len(node.inputs) > 2 else ""
    zp = consts.get(zp_name) if zp_name else np.zeros((), np.uint8)
    if zp is None or zp.dtype.kind not in "iu":
        return None
    scale = np.asarray(scale)
    if scale.ndim > 1:  # blocked quantization: not expressible as QuantParams
        return None
    per_axis = scale.size > 1
    axis = int(node.attrs.get("axis", 1)) if per_axis else None
    return QuantParams(
        scale=tuple(scale.astype(np.float64).ravel().tolist()),  # Python floats and ints, as float()/int() give
        zero_point=tuple(np.asarray(zp).ravel().tolist()),
        axis=axis,
        dtype=np.asarray(zp).dtype,
    )
