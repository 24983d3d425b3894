"""Write an IR graph of TFLite nodes back as a ``.tflite`` flatbuffer.

The reverse of :mod:`edgeai.formats.tflite_format`: a graph imported from a
``.tflite`` model, or a partition of it (``Graph.extract``), becomes a
one-subgraph model that LiteRT loads, so each LiteRT partition of a split
model runs on LiteRT itself. Tensors keep their dtype, shape (symbolic
dimensions become ``-1`` in ``shape_signature`` and ``1`` in ``shape``) and
quantization; initializers become buffers; builtin options are rebuilt from
the ``_options_type`` attribute and the schema field names; custom ops keep
their code and ``custom_options`` bytes. The bytes are written atomically
by :func:`write_tflite`.

Example:
    >>> import numpy as np
    >>> from edgeai.graph import Graph, Node, Value
    >>> from edgeai.formats.tflite_format import import_tflite
    >>> from edgeai.formats.tflite_writer import tflite_bytes
    >>> f32 = np.dtype("float32")
    >>> g = Graph.build([Node("relu", "RELU", "tflite", ("x",), ("y",))],
    ...                 [Value("x", f32, ("N", 4))], [Value("y", f32, ("N", 4))])
    >>> back = import_tflite(tflite_bytes(g))
    >>> [(n.domain, n.op_type) for n in back.nodes], back.value("x").shape
    ([('tflite', 'RELU')], ('N', 4))
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.errors import ModelFormatError
from edgeai.formats.tflite_format import BUILTIN_DOMAIN, CUSTOM_DOMAIN, TENSOR_TYPES, schema
from edgeai.graph.ir import Graph

__all__ = ["tflite_bytes", "write_tflite"]

_DTYPE_TO_TYPE = {np.dtype(v): k for k, v in TENSOR_TYPES.items()}


def _options(s: Any, attrs: dict[str, Any]) -> tuple[Any, int]:
    kind = attrs.get("_options_type")
    if not kind:
        return None, 0
    cls = getattr(s, f"{kind}T", None)
    if cls is None:
        raise ModelFormatError(f"the TFLite schema has no options type {kind!r}")
    opts = cls()
    for key, value in attrs.items():
        if key.startswith("_") or not hasattr(opts, key) or isinstance(value, dict):
            continue  # nested option tables (rare) keep their schema default
        setattr(opts, key, list(value) if isinstance(value, tuple) else value)
    return opts, getattr(s.BuiltinOptions, kind)


def tflite_bytes(graph: Graph, *, description: str = "edgeai partition") -> bytes:
    """Serialize ``graph`` (nodes of domains ``tflite``/``tflite.custom``) as ``.tflite`` bytes.

    Raises :class:`~edgeai.errors.ModelFormatError` for a node of another
    domain or a value whose dtype TFLite has no tensor type for.
    """
    import flatbuffers

    s = schema()
    m = s.ModelT()
    m.version = 3
    m.description = description
    m.buffers = [s.BufferT()]
    m.operatorCodes = []
    sub = s.SubGraphT()
    sub.name = graph.name
    sub.tensors, sub.operators = [], []
    index: dict[str, int] = {}

    def tensor(name: str) -> int:
        if name in index:
            return index[name]
        v = graph.value(name)
        arr = graph.initializers.get(name)
        dtype = arr.dtype if arr is not None else v.dtype
        if dtype is None or np.dtype(dtype) not in _DTYPE_TO_TYPE:
            raise ModelFormatError(f"value {name!r} has dtype {dtype}, which has no TFLite tensor type")
        t = s.TensorT()
        t.name = name
        t.type = getattr(s.TensorType, _DTYPE_TO_TYPE[np.dtype(dtype)])
        if arr is not None:
            t.shape = list(arr.shape)
            buf = s.BufferT()
            buf.data = np.ascontiguousarray(arr).tobytes()
            m.buffers.append(buf)
            t.buffer = len(m.buffers) - 1
        else:
            dims = v.shape if v.shape is not None else ()
            t.shape = [d if isinstance(d, int) else 1 for d in dims]
            if any(not isinstance(d, int) for d in dims):
                t.shapeSignature = [d if isinstance(d, int) else -1 for d in dims]
            t.buffer = 0
        if v.quant is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(x) for x in v.quant.scale]
            q.zeroPoint = [int(z) for z in v.quant.zero_point]
            q.quantizedDimension = int(v.quant.axis or 0)
            t.quantization = q
        sub.tensors.append(t)
        index[name] = len(sub.tensors) - 1
        return index[name]

    codes: dict[tuple[int, str], int] = {}
    versions = dict(graph.metadata.get("opcode_versions", {}))
    for node in graph.nodes:
        if node.domain == BUILTIN_DOMAIN:
            builtin, custom = getattr(s.BuiltinOperator, node.op_type, None), ""
            if builtin is None:
                raise ModelFormatError(f"node {node.name!r}: {node.op_type!r} is not a TFLite builtin operator")
        elif node.domain == CUSTOM_DOMAIN:
            builtin, custom = s.BuiltinOperator.CUSTOM, node.op_type
        else:
            raise ModelFormatError(
                f"node {node.name!r} is {node.domain}:{node.op_type}; only TFLite nodes "
                f"(domains {BUILTIN_DOMAIN!r}, {CUSTOM_DOMAIN!r}) can be written as .tflite"
            )
        linked = sorted(k for k in node.attrs if k.endswith("SubgraphIndex"))
        if linked:
            raise ModelFormatError(
                f"node {node.name!r} ({node.op_type}) calls other subgraphs ({', '.join(linked)}); "
                "only single-subgraph partitions can be written as .tflite"
            )
        version = int(versions.get(node.name, 1))
        key = (builtin, custom, version)
        if key not in codes:
            code = s.OperatorCodeT()
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, 127)
            code.version = version
            if custom:
                code.customCode = custom
            m.operatorCodes.append(code)
            codes[key] = len(m.operatorCodes) - 1
        op = s.OperatorT()
        op.opcodeIndex = codes[key]
        op.inputs = [tensor(i) if i else -1 for i in node.inputs]
        op.outputs = [tensor(o) for o in node.outputs]
        attrs = dict(node.attrs)
        if custom:
            raw = attrs.get("custom_options")
            if raw:
                op.customOptions = list(raw)
        else:
            op.builtinOptions, op.builtinOptionsType = _options(s, attrs)
        sub.operators.append(op)
    sub.inputs = [tensor(n) for n in graph.inputs]
    sub.outputs = [tensor(n) for n in graph.outputs]
    m.subgraphs = [sub]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def write_tflite(graph: Graph, path: str | os.PathLike[str]) -> Path:
    """Write :func:`tflite_bytes` of ``graph`` to ``path`` atomically (temp file, then rename)."""
    target = Path(path)
    data = tflite_bytes(graph)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
