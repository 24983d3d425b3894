"""ReduceMean's float32 trailing-axes loop (global pooling) against ONNX Runtime, bit for bit.

ORT sums each row with Eigen's vectorized ``sum()``, whose order depends on the row's address; the
native loop follows it for C-contiguous inputs at any offset, for NCHW views of NHWC arrays (as a
QLinearConv hands them on), and inside a quantized graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import edgeai
from edgeai.ops import load_all
from edgeai.ops._base import OpContext, lookup

from .ort_single_node import ort_node

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

SHAPES = [
    ((1, 1280, 3, 3), [2, 3]),
    ((2, 37, 5, 7), [2, 3]),
    ((3, 5, 2, 2), [-1, -2]),
    ((1, 16, 1, 1), [2, 3]),
    ((4, 33), [1]),
    ((2, 3, 17), [1, 2]),
    ((7,), [0]),
    ((2, 3, 4, 5), [1, 2, 3]),
    ((2, 9, 4, 3), [0, 1, 2, 3]),
    ((1, 8, 12, 12), [3, 2]),
]


def _op(opset: int, attrs: dict[str, Any], consts: tuple[Any, ...] = (), graph_input: bool = True) -> Any:
    """The op reading a graph input (the caller's buffer, as ORT sums it), or a tensor of the engine."""
    load_all()
    cls = lookup("ReduceMean", "", opset)
    ctx = OpContext("r", "ReduceMean", opset=opset, attrs=attrs, input_consts=consts, graph_inputs=(graph_input,))
    return cls(ctx)


def _at_offset(values: np.ndarray, offset: int) -> np.ndarray:
    """``values`` copied into a buffer ``offset`` floats past a 64-byte boundary."""
    buf = np.empty(values.size + 32, np.float32)
    start = (-buf.ctypes.data % 64) // 4 + offset
    out = buf[start : start + values.size].reshape(values.shape)
    out[...] = values
    return out


@pytest.mark.parametrize(("shape", "axes"), SHAPES)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_trailing_axes_match_onnxruntime_at_every_alignment(
    shape: tuple[int, ...], axes: list[int], keepdims: int
) -> None:
    rng = np.random.default_rng(len(shape) * 100 + sum(shape))
    op = _op(17, {"axes": axes, "keepdims": keepdims})
    for offset in range(4):
        x = _at_offset((rng.standard_normal(shape) * 10).astype(np.float32), offset)
        want = ort_node("ReduceMean", [x], opset=17, attrs={"axes": axes, "keepdims": keepdims})[0]
        got = op.run(x)[0]
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want), f"offset {offset}: {int(np.sum(got != want))} values differ"


@pytest.mark.parametrize("shape", [(1, 1280, 3, 3), (2, 37, 5, 7), (1, 24, 4, 4), (3, 5, 1, 2)])
def test_nchw_view_of_nhwc_matches_onnxruntime_on_the_nchw_copy(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 10).astype(np.float32)
    view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not view.flags.c_contiguous
    want = ort_node("ReduceMean", [_at_offset(x, 0)], opset=17, attrs={"axes": [2, 3], "keepdims": 0})[0]
    got = _op(17, {"axes": [2, 3], "keepdims": 0}).run(view)[0]
    assert np.array_equal(got, want)


def test_axes_as_constant_input_and_other_cases_fall_back() -> None:
    rng = np.random.default_rng(5)
    x = _at_offset((rng.standard_normal((2, 6, 5, 3)) * 4).astype(np.float32), 0)
    axes = np.array([2, 3], np.int64)
    op = _op(18, {"keepdims": 1}, consts=(None, axes))
    want = ort_node("ReduceMean", [x, axes], opset=18, attrs={"keepdims": 1})[0]
    assert np.array_equal(op.run(x, axes)[0], want)
    # a strided input is summed as its C-contiguous copy, as ORT's binding copies it
    strided = x[:, :, ::2]
    want = ort_node("ReduceMean", [strided], opset=17, attrs={"axes": [2, 3], "keepdims": 0})[0]
    assert np.array_equal(_op(17, {"axes": [2, 3], "keepdims": 0}).run(strided)[0], want)
    # non-trailing axes take numpy's path: the float64 mean within float32 rounding
    for axes_attr, arr in (([1], x), ([0, 2], x)):
        got = _op(17, {"axes": axes_attr, "keepdims": 0}).run(arr)[0]
        ref = np.mean(arr.astype(np.float64), axis=tuple(axes_attr))
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # axes out of range is still the model's error
    with pytest.raises(edgeai.errors.InferenceError):
        _op(17, {"axes": [4], "keepdims": 0}).run(x)


def _conv_pool_model() -> Any:
    """QuantizeLinear -> QLinearConv (NHWC inside) -> DequantizeLinear -> ReduceMean(2, 3)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    w = rng.integers(-100, 100, (24, 8, 3, 3)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(128, np.uint8), "xz"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.2, np.float32), "ys"),
        numpy_helper.from_array(np.array(7, np.uint8), "yz"),
        numpy_helper.from_array(rng.integers(-500, 500, 24).astype(np.int32), "b"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node(
            "QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["yq"], pads=[1, 1, 1, 1]
        ),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]),
        helper.make_node("ReduceMean", ["y"], ["pooled"], axes=[2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 5, 5])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def test_global_pool_after_int8_conv_in_a_graph_matches_onnxruntime(tmp_path: Any) -> None:
    path = tmp_path / "pool.onnx"
    onnx.save(_conv_pool_model(), str(path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    ref = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    ours = edgeai.Session(path, device="native")
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = (rng.standard_normal((2, 8, 5, 5)) * 3).astype(np.float32)
        want = ref.run(None, {"x": x})[0]
        got = ours.run(None, {"x": x})[0]
        assert got.shape == want.shape and np.array_equal(got, want)


def test_view_at_an_offset_inside_the_graph_is_summed_as_orts_own_buffer(tmp_path: Any) -> None:
    """Split hands ReduceMean a view at an offset; ORT sums a buffer of its own, 16-byte aligned."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 37, 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Split", ["x"], ["a", "b"], axis=0),
        helper.make_node("ReduceMean", ["b"], ["y"], axes=[2, 3], keepdims=0),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "split_mean.onnx"
    onnx.save(model, str(path))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ours = edgeai.Session(str(path), device="native")
    rng = np.random.default_rng(12)
    for _ in range(5):
        v = (rng.standard_normal((2, 37, 3, 3)) * 10).astype(np.float32)
        assert np.array_equal(ours.run(None, {"x": v})[0], ref.run(None, {"x": v})[0])


def test_misaligned_buffer_is_summed_in_order() -> None:
    """A float32 buffer off 4-byte alignment never reaches Eigen's packet alignment: each row is
    added first to last (the reference: a float32 loop), then divided by its length."""
    rng = np.random.default_rng(8)
    values = (rng.standard_normal((3, 5, 3, 3)) * 10).astype(np.float32)
    raw = np.zeros(values.nbytes + 1, np.uint8)
    x = np.frombuffer(raw[1:].data, np.float32).reshape(values.shape)
    x[...] = values
    assert x.ctypes.data % 4 and x.flags.c_contiguous
    rows = values.reshape(15, 9)
    want = np.empty(15, np.float32)
    for k in range(15):
        acc = rows[k, 0]
        for v in rows[k, 1:]:
            acc = np.float32(acc + v)
        want[k] = acc / np.float32(9)
    got = _op(17, {"axes": [2, 3], "keepdims": 0}).run(x)[0]
    assert np.array_equal(got, want.reshape(3, 5))
