"""Capability: can this device run this node? With the reason when not.

Answers come from the runtime itself wherever it can say:

* ONNX Runtime's CPU provider: a probe session of the node alone (its op,
  opset, input dtypes and attributes), created with the provider; a kernel
  that does not exist fails the probe with ONNX Runtime's own message.
  Answers are cached per op signature for the process.
* The native engine: its op registry, resolved at the model's opset.
* A target profile (hardware that is not present): the profile's op table
  and precision limits (an int8-only device runs only quantized nodes).

Example:
    >>> import edgeai
    >>> from edgeai.graph.onnx_import import import_onnx
    >>> from edgeai.placement.capability import node_is_quantized
    >>> g = import_onnx(edgeai.demo.model_path())
    >>> node_is_quantized(g, g.nodes[0])
    False
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeai.backends import Support
from edgeai.formats.onnx_format import QUANTIZED_OPS
from edgeai.graph import Graph, Node
from edgeai.hardware import Device
from edgeai.hardware.targets import TargetProfile

__all__ = ["Capability", "node_is_quantized"]

_INT_OPS = QUANTIZED_OPS
_DATA_MOVEMENT = {
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "Pad",
    "MaxPool",
    "Resize",
    "DepthToSpace",
    "SpaceToDepth",
    "Identity",
    "Relu",
    "Clip",
}


def node_is_quantized(
    graph: Graph,
    node: Node,
    consumers: Mapping[str, list[Node]] | None = None,
    producers: Mapping[str, Node] | None = None,
) -> bool:
    """True when ``node`` computes on integer-quantized data.

    Quantized ops (QLinear*, *Integer, Q/DQ) are; so is a float op inside a QDQ
    group (every non-constant input from DequantizeLinear, every output into
    QuantizeLinear only), which is how ONNX Runtime and the NPU delegates run
    QDQ models; and data-movement ops on int8/uint8 tensors.
    """
    if node.op_type in _INT_OPS:
        return True
    if producers is None:
        producers = {o: n for n in graph.nodes for o in n.outputs}
    if consumers is None:
        consumers = graph.consumers()
    dyn_inputs = [i for i in node.inputs if i and i not in graph.initializers]
    if node.op_type in _DATA_MOVEMENT and dyn_inputs:
        dt = graph.value(dyn_inputs[0]).dtype
        if dt is not None and dt in (np.dtype(np.int8), np.dtype(np.uint8)):
            return True
    if not dyn_inputs:
        return False
    from_dq = all((p := producers.get(i)) is not None and p.op_type == "DequantizeLinear" for i in dyn_inputs)
    outs = [o for o in node.outputs if o]
    to_q = bool(outs) and all(
        consumers.get(o) and all(c.op_type == "QuantizeLinear" for c in consumers[o]) for o in outs
    )
    return from_dq and to_q


@functools.lru_cache(maxsize=4096)
def _ort_probe(signature: bytes, provider: str) -> tuple[bool, str]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(signature, so, providers=[provider])
    except Exception as exc:  # ONNX Runtime's own reason is the answer
        msg = str(exc).split("\n")[0]
        return False, msg[:300]
    return True, ""


_LITERT_CUSTOM: dict[str, Support] = {}


def _litert_custom_probe(op_type: str, graph: Graph, node_name: str) -> Support:
    """Load a one-node .tflite of the custom op in LiteRT, once per op type."""
    if op_type not in _LITERT_CUSTOM:
        from edgeai.backends.litert import _interpreter_module
        from edgeai.formats.tflite_writer import tflite_bytes

        module, _ = _interpreter_module()
        try:
            module.Interpreter(model_content=tflite_bytes(graph.extract([node_name]))).allocate_tensors()
            found = Support(True, f"LiteRT resolves the custom op {op_type}")
        except (ValueError, RuntimeError) as exc:
            found = Support(False, f"LiteRT cannot resolve the custom op {op_type} ({str(exc).strip()[:120]})")
        _LITERT_CUSTOM[op_type] = found
    return _LITERT_CUSTOM[op_type]


def _probe_model(graph: Graph, node: Node) -> bytes:
    """A one-node ONNX model of ``node`` with its input types (constants kept as initializers)."""
    import onnx
    from onnx import helper, numpy_helper

    def vi(name: str) -> Any:
        v = graph.value(name)
        if v.dtype is None or v.dtype == np.dtype(object) or v.kind != "tensor":
            return (
                helper.make_empty_tensor_value_info(name)
                if v.kind != "tensor"
                else (helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            )
        elem = helper.np_dtype_to_tensor_dtype(v.dtype)
        rank = None if v.shape is None else [None] * len(v.shape)
        return helper.make_tensor_value_info(name, elem, rank)

    inits = []
    inputs = []
    for name in dict.fromkeys(i for i in node.inputs if i):
        if name in graph.initializers:
            inits.append(numpy_helper.from_array(np.asarray(graph.initializers[name]), name))
        else:
            inputs.append(vi(name))
    proto_node = helper.make_node(node.op_type, list(node.inputs), list(node.outputs), domain=node.domain)
    for key, value in node.attrs.items():
        if isinstance(value, Graph):
            raise _NeedsWholeModel
        proto_node.attribute.append(helper.make_attribute(key, value))
    outputs = [vi(o) for o in node.outputs if o]
    g = helper.make_graph([proto_node], "probe", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid(d, v) for d, v in graph.opsets.items()]
    model = helper.make_model(g, opset_imports=opsets, ir_version=10)
    return model.SerializeToString()


class _NeedsWholeModel(Exception):
    pass


class Capability:
    """Answers ``supports(node, device)`` for one graph, caching every answer."""

    def __init__(self, graph: Graph, targets: Mapping[str, TargetProfile] | None = None) -> None:
        self.graph = graph
        self.targets = dict(targets or {})
        self._consumers = graph.consumers()
        self._producers = {o: n for n in graph.nodes for o in n.outputs if o}
        self._cache: dict[tuple[str, str], Support] = {}
        self._ort_cache: dict[tuple[Any, ...], Support] = {}

    def supports(self, node: Node, device: Device) -> Support:
        key = (node.name, device.id)
        if key not in self._cache:
            self._cache[key] = self._decide(node, device)
        return self._cache[key]

    def _decide(self, node: Node, device: Device) -> Support:
        target = device.properties.get("target")
        if target is not None:
            return self._target_supports(node, self.targets[target])
        if device.backend == "native":
            return self._native_supports(node, device)
        if device.backend == "onnxruntime":
            return self._ort_supports(node, device.provider)
        if device.backend == "litert":
            return self._litert_supports(node, device)
        return Support(False, f"{device.id}: per-node capability of {device.backend} is not known")

    def _native_supports(self, node: Node, device: Device) -> Support:
        from edgeai.backends import get_backend

        opset = self.graph.opsets.get(node.domain, 1 if node.domain else self.graph.opsets.get("", 1))
        try:
            backend = get_backend("native")
        except KeyError:
            return Support(False, "the native engine is not part of this build")
        native_device = device if device.backend == "native" else backend.devices()[0]
        return backend.supports(node, native_device, opset=opset)  # type: ignore[call-arg]

    def _litert_supports(self, node: Node, device: Device) -> Support:
        """TFLite builtins: yes. Custom ops: whether LiteRT resolves the op in a one-node model."""
        if node.domain == "tflite":
            return Support(True, f"{device.id} runs the TFLite builtin {node.op_type}")
        if node.domain != "tflite.custom":
            return Support(
                False, f"{device.id} runs only TFLite operators, not {node.domain or 'ai.onnx'}:{node.op_type}"
            )
        return _litert_custom_probe(node.op_type, self.graph, node.name)

    def _ort_supports(self, node: Node, provider: str) -> Support:
        # Nodes alike in op, opset, input types and attributes get one probe.
        key = (
            provider,
            node.domain,
            node.op_type,
            self.graph.opsets.get(node.domain),
            tuple(self._input_sig(i) for i in node.inputs),
            repr(sorted(node.attrs.items())),
        )
        if key not in self._ort_cache:
            self._ort_cache[key] = self._ort_probe_node(node, provider)
        return self._ort_cache[key]

    def _input_sig(self, name: str) -> tuple[Any, ...]:
        if not name:
            return ("",)
        v = self.graph.value(name)
        return (str(v.dtype), None if v.shape is None else len(v.shape), name in self.graph.initializers)

    def _ort_probe_node(self, node: Node, provider: str) -> Support:
        try:
            signature = _probe_model(self.graph, node)
        except _NeedsWholeModel:
            return Support(True, f"control flow: {provider} takes it with its subgraphs")
        except Exception as exc:  # an attribute onnx cannot re-encode: let ORT decide on the whole
            return Support(True, f"not probed ({exc}); assumed supported")
        ok, why = _ort_probe(signature, provider)
        if ok:
            return Support(True, f"ONNX Runtime {provider} has a kernel")
        return Support(False, f"ONNX Runtime {provider}: {why}")

    def _target_supports(self, node: Node, profile: TargetProfile) -> Support:
        if not profile.runs_op(node.op_type) or node.domain not in ("", "com.microsoft"):
            return Support(
                False,
                f"{node.op_type} is not in {profile.title}'s op table ({profile.sources[0].split(' ')[0]})",
            )
        if profile.quantized_only and not node_is_quantized(self.graph, node, self._consumers, self._producers):
            return Support(
                False,
                f"{profile.title} runs only quantized ({'/'.join(profile.precisions)}) ops and this node "
                "computes in float: quantize the model (edgeai quantize) to run it there",
            )
        return Support(True, f"{node.op_type} is in {profile.title}'s op table")
