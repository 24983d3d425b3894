"""Model plumbing shared by the optimization tools: load, save atomically, probe tensors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.formats.onnx_format import QUANTIZED_OPS as _QUANTIZED_OPS

__all__ = [
    "QUANTIZED_OPS",
    "as_proto",
    "model_size",
    "quantized_ops",
    "run_with_intermediates",
    "save_atomic",
]

# the project's one list of quantized ONNX ops (Q/DQ, QLinear*, *Integer, dynamic)
QUANTIZED_OPS = _QUANTIZED_OPS


def as_proto(model: Any) -> Any:
    """An ``onnx.ModelProto`` from a path, bytes or a ``ModelProto`` (checked by edgeai's loader)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    from edgeai.errors import ModelFormatError
    from edgeai.formats import open_model
    from edgeai.formats.onnx_format import load_onnx

    source = open_model(model)
    if source.format != "onnx":
        raise ModelFormatError(
            f"the optimization tools work on ONNX models; {source.display_name} is a "
            f"{source.format!r} model. Export it to ONNX first (edgeai export)."
        )
    proto = load_onnx(source)
    if source.path is not None and any(
        t.data_location == 1 for t in proto.graph.initializer
    ):  # pragma: no cover - external data is rare for edge models
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(proto, str(source.path.parent))
    return proto


def quantized_ops(proto: Any) -> list[str]:
    """Names (or op types) of the nodes that are already quantized."""
    return [n.name or n.op_type for n in proto.graph.node if n.op_type in QUANTIZED_OPS]


def save_atomic(proto: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``proto`` to ``path`` through a temporary file in the same folder, then rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def model_size(proto: Any) -> int:
    """Serialized size in bytes (what a ``.onnx`` file without external data weighs)."""
    return int(proto.ByteSize())


def _float_tensors(proto: Any) -> dict[str, int]:
    """Every float tensor produced by a node, with its ONNX element type (after shape inference)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    types: dict[str, int] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        types[vi.name] = vi.type.tensor_type.elem_type
    return types


class IntermediateRunner:
    """An ONNX Runtime session over a copy of ``proto`` whose graph outputs include ``tensors``.

    Graph optimizations are off so that the named tensors are not fused away.
    """

    def __init__(self, proto: Any, tensors: Sequence[str], types: Mapping[str, int] | None = None) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.ModelProto()
        model.CopyFrom(proto)
        existing = {o.name for o in model.graph.output}
        types = {**(_float_tensors(model) if tensors else {}), **(types or {})}
        for name in tensors:
            if name not in existing:
                model.graph.output.append(
                    onnx.helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None)
                )
                existing.add(name)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self._sess.get_outputs()]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self._sess.run(self.names, dict(feed))))


def float_tensor_types(proto: Any) -> dict[str, int]:
    """ONNX element type of every tensor whose type shape inference knows."""
    return _float_tensors(proto)


def run_with_intermediates(
    proto: Any,
    feeds: Iterable[Mapping[str, np.ndarray]],
    tensors: Sequence[str],
    types: Mapping[str, int] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Run ``proto`` on ONNX Runtime over ``feeds``, returning the graph outputs and ``tensors``.

    ``types`` gives the ONNX element type of tensors shape inference cannot type.
    """
    runner = IntermediateRunner(proto, tensors, types)
    return [runner.run(feed) for feed in feeds]


def produced_tensors(proto: Any) -> set[str]:
    """Names of every tensor a node of the graph produces."""
    return {o for n in proto.graph.node for o in n.output if o}


def quantized_counterpart(name: str, produced: set[str]) -> str | None:
    """The tensor of a quantized model that stands for float tensor ``name``.

    A QDQ model keeps the float tensor's name for the op's output and adds
    ``<name>_DequantizeLinear_Output``, the activation as the next op sees it
    (after rounding to int8); that one is preferred.
    """
    dq = f"{name}_DequantizeLinear_Output"
    if dq in produced:
        return dq
    return name if name in produced else None


def effective_output(proto: Any, node: Any) -> str:
    """The tensor a layer hands on: its output, or that of a lone Relu/Clip after it (QDQ fuses them)."""
    out = node.output[0]
    consumers = [n for n in proto.graph.node if out in n.input]
    if len(consumers) == 1 and consumers[0].op_type in ("Relu", "Clip"):
        return str(consumers[0].output[0])
    return str(out)
