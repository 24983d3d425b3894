"""Target profiles: hardware that is not present, described by data files.

Each ``edgeai/hardware/profiles/<name>.json`` holds one device's op support
table and precision limits (from the vendor's or runtime's published
documentation, cited in ``sources``), its peak int8 TOPS, memory, bandwidth
and typical power. A session can *plan* for a target without the hardware
(:func:`edgeai.plan`) and *emulate* it on the host (``Session(...,
target=NAME, emulate=True)``).

Example:
    >>> from edgeai.hardware.targets import load_target, target_names
    >>> "google-edge-tpu" in target_names()
    True
    >>> tpu = load_target("google-edge-tpu")
    >>> tpu.quantized_only, tpu.kind
    (True, 'NPU')
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from edgeai.errors import DeviceNotAvailableError

__all__ = ["TargetProfile", "load_target", "target_names"]


class TargetProfile(BaseModel):
    """One target device, as its data file describes it."""

    name: str
    title: str
    vendor: str
    kind: str
    """``NPU``, ``GPU``, ``DSP`` or ``CPU``."""
    runtime: str
    """The runtime and delegate that drives it, e.g. ``onnxruntime:QNNExecutionProvider``."""
    precisions: list[str]
    quantized_only: bool
    """True when the device executes only integer-quantized ops (everything float falls back)."""
    ops: list[str]
    """ONNX op types the device runs; ``["*"]`` means every standard op except ``unsupported_ops``."""
    unsupported_ops: list[str] = Field(default_factory=list)
    precision_note: str = ""
    tops: float
    """Peak int8 tera-operations per second (2 operations per MAC)."""
    utilization: float = 0.3
    """Fraction of peak a typical CNN layer reaches; the roofline estimate uses it."""
    memory_mb: float
    bandwidth_gbps: float
    power_w: float
    call_overhead_us: float
    """Fixed cost of one dispatch to the device (driver call, synchronisation)."""
    host_cpu: str
    host_cpu_gmacs: float
    """Sustained GMAC/s of the host CPU that runs what the device cannot."""
    host_power_w: float
    sources: list[str]

    @property
    def peak_gmacs(self) -> float:
        return self.tops * 1e3 / 2

    def runs_op(self, op_type: str) -> bool:
        if op_type in self.unsupported_ops:
            return False
        return "*" in self.ops or op_type in self.ops


def _profile_dir() -> Path:
    return Path(str(resources.files("edgeai.hardware").joinpath("profiles")))


@functools.cache
def target_names() -> list[str]:
    """Names of the shipped target profiles."""
    return sorted(p.stem for p in _profile_dir().glob("*.json"))


@functools.cache
def load_target(name: str) -> TargetProfile:
    """The profile called ``name`` (or a path to a profile JSON file of the same schema)."""
    path = Path(name)
    if not (path.suffix == ".json" and path.is_file()):
        path = _profile_dir() / f"{name}.json"
    if not path.is_file():
        raise DeviceNotAvailableError(
            f"unknown target {name!r}; shipped targets: {', '.join(target_names())} "
            "(or pass the path of a profile .json file)"
        )
    return TargetProfile.model_validate(json.loads(path.read_text(encoding="utf-8")))
