"""The host CPU as the OS reports it (``/proc/cpuinfo`` on Linux), for device names.

A module of its own so that every backend names the CPU alike without importing another backend.

Example:
    >>> from edgeai.hardware._cpu import cpu_name
    >>> isinstance(cpu_name(), str) and len(cpu_name()) > 0
    True
"""

from __future__ import annotations

import platform

__all__ = ["cpu_name", "cpuinfo_field"]


def cpuinfo_field(field: str) -> str | None:
    """A field of ``/proc/cpuinfo`` (the first CPU's), or None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The host CPU's model name, as the OS reports it."""
    return cpuinfo_field("model name") or platform.processor() or f"{platform.machine()} CPU"
