"""Core ML backend: ``.mlpackage`` and ``.mlmodel`` models.

On macOS, models run through coremltools' ``MLModel.predict``, with
``compute_units`` taken from the device: ``coreml:all`` (``ALL``),
``coreml:ane`` (``CPU_AND_NE``), ``coreml:gpu`` (``CPU_AND_GPU``),
``coreml:cpu`` (``CPU_ONLY``); the placement report comes from Core ML's
compute plan (``MLComputePlan``) where the OS provides it.

Everywhere else coremltools can read models but not predict, so the one
device is ``coreml:native``: the model's ML program (or NeuralNetwork spec)
is imported into the graph IR by :mod:`edgeai.formats.coreml_mil` and run on
edgeai's native engine. Ops the importer does not cover raise
:class:`~edgeai.errors.UnsupportedOpError` at load, naming them.

Example:
    >>> from edgeai.backends import get_backend
    >>> get_backend("coreml").formats
    ('coreml',)
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.backends import Support
from edgeai.errors import InferenceError, ModelFormatError, SessionClosedError
from edgeai.formats import ModelSource
from edgeai.hardware import Device, DeviceKind
from edgeai.placement.report import NodePlacement, PartitionInfo, PlacementReport
from edgeai.specs import TensorSpec

__all__ = ["BACKEND", "COMPUTE_UNITS", "NATIVE_ID", "CoreMLBackend"]

# device id -> (kind, coremltools ComputeUnit name). "all" lets Core ML choose per op,
# preferring the Neural Engine, so it ranks as an NPU.
COMPUTE_UNITS: dict[str, tuple[DeviceKind, str]] = {
    "coreml:all": (DeviceKind.NPU, "ALL"),
    "coreml:ane": (DeviceKind.NPU, "CPU_AND_NE"),
    "coreml:gpu": (DeviceKind.GPU, "CPU_AND_GPU"),
    "coreml:cpu": (DeviceKind.CPU, "CPU_ONLY"),
}

NATIVE_ID = "coreml:native"
"""The device off Apple hardware: the imported model on edgeai's native engine."""


def can_predict() -> bool:
    """True where coremltools can run models: macOS with its compiled framework binding."""
    if sys.platform != "darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError:
        return False
    return True


class CoreMLBackend:
    """The ``coreml`` backend. See the module docstring."""

    name = "coreml"
    formats = ("coreml",)

    def available(self) -> bool:
        return importlib.util.find_spec("coremltools") is not None

    def devices(self) -> list[Device]:
        from edgeai.hardware._cpu import cpu_name

        version = _version()
        if can_predict():
            import platform

            chip = platform.processor() or "Apple silicon"
            return [
                Device(
                    id=dev_id,
                    kind=kind,
                    name=f"{chip} ({units})",
                    vendor="Apple",
                    backend=self.name,
                    provider=units,
                    properties={"coremltools": version, "compute_units": units},
                )
                for dev_id, (kind, units) in COMPUTE_UNITS.items()
            ]
        return [
            Device(
                id=NATIVE_ID,
                kind=DeviceKind.CPU,
                name=cpu_name(),
                vendor="unknown",
                backend=self.name,
                provider="edgeai-native",
                properties={
                    "coremltools": version,
                    "note": "Core ML predicts only on macOS; the model is imported and run by edgeai's native engine",
                },
            )
        ]

    def supports(self, node: Any, device: Device) -> Support:
        if device.backend != self.name:
            return Support(False, f"{device.id} is not a Core ML device")
        if device.id == NATIVE_ID:
            from edgeai.formats.coreml_mil import MIL_OPS

            op = getattr(node, "op_type", str(node))
            return Support(op in MIL_OPS, f"MIL op {op} {'is' if op in MIL_OPS else 'is not'} imported")
        return Support(True, "whole-model load; Core ML assigns ops to compute units itself")

    def load(self, source: ModelSource, device: Device, options: dict[str, Any]) -> Any:
        path = _model_path(source)
        try:
            if device.id == NATIVE_ID:
                return CoreMLNativeExecutable(path, source.display_name, device, options)
            return CoreMLExecutable(path, source.display_name, device, options)
        finally:
            if source.path is None:  # the model was read whole at load: drop the temporary copy
                path.unlink(missing_ok=True)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("coremltools")
    except Exception:
        return "unknown"


def _model_path(source: ModelSource) -> Path:
    if source.path is not None:
        return source.path
    # an .mlmodel given as bytes (an .mlpackage is a folder and always has a path)
    with tempfile.NamedTemporaryFile(suffix=".mlmodel", delete=False) as tmp:
        tmp.write(source.read_bytes())
    return Path(tmp.name)


def _spec(name: str, dtype: np.dtype[Any] | None, shape: Any) -> TensorSpec:
    return TensorSpec(name, dtype if dtype is not None else np.dtype("float32"), shape)


class CoreMLNativeExecutable:
    """A Core ML model imported into the graph IR and compiled for the native engine."""

    validates_inputs = False

    def __init__(self, path: Path, what: str, device: Device, options: dict[str, Any]) -> None:
        from edgeai.formats.coreml_mil import import_coreml
        from edgeai.graph.executor import CompiledGraph

        self.device = device
        self._what = what
        self.graph = import_coreml(path, what)
        self._compiled: CompiledGraph | None = CompiledGraph(self.graph, options=options, what=what)
        self.inputs = [_spec(n, self.graph.value(n).dtype, self.graph.value(n).shape) for n in self.graph.inputs]
        outs = []
        for n in self.graph.outputs:
            v = self.graph.value(n)
            outs.append(_spec(n, v.dtype, v.shape))
        self.outputs = outs
        self.output_names = list(self.graph.outputs)

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        compiled = self._compiled
        if compiled is None:
            raise SessionClosedError("the session is closed; create a new edgeai.Session")
        return list(compiled.run(feeds, output_names))

    def placement(self) -> PlacementReport:
        origin = dict(self.graph.metadata.get("origin", {}))
        nodes = [
            NodePlacement(
                name=n.name,
                op_type=n.op_type,
                domain=n.domain,
                device=self.device.id,
                reason=f"imported from Core ML {origin.get(n.name, 'model')}; run by edgeai's native engine "
                "(Core ML predicts only on macOS)",
            )
            for n in self.graph.nodes
        ]
        part = PartitionInfo(
            index=0,
            device=self.device.id,
            device_kind=self.device.kind.value,
            backend="coreml",
            provider="edgeai-native",
            nodes=[n.name for n in self.graph.nodes],
            emulated=True,
        )
        return PlacementReport(
            model=self._what,
            nodes=nodes,
            partitions=[part],
            source="Core ML model imported into edgeai's graph IR (no Core ML runtime on this OS)",
        )

    def close(self) -> None:
        self._compiled = None


class CoreMLExecutable:
    """A Core ML model loaded by Core ML itself (macOS)."""

    validates_inputs = False

    def __init__(self, path: Path, what: str, device: Device, options: dict[str, Any]) -> None:
        import coremltools as ct

        self.device = device
        self._what = what
        self._path = path
        self._units = getattr(ct.ComputeUnit, options.get("compute_units") or device.provider)
        try:
            self._model: Any = ct.models.MLModel(str(path), compute_units=self._units)
        except Exception as exc:
            raise ModelFormatError(f"Core ML could not load {what}: {exc}") from exc
        desc = self._model.get_spec().description
        self.inputs = [_feature_spec(f) for f in desc.input]
        self.outputs = [_feature_spec(f) for f in desc.output]
        self.output_names = [s.name for s in self.outputs]

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        if self._model is None:
            raise SessionClosedError("the session is closed; create a new edgeai.Session")
        try:
            result = self._model.predict(feeds)
        except Exception as exc:
            raise InferenceError(f"Core ML failed running {self._what}: {exc}") from exc
        return [np.asarray(result[n]) for n in (output_names or self.output_names)]

    def placement(self) -> PlacementReport:
        notes: list[str] = []
        nodes: list[NodePlacement] = []
        try:
            from coremltools.models.compute_plan import MLComputePlan

            plan = MLComputePlan.load_from_path(self._model.get_compiled_model_path(), self._units)
            program = plan.model_structure.program
            if program is not None:
                for fname, func in program.functions.items():
                    for i, op in enumerate(func.block.operations):
                        usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
                        if usage is None:
                            continue
                        dev = _device_id(usage.preferred_compute_device)
                        out = op.outputs[0].name if op.outputs else f"{fname}_{i}"
                        nodes.append(
                            NodePlacement(
                                name=out,
                                op_type=op.operator_name,
                                domain="coreml.mil",
                                device=dev,
                                reason=f"Core ML compute plan ({self.device.provider})",
                            )
                        )
        except Exception as exc:  # older macOS has no MLComputePlan
            notes.append(f"Core ML's compute plan is not available here: {exc}")
        return PlacementReport(
            model=self._what,
            nodes=nodes,
            partitions=[
                PartitionInfo(
                    index=0,
                    device=self.device.id,
                    device_kind=self.device.kind.value,
                    backend="coreml",
                    provider=self.device.provider,
                    nodes=[n.name for n in nodes],
                )
            ],
            source="Core ML compute plan (MLComputePlan)",
            notes=notes,
        )

    def close(self) -> None:
        self._model = None


def _device_id(compute_device: Any) -> str:  # pragma: no cover - needs macOS
    kind = type(compute_device).__name__
    return {
        "MLNeuralEngineComputeDevice": "coreml:ane",
        "MLGPUComputeDevice": "coreml:gpu",
        "MLCPUComputeDevice": "coreml:cpu",
    }.get(kind, f"coreml:{kind}")


def _feature_spec(feature: Any) -> TensorSpec:
    arr = feature.type.multiArrayType
    dtype = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32"}.get(int(arr.dataType), "float32")
    return TensorSpec(feature.name, np.dtype(dtype), tuple(int(d) for d in arr.shape) or None)


BACKEND = CoreMLBackend()
