"""Device discovery and the device= selection rule."""

from __future__ import annotations

import onnxruntime as ort
import pytest

import edgeai
from edgeai.backends.onnxruntime import PROVIDER_KINDS
from edgeai.errors import DeviceNotAvailableError
from edgeai.hardware import Device, DeviceKind, devices_for_format, select_device


def test_devices_reflect_installed_onnxruntime() -> None:
    found = [d for d in devices_for_format("onnx") if d.backend == "onnxruntime"]
    providers = {d.provider for d in found}
    expected = {p for p in ort.get_available_providers() if p != "AzureExecutionProvider"}
    assert providers == expected
    # honest: this machine's onnxruntime exposes only CPUs
    if expected == {"CPUExecutionProvider"}:
        assert {d.kind for d in found} == {DeviceKind.CPU}


def test_every_known_provider_has_a_kind() -> None:
    for provider in ort.get_all_providers():
        if provider == "AzureExecutionProvider":
            continue
        assert provider in PROVIDER_KINDS, f"{provider} has no device kind"
    assert PROVIDER_KINDS["CUDAExecutionProvider"][0] is DeviceKind.GPU
    assert PROVIDER_KINDS["QNNExecutionProvider"][0] is DeviceKind.NPU
    assert PROVIDER_KINDS["CoreMLExecutionProvider"][0] is DeviceKind.NPU
    assert PROVIDER_KINDS["XnnpackExecutionProvider"][0] is DeviceKind.CPU


def _dev(id_: str, kind: DeviceKind, provider: str = "") -> Device:
    return Device(id=id_, kind=kind, name=id_, vendor="test", backend=id_.split(":")[0], provider=provider)


CPU = _dev("onnxruntime:cpu", DeviceKind.CPU, "CPUExecutionProvider")
GPU = _dev("onnxruntime:cuda", DeviceKind.GPU, "CUDAExecutionProvider")
NPU = _dev("onnxruntime:qnn", DeviceKind.NPU, "QNNExecutionProvider")
DSP = _dev("litert:hexagon", DeviceKind.DSP, "hexagon")


def test_auto_prefers_npu_then_gpu_then_dsp_then_cpu() -> None:
    assert select_device("auto", [CPU, GPU, NPU, DSP]) is NPU
    assert select_device("auto", [CPU, GPU, DSP]) is GPU
    assert select_device("auto", [CPU, DSP]) is DSP
    assert select_device("auto", [CPU]) is CPU
    assert select_device("auto", [CPU, GPU, NPU], priority=["GPU", "NPU", "CPU"]) is GPU


def test_select_by_kind_provider_or_id() -> None:
    cands = [CPU, GPU, NPU]
    assert select_device("gpu", cands) is GPU
    assert select_device("NPU", cands) is NPU
    assert select_device("CUDAExecutionProvider", cands) is GPU
    assert select_device("onnxruntime:cpu", cands) is CPU
    assert select_device(GPU, cands) is GPU


def test_absent_device_raises_listing_present_ones() -> None:
    with pytest.raises(DeviceNotAvailableError, match=r"'npu' is not available.*onnxruntime:cpu \(CPU\)"):
        select_device("npu", [CPU])
    assert select_device("npu", [CPU], fallback=True) is CPU


def test_session_device_request_on_this_machine() -> None:
    path = edgeai.demo.model_path()
    assert edgeai.Session(path, device="cpu").device.kind is DeviceKind.CPU
    assert edgeai.Session(path, device="CPUExecutionProvider").device.id == "onnxruntime:cpu"
    if not any(d.kind is DeviceKind.GPU for d in edgeai.devices()):
        with pytest.raises(DeviceNotAvailableError, match="fallback=True"):
            edgeai.Session(path, device="gpu")
        assert edgeai.Session(path, device="gpu", fallback=True).device.kind is DeviceKind.CPU
    with pytest.raises(DeviceNotAvailableError):
        edgeai.Session(path, device="tpu-that-does-not-exist")


def test_device_kind_compares_to_strings() -> None:
    assert DeviceKind.CPU == "CPU"
    assert str(DeviceKind.NPU) == "NPU"
