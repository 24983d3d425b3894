"""Models quantized by edgeai run on the native engine with the same outputs as on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import edgeai
from edgeai.optimize import quantize


def _both(model: onnx.ModelProto | Path, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ort_out = edgeai.Session(model, device="onnxruntime").run(feed)
    native = edgeai.Session(model, device="native")
    assert native.device.backend == "native"
    nat_out = native.run(feed)
    name = next(iter(ort_out))
    return ort_out[name], nat_out[name]


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_mobilenetv2_quantized_with_each_calibrator_is_identical_on_native(
    mobilenetv2_float: Path, method: str
) -> None:
    from models import calibration_data

    result = quantize(mobilenetv2_float, calibration_data(4), method=method, progress=False)
    feed = {"input": np.concatenate([f["input"] for f in calibration_data(2, seed=11)])}
    ort_out, nat_out = _both(result.model, feed)
    np.testing.assert_array_equal(nat_out, ort_out)


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_demo_int8_is_identical_on_native(
    demo_float: Path, demo_calibration: list[np.ndarray], digits: dict[str, np.ndarray], fmt: str
) -> None:
    result = quantize(demo_float, demo_calibration, format=fmt, activation_type="uint8", progress=False)
    ort_out, nat_out = _both(result.model, {"image": digits["x_test"]})
    np.testing.assert_array_equal(nat_out, ort_out)


def test_shipped_int8_demo_is_identical_on_native(digits: dict[str, np.ndarray]) -> None:
    ort_out, nat_out = _both(edgeai.demo.model_path("int8"), {"image": digits["x_test"]})
    np.testing.assert_array_equal(nat_out, ort_out)
