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

__all__ = ["PartitionedExecutable"]


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
            exe = backend.load(sub_source, p.device, {**options, "profile": False})
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
