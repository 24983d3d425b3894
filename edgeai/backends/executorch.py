"""ExecuTorch backend: ``.pte`` programs through ``executorch.runtime.Runtime``.

Devices are the delegate backends the installed runtime registers (and that
report themselves available), mapped to a device kind, plus the portable CPU
kernels. An ExecuTorch program is lowered for its backends at export, so the
device a session names cannot move work: it is checked against the program
(asking for an NPU whose backend the program does not call raises) and the
placement report says what the program itself does, instruction by
instruction: which aten kernels run on the portable CPU kernels and which
delegate blobs run on which backend.

Before the runtime sees the program, its operator and delegate tables are read
from the flatbuffer and checked against the runtime's registries, so a program
that needs a kernel or backend this build lacks fails at load, naming it, not
at first run.

Example:
    >>> from edgeai.backends import get_backend
    >>> be = get_backend("executorch")
    >>> be.formats
    ('pte',)
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeai.backends import Support
from edgeai.errors import (
    DeviceNotAvailableError,
    InferenceError,
    InputNameError,
    MissingDependencyError,
    ModelFormatError,
    PlacementError,
    UnsupportedOpError,
)
from edgeai.formats import ModelSource
from edgeai.hardware import Device, DeviceKind
from edgeai.placement.report import NodePlacement, PartitionInfo, PlacementReport
from edgeai.specs import TensorSpec

__all__ = [
    "BACKEND",
    "DELEGATE_KINDS",
    "ExecuTorchBackend",
    "ExecuTorchExecutable",
    "ProgramInfo",
    "read_program",
]

# ExecuTorch delegate id -> (device kind, short id, vendor). Only the kind comes
# from this table; whether a backend is present comes from the runtime registry.
DELEGATE_KINDS: dict[str, tuple[DeviceKind, str, str]] = {
    "XnnpackBackend": (DeviceKind.CPU, "xnnpack", "Google"),
    "QnnBackend": (DeviceKind.NPU, "qnn", "Qualcomm"),
    "OpenvinoBackend": (DeviceKind.NPU, "openvino", "Intel"),
    "CoreMLBackend": (DeviceKind.NPU, "coreml", "Apple"),
    "MPSBackend": (DeviceKind.GPU, "mps", "Apple"),
    "VulkanBackend": (DeviceKind.GPU, "vulkan", ""),
    "VgfBackend": (DeviceKind.NPU, "vgf", "Arm"),
    "EthosUBackend": (DeviceKind.NPU, "ethos-u", "Arm"),
    "NeuropilotBackend": (DeviceKind.NPU, "neuropilot", "MediaTek"),
    "EnnBackend": (DeviceKind.NPU, "enn", "Samsung"),
    "NeutronBackend": (DeviceKind.NPU, "neutron", "NXP"),
    "CudaBackend": (DeviceKind.GPU, "cuda", "NVIDIA"),
    "MetalBackend": (DeviceKind.GPU, "metal", "Apple"),
    "WebGPUBackend": (DeviceKind.GPU, "webgpu", ""),
    "CadenceBackend": (DeviceKind.DSP, "cadence", "Cadence"),
}

PORTABLE_ID = "executorch:portable"
"""The device id of ExecuTorch's portable (and optimized) CPU kernels."""

# ExecuTorch ScalarType codes (runtime/core/portable_type/scalar_type.h) -> numpy.
_SCALAR_TYPES: dict[int, str] = {
    0: "uint8",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "int64",
    5: "float16",
    6: "float32",
    7: "float64",
    11: "bool",
    27: "uint16",
    28: "uint32",
    29: "uint64",
}


def _runtime() -> Any:
    try:
        from executorch.runtime import Runtime
    except ImportError as exc:
        raise MissingDependencyError(
            f'ExecuTorch is not installed ({exc}): pip install "edgeai[executorch]" '
            "(executorch==1.5.1 torchao==0.18.0 with torch 2.13.0)"
        ) from exc
    return Runtime.get()


def _backend_usable(name: str) -> bool:
    """Whether a registered delegate can run here, beyond what its registry flag says.

    The prebuilt wheel links QnnBackend on every x86 host and it reports itself
    available there, but it only runs with Qualcomm's HTP libraries present.
    """
    if name == "QnnBackend":
        for lib in ("libQnnHtp.so", "QnnHtp.dll"):
            try:
                ctypes.CDLL(lib)
                return True
            except OSError:
                continue
        return False
    if name in ("CoreMLBackend", "MPSBackend", "MetalBackend"):
        return sys.platform == "darwin"
    return True


_backend_cache: dict[str, bool] | None = None


def _backend_table(rt: Any) -> dict[str, bool]:
    """Registered delegate backend -> usable here; asked once per process (the runtime
    logs to stderr each time a backend without its driver is probed)."""
    global _backend_cache
    if _backend_cache is None:
        registry = rt.backend_registry
        _backend_cache = {
            name: bool(registry.is_available(name)) and _backend_usable(name)
            for name in registry.registered_backend_names
        }
    return dict(_backend_cache)


@dataclass
class InstructionInfo:
    """One instruction of a method's chain: an aten kernel or a delegate call."""

    kind: str
    """``"kernel"`` or ``"delegate"``."""
    name: str
    """``aten::conv.out`` for a kernel, the delegate id for a delegate call."""
    delegate_index: int | None = None


@dataclass
class MethodInfo:
    """What the flatbuffer says about one method (execution plan)."""

    name: str
    operators: list[str]
    delegates: list[str]
    instructions: list[InstructionInfo] = field(default_factory=list)


@dataclass
class ProgramInfo:
    """The operator, delegate and instruction tables of a ``.pte`` program."""

    methods: dict[str, MethodInfo]
    payloads: dict[tuple[str, int], bytes] = field(default_factory=dict)
    """(method, delegate index) -> the delegate's blob, for backends whose blob edgeai can read."""


def read_program(data: bytes) -> ProgramInfo:
    """Read the method tables of a ``.pte`` flatbuffer without running it.

    Raises :class:`~edgeai.errors.ModelFormatError` when the bytes are not a
    valid ExecuTorch program.
    """
    try:
        from executorch.exir._serialize._program import deserialize_pte_binary
        from executorch.exir.schema import DelegateCall, KernelCall
    except ImportError as exc:
        raise MissingDependencyError(f'ExecuTorch is not installed ({exc}): pip install "edgeai[executorch]"') from exc
    try:
        program = deserialize_pte_binary(data).program
    except Exception as exc:  # flatbuffers raises plain struct/index errors on bad bytes
        raise ModelFormatError(f"not a valid ExecuTorch program: {exc}") from exc
    methods: dict[str, MethodInfo] = {}
    for plan in program.execution_plan:
        ops = [f"{o.name}.{o.overload}" if o.overload else o.name for o in plan.operators]
        delegates = [d.id for d in plan.delegates]
        info = MethodInfo(plan.name, ops, delegates)
        for chain in plan.chains:
            for ins in chain.instructions:
                args = ins.instr_args
                if isinstance(args, KernelCall):
                    info.instructions.append(InstructionInfo("kernel", ops[args.op_index]))
                elif isinstance(args, DelegateCall):
                    info.instructions.append(
                        InstructionInfo("delegate", delegates[args.delegate_index], args.delegate_index)
                    )
        methods[plan.name] = info
    payloads: dict[tuple[str, int], bytes] = {}
    for plan in program.execution_plan:
        for i, d in enumerate(plan.delegates):
            ref = d.processed
            if d.id == "XnnpackBackend" and int(ref.location) == 0:  # inline (restored from segments)
                payloads[(plan.name, i)] = bytes(program.backend_delegate_data[ref.index].data)
    return ProgramInfo(methods, payloads)


def xnnpack_nodes(payload: bytes) -> list[str] | None:
    """The XNNPACK node types inside an XNNPACK delegate blob, in order; None when unreadable.

    The blob is an ``XH00`` header and an ``XNNGraph`` flatbuffer; it is decoded
    with the flatc and the runtime schema that ship with ExecuTorch.
    """
    import json
    import re
    import struct
    import subprocess
    import tempfile
    from pathlib import Path

    try:
        import executorch.backends.xnnpack.serialization as xnn_serialization
        from executorch.exir._serialize._flatbuffer import _get_flatc_path

        if payload[4:8] != b"XH00":
            return None
        _, fb_offset, fb_size = struct.unpack_from("<HII", payload, 8)
        schema = Path(next(iter(xnn_serialization.__path__))) / "runtime_schema.fbs"
        with tempfile.TemporaryDirectory() as tmp:
            blob = Path(tmp) / "graph.bin"
            blob.write_bytes(payload[fb_offset : fb_offset + fb_size])
            subprocess.run(
                [_get_flatc_path(), "--json", "--strict-json", "--raw-binary", "-o", tmp, str(schema), "--", str(blob)],
                check=True,
                capture_output=True,
                timeout=60,
            )
            text = (Path(tmp) / "graph.json").read_text()
        # flatc writes inf/nan bare, which JSON does not allow; only the node types are read
        text = re.sub(r"(?<=[:\[,\s])-?(inf|nan)\b", "0", text)
        graph = json.loads(text)
        return [str(n.get("xnode_union_type", "?")) for n in graph.get("xnodes", [])]
    except Exception:  # a newer blob layout or no flatc: the report falls back to one node per blob
        return None


class ExecuTorchBackend:
    """The ``executorch`` backend. See the module docstring."""

    name = "executorch"
    formats = ("pte",)

    def available(self) -> bool:
        return (
            importlib.util.find_spec("executorch") is not None
            and importlib.util.find_spec("executorch.runtime") is not None
        )

    def devices(self) -> list[Device]:
        from edgeai.hardware._cpu import cpu_name

        rt = _runtime()
        version = _version()
        found: list[Device] = []
        for backend_name, usable in _backend_table(rt).items():
            if not usable:
                continue
            kind, short, vendor = DELEGATE_KINDS.get(
                backend_name, (DeviceKind.CPU, backend_name.removesuffix("Backend").lower(), "")
            )
            found.append(
                Device(
                    id=f"executorch:{short}",
                    kind=kind,
                    name=cpu_name() if kind is DeviceKind.CPU else backend_name,
                    vendor=vendor or "unknown",
                    backend=self.name,
                    provider=backend_name,
                    properties={"executorch": version},
                )
            )
        found.append(
            Device(
                id=PORTABLE_ID,
                kind=DeviceKind.CPU,
                name=cpu_name(),
                vendor="unknown",
                backend=self.name,
                provider="portable",
                properties={"executorch": version, "operators": len(rt.operator_registry.operator_names)},
            )
        )
        return found

    def supports(self, node: Any, device: Device) -> Support:
        if device.backend != self.name:
            return Support(False, f"{device.id} is not an ExecuTorch device")
        return Support(True, "whole-program load; the program's delegates were chosen at export")

    def load(self, source: ModelSource, device: Device, options: dict[str, Any]) -> ExecuTorchExecutable:
        return ExecuTorchExecutable(source, device, options)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("executorch")
    except Exception:
        return "unknown"


def _spec(name: str, meta: Any) -> TensorSpec:
    code = int(meta.dtype())
    dtype = np.dtype(_SCALAR_TYPES.get(code, "object"))
    return TensorSpec(name, dtype, tuple(int(s) for s in meta.sizes()))


class ExecuTorchExecutable:
    """One method of an ExecuTorch program, loaded and ready to run.

    Options: ``method`` (default ``"forward"``).
    """

    validates_inputs = True
    """The runtime checks input count, dtype and static shapes itself."""

    def __init__(self, source: ModelSource, device: Device, options: dict[str, Any]) -> None:
        self.device = device
        self._what = source.display_name
        data = source.read_bytes()
        info = read_program(data)
        method_name = str(options.get("method") or "forward")
        if method_name not in info.methods:
            raise ModelFormatError(
                f"{self._what} has no method {method_name!r}; its methods are: "
                f"{', '.join(sorted(info.methods))}. Pass method=<name>."
            )
        self._info = info.methods[method_name]
        self._payloads = {i: b for (m, i), b in info.payloads.items() if m == method_name}
        rt = _runtime()
        self._check_runtime(rt)
        self._check_device()
        try:
            program = rt.load_program(source.path) if source.path is not None else rt.load_program(data)
            meta = program.metadata(method_name)
            self._method = program.load_method(method_name)
        except Exception as exc:
            raise ModelFormatError(f"ExecuTorch could not load {self._what}: {exc}") from exc
        self._program = program
        n_in, n_out = meta.num_inputs(), meta.num_outputs()
        in_names = list(options.get("input_names") or _names("input", n_in))
        out_names = list(options.get("output_names") or _names("output", n_out))
        for what, names, n in (("input_names", in_names, n_in), ("output_names", out_names, n_out)):
            if len(names) != n:
                raise InputNameError(
                    f"{what} has {len(names)} names but method {method_name!r} of {self._what} has {n}"
                )
        self.inputs = [_spec(in_names[i], meta.input_tensor_meta(i)) for i in range(n_in)]
        self.outputs = [_spec(out_names[i], meta.output_tensor_meta(i)) for i in range(n_out)]
        self._input_names = in_names
        self._output_names = out_names
        self._out_index = {n: i for i, n in enumerate(out_names)}
        self._single_input = in_names[0] if n_in == 1 else None
        self._execute = self._method._method  # the pybind method: skips one Python frame
        import torch

        self._from_numpy = torch.from_numpy

    @property
    def output_names(self) -> list[str]:
        return self._output_names

    @property
    def method(self) -> str:
        """The name of the program method this executable runs."""
        return self._info.name

    def _check_runtime(self, rt: Any) -> None:
        have_ops = rt.operator_registry.operator_names
        missing_ops = [op for op in dict.fromkeys(self._info.operators) if op not in have_ops]
        if missing_ops:
            raise UnsupportedOpError(
                f"{self._what} needs operator(s) {', '.join(missing_ops)} that this ExecuTorch "
                f"runtime ({_version()}) does not register. Re-export the model with a kernel "
                "library that has them, or lower them to a delegate (e.g. the XNNPACK partitioner).",
                op_type=missing_ops[0],
                domain="executorch",
            )
        table = _backend_table(rt)
        registered = set(table)
        for backend_name in dict.fromkeys(self._info.delegates):
            if backend_name not in registered:
                raise DeviceNotAvailableError(
                    f"{self._what} calls the ExecuTorch backend {backend_name!r}, which this runtime "
                    f"does not register (registered: {', '.join(sorted(registered)) or 'none'}). "
                    "Install an ExecuTorch build with that backend, or re-export for one of these."
                )
            if not table[backend_name]:
                raise DeviceNotAvailableError(
                    f"{self._what} calls the ExecuTorch backend {backend_name!r}, which is registered "
                    "but not usable on this machine (its driver or hardware is missing). "
                    "Re-export the model for a backend present here, such as XnnpackBackend."
                )

    def _check_device(self) -> None:
        if self.device.kind is DeviceKind.CPU or self.device.provider in self._info.delegates:
            return
        used = ", ".join(dict.fromkeys(self._info.delegates)) or "no delegate (portable kernels only)"
        raise PlacementError(
            f"{self.device.id} was requested but {self._what} was lowered for {used}: an ExecuTorch "
            f"program runs where it was lowered at export. Re-export with the "
            f"{self.device.provider} partitioner, or use device='cpu'."
        )

    def run_fast(
        self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray], run_options: Any = None
    ) -> list[np.ndarray]:
        """Run with feeds already in the runtime's terms; the runtime validates them."""
        to_t = self._from_numpy
        if self._single_input is not None:
            args = [to_t(np.ascontiguousarray(feeds[self._single_input]))]
        else:
            args = [to_t(np.ascontiguousarray(feeds[n])) for n in self._input_names]
        outs = self._execute(args)
        if output_names is None or output_names is self._output_names:
            return [o.numpy() for o in outs]
        index = self._out_index
        return [outs[index[n]].numpy() for n in output_names]

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        try:
            return self.run_fast(output_names, feeds)
        except KeyError as exc:
            raise InferenceError(f"ExecuTorch: unknown input or output name {exc} for {self._what}") from exc
        except Exception as exc:
            raise InferenceError(f"ExecuTorch failed running {self._what}: {exc}") from exc

    def placement(self) -> PlacementReport:
        devices = {d.provider: d for d in BACKEND.devices()}
        nodes: list[NodePlacement] = []
        partitions: list[PartitionInfo] = []
        for i, ins in enumerate(self._info.instructions):
            if ins.kind == "delegate":
                dev = devices.get(ins.name)
                kind, short, _ = DELEGATE_KINDS.get(ins.name, (DeviceKind.CPU, ins.name.lower(), ""))
                dev_id = dev.id if dev is not None else f"executorch:{short}"
                provider = ins.name
                inner = None
                if ins.delegate_index in self._payloads:
                    inner = xnnpack_nodes(self._payloads[ins.delegate_index])
                if inner:
                    entries = [
                        (
                            f"delegate_{ins.delegate_index}/{k}",
                            op.removeprefix("XNN"),
                            "xnnpack",
                            f"in {ins.name} delegate blob {ins.delegate_index}, lowered at export",
                        )
                        for k, op in enumerate(inner)
                    ]
                else:
                    entries = [
                        (
                            f"delegate_{ins.delegate_index}",
                            "executorch_call_delegate",
                            "executorch",
                            f"lowered to {ins.name} at export (delegate blob {ins.delegate_index})",
                        )
                    ]
            else:
                kind, dev_id, provider = DeviceKind.CPU, PORTABLE_ID, "portable"
                entries = [
                    (
                        f"{ins.name}_{i}",
                        ins.name,
                        "executorch",
                        "not claimed by a partitioner at export: runs on ExecuTorch's CPU kernels",
                    )
                ]
            if not (partitions and partitions[-1].device == dev_id):
                partitions.append(
                    PartitionInfo(
                        index=len(partitions),
                        device=dev_id,
                        device_kind=kind.value,
                        backend=self.device.backend,
                        provider=provider,
                    )
                )
            for name, op_type, domain, reason in entries:
                partitions[-1].nodes.append(name)
                nodes.append(
                    NodePlacement(
                        name=name,
                        op_type=op_type,
                        domain=domain,
                        device=dev_id,
                        reason=reason,
                        partition=partitions[-1].index,
                    )
                )
        return PlacementReport(
            model=self._what,
            nodes=nodes,
            partitions=partitions,
            source=f"ExecuTorch program instructions of method {self._info.name!r}",
            notes=[
                "XNNPACK delegate blobs are listed node by node (decoded from the blob); other "
                "backends' blobs are opaque and appear as one executorch_call_delegate node"
            ],
        )

    def close(self) -> None:
        self._method = None
        self._program = None
        self._execute = _closed


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i}" for i in range(n)] if n != 1 else [prefix]


def _closed(*_: Any) -> Any:
    from edgeai.errors import SessionClosedError

    raise SessionClosedError("the session is closed; create a new edgeai.Session")


BACKEND = ExecuTorchBackend()
