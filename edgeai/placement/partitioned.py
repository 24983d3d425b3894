"""Heterogeneous execution: run a plan's partitions in order, each on its own backend.

Each partition becomes an ONNX sub-model (``onnx.utils.Extractor`` cuts it
from the original model between the partition's inputs and outputs) and is
compiled by its device's backend: ONNX Runtime for ONNX Runtime devices and
emulated targets, the native engine for ``native`` devices. Tensors are
handed from partition to partition as the same numpy arrays (no copies), and
dropped once no later partition needs them.

Example:
    >>> import edgeai, numpy as np
    >>> sess = edgeai.Session(edgeai.demo.model_path(), pin={"Relu": "native"})
    >>> len(sess.placement.partitions) > 1
    True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeai.backends import get_backend
from edgeai.formats import ModelSource
from edgeai.placement import report_from_plan
from edgeai.placement.planner import Plan
from edgeai.placement.report import PlacementReport
from edgeai.specs import TensorSpec

__all__ = ["PartitionedExecutable", "TFLitePartitionedExecutable", "load_tflite_planned"]


def _fill_missing_types(proto: Any) -> None:
    """Give every node output an element type, where onnx's shape inference left it out.

    ONNX shape inference knows no com.microsoft ops (QLinearAdd, QGemm, ...), so
    their outputs lack types that a partition boundary needs. Quantized ops
    output the type of their quantized inputs; others the type of their first input.
    """
    from onnx import TensorProto, helper

    known: dict[str, int] = {}
    for vi in [*proto.graph.input, *proto.graph.value_info, *proto.graph.output]:
        if vi.type.tensor_type.elem_type:
            known[vi.name] = vi.type.tensor_type.elem_type
    for init in proto.graph.initializer:
        known[init.name] = init.data_type
    quantized = {TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16}
    for node in proto.graph.node:
        for out in node.output:
            if not out or out in known:
                continue
            types = [known[i] for i in node.input if i in known]
            if node.op_type.startswith("QLinear") or node.op_type == "QGemm":
                q = [t for t in types if t in quantized]
                elem = q[-1] if q else (types[0] if types else 0)
            else:
                elem = types[0] if types else 0
            if elem:
                known[out] = elem
                proto.graph.value_info.append(helper.make_tensor_value_info(out, elem, None))


def _extract(proto: Any, inputs: Sequence[str], outputs: Sequence[str]) -> Any:
    from onnx.utils import Extractor

    extractor = Extractor(proto)
    sub = extractor.extract_model(list(inputs), list(outputs))
    # keep the model's opsets and IR version: the extractor copies them, but be explicit
    del sub.opset_import[:]
    sub.opset_import.extend(proto.opset_import)
    sub.ir_version = proto.ir_version
    # not onnx.checker: it wants shapes on boundary tensors that contrib ops leave
    # unknown; each partition's runtime validates its sub-model when compiling it
    return sub


class PartitionedExecutable:
    """A model split over several devices; the ``Executable`` Session runs."""

    validates_inputs = False

    def __init__(
        self,
        source: ModelSource,
        proto: Any,
        plan: Plan,
        options: dict[str, Any],
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        device: Any,
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.device = device
        self.output_names = [o.name for o in outputs]
        self._plan = plan
        self._what = source.display_name
        self._profile = bool(options.get("profile"))
        self.partition_times: list[list[float]] = [[] for _ in plan.partitions]
        """Seconds per run of each partition, recorded when ``profile=True``."""
        # shape inference once, so every extracted piece has typed boundaries
        import onnx

        inferred = onnx.shape_inference.infer_shapes(proto)
        _fill_missing_types(inferred)
        last_use: dict[str, int] = {}
        for p in plan.partitions:
            for v in p.inputs:
                last_use[v] = p.index
        keep = set(self.output_names)
        self._steps: list[tuple[Any, list[str], list[str], list[str]]] = []
        for p in plan.partitions:
            sub = _extract(inferred, p.inputs, p.outputs)
            sub_source = ModelSource(format="onnx", proto=sub)
            sub_source.metadata["partition"] = p.index
            backend = get_backend(p.device.backend)
            sub_options = {**options, "profile": False}
            if p.device.backend == "onnxruntime":
                # between partitions the next runtime needs the cores: ORT's pool must not spin
                cfg = dict(options.get("ort_config") or {})
                cfg.setdefault("session.intra_op.allow_spinning", "0")
                sub_options["ort_config"] = cfg
            exe = backend.load(sub_source, p.device, sub_options)
            free = [v for v, last in last_use.items() if last == p.index and v not in keep]
            self._steps.append((exe, list(p.inputs), list(p.outputs), free))

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        env: dict[str, Any] = dict(feeds)
        clock = time.perf_counter
        for k, (exe, ins, outs, free) in enumerate(self._steps):
            t0 = clock() if self._profile else 0.0
            results = exe.run({n: env[n] for n in ins}, outs)
            if self._profile:
                self.partition_times[k].append(clock() - t0)
            env.update(zip(outs, results))
            for v in free:
                env.pop(v, None)
        return [env[n] for n in (output_names or self.output_names)]

    def placement(self) -> PlacementReport:
        report = report_from_plan(self._plan, self._what, source="edgeai planner (heterogeneous execution)")
        for info, times in zip(report.partitions, self.partition_times):
            if times:
                info.time_ms = float(np.mean(times)) * 1e3
        return report

    def close(self) -> None:
        for exe, *_ in self._steps:
            exe.close()
        self._steps = []


def _tflite_spec(graph: Any, name: str) -> TensorSpec:
    v = graph.value(name)
    shape = None if v.shape is None else tuple(d if isinstance(d, int) else None for d in v.shape)
    return TensorSpec(name, v.dtype if v.dtype is not None else np.dtype(object), shape, v.quant)


def load_tflite_planned(source: ModelSource, device: Any, options: dict[str, Any]) -> tuple[Any, Any]:
    """Split a ``.tflite`` model that LiteRT cannot load whole over ``device`` (LiteRT) and the native engine.

    The model is imported into the IR (:func:`edgeai.formats.tflite_format.import_tflite`);
    LiteRT takes every node it resolves (builtins), the native engine the custom ops it
    implements. Raises :class:`~edgeai.errors.UnsupportedOpError` naming every custom op
    that neither can run.
    """
    from edgeai.errors import UnsupportedOpError
    from edgeai.formats.tflite_format import CUSTOM_DOMAIN, import_tflite
    from edgeai.placement.capability import Capability
    from edgeai.placement.planner import plan_graph

    graph = import_tflite(source)
    native = get_backend("native")
    native_device = native.devices()[0]
    capability = Capability(graph)
    missing = [
        n
        for n in graph.nodes
        if n.domain == CUSTOM_DOMAIN
        and not capability.supports(n, device)
        and not capability.supports(n, native_device)
    ]
    if missing:
        names = sorted({n.op_type for n in missing})
        raise UnsupportedOpError(
            f"{source.display_name} uses the custom op(s) {', '.join(names)} (node(s) "
            f"{', '.join(n.name for n in missing)}), which neither LiteRT nor edgeai's native engine "
            "implements; register one with edgeai.ops._base.register(op, domain='tflite.custom')",
            op_type=names[0],
            domain=CUSTOM_DOMAIN,
            node=missing[0].name,
        )
    # No cost check: the planner's cost model has no MAC counts for TFLite ops, so its
    # island check would pull every node onto the device that takes the custom op.
    plan = plan_graph(graph, [device, native_device], capability=capability, cost_check=False)
    exe = TFLitePartitionedExecutable(source, graph, plan, options, device)
    return device, exe


class TFLitePartitionedExecutable:
    """A ``.tflite`` model split over LiteRT and the native engine; the ``Executable`` Session runs.

    LiteRT partitions run as ``.tflite`` sub-models written by
    :func:`edgeai.formats.tflite_writer.tflite_bytes`; native partitions are IR
    subgraphs compiled by the native backend.
    """

    validates_inputs = False

    def __init__(self, source: ModelSource, graph: Any, plan: Plan, options: dict[str, Any], device: Any) -> None:
        from edgeai.backends.litert import LiteRTExecutable
        from edgeai.formats.tflite_writer import tflite_bytes

        self.device = device
        raw_inputs = [_tflite_spec(graph, n) for n in graph.inputs]
        raw_outputs = [_tflite_spec(graph, n) for n in graph.outputs]
        # quantize_io: the whole model's quantized inputs take float feeds and its quantized
        # outputs come back dequantized, with TFLite's formulas; the partitions stay integer
        self._quantize_io = bool(options.get("quantize_io", False))
        options = {k: v for k, v in options.items() if k != "quantize_io"}
        self._in_quant = {s.name: s.quant for s in raw_inputs if self._quantize_io and s.quant is not None}
        self._out_quant = {s.name: s.quant for s in raw_outputs if self._quantize_io and s.quant is not None}
        self.inputs = [LiteRTExecutable._float_spec(s) if s.name in self._in_quant else s for s in raw_inputs]
        self.outputs = [LiteRTExecutable._float_spec(s) if s.name in self._out_quant else s for s in raw_outputs]
        self.output_names = list(graph.outputs)
        self._plan = plan
        self._what = source.display_name
        last_use: dict[str, int] = {}
        for p in plan.partitions:
            for v in p.inputs:
                last_use[v] = p.index
        keep = set(self.output_names)
        self._steps: list[tuple[Any, list[str], list[str], list[str]]] = []
        for p in plan.partitions:
            sub = graph.extract([n.name for n in p.nodes], name=f"{graph.name}_part{p.index}")
            outs = list(p.outputs)
            if p.device.backend == "native":
                exe: Any = get_backend("native").compile(sub, p.device, {**options, "graph_passes": ()})
            else:
                part_source = ModelSource(format="tflite", data=tflite_bytes(sub))
                part_source.metadata["partition"] = p.index
                exe = LiteRTExecutable(part_source, p.device, options)
            free = [v for v, last in last_use.items() if last == p.index and v not in keep]
            self._steps.append((exe, list(p.inputs), outs, free))

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        env: dict[str, Any] = dict(feeds)
        if self._in_quant:
            from edgeai.backends.litert import quantize_tflite

            for name, q in self._in_quant.items():
                value = np.asarray(env[name])
                if value.dtype.kind == "f":
                    env[name] = quantize_tflite(value, q)
        for exe, ins, outs, free in self._steps:
            env.update(zip(outs, exe.run({n: env[n] for n in ins}, outs)))
            for v in free:
                env.pop(v, None)
        wanted = output_names or self.output_names
        if not self._out_quant:
            return [env[n] for n in wanted]
        from edgeai.backends.litert import dequantize_tflite

        return [dequantize_tflite(env[n], self._out_quant[n]) if n in self._out_quant else env[n] for n in wanted]

    def placement(self) -> PlacementReport:
        return report_from_plan(self._plan, self._what, source="edgeai planner (LiteRT + native engine)")

    def close(self) -> None:
        for exe, *_ in self._steps:
            exe.close()
        self._steps = []
