"""Float NN and tensor ops of the native engine beyond ONNX's node tests.

Oracle: ONNX Runtime running the same single node (graph optimizations off),
over shapes, strides, pads, groups, dilations and modes drawn by hypothesis.
Each case runs the native op on every input path: all inputs at run time,
weights and other inputs known at build time (the pre-packed path), and only
the weights known (a bias or statistics fed at run time). ONNX's node tests for
these ops run in ``tests/native/test_onnx_node_tests.py``; the MobileNetV2
test model is compared end to end through ``edgeai.Session``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import edgeai.ops
import edgeai.ops.conv
import edgeai.ops.normalization
import edgeai.ops.pooling
import edgeai.ops.resize
import edgeai.ops.rnn
import edgeai.ops.tensor_shape
from edgeai.errors import InferenceError, ModelFormatError
from edgeai.ops._base import OpContext, lookup

from .ort_single_node import ort_node

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def native(
    op_type: str,
    inputs: list[np.ndarray | None],
    *,
    attrs: dict[str, Any] | None = None,
    opset: int = 21,
    n_outputs: int = 1,
    const_from: int | None = None,
    const_only: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Build the registered op and run it. Known at build time: the inputs from ``const_from``
    on, or only input ``const_only`` (say the weights of a Conv whose bias is fed)."""
    cls = lookup(op_type, "", opset)
    assert cls is not None, f"{op_type} is not registered at opset {opset}"
    consts = tuple(
        v if (const_from is not None and i >= const_from) or i == const_only else None for i, v in enumerate(inputs)
    )
    op = cls(
        OpContext(
            node_name="n",
            op_type=op_type,
            opset=opset,
            attrs=dict(attrs or {}),
            input_consts=consts,
            num_outputs=n_outputs,
        )
    )
    return op.run(*inputs)


def reference_node(
    op_type: str, inputs: list[np.ndarray | None], *, attrs: dict[str, Any], opset: int, n_outputs: int
) -> list[np.ndarray]:
    """Run one node on ``onnx.reference`` (for cases ONNX Runtime refuses)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = ["" if v is None else f"in{i}" for i, v in enumerate(inputs)]
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, **attrs)
    feeds = {n: v for n, v in zip(names, inputs) if v is not None}
    graph = helper.make_graph(
        [node],
        "single",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()],
        [helper.make_tensor_value_info(o, 0, None) for o in outs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return list(ReferenceEvaluator(model).run(None, feeds))


def check_both_paths(
    op_type: str,
    inputs: list[np.ndarray | None],
    *,
    attrs: dict[str, Any] | None = None,
    opset: int = 21,
    n_outputs: int = 1,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    oracle: str | dict[str, Any] = "onnxruntime",
) -> None:
    if isinstance(oracle, dict):  # ONNX Runtime with these attributes instead
        expected = ort_node(op_type, inputs, n_outputs=n_outputs, attrs=oracle, opset=opset)
    elif oracle == "onnxruntime":
        expected = ort_node(op_type, inputs, n_outputs=n_outputs, attrs=attrs, opset=opset)
    else:
        expected = reference_node(op_type, inputs, attrs=attrs or {}, opset=opset, n_outputs=n_outputs)
    paths: list[dict[str, int | None]] = [{}, {"const_from": 1}]
    if len(inputs) > 2:
        paths.append({"const_only": 1})
    for path in paths:
        got = native(op_type, inputs, attrs=attrs, opset=opset, n_outputs=n_outputs, **path)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype, (g.dtype, e.dtype)
            assert g.shape == e.shape, (g.shape, e.shape)
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- Conv


@st.composite
def conv_cases(draw: st.DrawFn) -> tuple[list[np.ndarray | None], dict[str, Any]]:
    nsp = draw(st.integers(1, 3))
    group = draw(st.sampled_from([1, 2, 3]))
    depthwise = draw(st.booleans())
    cg = 1 if depthwise else draw(st.integers(1, 3))
    mg = 1 if depthwise else draw(st.integers(1, 3))
    k = [draw(st.integers(1, 3)) for _ in range(nsp)]
    s = [draw(st.integers(1, 3)) for _ in range(nsp)]
    d = [draw(st.integers(1, 2)) for _ in range(nsp)]
    size_max = 9 if nsp < 3 else 6
    spatial = [draw(st.integers((k[i] - 1) * d[i] + 1, size_max)) for i in range(nsp)]
    attrs: dict[str, Any] = {"group": group, "strides": s, "dilations": d, "kernel_shape": k}
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, k[i] - 1)) for i in range(nsp)] * 2
        attrs["pads"][nsp:] = [draw(st.integers(0, k[i] - 1)) for i in range(nsp)]
    else:
        attrs["auto_pad"] = auto_pad
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rand(rng, draw(st.integers(1, 2)), cg * group, *spatial)
    w = rand(rng, mg * group, cg, *k)
    b = rand(rng, mg * group) if draw(st.booleans()) else None
    return [x, w, b], attrs


@SETTINGS
@given(conv_cases())
def test_conv_matches_onnxruntime(case: tuple[list[np.ndarray | None], dict[str, Any]]) -> None:
    inputs, attrs = case
    # ONNX Runtime refuses dilations with SAME_* padding; onnx.reference is the oracle there
    same_dilated = attrs.get("auto_pad", "").startswith("SAME") and max(attrs["dilations"]) > 1
    check_both_paths("Conv", inputs, attrs=attrs, oracle="reference" if same_dilated else "onnxruntime")


@st.composite
def conv_transpose_cases(draw: st.DrawFn) -> tuple[list[np.ndarray | None], dict[str, Any]]:
    nsp = draw(st.integers(1, 2))
    group = draw(st.sampled_from([1, 2]))
    cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = [draw(st.integers(1, 3)) for _ in range(nsp)]
    s = [draw(st.integers(1, 3)) for _ in range(nsp)]
    d = [draw(st.integers(1, 2)) for _ in range(nsp)]
    attrs: dict[str, Any] = {"group": group, "strides": s, "dilations": d}
    # ONNX Runtime wants output_padding below the stride (and the dilation)
    attrs["output_padding"] = [draw(st.integers(0, min(s[i], d[i]) - 1)) for i in range(nsp)]
    attrs["pads"] = [draw(st.integers(0, k[i] - 1)) for i in range(nsp)] + [
        draw(st.integers(0, k[i] - 1)) for i in range(nsp)
    ]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rand(rng, draw(st.integers(1, 2)), cg * group, *[draw(st.integers(1, 6)) for _ in range(nsp)])
    w = rand(rng, cg * group, mg, *k)
    b = rand(rng, mg * group) if draw(st.booleans()) else None
    return [x, w, b], attrs


@SETTINGS
@given(conv_transpose_cases())
def test_conv_transpose_matches_onnxruntime(case: tuple[list[np.ndarray | None], dict[str, Any]]) -> None:
    inputs, attrs = case
    out_len = [
        attrs["strides"][i] * (inputs[0].shape[2 + i] - 1)  # type: ignore[union-attr]
        + attrs["output_padding"][i]
        + (inputs[1].shape[2 + i] - 1) * attrs["dilations"][i]  # type: ignore[union-attr]
        + 1
        - attrs["pads"][i]
        - attrs["pads"][i + len(attrs["strides"])]
        for i in range(len(attrs["strides"]))
    ]
    assume(min(out_len) > 0)
    check_both_paths("ConvTranspose", inputs, attrs=attrs)


def test_conv_transpose_output_shape_matches_onnxruntime() -> None:
    rng = np.random.default_rng(0)
    x, w = rand(rng, 1, 2, 3, 4), rand(rng, 2, 3, 3, 3)
    for auto_pad in ("NOTSET", "SAME_UPPER", "SAME_LOWER"):
        attrs = {"strides": [2, 2], "output_shape": [7, 9], "auto_pad": auto_pad}
        check_both_paths("ConvTranspose", [x, w], attrs=attrs)


# ---------------------------------------------------------------- pooling


@st.composite
def pool_cases(draw: st.DrawFn) -> tuple[np.ndarray, dict[str, Any]]:
    nsp = draw(st.integers(1, 3))
    k = [draw(st.integers(1, 3)) for _ in range(nsp)]
    s = [draw(st.integers(1, 3)) for _ in range(nsp)]
    d = [draw(st.integers(1, 2)) for _ in range(nsp)]
    spatial = [draw(st.integers((k[i] - 1) * d[i] + 1, 8 if nsp < 3 else 5)) for i in range(nsp)]
    attrs: dict[str, Any] = {"kernel_shape": k, "strides": s, "dilations": d}
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad == "NOTSET":
        # pads below the kernel extent; ceil_mode only with explicit pads
        attrs["pads"] = [draw(st.integers(0, k[i] - 1)) for i in range(nsp)] + [
            draw(st.integers(0, k[i] - 1)) for i in range(nsp)
        ]
        attrs["ceil_mode"] = draw(st.integers(0, 1))
    else:
        attrs["auto_pad"] = auto_pad
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rand(rng, draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial)
    return x, attrs


def _same(attrs: dict[str, Any]) -> bool:
    return bool(attrs.get("auto_pad", "").startswith("SAME"))


def _pool_oracle(x: np.ndarray, attrs: dict[str, Any]) -> Any:
    """The oracle for a pooling case: ONNX Runtime, told explicit pads for SAME_* ones.

    ONNX Runtime's pools get SAME_* wrong (they ignore dilations and reject a negative
    total), and onnx.reference too (it crops for a stride above the kernel). The
    specification: output ``ceil(in / stride)``, total padding
    ``max(0, (out - 1) * stride + dilated kernel - in)``, the odd one at the end for
    SAME_UPPER and at the beginning for SAME_LOWER.
    """
    if not _same(attrs):
        return "onnxruntime"
    begin, end = [], []
    for n, k, s, d in zip(x.shape[2:], attrs["kernel_shape"], attrs["strides"], attrs["dilations"]):
        total = max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
        half, rest = total // 2, total - total // 2
        begin.append(half if attrs["auto_pad"] == "SAME_UPPER" else rest)
        end.append(rest if attrs["auto_pad"] == "SAME_UPPER" else half)
    # ONNX Runtime takes pads only below the kernel size
    assume(max(begin + end) < min(attrs["kernel_shape"]))
    explicit = {k: v for k, v in attrs.items() if k != "auto_pad"}
    explicit["pads"] = begin + end
    return explicit


@SETTINGS
@given(pool_cases(), st.integers(0, 1))
def test_maxpool_with_indices_matches_onnxruntime(case: tuple[np.ndarray, dict[str, Any]], order: int) -> None:
    x, attrs = case
    if x.ndim == 4:
        attrs["storage_order"] = order
    check_both_paths("MaxPool", [x], attrs=attrs, n_outputs=2 if x.ndim == 4 else 1, oracle=_pool_oracle(x, attrs))


@SETTINGS
@given(pool_cases(), st.integers(0, 1))
def test_average_pool_matches_onnxruntime(case: tuple[np.ndarray, dict[str, Any]], include: int) -> None:
    x, attrs = case
    attrs["count_include_pad"] = include
    check_both_paths("AveragePool", [x], attrs=attrs, oracle=_pool_oracle(x, attrs))


def test_average_pool_same_dilated_by_hand() -> None:
    # span 3 over 3 samples: SAME pads one each side; windows read (-1, 1), (0, 2), (1, 3)
    x = np.array([[[1.0, 2.0, 4.0]]], np.float32)
    attrs = {"kernel_shape": [2], "dilations": [2], "auto_pad": "SAME_UPPER"}
    np.testing.assert_array_equal(native("AveragePool", [x], attrs=attrs)[0], [[[2.0, 2.5, 2.0]]])
    attrs["count_include_pad"] = 1
    np.testing.assert_array_equal(native("AveragePool", [x], attrs=attrs)[0], [[[1.0, 2.5, 1.0]]])


@SETTINGS
@given(pool_cases(), st.sampled_from([1, 2, 3]))
def test_lp_pool_matches_onnxruntime(case: tuple[np.ndarray, dict[str, Any]], p: int) -> None:
    x, attrs = case
    # ONNX Runtime's LpPool has no dilations or ceil_mode
    attrs.pop("ceil_mode", None)
    attrs.pop("dilations")
    if attrs.get("auto_pad", "VALID") != "VALID":
        attrs.pop("auto_pad")
    attrs["p"] = p
    check_both_paths("LpPool", [x], attrs=attrs, opset=18)


@pytest.mark.parametrize("op_type", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
def test_global_pools_match_onnxruntime(op_type: str) -> None:
    x = rand(np.random.default_rng(1), 2, 3, 5, 4, 3)
    check_both_paths(op_type, [x])


# ---------------------------------------------------------------- normalization


def test_batch_normalization_matches_onnxruntime() -> None:
    rng = np.random.default_rng(2)
    x = rand(rng, 2, 4, 5, 3)
    scale, bias, mean = rand(rng, 4), rand(rng, 4), rand(rng, 4)
    var = rng.uniform(0.1, 2, 4).astype(np.float32)
    check_both_paths("BatchNormalization", [x, scale, bias, mean, var], attrs={"epsilon": 1e-3})


def test_batch_normalization_training_mode_matches_onnxruntime() -> None:
    rng = np.random.default_rng(3)
    x = rand(rng, 3, 4, 6)
    scale, bias, mean = rand(rng, 4), rand(rng, 4), rand(rng, 4)
    var = rng.uniform(0.1, 2, 4).astype(np.float32)
    attrs = {"training_mode": 1, "momentum": 0.8}
    check_both_paths("BatchNormalization", [x, scale, bias, mean, var], attrs=attrs, n_outputs=3)


@pytest.mark.parametrize("axis", [-1, -2, 1])
def test_layer_normalization_matches_onnxruntime(axis: int) -> None:
    rng = np.random.default_rng(4)
    x = rand(rng, 2, 3, 8)
    shape = x.shape[axis % 3 :]
    check_both_paths("LayerNormalization", [x, rand(rng, *shape), rand(rng, *shape)], attrs={"axis": axis}, n_outputs=3)


def test_instance_and_group_normalization_match_onnxruntime() -> None:
    rng = np.random.default_rng(5)
    x = rand(rng, 2, 6, 4, 5)
    check_both_paths("InstanceNormalization", [x, rand(rng, 6), rand(rng, 6)])
    check_both_paths("GroupNormalization", [x, rand(rng, 6), rand(rng, 6)], attrs={"num_groups": 3, "epsilon": 1e-4})


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn_matches_onnxruntime(size: int) -> None:
    x = rand(np.random.default_rng(6), 2, 7, 3, 3)
    attrs = {"size": size, "alpha": 0.01, "beta": 0.6, "bias": 1.5}
    if size % 2:
        check_both_paths("LRN", [x], attrs=attrs)
        return
    # ONNX Runtime takes odd sizes only (and onnx.reference's LRN loops over the batch
    # axis instead of the channels): float64, straight from the specification's text
    x64 = x.astype(np.float64)
    want = np.empty_like(x64)
    for c in range(x.shape[1]):
        lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1] - 1, c + -(-(size - 1) // 2))
        square_sum = (x64[:, lo : hi + 1] ** 2).sum(axis=1)
        want[:, c] = x64[:, c] / (1.5 + 0.01 / size * square_sum) ** 0.6
    for const_from in (None, 1):
        got = native("LRN", [x], attrs=attrs, const_from=const_from)[0]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- resize


@SETTINGS
@given(
    st.sampled_from(["nearest", "linear", "cubic"]),
    st.sampled_from(["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]),
    st.sampled_from(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]),
    st.lists(st.sampled_from([0.5, 0.75, 1.0, 1.5, 2.0, 3.0]), min_size=2, max_size=2),
    st.booleans(),
    st.integers(0, 1000),
)
def test_resize_matches_onnxruntime(
    mode: str, coord: str, nearest: str, scales: list[float], by_sizes: bool, seed: int
) -> None:
    x = rand(np.random.default_rng(seed), 1, 2, 5, 6)
    if coord in ("align_corners", "pytorch_half_pixel") and not by_sizes:
        # these modes divide by the output length: ONNX Runtime takes the rounded one,
        # onnx.reference (and so the node tests we follow) ``scale * length``; they agree
        # when that is whole
        assume(all(float(s * n).is_integer() for s, n in zip(scales, x.shape[2:])))
    attrs = {"mode": mode, "coordinate_transformation_mode": coord, "nearest_mode": nearest}
    if by_sizes:
        sizes = np.array([1, 2] + [max(1, int(s * n)) for s, n in zip(scales, x.shape[2:])], np.int64)
        inputs: list[np.ndarray | None] = [x, None, None, sizes]
    else:
        inputs = [x, None, np.array([1, 1, *scales], np.float32)]
    check_both_paths("Resize", inputs, attrs=attrs, opset=13)


# ---------------------------------------------------------------- recurrent


@st.composite
def rnn_cases(draw: st.DrawFn) -> tuple[str, list[np.ndarray | None], dict[str, Any], int]:
    op = draw(st.sampled_from(["RNN", "GRU", "LSTM"]))
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    direction = draw(st.sampled_from(["forward", "reverse", "bidirectional"]))
    nd = 2 if direction == "bidirectional" else 1
    seq, batch, inp, hid = (draw(st.integers(1, 4)) for _ in range(4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rand(rng, seq, batch, inp)
    w, r = rand(rng, nd, gates * hid, inp) * 0.5, rand(rng, nd, gates * hid, hid) * 0.5
    b = rand(rng, nd, 2 * gates * hid) if draw(st.booleans()) else None
    lens = rng.integers(1, seq + 1, batch).astype(np.int32) if draw(st.booleans()) else None
    h0 = rand(rng, nd, batch, hid) if draw(st.booleans()) else None
    inputs: list[np.ndarray | None] = [x, w, r, b, lens, h0]
    attrs: dict[str, Any] = {"hidden_size": hid, "direction": direction}
    if op == "LSTM":
        inputs.append(rand(rng, nd, batch, hid) if draw(st.booleans()) else None)
        inputs.append(rand(rng, nd, 3 * hid) if draw(st.booleans()) else None)
    if op == "GRU":
        attrs["linear_before_reset"] = draw(st.integers(0, 1))
    if draw(st.booleans()):
        attrs["clip"] = 0.7
    if op == "RNN" and draw(st.booleans()):
        attrs["activations"] = ["Relu", "Tanh"] if nd == 2 else ["LeakyRelu"]
        attrs["activation_alpha"] = [0.2]
    while inputs[-1] is None:
        inputs.pop()
    return op, inputs, attrs, 3 if op == "LSTM" else 2


@SETTINGS
@given(rnn_cases())
def test_recurrent_ops_match_onnxruntime(
    case: tuple[str, list[np.ndarray | None], dict[str, Any], int],
) -> None:
    op, inputs, attrs, n_out = case
    check_both_paths(op, inputs, attrs=attrs, n_outputs=n_out, opset=14)
    # layout=1 (batch first), which ONNX Runtime lacks: the same numbers, axes swapped
    swapped = list(inputs)
    for i in (0, 5, 6):
        if i < len(swapped) and swapped[i] is not None:
            swapped[i] = np.ascontiguousarray(np.swapaxes(swapped[i], 0, 1))  # type: ignore[arg-type]
    seq_first = native(op, inputs, attrs=attrs, opset=14, n_outputs=n_out)
    batch_first = native(op, swapped, attrs={**attrs, "layout": 1}, opset=14, n_outputs=n_out)
    # (not bit-equal: the input projection's GEMM sees another memory layout)
    np.testing.assert_allclose(batch_first[0], np.transpose(seq_first[0], (2, 0, 1, 3)), rtol=1e-6, atol=1e-7)
    for got, want in zip(batch_first[1:], seq_first[1:]):
        np.testing.assert_allclose(got, np.swapaxes(want, 0, 1), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- tensor ops


@SETTINGS
@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=3),
    st.data(),
)
def test_slice_matches_onnxruntime(shape: list[int], data: st.DataObject) -> None:
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    axes = data.draw(
        st.lists(
            st.integers(-len(shape), len(shape) - 1),
            min_size=1,
            max_size=len(shape),
            unique_by=lambda a: a % len(shape),
        )
    )
    starts = [data.draw(st.integers(-8, 8)) for _ in axes]
    ends = [data.draw(st.sampled_from([-9, -2, 0, 2, 5, 9, 2**62])) for _ in axes]
    steps = [data.draw(st.sampled_from([-3, -1, 1, 2])) for _ in axes]
    ints = [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    check_both_paths("Slice", [x, *ints], opset=13)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_matches_onnxruntime(mode: str) -> None:
    x = rand(np.random.default_rng(7), 2, 4, 5)
    pads = np.array([0, 2, -1, 1, 1, 3], np.int64)
    value = np.array(1.5, np.float32) if mode == "constant" else None
    check_both_paths("Pad", [x, pads, value], attrs={"mode": mode}, opset=19)
    axes_pads = np.array([2, 1], np.int64)
    check_both_paths("Pad", [x, axes_pads, value, np.array([-1], np.int64)], attrs={"mode": mode}, opset=19)


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd_matches_onnxruntime(batch_dims: int) -> None:
    rng = np.random.default_rng(8)
    x = rand(rng, 3, 4, 5)
    idx = rng.integers(-3, 3, (3, 2, 2)).astype(np.int64)
    check_both_paths("GatherND", [x, idx], attrs={"batch_dims": batch_dims})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_ops_match_onnxruntime(reduction: str) -> None:
    rng = np.random.default_rng(9)
    x = rand(rng, 4, 5)
    idx = rng.permutation(5)[:3].reshape(1, 3).repeat(4, 0).astype(np.int64)
    check_both_paths("ScatterElements", [x, idx, rand(rng, 4, 3)], attrs={"axis": 1, "reduction": reduction}, opset=18)
    nd_idx = np.array([[1], [3]], np.int64)
    check_both_paths("ScatterND", [x, nd_idx, rand(rng, 2, 5)], attrs={"reduction": reduction}, opset=18)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_space_round_trip_matches_onnxruntime(mode: str) -> None:
    x = rand(np.random.default_rng(10), 2, 8, 3, 2)
    check_both_paths("DepthToSpace", [x], attrs={"blocksize": 2, "mode": mode})
    y = native("DepthToSpace", [x], attrs={"blocksize": 2, "mode": mode})[0]
    if mode == "DCR":
        np.testing.assert_array_equal(native("SpaceToDepth", [y], attrs={"blocksize": 2})[0], x)


# ---------------------------------------------------------------- errors


def test_bad_attributes_and_shapes_raise_clear_errors() -> None:
    x = np.zeros((1, 3, 4, 4), np.float32)
    with pytest.raises(ModelFormatError, match="auto_pad"):
        native("Conv", [x, np.zeros((2, 3, 1, 1), np.float32)], attrs={"auto_pad": "SAME"})
    with pytest.raises(InferenceError, match="channels"):
        native("Conv", [x, np.zeros((2, 2, 1, 1), np.float32)])
    with pytest.raises(InferenceError, match="cannot reshape"):
        native("Reshape", [x, np.array([5, -1], np.int64)])
    with pytest.raises(InferenceError, match=r"does not fit|larger"):
        native("MaxPool", [x], attrs={"kernel_shape": [5, 5]})
    with pytest.raises(ModelFormatError, match="kernel_shape"):
        native("AveragePool", [x])
    for op_type in ("Conv", "ConvTranspose"):
        with pytest.raises(InferenceError, match="same rank"):
            native(op_type, [x, np.zeros((3, 3, 3), np.float32)])
    with pytest.raises(InferenceError, match="out of range"):
        native("Gather", [x, np.array([7], np.int64)], attrs={"axis": 2})
    with pytest.raises(InferenceError, match="exactly one of scales and sizes"):
        native("Resize", [x, None, np.ones(4, np.float32), np.array([1, 3, 8, 8], np.int64)], opset=13)
    with pytest.raises(ModelFormatError, match="direction"):
        native("LSTM", [x[0], x[0], x[0]], attrs={"direction": "sideways", "hidden_size": 1})


# ---------------------------------------------------------------- a real model


def test_mobilenetv2_on_native_matches_onnxruntime(mobilenetv2_float: Any) -> None:
    import edgeai

    x = np.random.default_rng(11).standard_normal((1, 3, 96, 96)).astype(np.float32)
    with edgeai.Session(mobilenetv2_float, device="native") as native_session:
        name = native_session.inputs[0].name
        got = native_session.run(None, {name: x})[0]
    with edgeai.Session(mobilenetv2_float, device="onnxruntime") as ort_session:
        want = ort_session.run(None, {name: x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- sampling and blocks


@SETTINGS
@given(
    st.sampled_from(["linear", "nearest", "cubic"]),
    st.sampled_from(["zeros", "border", "reflection"]),
    st.integers(0, 1),
    st.integers(0, 1000),
)
def test_grid_sample_matches_onnxruntime(mode: str, padding: str, align: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rand(rng, 2, 3, 4, 5)
    grid = rng.uniform(-1.4, 1.4, (2, 3, 6, 2)).astype(np.float32)  # some points outside
    attrs = {"mode": mode, "padding_mode": padding, "align_corners": align}
    check_both_paths("GridSample", [x, grid], attrs=attrs, opset=20, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("align", [0, 1])
def test_affine_grid_feeds_grid_sample_like_onnxruntime(align: int) -> None:
    rng = np.random.default_rng(12)
    theta = (np.eye(2, 3) + rng.normal(0, 0.2, (3, 2, 3))).astype(np.float32)
    size = np.array([3, 2, 4, 5], np.int64)
    check_both_paths("AffineGrid", [theta, size], attrs={"align_corners": align}, opset=20)


@pytest.mark.parametrize(
    ("image", "block", "attrs"),
    [
        ([5, 5], [2, 2], {}),
        ([6, 7], [3, 2], {"strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 1, 2]}),
    ],
)
def test_col2im_inverts_im2col_like_onnxruntime(image: list[int], block: list[int], attrs: dict[str, Any]) -> None:
    strides = attrs.get("strides", [1, 1])
    dil = attrs.get("dilations", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    blocks = [(image[i] + pads[i] + pads[i + 2] - (block[i] - 1) * dil[i] - 1) // strides[i] + 1 for i in range(2)]
    x = rand(np.random.default_rng(13), 2, 3 * block[0] * block[1], blocks[0] * blocks[1])
    check_both_paths("Col2Im", [x, np.array(image, np.int64), np.array(block, np.int64)], attrs=attrs, opset=18)


def test_unpool_after_pool_restores_the_maxima_like_onnxruntime() -> None:
    x = rand(np.random.default_rng(14), 1, 2, 4, 6)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]}
    y, idx = native("MaxPool", [x], attrs=attrs, n_outputs=2)
    check_both_paths("MaxUnpool", [y, idx], attrs=attrs, opset=11)
    # a larger output_shape: ONNX's reference (and its node test) keeps each value's coordinates
    # in the natural 4x6 unpooled map, ONNX Runtime reads the indices as flat in the larger map
    shape = np.array([1, 2, 5, 7], np.int64)
    check_both_paths("MaxUnpool", [y, idx, shape], attrs=attrs, opset=11, oracle="reference")
    restored = native("MaxUnpool", [y, idx], attrs=attrs, opset=11)[0]
    assert (restored != 0).sum() == y.size and np.isin(y, x).all()


@pytest.mark.parametrize("axis", [-1, 1])
def test_rms_and_lp_normalization_match_onnxruntime(axis: int) -> None:
    rng = np.random.default_rng(15)
    x = rand(rng, 2, 3, 4)
    check_both_paths("RMSNormalization", [x, rand(rng, *x.shape[axis % 3 :])], attrs={"axis": axis}, opset=23)
    for p in (1, 2):
        check_both_paths("LpNormalization", [x], attrs={"axis": axis, "p": p}, opset=22)


def test_center_crop_pad_matches_onnxruntime() -> None:
    x = rand(np.random.default_rng(16), 5, 4, 3)
    check_both_paths("CenterCropPad", [x, np.array([3, 7], np.int64)], attrs={"axes": [0, 1]}, opset=18)


@SETTINGS
@given(
    st.sampled_from(["avg", "max"]),
    st.sampled_from(["half_pixel", "output_half_pixel"]),
    st.integers(0, 3),
    st.integers(0, 1000),
)
def test_roi_align_matches_onnxruntime(mode: str, coord: str, ratio: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rand(rng, 2, 3, 10, 12)
    corners = rng.uniform(-2, 14, (5, 2, 2))  # some regions reach outside the map
    rois = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)
    batch = rng.integers(0, 2, 5).astype(np.int64)
    attrs = {
        "mode": mode,
        "coordinate_transformation_mode": coord,
        "sampling_ratio": ratio,
        "output_height": 3,
        "output_width": 2,
        "spatial_scale": 0.8,
    }
    check_both_paths("RoiAlign", [x, rois, batch], attrs=attrs, opset=16)


@SETTINGS
@given(st.data())
def test_deform_conv_matches_onnxruntime(data: st.DataObject) -> None:
    draw = data.draw
    group, og = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    k = [draw(st.integers(1, 3)) for _ in range(2)]
    s = [draw(st.integers(1, 2)) for _ in range(2)]
    d = [draw(st.integers(1, 2)) for _ in range(2)]
    pads = [draw(st.integers(0, 1)) for _ in range(4)]
    size = [draw(st.integers((k[i] - 1) * d[i] + 1, 7)) for i in range(2)]
    out = [(size[i] + pads[i] + pads[i + 2] - (k[i] - 1) * d[i] - 1) // s[i] + 1 for i in range(2)]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c = 2 * group * og
    x = rand(rng, 2, c, *size)
    w = rand(rng, 2 * group, c // group, *k)
    offset = (rng.standard_normal((2, og * k[0] * k[1] * 2, *out)) * 1.5).astype(np.float32)
    b = rand(rng, 2 * group) if draw(st.booleans()) else None
    mask = rng.uniform(0, 1, (2, og * k[0] * k[1], *out)).astype(np.float32) if draw(st.booleans()) else None
    attrs = {"group": group, "offset_group": og, "strides": s, "dilations": d, "pads": pads, "kernel_shape": k}
    inputs: list[np.ndarray | None] = [x, w, offset, b, mask]
    while inputs[-1] is None:
        inputs.pop()
    check_both_paths("DeformConv", inputs, attrs=attrs, opset=22)


def test_max_roi_pool_matches_onnxruntime() -> None:
    rng = np.random.default_rng(17)
    x = rand(rng, 2, 3, 9, 11)
    corners = rng.uniform(-2, 13, (6, 2, 2))
    rois = np.concatenate([rng.integers(0, 2, (6, 1)), corners.min(axis=1), corners.max(axis=1)], axis=1).astype(
        np.float32
    )
    check_both_paths("MaxRoiPool", [x, rois], attrs={"pooled_shape": [2, 3], "spatial_scale": 0.7}, opset=21)


# ---------------------------------------------------------------- the light architectures, with real weights


def _with_random_weights(model_path: Any, out_path: Any, seed: int) -> Any:
    """The model with every ConstantOfShape weight replaced by a seeded random initializer.

    ONNX's ``light`` models fill all weights with one constant, so their stored outputs are a
    uniform softmax that almost any implementation reproduces; random weights make every
    conv, pool and norm count. Weights get He scaling, 1-D parameters (biases, BN scale,
    mean, variance) lie in [0.5, 1.5], so activations stay finite through 50+ layers.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    kept = []
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in inits:
            kept.append(node)
            continue
        shape = tuple(int(v) for v in inits[node.input[0]])
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        else:
            value = rng.uniform(0.5, 1.5, shape)
        model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    onnx.save(model, str(out_path))
    return out_path


@pytest.mark.parametrize("name", ["resnet50", "squeezenet", "shufflenet", "inception_v1", "inception_v2"])
def test_light_architecture_with_random_weights_matches_onnxruntime(name: str, tmp_path: Any) -> None:
    from onnx_node_data import light_model_paths, load_light_case

    import edgeai

    path = next(p for p in light_model_paths() if p.stem == f"light_{name}")
    case = load_light_case(path)
    model = _with_random_weights(path, tmp_path / f"{name}.onnx", seed=18)
    x = np.random.default_rng(19).standard_normal(case.inputs[0].shape).astype(np.float32)
    with edgeai.Session(model, device="native") as session:
        feeds = {session.inputs[0].name: x}
        got = session.run(None, feeds)[0]
    with edgeai.Session(model, device="onnxruntime") as session:
        want = session.run(None, feeds)[0]
    assert want.std() > 1e-5, "the oracle's output is degenerate; the comparison would prove nothing"
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize(
    "module",
    [
        edgeai.ops.conv,
        edgeai.ops.normalization,
        edgeai.ops.pooling,
        edgeai.ops.resize,
        edgeai.ops.rnn,
        edgeai.ops.tensor_shape,
    ],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
def test_docstring_examples_run(module: Any) -> None:
    import doctest

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("keep_sorted", [0, 1])
def test_unique_matches_onnxruntime(axis: int | None, keep_sorted: int) -> None:
    x = np.random.default_rng(20).integers(0, 3, (6, 4)).astype(np.float32)
    x[3] = x[1]  # a repeated row for the axis cases
    attrs: dict[str, Any] = {"sorted": keep_sorted}
    if axis is not None:
        attrs["axis"] = axis
    check_both_paths("Unique", [x], attrs=attrs, n_outputs=4, opset=11)


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter_matches_onnxruntime(mode: str) -> None:
    rng = np.random.default_rng(21)
    cache, update = rand(rng, 3, 2, 8, 4), rand(rng, 3, 2, 3, 4)
    starts = np.array([0, 5, 7 if mode == "circular" else 4], np.int64)
    check_both_paths("TensorScatter", [cache, update, starts], attrs={"mode": mode}, opset=24)


@SETTINGS
@given(st.integers(0, 1), st.integers(0, 6), st.floats(0.0, 0.9), st.booleans(), st.integers(0, 1000))
def test_non_max_suppression_matches_onnxruntime(
    center: int, limit: int, iou: float, with_floor: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 10, (2, 30, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0.5, 4, (2, 30, 2))], axis=2).astype(np.float32)
    if not center:
        flip = rng.random((2, 30)) < 0.3  # corners given in either order
        boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
    scores = rng.random((2, 3, 30)).astype(np.float32)
    inputs: list[np.ndarray | None] = [
        boxes,
        scores,
        np.array([limit], np.int64),
        np.array([iou], np.float32),
        np.array([0.3], np.float32) if with_floor else None,
    ]
    while inputs[-1] is None:
        inputs.pop()
    check_both_paths("NonMaxSuppression", inputs, attrs={"center_point_box": center}, opset=11)


@pytest.mark.parametrize("activation", ["none", "silu"])
def test_causal_conv_with_state_matches_float64_and_streams(activation: str) -> None:
    rng = np.random.default_rng(22)
    x, w, bias, past = rand(rng, 2, 3, 7), rand(rng, 3, 1, 4), rand(rng, 3), rand(rng, 2, 3, 3)
    attrs = {"activation": activation}
    y, state = native("CausalConvWithState", [x, w, bias, past], attrs=attrs, opset=27, n_outputs=2)
    # float64 oracle: y[t] = bias + sum_j w[j] * (past ++ x)[t + j]
    seq = np.concatenate([past, x], axis=2).astype(np.float64)
    want = np.stack([(seq[:, :, t : t + 4] * w[None, :, 0, :]).sum(axis=2) for t in range(7)], axis=2)
    want += bias[None, :, None]
    if activation == "silu":
        want = want / (1 + np.exp(-want))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(state, x[:, :, -3:])
    # decoding in two chunks, state carried over, gives the same sequence
    y1, s1 = native("CausalConvWithState", [x[:, :, :5], w, bias, past], attrs=attrs, opset=27, n_outputs=2)
    y2, s2 = native("CausalConvWithState", [x[:, :, 5:], w, bias, s1], attrs=attrs, opset=27, n_outputs=2)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=2), y, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(s2, state)


def _f16(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float16)


@pytest.mark.parametrize(
    ("op_type", "make", "attrs", "n_out"),
    [
        ("Conv", lambda r: [_f16(r, 1, 4, 8, 8), _f16(r, 6, 4, 3, 3), _f16(r, 6)], {"pads": [1, 1, 1, 1]}, 1),
        ("Conv", lambda r: [_f16(r, 1, 4, 8, 8), _f16(r, 4, 1, 3, 3)], {"group": 4}, 1),
        ("ConvTranspose", lambda r: [_f16(r, 1, 4, 5, 5), _f16(r, 4, 2, 3, 3)], {"strides": [2, 2]}, 1),
        ("MaxPool", lambda r: [_f16(r, 1, 4, 8, 8)], {"kernel_shape": [3, 3]}, 1),
        ("AveragePool", lambda r: [_f16(r, 1, 4, 8, 8)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, 1),
        (
            "BatchNormalization",
            lambda r: [_f16(r, 1, 4, 8, 8), _f16(r, 4), _f16(r, 4), _f16(r, 4), np.abs(_f16(r, 4)) + 1],
            {},
            1,
        ),
        ("LayerNormalization", lambda r: [_f16(r, 2, 4, 8), _f16(r, 8), _f16(r, 8)], {}, 1),
        ("Resize", lambda r: [_f16(r, 1, 4, 8, 8), None, np.array([1, 1, 2, 2], np.float32)], {"mode": "linear"}, 1),
        ("LSTM", lambda r: [_f16(r, 3, 2, 4), _f16(r, 1, 16, 4), _f16(r, 1, 16, 4)], {"hidden_size": 4}, 2),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_float16_stays_float16_and_matches_onnxruntime(
    op_type: str, make: Any, attrs: dict[str, Any], n_out: int
) -> None:
    inputs = make(np.random.default_rng(23))
    check_both_paths(op_type, inputs, attrs=attrs, opset=17, n_outputs=n_out, rtol=1e-3, atol=1e-3)
