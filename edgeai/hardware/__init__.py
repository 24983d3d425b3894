"""Hardware: the NPUs, GPUs, DSPs and CPUs that the installed runtimes expose.

``edgeai.devices()`` asks every available backend what it can run on. Nothing
here guesses: a device is listed only when its runtime reports it.

Example:
    >>> import edgeai
    >>> any(d.kind == "CPU" for d in edgeai.devices())
    True
"""

from __future__ import annotations

from edgeai.hardware._device import KIND_PRIORITY, Device, DeviceKind
from edgeai.hardware._select import devices, devices_for_format, select_device

__all__ = ["KIND_PRIORITY", "Device", "DeviceKind", "devices", "devices_for_format", "select_device"]
