"""Import a ``.tflite`` flatbuffer into edgeai's graph IR.

The flatbuffer is parsed with the TFLite schema's object API
(``ai_edge_litert.schema_py_generated``, shipped with ai-edge-litert; the
same generated module of ``tflite`` or ``tensorflow.lite`` works too). Only
the first subgraph (the model's entry point) becomes the IR graph:

* every builtin operator becomes a :class:`~edgeai.graph.Node` of domain
  ``"tflite"`` whose ``op_type`` is the builtin's name (``"CONV_2D"``),
  custom operators become domain ``"tflite.custom"`` with the custom code as
  op type (``"MaxPoolingWithArgmax2D"``);
* the builtin options become attributes under their schema field names
  (``padding``, ``strideW``, ``fusedActivationFunction``...), plus
  ``_options_type`` (``"Conv2DOptions"``) so the writer can rebuild them;
  a custom op's raw options are the ``custom_options`` bytes attribute;
* tensors keep TFLite's layout (NHWC activations, OHWI weights) and their
  quantization (per tensor, or per channel with ``axis``) as
  :class:`~edgeai.specs.QuantParams`; tensors backed by a buffer become
  initializers; a ``shape_signature`` dimension of -1 becomes a symbolic
  dimension (``"N"`` for the first, ``"d<i>"`` elsewhere).

Example:
    >>> from edgeai.formats.tflite_format import import_tflite
    >>> import tests.tflite_builder as tb   # doctest: +SKIP
    >>> g = import_tflite(tb.int8_cnn())    # doctest: +SKIP
    >>> [n.op_type for n in g.nodes]        # doctest: +SKIP
    ['CONV_2D', 'AVERAGE_POOL_2D', 'RESHAPE', 'FULLY_CONNECTED', 'SOFTMAX']
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.errors import MissingDependencyError, ModelFormatError
from edgeai.graph.ir import Graph, Node, Value
from edgeai.specs import QuantParams

__all__ = [
    "BUILTIN_DOMAIN",
    "CUSTOM_DOMAIN",
    "TENSOR_TYPES",
    "builtin_names",
    "import_tflite",
    "options_to_attrs",
    "schema",
]

BUILTIN_DOMAIN = "tflite"
CUSTOM_DOMAIN = "tflite.custom"

TENSOR_TYPES: dict[str, Any] = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT32": np.int32,
    "UINT8": np.uint8,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT32": np.uint32,
    "UINT16": np.uint16,
    "UINT64": np.uint64,
}
"""TFLite ``TensorType`` name -> numpy dtype (STRING, COMPLEX and RESOURCE tensors have none)."""

_SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tflite_runtime.schema_py_generated", "tflite")


def schema() -> Any:
    """The generated TFLite schema module (flatbuffers object API)."""
    for name in _SCHEMA_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "ModelT"):
            return module
    raise MissingDependencyError(
        'reading .tflite models needs the TFLite schema module: pip install "edgeai[litert]" (ai-edge-litert)'
    )


def _enum_names(enum_cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def builtin_names() -> dict[int, str]:
    """BuiltinOperator code -> name (``3 -> "CONV_2D"``)."""
    return _enum_names(schema().BuiltinOperator)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__"):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


def options_to_attrs(options: Any, options_type: str | None) -> dict[str, Any]:
    """Builtin options object -> plain attribute dict (schema field names, ``_options_type``)."""
    if options is None or options_type in (None, "NONE"):
        return {}
    attrs = {k: _plain(v) for k, v in vars(options).items()}
    attrs["_options_type"] = options_type
    return attrs


def _quant(s: Any, t: Any, dtype: np.dtype[Any] | None) -> QuantParams | None:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0 or dtype is None:
        return None
    if not np.issubdtype(dtype, np.integer):
        return None
    scale = tuple(float(v) for v in q.scale)
    zps = list(q.zeroPoint) if q.zeroPoint is not None and len(q.zeroPoint) else [0] * len(scale)
    if len(zps) == 1 and len(scale) > 1:
        zps = zps * len(scale)
    axis = int(q.quantizedDimension) if len(scale) > 1 else None
    return QuantParams(scale=scale, zero_point=tuple(int(z) for z in zps), axis=axis, dtype=dtype)


def _read(model: Any) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise ModelFormatError(f"{path} is not a file; pass a .tflite path or its bytes")
    return path.read_bytes()


def import_tflite(model: Any, *, subgraph: int = 0) -> Graph:
    """Parse a ``.tflite`` model (path, bytes or a ``ModelSource``) into an IR :class:`Graph`.

    ``graph.metadata`` holds ``format="tflite"``, the model's ``version``
    and ``description``, and ``tensor_names`` (tensor index -> IR value name)
    and ``opcode_versions`` (node name -> operator version) for the writer.

    Example:
        >>> import numpy as np, flatbuffers
        >>> from edgeai.formats.tflite_format import import_tflite, schema
        >>> s = schema()
        >>> m = s.ModelT(); m.version = 3; m.buffers = [s.BufferT()]
        >>> code = s.OperatorCodeT(); code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.RELU
        >>> m.operatorCodes = [code]
        >>> sub = s.SubGraphT(); sub.tensors = []
        >>> for name in ("x", "y"):
        ...     t = s.TensorT(); t.name = name; t.shape = [2]; t.type = s.TensorType.FLOAT32; sub.tensors.append(t)
        >>> op = s.OperatorT(); op.opcodeIndex = 0; op.inputs = [0]; op.outputs = [1]
        >>> sub.operators = [op]; sub.inputs = [0]; sub.outputs = [1]; m.subgraphs = [sub]
        >>> b = flatbuffers.Builder(0); _ = b.Finish(m.Pack(b), file_identifier=b"TFL3")
        >>> g = import_tflite(bytes(b.Output()))
        >>> [(n.domain, n.op_type) for n in g.nodes], g.inputs, g.outputs
        ([('tflite', 'RELU')], ('x',), ('y',))
    """
    from edgeai.formats import ModelSource

    if isinstance(model, ModelSource):
        data = model.read_bytes()
    else:
        data = _read(model)
    s = schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFormatError("not a TFLite flatbuffer (no 'TFL3' file identifier at byte 4)")
    try:
        m = s.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct.error to IndexError
        raise ModelFormatError(f"cannot parse the TFLite flatbuffer: {exc}") from exc
    if not m.subgraphs or subgraph >= len(m.subgraphs):
        raise ModelFormatError(f"the model has {len(m.subgraphs or [])} subgraph(s), no subgraph {subgraph}")
    sub = m.subgraphs[subgraph]
    type_names = _enum_names(s.TensorType)
    op_names = builtin_names()
    opt_names = _enum_names(s.BuiltinOptions)
    tensors = list(sub.tensors or [])

    names: list[str] = []
    seen: set[str] = set()
    for i, t in enumerate(tensors):
        base = (t.name.decode() if isinstance(t.name, bytes) else t.name) or f"tensor_{i}"
        name = base if base not in seen else f"{base}:{i}"
        seen.add(name)
        names.append(name)

    values: dict[str, Value] = {}
    inits: dict[str, np.ndarray] = {}
    for i, t in enumerate(tensors):
        tname = type_names.get(t.type, str(t.type))
        dtype = np.dtype(TENSOR_TYPES[tname]) if tname in TENSOR_TYPES else None
        shape_src = list(t.shapeSignature) if t.shapeSignature is not None and len(t.shapeSignature) else None
        stored = [int(d) for d in (t.shape if t.shape is not None else [])]
        dims: list[Any] = []
        for d, size in enumerate(shape_src if shape_src is not None else stored):
            dims.append(("N" if d == 0 else f"d{d}") if int(size) < 0 else int(size))
        kind = "tensor" if dtype is not None else "unknown"
        values[names[i]] = Value(names[i], dtype, tuple(dims), _quant(s, t, dtype), kind=kind)
        buf = m.buffers[t.buffer] if m.buffers and 0 < t.buffer < len(m.buffers) else None
        if buf is not None and buf.data is not None and len(buf.data) and dtype is not None:
            raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
            arr = np.frombuffer(raw, dtype=dtype).copy()
            inits[names[i]] = arr.reshape(stored) if stored else arr.reshape(())
        elif buf is not None and buf.offset and dtype is not None:
            start, size = int(buf.offset), int(buf.size)
            inits[names[i]] = np.frombuffer(data[start : start + size], dtype=dtype).copy().reshape(stored)

    nodes: list[Node] = []
    versions: dict[str, int] = {}
    for k, op in enumerate(sub.operators or []):
        code = m.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        op_name = op_names.get(builtin, f"BUILTIN_{builtin}")
        ins = tuple(names[i] if i >= 0 else "" for i in (op.inputs if op.inputs is not None else []))
        outs = tuple(names[i] for i in (op.outputs if op.outputs is not None else []))
        if op_name == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
            attrs: dict[str, Any] = {}
            if op.customOptions is not None and len(op.customOptions):
                attrs["custom_options"] = np.asarray(op.customOptions, dtype=np.uint8).tobytes()
            node = Node(f"{k}_{custom}", custom, CUSTOM_DOMAIN, ins, outs, attrs)
        else:
            attrs = options_to_attrs(op.builtinOptions, opt_names.get(op.builtinOptionsType))
            node = Node(f"{k}_{op_name}", op_name, BUILTIN_DOMAIN, ins, outs, attrs)
        versions[node.name] = int(code.version or 1)
        nodes.append(node)

    description = m.description.decode() if isinstance(m.description, bytes) else m.description
    return Graph(
        name=(sub.name.decode() if isinstance(sub.name, bytes) else sub.name) or "main",
        nodes=tuple(nodes),
        inputs=tuple(names[i] for i in (sub.inputs if sub.inputs is not None else [])),
        outputs=tuple(names[i] for i in (sub.outputs if sub.outputs is not None else [])),
        values=values,
        initializers=inits,
        opsets={BUILTIN_DOMAIN: 1, CUSTOM_DOMAIN: 1},
        metadata={
            "format": "tflite",
            "version": int(m.version or 3),
            "description": description or "",
            "tensor_names": tuple(names),
            "opcode_versions": versions,
        },
    )
