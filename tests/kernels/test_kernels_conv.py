"""INT8 convolution kernels (regular, 1x1, grouped, depthwise) against int64 numpy and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_refs import conv_ref, ort_conv_integer, ort_qlinear_conv

from edgeai.errors import InputShapeError, InputTypeError
from edgeai.kernels.api import KernelArgumentError, Requant, prepare_conv
from edgeai.quant.requant import quantize_multiplier, requantize_onnx, requantize_tflite

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = [np.dtype(np.uint8), np.dtype(np.int8)]


@st.composite
def conv_case(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["regular", "pointwise", "grouped", "depthwise"]))
    group = 1
    if kind == "grouped":
        group = draw(st.integers(2, 3))
    cg = draw(st.integers(1, 9))
    mg = draw(st.integers(1, 12))
    if kind == "depthwise":
        cg, mg, group = 1, 1, draw(st.integers(1, 20))
    kh, kw = (1, 1) if kind == "pointwise" else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4)) if kind != "pointwise" else (0, 0, 0, 0)
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pads[0] - pads[2]), 12))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - pads[1] - pads[3]), 12))
    n = draw(st.integers(1, 2))
    x_dtype = draw(st.sampled_from(DTYPES))
    w_dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    xi, wi = np.iinfo(x_dtype), np.iinfo(w_dtype)
    extreme = draw(st.booleans())  # the saturation case: only range end points
    if extreme:
        x = rng.choice(np.array([xi.min, xi.max], x_dtype), (n, cg * group, h, w))
        wt = rng.choice(np.array([wi.min, wi.max], w_dtype), (mg * group, cg, kh, kw))
    else:
        x = rng.integers(int(xi.min), int(xi.max) + 1, (n, cg * group, h, w)).astype(x_dtype)
        wt = rng.integers(int(wi.min), int(wi.max) + 1, (mg * group, cg, kh, kw)).astype(w_dtype)
    m = mg * group
    w_zp = (
        rng.integers(int(wi.min), int(wi.max) + 1, m).astype(w_dtype)
        if draw(st.booleans())
        else np.asarray(draw(st.integers(int(wi.min), int(wi.max))), w_dtype)
    )
    bias = rng.integers(-30000, 30000, m).astype(np.int32) if draw(st.booleans()) else None
    return {
        "x": x,
        "x_zp": draw(st.integers(int(xi.min), int(xi.max))),
        "w": wt,
        "w_zp": w_zp,
        "bias": bias,
        "strides": (sh, sw),
        "pads": pads,
        "dilations": (dh, dw),
        "group": group,
    }


def _geometry(c: dict) -> dict:
    return {"strides": c["strides"], "pads": c["pads"], "dilations": c["dilations"], "group": c["group"]}


def _ref(c: dict, bias: bool = True) -> np.ndarray:
    return conv_ref(
        c["x"],
        c["x_zp"],
        c["w"],
        c["w_zp"],
        c["strides"],
        c["pads"],
        c["dilations"],
        c["group"],
        c["bias"] if bias else None,
    )


@SETTINGS
@given(case=conv_case(), layout=st.sampled_from(["NCHW", "NHWC"]))
def test_conv_int32_matches_reference_and_convinteger(kernel_path: str, case: dict, layout: str) -> None:
    f = prepare_conv(
        case["w"], case["w_zp"], x_dtype=case["x"].dtype, bias=case["bias"], layout=layout, **_geometry(case)
    )
    if layout == "NHWC":
        nhwc = f(np.ascontiguousarray(case["x"].transpose(0, 2, 3, 1)), case["x_zp"])
        got = nhwc.transpose(0, 3, 1, 2)
    else:
        got = f(case["x"], case["x_zp"])
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, _ref(case))
    # ONNX Runtime's ConvInteger: uint8 input, per-tensor weight zero point, no bias
    if case["x"].dtype == np.uint8 and case["w_zp"].ndim == 0 and case["bias"] is None:
        ort = ort_conv_integer(case["x"], case["x_zp"], case["w"], case["w_zp"], **_geometry(case))
        np.testing.assert_array_equal(got, ort)


@SETTINGS
@given(case=conv_case(), data=st.data())
def test_conv_requant_onnx_matches_qlinearconv(kernel_path: str, case: dict, data: st.DataObject) -> None:
    x, w = case["x"], case["w"]
    m = w.shape[0]
    y_dtype = x.dtype  # QLinearConv's output has the input's type
    yi = np.iinfo(y_dtype)
    y_zp = data.draw(st.integers(int(yi.min), int(yi.max)))
    x_s = np.float32(data.draw(st.floats(1e-3, 0.1)))
    w_s = np.asarray(data.draw(st.lists(st.floats(1e-3, 0.1), min_size=m, max_size=m)), np.float32)
    y_s = np.float32(data.draw(st.floats(0.05, 20.0)))
    scale = (x_s * w_s / y_s).astype(np.float32)  # in float32, as ONNX Runtime computes it
    rq = Requant("onnx", scale, None, None, int(y_zp), y_dtype)
    got = prepare_conv(w, case["w_zp"], x_dtype=x.dtype, bias=case["bias"], requant=rq, **_geometry(case))(
        x, case["x_zp"]
    )
    want = requantize_onnx(_ref(case), scale[None, :, None, None], y_zp, int(yi.min), int(yi.max), dtype=y_dtype)
    np.testing.assert_array_equal(got, want)
    ort_ok = not (x.dtype == np.int8 and w.dtype == np.uint8)  # no such QLinearConv kernel in ONNX Runtime
    if ort_ok and (w.dtype == np.int8 or case["w_zp"].ndim == 0):
        ort = ort_qlinear_conv(
            x,
            float(x_s),
            case["x_zp"],
            w,
            w_s,
            case["w_zp"],
            float(y_s),
            y_zp,
            case["bias"],
            y_dtype=y_dtype,
            **_geometry(case),
        )
        np.testing.assert_array_equal(got, ort)


@SETTINGS
@given(case=conv_case(), data=st.data())
def test_conv_requant_tflite(kernel_path: str, case: dict, data: st.DataObject) -> None:
    m = case["w"].shape[0]
    reals = data.draw(st.lists(st.floats(1e-5, 2.0), min_size=m, max_size=m))
    ms = np.array([quantize_multiplier(r) for r in reals], np.int64)
    mult, shift = ms[:, 0].astype(np.int32), ms[:, 1].astype(np.int32)
    rq = Requant("tflite", None, mult, shift, 5, np.dtype(np.int8), act_min=0)  # fused ReLU
    f = prepare_conv(
        case["w"],
        case["w_zp"],
        x_dtype=case["x"].dtype,
        bias=case["bias"],
        requant=rq,
        layout="NHWC",
        **_geometry(case),
    )  # channels-last in and out, as TFLite's CONV_2D uses it
    got = f(np.ascontiguousarray(case["x"].transpose(0, 2, 3, 1)), case["x_zp"]).transpose(0, 3, 1, 2)
    want = requantize_tflite(
        _ref(case), mult[None, :, None, None], shift[None, :, None, None], 5, 0, 127, dtype=np.int8
    )
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("group", [1, 16])
def test_conv_two_threads_matches_one(group: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 16, 13, 11)).astype(np.uint8)
    w = rng.integers(-128, 128, (16, 16 // group, 3, 3)).astype(np.int8)
    geo = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": group}
    one = prepare_conv(w, 0, x_dtype=np.uint8, **geo)(x, 100)
    two = prepare_conv(w, 0, x_dtype=np.uint8, threads=2, **geo)(x, 100)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, conv_ref(x, 100, w, 0, (1, 1), (1, 1, 1, 1), (1, 1), group, None))


def test_conv_bad_arguments_raise_clear_errors() -> None:
    w = np.ones((4, 2, 3, 3), np.int8)
    with pytest.raises(KernelArgumentError, match="group"):
        prepare_conv(w, 0, x_dtype=np.uint8, group=3)
    with pytest.raises(KernelArgumentError, match="pads"):
        prepare_conv(w, 0, x_dtype=np.uint8, pads=(1, 1))
    with pytest.raises(KernelArgumentError, match="strides"):
        prepare_conv(w, 0, x_dtype=np.uint8, strides=(0, 1))
    with pytest.raises(KernelArgumentError, match="w_zp"):
        prepare_conv(w, np.zeros(3, np.int8), x_dtype=np.uint8)
    assert prepare_conv(np.ones((4, 2, 3), np.int8), 0, x_dtype=np.uint8) is None  # 1-D conv: reference path
    f = prepare_conv(w, 0, x_dtype=np.uint8)
    with pytest.raises(InputShapeError, match=r"\(N, 2, H, W\)"):
        f(np.ones((1, 3, 5, 5), np.uint8), 0)
    with pytest.raises(InputShapeError, match="smaller than"):
        f(np.ones((1, 2, 2, 2), np.uint8), 0)
    with pytest.raises(InputTypeError, match="uint8"):
        f(np.ones((1, 2, 5, 5), np.float32), 0)
    with pytest.raises(KernelArgumentError, match="layout"):
        prepare_conv(w, 0, x_dtype=np.uint8, layout="NCWH")
    with pytest.raises(InputShapeError, match=r"\(N, H, W, 2\)"):
        prepare_conv(w, 0, x_dtype=np.uint8, layout="NHWC")(np.ones((1, 2, 5, 5), np.uint8), 0)


def test_grouped_conv_whose_groups_need_different_microkernels(kernel_path: str) -> None:
    """Group 0's uint8 weights span more than 127 (AVX2: exact int16 kernel), group 1's do not (7-bit
    kernel): one call runs every group, so all must be packed for the same kernel. Found by the
    derandomized CI profile; it was wrong on the AVX2 path only."""
    case = {
        "x": np.array([[[[217, 163]], [[130, 69]]], [[[78, 10]], [[19, 4]]]], np.uint8),
        "x_zp": 0,
        "w": np.array([44, 208, 166, 233], np.uint8).reshape(4, 1, 1, 1),
        "w_zp": np.array(0, np.uint8),
        "bias": None,
        "strides": (1, 1),
        "pads": (0, 0, 0, 0),
        "dilations": (1, 1),
        "group": 2,
    }
    f = prepare_conv(case["w"], case["w_zp"], x_dtype=np.dtype(np.uint8), **_geometry(case))
    np.testing.assert_array_equal(f(case["x"], 0), _ref(case))
