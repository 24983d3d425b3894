"""``devices_for_format(fmt, request)``: a request naming one backend asks only that backend, so
``device="native"`` never imports ONNX Runtime, and ``select_device`` picks the same device."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edgeai.hardware import Device, DeviceKind, devices_for_format, select_device

pytest.importorskip("onnxruntime")


def test_backend_request_asks_only_that_backend_and_selects_the_same_device() -> None:
    every = devices_for_format("onnx")
    assert {d.backend for d in every} >= {"native", "onnxruntime"}
    for request in ("native", "onnxruntime", " Native "):
        only = devices_for_format("onnx", request)
        name = request.strip().lower()
        assert only and {d.backend for d in only} == {name}
        assert select_device(request, only) == select_device(request, every)
    native = devices_for_format("onnx", "native")[0]
    assert devices_for_format("onnx", native) == [native]


@pytest.mark.parametrize("request_", [None, "auto", "cpu", "onnxruntime:cpu", "tflite-only-backend"])
def test_other_requests_ask_every_backend(request_: str | None) -> None:
    assert devices_for_format("onnx", request_) == devices_for_format("onnx")


def test_backend_that_cannot_load_the_format_falls_back_to_every_backend() -> None:
    # native loads ONNX only: for a TFLite model the request finds nothing there, so the full list
    # comes back (what select_device's fallback and its error message need)
    assert devices_for_format("tflite", "native") == devices_for_format("tflite")
    stranger = Device("native:other", DeviceKind.CPU, "x", "x", "native")  # not a device native lists
    assert devices_for_format("onnx", stranger) == devices_for_format("onnx")


def test_native_device_list_and_load_do_not_import_onnxruntime() -> None:
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import edgeai
        from edgeai.backends import get_backend
        from edgeai.formats import open_model
        from edgeai.hardware import devices_for_format, select_device

        device = select_device("native", devices_for_format("onnx", "native"))
        exe = get_backend("native").load(open_model(edgeai.demo.model_path()), device, {})
        exe.run({"image": np.zeros((1, 1, 8, 8), np.float32)})
        print("onnxruntime" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
