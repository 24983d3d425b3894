"""Process CPU and memory (psutil), GPU (NVML where present), energy (RAPL) and battery.

Energy per inference comes from the Intel/AMD RAPL counters under
``/sys/class/powercap`` when the OS lets this process read them (they count the
whole CPU package, not only this process, and are labelled so). Otherwise it is
estimated as the target's power figure times the inference time and labelled
``"estimate"``. Where neither exists, it is ``None``: nothing is invented.

Example:
    >>> from edgeai.monitor.resources import ResourceSampler
    >>> snap = ResourceSampler().sample()
    >>> snap.rss_bytes > 0
    True
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

__all__ = ["EnergyReading", "GpuUsage", "RaplMeter", "ResourceSampler", "ResourceSnapshot", "power_from_profile"]

RAPL_ROOT = Path("/sys/class/powercap")


class GpuUsage(BaseModel):
    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    power_watts: float | None = None


class ResourceSnapshot(BaseModel):
    """One sample of the process's resource use."""

    cpu_percent: float
    rss_bytes: int
    threads: int
    gpus: list[GpuUsage] = []
    battery_percent: float | None = None
    power_plugged: bool | None = None


class EnergyReading(BaseModel):
    """Energy per inference and where the figure comes from."""

    joules_per_inference: float
    source: str
    estimate: bool


class ResourceSampler:
    """Samples psutil (CPU since the previous sample, RSS), NVML GPUs and the battery."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the next call reports usage since now
        self._nvml: Any = None
        with contextlib.suppress(Exception):  # NVML absent or no driver: no GPU figures
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml

    def sample(self) -> ResourceSnapshot:
        import psutil

        battery = None
        with contextlib.suppress(Exception):
            battery = psutil.sensors_battery()
        with self._proc.oneshot():
            snap = ResourceSnapshot(
                cpu_percent=float(self._proc.cpu_percent(None)),
                rss_bytes=int(self._proc.memory_info().rss),
                threads=int(self._proc.num_threads()),
                battery_percent=None if battery is None else float(battery.percent),
                power_plugged=None if battery is None else battery.power_plugged,
            )
        if self._nvml is not None:
            snap.gpus = self._gpus()
        return snap

    def _gpus(self) -> list[GpuUsage]:
        nv = self._nvml
        out = []
        with contextlib.suppress(Exception):
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                power = None
                with contextlib.suppress(Exception):
                    power = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
                name = nv.nvmlDeviceGetName(h)
                out.append(
                    GpuUsage(
                        index=i,
                        name=name.decode() if isinstance(name, bytes) else str(name),
                        utilization_percent=float(nv.nvmlDeviceGetUtilizationRates(h).gpu),
                        memory_used_bytes=int(mem.used),
                        memory_total_bytes=int(mem.total),
                        power_watts=power,
                    )
                )
        return out


class RaplMeter:
    """Cumulative package energy from RAPL ``energy_uj`` counters, handling wrap-around.

    Args:
        root: the powercap folder (``/sys/class/powercap``; tests pass a fake one).
    """

    def __init__(self, root: Path = RAPL_ROOT) -> None:
        self.domains: list[tuple[str, Path, int]] = []
        if root.is_dir():
            for d in sorted(root.glob("intel-rapl:*")):
                if d.name.count(":") != 1:  # sub-domains (core, uncore) are inside the package
                    continue
                energy = d / "energy_uj"
                try:
                    int(energy.read_text())
                    top = int((d / "max_energy_range_uj").read_text())
                except (OSError, ValueError):
                    continue  # unreadable (root only on most kernels since 2020)
                name = (d / "name").read_text().strip() if (d / "name").exists() else d.name
                self.domains.append((name, energy, top))
        self._last: list[int] = self._read() if self.domains else []
        self.joules = 0.0

    @property
    def available(self) -> bool:
        return bool(self.domains)

    def _read(self) -> list[int]:
        return [int(p.read_text()) for _, p, _ in self.domains]

    def update(self) -> float:
        """Add the energy since the previous call; returns the running total in joules."""
        if not self.domains:
            return 0.0
        now = self._read()
        for (_, _, top), before, after in zip(self.domains, self._last, now):
            delta = after - before if after >= before else after + top + 1 - before
            self.joules += delta / 1e6
        self._last = now
        return self.joules


def power_from_profile(profile: Any) -> float | None:
    """A power figure in watts from a target profile (name, object or mapping), if it has one.

    A string names a profile of :mod:`edgeai.hardware.targets` (``"raspberry-pi-5-cpu"``).
    """
    if profile is None:
        return None
    if isinstance(profile, str):
        from edgeai.hardware.targets import load_target

        profile = load_target(profile)
    for key in ("power_w", "power_watts", "typical_power_w", "tdp_w"):
        value = profile.get(key) if isinstance(profile, dict) else getattr(profile, key, None)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return None
