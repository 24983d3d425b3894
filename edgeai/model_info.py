"""Describe a model without running it: inputs, outputs, ops, parameters, quantization.

Example:
    >>> import edgeai
    >>> from edgeai.model_info import inspect_model
    >>> info = inspect_model(edgeai.demo.model_path())
    >>> info.format, info.opset, info.quantization
    ('onnx', 17, 'none')
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from edgeai.formats import open_model
from edgeai.formats.onnx_format import QUANTIZED_OPS

__all__ = ["ModelInfo", "inspect_model"]

_QOPERATOR = QUANTIZED_OPS - {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


class ModelInfo(BaseModel):
    """What ``edgeai inspect`` prints."""

    path: str
    format: str
    size_bytes: int
    producer: str = ""
    opset: int | None = None
    opsets: dict[str, int] = Field(default_factory=dict)
    inputs: list[str]
    outputs: list[str]
    op_counts: dict[str, int]
    nodes: int
    parameters: int
    quantization: str
    """``none``, ``QDQ`` (Q/DQ pairs around float ops), ``QOperator`` or ``dynamic``."""


def _count_ops(graph: Any, counter: Counter[str]) -> None:
    for node in graph.node:
        key = f"{node.domain}:{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        counter[key] += 1
        for attr in node.attribute:
            if attr.HasField("g"):
                _count_ops(attr.g, counter)
            for g in attr.graphs:
                _count_ops(g, counter)


def inspect_model(model: Any) -> ModelInfo:
    """Inspect a model file, bytes or ``onnx.ModelProto``."""
    source = open_model(model)
    if source.format != "onnx":
        from edgeai.errors import ModelFormatError

        raise ModelFormatError(
            f"inspect supports ONNX models in this build; {source.display_name} is {source.format!r}"
        )
    import numpy as np

    from edgeai.formats.onnx_format import io_specs, load_onnx

    proto = load_onnx(source)
    inputs, outputs = io_specs(proto)
    ops: Counter[str] = Counter()
    _count_ops(proto.graph, ops)
    params = sum(int(np.prod(t.dims)) if len(t.dims) else 1 for t in proto.graph.initializer)
    names = {op.split(":")[-1] for op in ops}
    if names & {"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"}:
        quant = "dynamic"
    elif names & _QOPERATOR:
        quant = "QOperator"
    elif "DequantizeLinear" in names:
        quant = "QDQ"
    else:
        quant = "none"
    size = source.path.stat().st_size if source.path is not None else proto.ByteSize()
    opsets = {(imp.domain or "ai.onnx"): int(imp.version) for imp in proto.opset_import}
    return ModelInfo(
        path=source.display_name,
        format="onnx",
        size_bytes=size,
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        opset=opsets.get("ai.onnx"),
        opsets=opsets,
        inputs=[str(s) for s in inputs],
        outputs=[str(s) for s in outputs],
        op_counts=dict(ops.most_common()),
        nodes=sum(ops.values()),
        parameters=params,
        quantization=quant,
    )
