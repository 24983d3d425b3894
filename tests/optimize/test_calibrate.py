"""Calibration ranges on random data against numpy (hypothesis draws shapes, scales and percentiles)."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from edgeai.optimize.calibrate import collect_ranges


def _scaled_relu_model(features: int) -> onnx.ModelProto:
    """y = Relu(x * 3): an input range and a non-negative output range to calibrate."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "three"], ["m"]),
            helper.make_node("Relu", ["m"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor("three", TensorProto.FLOAT, [], [3.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=25, deadline=None)
@given(
    features=st.integers(1, 64),
    samples=st.integers(1, 6),
    loc=st.floats(-5, 5),
    scale=st.floats(0.01, 100),
    seed=st.integers(0, 2**16),
)
def test_minmax_ranges_equal_numpy(features: int, samples: int, loc: float, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    feeds = [{"x": (loc + scale * rng.standard_normal((2, features))).astype(np.float32)} for _ in range(samples)]
    ranges = collect_ranges(_scaled_relu_model(features), feeds, "minmax")
    x = np.concatenate([f["x"] for f in feeds])
    y = np.maximum(x * np.float32(3), 0)
    assert ranges["x"] == (min(0.0, float(x.min())), max(0.0, float(x.max())))
    assert ranges["y"] == (0.0, float(y.max()))


@settings(max_examples=15, deadline=None)
@given(percentile=st.floats(90.0, 99.99), seed=st.integers(0, 2**16))
def test_percentile_ranges_cut_the_stated_tails(percentile: float, seed: int) -> None:
    """At most (100 - p)% of the values lie beyond each end, and more than that one bin further in."""
    rng = np.random.default_rng(seed)
    feeds = [{"x": rng.laplace(0.5, 2.0, (50, 40)).astype(np.float32)} for _ in range(3)]
    ranges = collect_ranges(_scaled_relu_model(40), feeds, "percentile", percentile=percentile)
    x = np.concatenate([f["x"] for f in feeds]).ravel().astype(np.float64)
    width = (x.max() - x.min()) / 2048  # one histogram bin
    tail = (100.0 - percentile) / 100.0
    lo, hi = ranges["x"]
    assert np.mean(x > hi) <= tail + 1e-12
    assert np.mean(x > hi - 1.01 * width) > tail
    assert np.mean(x < lo) <= tail + 1e-12
    assert np.mean(x < lo + 1.01 * width) > tail


def test_entropy_range_clips_outliers_and_keeps_zero() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (20, 500)).astype(np.float32)
    x[0, 0] = 80.0  # one outlier
    ranges = collect_ranges(_scaled_relu_model(500), [{"x": row[None]} for row in x], "entropy")
    lo, hi = ranges["y"]
    assert lo == 0.0 and 3 * 2.5 < hi < 3 * 20  # clips the outlier (240), keeps the bulk
    assert ranges["x"][0] < 0 < ranges["x"][1]
