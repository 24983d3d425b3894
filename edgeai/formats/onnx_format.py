"""ONNX files: parse, check external data, read input and output specs.

The checks here run before ONNX Runtime sees the model, so that a corrupt
file or an external-data path that escapes the model's folder gets a clear
edgeai error rather than a runtime's crash or a read of an arbitrary file.

Example:
    >>> import edgeai
    >>> from edgeai.formats import open_model
    >>> from edgeai.formats.onnx_format import load_onnx, io_specs
    >>> proto = load_onnx(open_model(edgeai.demo.model_path()))
    >>> [str(s) for s in io_specs(proto)[0]]
    ['image: float32[N, 1, 8, 8]']
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.errors import ExternalDataError, ModelFormatError
from edgeai.formats import ModelSource
from edgeai.specs import QuantParams, TensorSpec, onnx_elem_type_to_dtype

__all__ = ["QUANTIZED_OPS", "check_external_data", "io_specs", "load_onnx"]

QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "MatMulInteger",
        "ConvInteger",
        "QGemm",
        "QLinearAdd",
        "QLinearMul",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
        "QLinearGlobalAveragePool",
        "QLinearAveragePool",
        "QLinearConcat",
        "QLinearSoftmax",
        "QLinearConvTranspose",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "DynamicQuantizeLSTM",
    }
)
"""ONNX and com.microsoft ops that compute on quantized integers (what ONNX Runtime's quantizer writes)."""


def load_onnx(source: ModelSource) -> Any:
    """Parse an ONNX model (without loading external data) and check it.

    The parsed ``ModelProto`` is cached on ``source.proto``.
    """
    if source.proto is not None:
        return source.proto
    import onnx
    from google.protobuf.message import DecodeError

    what = source.display_name
    try:
        proto = onnx.load_model_from_string(source.read_bytes())
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(
            f"{what} is not a valid ONNX model: it is corrupt or truncated ({exc}). Re-export or re-download the file."
        ) from exc
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise ModelFormatError(f"{what} parsed as ONNX but holds no graph: the file is truncated or not an ONNX model")
    if not proto.opset_import:
        raise ModelFormatError(f"{what} declares no opset_import: it is not a valid ONNX model")
    base = source.path.parent if source.path is not None else None
    check_external_data(proto, base, what)
    source.proto = proto
    return proto


def _all_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for g in attr.graphs:
                yield from _all_tensors(g)


def check_external_data(proto: Any, base: Path | None, what: str = "the model") -> None:
    """Reject external data that is missing, out of range or outside ``base``.

    ONNX stores large tensors in side files named by a relative ``location``;
    a crafted model could name ``../../etc/passwd``. Every location must
    resolve inside the model's folder and the byte range must exist.
    """
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if base is None:
            raise ExternalDataError(
                f"tensor {tensor.name!r} of {what} keeps its data in external file {location!r}, "
                "but the model was given as bytes: open it from its path so the file can be found"
            )
        if not location or os.path.isabs(location) or location.startswith(("/", "\\")):
            raise ExternalDataError(
                f"tensor {tensor.name!r} of {what} names external data {location!r}: "
                "the location must be a relative path inside the model's folder"
            )
        root = base.resolve()
        target = (root / location).resolve()
        if root != target and root not in target.parents:
            raise ExternalDataError(
                f"tensor {tensor.name!r} of {what} points outside the model's folder "
                f"({location!r} resolves to {str(target)!r}); refusing to read it"
            )
        if not target.is_file():
            raise ExternalDataError(
                f"external data file {location!r} for tensor {tensor.name!r} of {what} "
                f"is missing (looked in {str(root)!r})"
            )
        offset = int(info.get("offset", 0) or 0)
        length = info.get("length")
        size = target.stat().st_size
        if offset < 0 or offset > size or (length is not None and offset + int(length) > size):
            raise ExternalDataError(
                f"external data for tensor {tensor.name!r} of {what} asks for bytes "
                f"{offset}..{offset + int(length or 0)} of {location!r}, which has {size}: "
                "the file is truncated"
            )


def _shape(value_info: Any) -> tuple[int | str | None, ...] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def _const_values(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        if init.data_location != 1 and init.dims is not None and np.prod(init.dims) <= 4096:
            values[init.name] = numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _quant_from(node: Any, consts: dict[str, np.ndarray]) -> QuantParams | None:
    scale = consts.get(node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        return None
    zp_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    zp = consts.get(zp_name) if zp_name else np.zeros((), np.uint8)
    if zp is None:
        return None
    axis = None
    for attr in node.attribute:
        if attr.name == "axis":
            axis = int(attr.i)
    per_axis = np.asarray(scale).size > 1
    return QuantParams(
        scale=tuple(float(s) for s in np.asarray(scale, np.float64).ravel()),
        zero_point=tuple(int(z) for z in np.asarray(zp).ravel()),
        axis=(1 if axis is None else axis) if per_axis else None,
        dtype=np.asarray(zp).dtype,
    )


def io_specs(proto: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs of a model, with quantization parameters where the model has them.

    A graph input consumed by ``DequantizeLinear`` carries that node's scale
    and zero point; a graph output produced by ``QuantizeLinear`` carries its
    own. (Graph inputs that are also initializers are not inputs.)
    """
    graph = proto.graph
    inits = {i.name for i in graph.initializer}
    consts = _const_values(graph)
    deq_of: dict[str, Any] = {}
    q_of: dict[str, Any] = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input:
            deq_of.setdefault(node.input[0], node)
        elif node.op_type == "QuantizeLinear" and node.output:
            q_of[node.output[0]] = node

    def spec(vi: Any, quant_node: Any) -> TensorSpec:
        dtype = onnx_elem_type_to_dtype(vi.type.tensor_type.elem_type)
        quant = _quant_from(quant_node, consts) if quant_node is not None else None
        return TensorSpec(vi.name, dtype, _shape(vi), quant)

    inputs = [spec(vi, deq_of.get(vi.name)) for vi in graph.input if vi.name not in inits]
    outputs = [spec(vi, q_of.get(vi.name)) for vi in graph.output]
    return inputs, outputs


def opset_version(proto: Any, domain: str = "") -> int | None:
    """The model's opset for ``domain`` (``""`` is the default ONNX domain)."""
    for imp in proto.opset_import:
        if imp.domain in (domain, "ai.onnx" if domain == "" else domain):
            return int(imp.version)
    return None
