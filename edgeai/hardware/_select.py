"""Discovery across backends and the ``device=`` selection rule."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from edgeai.errors import DeviceNotAvailableError
from edgeai.hardware._device import KIND_PRIORITY, Device, DeviceKind

_lock = threading.Lock()
_cache: list[Device] | None = None


def devices(*, refresh: bool = False) -> list[Device]:
    """List the devices that the installed runtimes expose, best kind first.

    The result is cached for the process; ``refresh=True`` asks the runtimes again.

    Example:
        >>> import edgeai
        >>> [d.id for d in edgeai.devices() if d.backend == "onnxruntime"][-1]
        'onnxruntime:cpu'
    """
    global _cache
    with _lock:
        if _cache is None or refresh:
            from edgeai.backends import available_backends

            found: list[Device] = []
            for backend in available_backends():
                found.extend(backend.devices())
            _cache = sorted(found, key=lambda d: KIND_PRIORITY.index(d.kind))
        return list(_cache)


def devices_for_format(fmt: str, request: str | Device | None = None) -> list[Device]:
    """Devices of the backends that can load a ``fmt`` model, best kind first.

    Only those backends' runtimes are asked, so opening an ONNX model never
    imports torch for ExecuTorch's device list. A ``request`` that names one
    backend (``"native"``, ``"onnxruntime"``; a :class:`Device` of one) asks only
    that backend when it is installed and loads ``fmt``: ``Session(model,
    device="native")`` then never imports ONNX Runtime. :func:`select_device`
    picks the same device from this shorter list as from the full one (a
    backend-name request matches only that backend's devices); with nothing
    found there, every backend is asked (for ``fallback=True`` and the error
    listing what is present).

    Example:
        >>> from edgeai.hardware import devices_for_format
        >>> [d.id for d in devices_for_format("onnx", "native")]
        ['native:cpu']
    """
    from edgeai.backends import backend_names

    names = backend_names()
    wanted = request.backend if isinstance(request, Device) else request
    name = wanted.strip().lower() if isinstance(wanted, str) else None
    if name in names:
        only = _backend_devices(name, fmt)
        if only and (not isinstance(request, Device) or request in only):
            return sorted(only, key=lambda d: KIND_PRIORITY.index(d.kind))
    found: list[Device] = []
    for other in names:
        found.extend(_backend_devices(other, fmt))
    return sorted(found, key=lambda d: KIND_PRIORITY.index(d.kind))


def _backend_devices(name: str, fmt: str) -> list[Device]:
    """The devices of backend ``name`` when it is registered, installed and loads ``fmt``."""
    from edgeai.backends import get_backend

    try:
        backend = get_backend(name)
    except KeyError:
        return []
    if fmt in backend.formats and backend.available():
        return list(backend.devices())
    return []


def select_device(
    request: str | Device,
    candidates: Sequence[Device],
    *,
    fallback: bool = False,
    priority: Iterable[DeviceKind | str] = KIND_PRIORITY,
) -> Device:
    """Pick one device from ``candidates`` for a ``device=`` request.

    ``request`` is ``"auto"`` (best kind by ``priority``: NPU > GPU > DSP > CPU),
    a kind (``"npu"``, ``"gpu"``, ``"dsp"``, ``"cpu"``), a backend name
    (``"native"``, ``"onnxruntime"``), a provider name
    (``"CUDAExecutionProvider"``) or an exact device id (``"onnxruntime:cpu"``).
    A request that matches nothing raises :class:`DeviceNotAvailableError`
    listing what is present, unless ``fallback=True``, which then takes the
    best CPU.

    Example:
        >>> from edgeai.hardware import Device, DeviceKind, select_device
        >>> cpu = Device("onnxruntime:cpu", DeviceKind.CPU, "CPU", "x", "onnxruntime")
        >>> select_device("auto", [cpu]).id
        'onnxruntime:cpu'
    """
    if isinstance(request, Device):
        if request in candidates or request.emulated:
            return request
        request = request.id
    if not candidates:
        raise DeviceNotAvailableError("no runtime that can run this model is installed")
    order = [DeviceKind(str(k).upper()) for k in priority]
    ranked = sorted(candidates, key=lambda d: order.index(d.kind) if d.kind in order else len(order))
    key = request.strip()
    low = key.lower()
    if low == "auto":
        return ranked[0]
    matches = [d for d in ranked if low in (d.id.lower(), d.provider.lower(), d.kind.value.lower(), d.backend.lower())]
    if matches:
        return matches[0]
    if fallback:
        cpus = [d for d in ranked if d.kind is DeviceKind.CPU]
        if cpus:
            return cpus[0]
    present = ", ".join(f"{d.id} ({d.kind.value})" for d in ranked)
    raise DeviceNotAvailableError(
        f"device {request!r} is not available for this model. Present: {present}. "
        f"Use device='auto', one of these ids or kinds, or pass fallback=True to run on the CPU."
    )
