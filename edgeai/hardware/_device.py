"""The ``Device`` record and device kinds."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class DeviceKind(str, enum.Enum):
    """What sort of processor a device is. Compares equal to its name: ``DeviceKind.CPU == "CPU"``."""

    NPU = "NPU"
    GPU = "GPU"
    DSP = "DSP"
    CPU = "CPU"

    def __str__(self) -> str:
        return self.value


KIND_PRIORITY: tuple[DeviceKind, ...] = (DeviceKind.NPU, DeviceKind.GPU, DeviceKind.DSP, DeviceKind.CPU)
"""The order ``device="auto"`` prefers: dedicated accelerators first, the CPU last."""


@dataclass(frozen=True)
class Device:
    """One processor as one runtime exposes it.

    The same silicon can appear several times, once per runtime that can use it
    (ONNX Runtime's CPU provider and edgeai's native engine are two devices of
    kind CPU). ``id`` is unique: ``"<backend>:<provider-or-delegate>[:index]"``.

    Example:
        >>> d = Device(id="onnxruntime:cpu", kind=DeviceKind.CPU, name="x86_64 CPU",
        ...            vendor="Intel", backend="onnxruntime", provider="CPUExecutionProvider")
        >>> d.kind == "CPU"
        True
    """

    id: str
    kind: DeviceKind
    name: str
    vendor: str
    backend: str
    provider: str = ""
    """The runtime's own name for it: an ONNX Runtime execution provider, a LiteRT delegate."""
    properties: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    emulated: bool = False
    """True when a target profile is emulated on the host rather than present."""

    def __str__(self) -> str:
        tag = " (emulated)" if self.emulated else ""
        return f"{self.id} [{self.kind.value}] {self.name}{tag}"
