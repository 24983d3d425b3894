"""ONNX Runtime backend: execution providers as devices, whole-model fast path.

Every execution provider ONNX Runtime knows is mapped to a device kind.
Devices come from what the installed runtime reports (``get_ep_devices()``
where it exists, else ``get_available_providers()``), never from the table
alone: the table only says what *kind* a reported provider is.

Placement comes from ONNX Runtime's own graph-assignment record
(``session.record_ep_graph_assignment_info``), so the report says what ran
where after ONNX Runtime's fusions, not what we hoped.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeai.backends import Support
from edgeai.errors import (
    InferenceError,
    ModelFormatError,
    UnsupportedOpError,
)
from edgeai.formats import ModelSource
from edgeai.hardware import Device, DeviceKind
from edgeai.hardware._cpu import cpu_name
from edgeai.placement.report import NodePlacement, PartitionInfo, PlacementReport

__all__ = ["BACKEND", "PROVIDER_KINDS", "OnnxRuntimeBackend"]

# provider -> (device kind, short id, vendor). Kinds follow what the provider
# drives: QNN's HTP and NNAPI's accelerators are NPUs; OpenVINO and QNN can also
# drive CPUs and GPUs, which get_ep_devices() reports per device where available.
PROVIDER_KINDS: dict[str, tuple[DeviceKind, str, str]] = {
    "CPUExecutionProvider": (DeviceKind.CPU, "cpu", ""),
    "XnnpackExecutionProvider": (DeviceKind.CPU, "xnnpack", "Google"),
    "DnnlExecutionProvider": (DeviceKind.CPU, "dnnl", "Intel"),
    "ACLExecutionProvider": (DeviceKind.CPU, "acl", "Arm"),
    "ArmNNExecutionProvider": (DeviceKind.CPU, "armnn", "Arm"),
    "CUDAExecutionProvider": (DeviceKind.GPU, "cuda", "NVIDIA"),
    "TensorrtExecutionProvider": (DeviceKind.GPU, "tensorrt", "NVIDIA"),
    "NvTensorRTRTXExecutionProvider": (DeviceKind.GPU, "tensorrt-rtx", "NVIDIA"),
    "ROCMExecutionProvider": (DeviceKind.GPU, "rocm", "AMD"),
    "MIGraphXExecutionProvider": (DeviceKind.GPU, "migraphx", "AMD"),
    "DmlExecutionProvider": (DeviceKind.GPU, "directml", "Microsoft"),
    "WebGpuExecutionProvider": (DeviceKind.GPU, "webgpu", ""),
    "JsExecutionProvider": (DeviceKind.GPU, "js", ""),
    "OpenVINOExecutionProvider": (DeviceKind.NPU, "openvino", "Intel"),
    "CoreMLExecutionProvider": (DeviceKind.NPU, "coreml", "Apple"),
    "NnapiExecutionProvider": (DeviceKind.NPU, "nnapi", "Android"),
    "QNNExecutionProvider": (DeviceKind.NPU, "qnn", "Qualcomm"),
    "SNPEExecutionProvider": (DeviceKind.DSP, "snpe", "Qualcomm"),
    "VitisAIExecutionProvider": (DeviceKind.NPU, "vitisai", "AMD"),
    "RknpuExecutionProvider": (DeviceKind.NPU, "rknpu", "Rockchip"),
    "VSINPUExecutionProvider": (DeviceKind.NPU, "vsinpu", "VeriSilicon"),
    "CANNExecutionProvider": (DeviceKind.NPU, "cann", "Huawei"),
    "WebNNExecutionProvider": (DeviceKind.NPU, "webnn", ""),
    "TvmExecutionProvider": (DeviceKind.CPU, "tvm", "Apache"),
}

# Providers that are not on-device compute (AzureExecutionProvider calls a cloud endpoint).
_NOT_DEVICES = {"AzureExecutionProvider"}

_HW_KIND = {"CPU": DeviceKind.CPU, "GPU": DeviceKind.GPU, "NPU": DeviceKind.NPU}


class OnnxRuntimeBackend:
    """The ``onnxruntime`` backend. See the module docstring."""

    name = "onnxruntime"
    formats = ("onnx",)

    def available(self) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def devices(self) -> list[Device]:
        import onnxruntime as ort

        available = [p for p in ort.get_available_providers() if p not in _NOT_DEVICES]
        hw: dict[str, list[Any]] = {}
        if hasattr(ort, "get_ep_devices"):
            try:
                for ep in ort.get_ep_devices():
                    hw.setdefault(ep.ep_name, []).append(ep)
            except Exception:  # an EP plugin that fails to enumerate must not hide the others
                hw = {}
        found: list[Device] = []
        for provider in available:
            kind, short, vendor = PROVIDER_KINDS.get(
                provider, (DeviceKind.CPU, provider.removesuffix("ExecutionProvider").lower(), "")
            )
            eps = hw.get(provider, [])
            if not eps:
                name = cpu_name() if kind is DeviceKind.CPU else provider
                found.append(
                    Device(
                        id=f"onnxruntime:{short}",
                        kind=kind,
                        name=name,
                        vendor=vendor or "unknown",
                        backend=self.name,
                        provider=provider,
                        properties={"onnxruntime": ort.__version__},
                    )
                )
                continue
            for i, ep in enumerate(eps):
                hw_type = str(ep.device.type).rsplit(".", 1)[-1]
                dkind = _HW_KIND.get(hw_type, kind)
                suffix = f":{i}" if len(eps) > 1 else ""
                name = cpu_name() if dkind is DeviceKind.CPU else f"{ep.device.vendor} {hw_type}"
                found.append(
                    Device(
                        id=f"onnxruntime:{short}{suffix}",
                        kind=dkind,
                        name=name,
                        vendor=ep.device.vendor or vendor or "unknown",
                        backend=self.name,
                        provider=provider,
                        properties={
                            "onnxruntime": ort.__version__,
                            "ep_vendor": ep.ep_vendor,
                            "vendor_id": ep.device.vendor_id,
                            "device_id": ep.device.device_id,
                            **{f"ep.{k}": v for k, v in dict(ep.ep_metadata).items()},
                        },
                    )
                )
        return found

    def supports(self, node: Any, device: Device) -> Support:
        # Per-node capability (probe sessions, provider op tables) is the device layer's job.
        if device.backend != self.name:
            return Support(False, f"{device.id} is not an ONNX Runtime device")
        return Support(True, "whole-model load; ONNX Runtime assigns nodes itself")

    def load(self, source: ModelSource, device: Device, options: dict[str, Any]) -> OrtExecutable:
        return OrtExecutable(source, device, options)


_NOT_IMPL = re.compile(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'")


_NOT_REGISTERED = re.compile(r"(?:([\w.]+):)?(\w+)\((-?\d+)\) is not a registered function/op")


def _wrap_load_error(exc: Exception, what: str) -> Exception:
    msg = str(exc)
    m = _NOT_REGISTERED.search(msg)
    if m:
        domain, op = m.group(1) or "", m.group(2)
        return UnsupportedOpError(
            f"ONNX Runtime does not know op {domain + ':' if domain else ''}{op} in {what} "
            "(no kernel or schema is registered for it). Try device='auto' or device='native' "
            "to run it on edgeai's native engine.",
            op_type=op,
            domain=domain,
        )
    m = _NOT_IMPL.search(msg)
    if m:
        op, ver, node = m.group(1), int(m.group(2)), m.group(3)
        return UnsupportedOpError(
            f"ONNX Runtime has no kernel for op {op} (opset {ver}) at node {node!r} of {what}. "
            "Try device='native' or lower the model's opset.",
            op_type=op,
            opset=ver,
            node=node,
        )
    return ModelFormatError(f"ONNX Runtime could not load {what}: {msg}")


class OrtExecutable:
    """A whole ONNX model compiled by ONNX Runtime for one provider."""

    validates_inputs = True
    """ONNX Runtime checks names, dtypes and shapes itself; Session re-checks only on failure."""

    def __init__(self, source: ModelSource, device: Device, options: dict[str, Any]) -> None:
        import onnxruntime as ort

        from edgeai.formats.onnx_format import io_specs, load_onnx

        proto = load_onnx(source)
        self.device = device
        self.inputs, self.outputs = io_specs(proto)
        so = ort.SessionOptions()
        so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        # ONNX Runtime warns about harmless things (unused initializers); edgeai raises
        # clear errors for what matters. options["log_level"]=2 brings warnings back.
        so.log_severity_level = int(options.get("log_level", 3))
        threads = options.get("threads")
        if threads:
            so.intra_op_num_threads = int(threads)
        level = options.get("optimization", "all")
        so.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        if options.get("profile"):
            so.enable_profiling = True
        for key, value in (options.get("ort_config") or {}).items():
            so.add_session_config_entry(str(key), str(value))
        providers: list[Any] = [(device.provider, dict(options.get("provider_options") or {}))]
        if device.provider != "CPUExecutionProvider":
            # ONNX Runtime places what the accelerator cannot run on the CPU; the
            # placement report shows exactly which nodes those were.
            providers.append("CPUExecutionProvider")
        what = source.display_name
        model_arg: Any = str(source.path) if source.path is not None else proto.SerializeToString()
        try:
            self._session = ort.InferenceSession(model_arg, so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise _wrap_load_error(exc, what) from exc
        self._what = what
        self._output_names = [o.name for o in self._session.get_outputs()]
        # The pybind session: calling it directly skips onnxruntime's Python-side
        # re-validation of names, which edgeai's Session does on failure anyway.
        self._raw = getattr(self._session, "_sess", None)
        self.run_fast = self._raw.run if self._raw is not None else self._session.run

    @property
    def output_names(self) -> list[str]:
        return self._output_names

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        try:
            return self._session.run(list(output_names) if output_names else None, feeds)
        except Exception as exc:
            raise InferenceError(f"ONNX Runtime failed running {self._what}: {exc}") from exc

    def placement(self) -> PlacementReport:
        info = self._session.get_provider_graph_assignment_info()
        nodes: list[NodePlacement] = []
        partitions: list[PartitionInfo] = []
        by_provider = {d.provider: d for d in _known_devices()}
        for index, sub in enumerate(info):
            dev = by_provider.get(sub.ep_name)
            dev_id = dev.id if dev is not None else f"onnxruntime:{sub.ep_name}"
            names = []
            for n in sub.get_nodes():
                reason = (
                    f"assigned by ONNX Runtime to {sub.ep_name}"
                    if sub.ep_name == self.device.provider
                    else f"{self.device.provider} did not claim it; ONNX Runtime fell back to {sub.ep_name}"
                )
                nodes.append(
                    NodePlacement(
                        name=n.name,
                        op_type=n.op_type,
                        domain=n.domain,
                        device=dev_id,
                        reason=reason,
                        partition=index,
                    )
                )
                names.append(n.name)
            kind = (
                dev.kind.value
                if dev is not None
                else PROVIDER_KINDS.get(sub.ep_name, (DeviceKind.CPU, "", ""))[0].value
            )
            partitions.append(
                PartitionInfo(
                    index=index,
                    device=dev_id,
                    device_kind=kind,
                    backend="onnxruntime",
                    provider=sub.ep_name,
                    nodes=names,
                )
            )
        return PlacementReport(
            model=self._what,
            nodes=nodes,
            partitions=partitions,
            source="ONNX Runtime graph-assignment record (after graph optimizations)",
        )

    def end_profiling(self) -> str:
        """Stop ONNX Runtime's profiler; returns the path of its JSON trace."""
        return str(self._session.end_profiling())

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]
        self._raw = None
        self.run_fast = _closed


def _closed(*_: Any) -> Any:
    from edgeai.errors import SessionClosedError

    raise SessionClosedError("the session is closed; create a new edgeai.Session")


def _known_devices() -> list[Device]:
    from edgeai.hardware import devices

    return devices()


BACKEND = OnnxRuntimeBackend()
