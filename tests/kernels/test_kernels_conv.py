"""INT8 convolution kernels (regular, 1x1, grouped, depthwise) against int64 numpy and ONNX Runtime."""

from __future__ import annotations

from typing import Any

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


# --- fast paths: depthwise on float32 vectors, in-place 1x1, staging, byte transposes ---


def _requant_cases(rng: np.random.Generator, m: int) -> list[tuple[Requant | None, Any]]:
    """(requant, reference of the int32 accumulators) for int32, ONNX and TFLite outputs."""
    scale = rng.uniform(1e-4, 1e-2, m).astype(np.float32)
    ms = np.array([quantize_multiplier(r) for r in rng.uniform(1e-5, 0.9, m)], np.int64)
    mult, shift = ms[:, 0].astype(np.int32), ms[:, 1].astype(np.int32)
    per_ch = (slice(None), None, None)
    return [
        (None, lambda acc: acc),
        (
            Requant("onnx", scale, None, None, 7, np.dtype(np.uint8)),
            lambda acc: requantize_onnx(acc, scale[per_ch], 7, 0, 255, dtype=np.uint8),
        ),
        (
            Requant("tflite", None, mult, shift, -5, np.dtype(np.int8), act_min=-100),
            lambda acc: requantize_tflite(acc, mult[per_ch], shift[per_ch], -5, -100, 127, dtype=np.int8),
        ),
    ]


@settings(max_examples=25, deadline=None)
@given(
    c=st.sampled_from([1, 3, 8, 32, 33, 200]),
    k=st.sampled_from([(1, 1), (3, 3), (2, 5), (5, 5), (7, 3)]),
    s=st.integers(1, 3),
    d=st.integers(1, 2),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    layout=st.sampled_from(["NCHW", "NHWC"]),
    x_dtype=st.sampled_from(DTYPES),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31),
)
def test_depthwise_float_kernels_match_reference(
    c: int, k: tuple[int, int], s: int, d: int, pads: tuple, layout: str, x_dtype: np.dtype, threads: int, seed: int
) -> None:
    """The float32 depthwise kernels (nine-tap chunks, phase-split strides, NHWC channel blocks and
    tiles, NCHW planes) in every output mode against the int64 reference, saturating inputs included."""
    from edgeai.kernels.depthwise import MAX_TAPS

    rng = np.random.default_rng(seed)
    kh, kw = k
    h = max(1, d * (kh - 1) + 1 - pads[0] - pads[2]) + int(rng.integers(0, 9))
    w = max(1, d * (kw - 1) + 1 - pads[1] - pads[3]) + int(rng.integers(0, 9))
    xi = np.iinfo(x_dtype)
    x = rng.choice(np.array([xi.min, xi.max, 0, 1], x_dtype), (2, c, h, w))  # extremes: the largest products
    wt = rng.choice(np.array([-128, 127, 3], np.int8), (c, 1, kh, kw))
    w_zp = rng.integers(-128, 128, c).astype(np.int8)
    x_zp = int(rng.choice([xi.min, xi.max, 0]))
    # a full-range bias wraps like the GEMM store (and keeps the int32 requant); a small one lets the
    # ONNX mode add it to the float32 sum (mode 3)
    wide = seed % 2 == 0
    bias = rng.integers(-(2**31) if wide else -30000, 2**31 - 1 if wide else 30000, c, dtype=np.int64).astype(np.int32)
    geo = {"strides": (s, s), "pads": pads, "dilations": (d, d), "group": c}
    acc = conv_ref(x, x_zp, wt, w_zp, (s, s), pads, (d, d), c, bias)
    xin = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for rq, want in _requant_cases(rng, c):
        f = prepare_conv(wt, w_zp, x_dtype=x_dtype, bias=bias, requant=rq, layout=layout, threads=threads, **geo)
        assert f.depthwise and f.float_dw == (kh * kw <= MAX_TAPS)
        if rq is not None and rq.mode == "onnx":  # the float32 bias only where every sum stays exact
            exact = int(np.abs(bias.astype(np.int64)).max()) + kh * kw * 255 * 255 < 2**24
            assert f.dw_mode == (3 if exact else 1)
            assert exact or wide
        got = f(xin, x_zp)
        np.testing.assert_array_equal(got if layout == "NCHW" else got.transpose(0, 3, 1, 2), want(acc))


@pytest.mark.parametrize(("c", "k", "s"), [(600, 3, 1), (1030, 3, 2), (520, 5, 1), (4, 17, 1)])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_depthwise_wide_channels_and_huge_kernels(c: int, k: int, s: int, layout: str) -> None:
    """Past 512 channels the NHWC kernel goes in channel blocks; 17x17 (289 taps, beyond exact float32
    sums) takes the int16 loop."""
    rng = np.random.default_rng(c + k)
    x = rng.integers(-128, 128, (1, c, k + 3, k + 2)).astype(np.int8)
    wt = rng.integers(-128, 128, (c, 1, k, k)).astype(np.int8)
    w_zp = rng.integers(-3, 3, c).astype(np.int8)
    bias = rng.integers(-30000, 30000, c).astype(np.int32)
    geo = {"strides": (s, s), "pads": (1, 2, 0, 1), "dilations": (1, 1), "group": c}
    acc = conv_ref(x, -7, wt, w_zp, (s, s), (1, 2, 0, 1), (1, 1), c, bias)
    xin = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for rq, want in _requant_cases(rng, c):
        got = prepare_conv(wt, w_zp, x_dtype=np.int8, bias=bias, requant=rq, layout=layout, **geo)(xin, -7)
        np.testing.assert_array_equal(got if layout == "NCHW" else got.transpose(0, 3, 1, 2), want(acc))


def test_requant_lanes_match_scalar_references() -> None:
    """The branch-free requantization of the depthwise loops, vectorized in a loop as there, against
    edgeai.quant.requant's pure-Python TFLite and ONNX references (edge values included)."""
    from numba import njit

    from edgeai.kernels.depthwise import float_lane
    from edgeai.kernels.requant import requantize_fixed_point_branchless
    from edgeai.quant.requant import requantize_onnx_scalar, requantize_tflite_scalar

    @njit
    def lanes(a, mult, shift, scale, zp, qmin, qmax, fixed, flt):  # type: ignore[no-untyped-def]
        lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
        for i in range(a.shape[0]):
            fixed[i] = requantize_fixed_point_branchless(a[i], mult[i], shift[i], zp, qmin, qmax)
        for i in range(a.shape[0]):
            flt[i] = float_lane(a[i], scale[i], zp, lo, hi)

    rng = np.random.default_rng(11)
    n = 20000
    edges = np.array([-(2**31), 2**31 - 1, 0, 1, -1, 2**30, -(2**30), 12345, -12345], np.int64)
    a = np.concatenate([edges, rng.integers(-(2**31), 2**31, n - len(edges))]).astype(np.int32)
    a[n // 2 :] = (a[n // 2 :] >> 14).astype(np.int32)  # half of them small: most land inside the clamp
    mult = rng.integers(0, 2**31, n).astype(np.int32)
    mult[:4] = [0, 2**31 - 1, 2**30, 1]
    shift = rng.integers(-31, 31, n).astype(np.int32)
    shift[:4] = [-31, 30, 0, -1]
    scale = rng.uniform(1e-6, 0.05, n).astype(np.float32)
    fixed, flt = np.empty(n, np.int32), np.empty(n, np.int32)
    lanes(a, mult, shift, scale, 3, -100, 120, fixed, flt)
    want_fixed = [requantize_tflite_scalar(int(v), int(m), int(s), 3, -100, 120) for v, m, s in zip(a, mult, shift)]
    np.testing.assert_array_equal(fixed, want_fixed)
    want_flt = [requantize_onnx_scalar(int(v), float(sc), 3, -100, 120) for v, sc in zip(a, scale)]
    np.testing.assert_array_equal(flt, want_flt)


@pytest.mark.parametrize("s", [1, 2, 3])
def test_pointwise_conv_reads_nhwc_input_in_place(kernel_path: str, s: int) -> None:
    """1x1 over uint8 NHWC with C % 4 == 0 reads the input itself (AMX: the last rows from a small copy,
    since each row is read in 64-byte steps); against the int64 reference and ONNX Runtime."""
    rng = np.random.default_rng(s)
    # the last: large enough that AMX reads most rows in the input and only the last ones from a copy
    for c, m, h, w in [(4, 5, 7, 9), (32, 64, 9, 11), (64, 33, 1, 1), (12, 40, 6, 5), (8, 3, 17, 17), (16, 8, 40, 31)]:
        x = rng.integers(0, 256, (2, c, h, w)).astype(np.uint8)
        wt = rng.integers(-128, 128, (m, c, 1, 1)).astype(np.int8)
        geo = {"strides": (s, s), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1}
        xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        for w_zp in (np.int8(0), rng.integers(-5, 5, m).astype(np.int8)):  # the second needs pixel sums
            bias = rng.integers(-30000, 30000, m).astype(np.int32)
            f = prepare_conv(wt, w_zp, x_dtype=np.uint8, bias=bias, layout="NHWC", **geo)
            assert f.inplace
            got = f(xin, 77).transpose(0, 3, 1, 2)
            np.testing.assert_array_equal(got, conv_ref(x, 77, wt, w_zp, (s, s), (0,) * 4, (1, 1), 1, bias))
        w_s = rng.uniform(1e-3, 1e-2, m).astype(np.float32)
        scale = (np.float32(0.02) * w_s / np.float32(0.3)).astype(np.float32)
        rq = Requant("onnx", scale, None, None, 100, np.dtype(np.uint8))
        f = prepare_conv(wt, 0, x_dtype=np.uint8, bias=bias, requant=rq, layout="NHWC", **geo)
        ort = ort_qlinear_conv(x, 0.02, 77, wt, w_s, np.int8(0), 0.3, 100, bias, y_dtype=np.uint8, **geo)
        np.testing.assert_array_equal(f(xin, 77).transpose(0, 3, 1, 2), ort)


@settings(max_examples=60, deadline=None)
@given(
    c=st.integers(1, 40),
    group=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 70), st.integers(1, 70)),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    channels_last=st.booleans(),
    flip=st.sampled_from([0, 0x80]),
    seed=st.integers(0, 2**31),
)
def test_nhwc_stage_matches_numpy(
    c: int, group: int, hw: tuple[int, int], pads: tuple, channels_last: bool, flip: int, seed: int
) -> None:
    """The staging (border-only fill, NHWC runs, NCHW 16x16 block transposes and 4-channel words)."""
    from edgeai.kernels import conv

    rng = np.random.default_rng(seed)
    h, w = hw
    pt, pl, pb, pr = pads
    cin = c * group
    c0 = c * int(rng.integers(0, group))
    c4 = -(-c // 4) * 4
    x = rng.integers(0, 256, (2, h, w, cin) if channels_last else (2, cin, h, w)).astype(np.uint8)
    buf = rng.integers(0, 256, (h + pt + pb, w + pl + pr, c4)).astype(np.uint8)  # stale bytes must go
    conv.nhwc_stage(x, 1, c0, c, pt, pl, 9, flip, buf, channels_last)
    want = np.full(buf.shape, 9, np.uint8)
    img = x[1] if channels_last else x[1].transpose(1, 2, 0)
    want[pt : pt + h, pl : pl + w, :c] = img[:, :, c0 : c0 + c] ^ flip
    np.testing.assert_array_equal(buf, want)


@pytest.mark.parametrize("c, m, group, stride", [(3, 16, 1, 2), (8, 48, 1, 2), (6, 80, 2, 2), (4, 24, 1, 1)])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_symmetric_weights_every_mode(
    kernel_path: str, c: int, m: int, group: int, stride: int, layout: str
) -> None:
    """Weights without a zero point (what quantizers emit): the strided GEMM path (VNNI row blocks with the
    store fused, where the convolution uses them), an RGB first layer, output widths of one to five 16-lane
    vectors, grouped outputs written at a column offset, uint8 and int8 input, every output mode."""
    rng = np.random.default_rng(c * m + stride)
    w = rng.integers(-128, 128, (m, c // group, 3, 3)).astype(np.int8)
    bias = rng.integers(-(2**20), 2**20, m).astype(np.int32)
    scale = (rng.random(m) * 2e-4 + 1e-6).astype(np.float32)
    ms = np.array([quantize_multiplier(float(r)) for r in scale], np.int64)
    mult, shift = ms[:, 0].astype(np.int32), ms[:, 1].astype(np.int32)
    geo = {"strides": (stride, stride), "pads": (1, 1, 0, 1), "dilations": (1, 1), "group": group}
    for x_dtype, x_zp in ((np.dtype(np.uint8), 124), (np.dtype(np.int8), -3)):
        info = np.iinfo(x_dtype)
        x = rng.integers(int(info.min), int(info.max) + 1, (2, c, 19, 24)).astype(x_dtype)
        acc = conv_ref(x, x_zp, w, 0, geo["strides"], geo["pads"], geo["dilations"], group, bias)

        def run(
            requant: Requant | None, x_dtype: np.dtype = x_dtype, x: np.ndarray = x, x_zp: int = x_zp
        ) -> np.ndarray:
            f = prepare_conv(w, 0, x_dtype=x_dtype, bias=bias, requant=requant, layout=layout, **geo)
            y = f(np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x, x_zp)
            return y.transpose(0, 3, 1, 2) if layout == "NHWC" else y

        np.testing.assert_array_equal(run(None), acc)
        col = (slice(None), None, None)  # per output channel, NCHW
        rq = Requant("onnx", scale, None, None, 9, np.dtype(np.uint8), act_min=9, act_max=255)
        np.testing.assert_array_equal(run(rq), requantize_onnx(acc, scale[col], 9, 9, 255).astype(np.uint8))
        rq = Requant("tflite", None, mult, shift, -5, np.dtype(np.int8))
        want = requantize_tflite(acc, mult[col], shift[col], -5, -128, 127, dtype=np.int8)
        np.testing.assert_array_equal(run(rq), want)


@pytest.mark.parametrize("c", [1, 2, 3])
@pytest.mark.parametrize("w", [4, 8, 96, 5, 7])
@pytest.mark.parametrize("flip", [0, 0x80])
def test_nhwc_stage_rgb_words(c: int, w: int, flip: int) -> None:
    """An image of 1 to 3 channels (an RGB first layer) staged into 4-byte pixels (RGB: rows of bytes over
    views; the second image starts mid-array, any width), the padding and the spare channels filled."""
    from edgeai.kernels import conv

    rng = np.random.default_rng(w + flip + c)
    h, (pt, pl, pb, pr) = 6, (1, 2, 0, 1)
    x = rng.integers(0, 256, (2, h, w, c)).astype(np.uint8)
    buf = rng.integers(0, 256, (h + pt + pb, w + pl + pr, 4)).astype(np.uint8)
    conv.nhwc_stage(x, 1, 0, c, pt, pl, 201, flip, buf, True)
    want = np.full(buf.shape, 201, np.uint8)
    want[pt : pt + h, pl : pl + w, :c] = x[1] ^ flip
    np.testing.assert_array_equal(buf, want)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 80), cols=st.integers(1, 80), extra=st.integers(0, 5), seed=st.integers(0, 2**31))
def test_transpose_bytes_matches_numpy(rows: int, cols: int, extra: int, seed: int) -> None:
    from edgeai.kernels.transpose import pixels_to_planes, transpose_bytes

    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (rows, cols + extra)).astype(np.uint8)
    dst = np.zeros((cols, rows + extra), np.uint8)
    transpose_bytes(src.reshape(-1), 0, rows, cols, cols + extra, dst.reshape(-1), 0, rows + extra)
    np.testing.assert_array_equal(dst[:, :rows], src[:, :cols].T)
    assert not dst[:, rows:].any()  # nothing written past each destination row
    # pixel-major rows with virtual pixels [oh, wp, M] -> channel planes [M, oh, ow]
    oh, ow, m = rows % 9 + 1, cols % 20 + 1, rows % 7 + 1
    pix = rng.integers(0, 256, (oh, ow + extra, m)).astype(np.uint8)
    planes = np.empty((m, oh, ow), np.uint8)
    pixels_to_planes(pix.reshape(-1), oh, ow, ow + extra, m, planes.reshape(-1))
    np.testing.assert_array_equal(planes, pix[:, :ow].transpose(2, 0, 1))


@pytest.mark.parametrize(("s", "c", "h", "w"), [(1, 64, 37, 100), (1, 8, 6, 9), (2, 64, 41, 99), (1, 5, 1, 4)])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_depthwise_two_rows_per_pass(s: int, c: int, h: int, w: int, layout: str) -> None:
    """3x3 with dilation = stride computes two output rows per pass (NHWC: several bands, odd band tails;
    NCHW: odd plane heights)."""
    rng = np.random.default_rng(c * h)
    x = rng.integers(0, 256, (1, c, h, w)).astype(np.uint8)
    wt = rng.integers(-128, 128, (c, 1, 3, 3)).astype(np.int8)
    bias = rng.integers(-30000, 30000, c).astype(np.int32)
    geo = {"strides": (s, s), "pads": (1, 1, 1, 1), "dilations": (s, s), "group": c}
    acc = conv_ref(x, 99, wt, 3, (s, s), (1, 1, 1, 1), (s, s), c, bias)
    xin = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for rq, want in _requant_cases(rng, c):
        got = prepare_conv(wt, 3, x_dtype=np.uint8, bias=bias, requant=rq, layout=layout, **geo)(xin, 99)
        np.testing.assert_array_equal(got if layout == "NCHW" else got.transpose(0, 3, 1, 2), want(acc))


@pytest.mark.parametrize(
    ("kind", "k", "s"),
    [
        ("depthwise", 3, 1),
        ("depthwise", 3, 2),
        ("depthwise", 5, 1),
        ("regular", 3, 1),
        ("regular", 3, 2),
        ("1x1", 1, 1),
    ],
)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_scratch_reused_across_calls(kernel_path: str, kind: str, k: int, s: int, layout: str) -> None:
    """Staging buffers are kept per input size and reused: calls with new inputs, zero points and sizes
    each match the int64 reference, and no result handed out changes in a later call."""
    rng = np.random.default_rng(k * 10 + s)
    c = 8
    m, cg, group = (c, 1, c) if kind == "depthwise" else (12, c, 1)
    wt = rng.integers(-128, 128, (m, cg, k, k)).astype(np.int8)
    w_zp = rng.integers(-3, 4, m).astype(np.int8)  # nonzero: the receptive-field sums are needed
    bias = rng.integers(-30000, 30000, m).astype(np.int32)
    pads = (0, 0, 0, 0) if kind == "1x1" else (1, 1, 1, 1)
    geo = {"strides": (s, s), "pads": pads, "dilations": (1, 1), "group": group}
    f = prepare_conv(wt, w_zp, x_dtype=np.uint8, bias=bias, layout=layout, **geo)
    handed_out = []
    for h, w, x_zp in [(9, 11, 7), (9, 11, 200), (6, 5, 0), (9, 11, 31), (6, 5, 255)]:
        x = rng.integers(0, 256, (2, c, h, w)).astype(np.uint8)
        got = f(x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1)), x_zp)
        nchw = got if layout == "NCHW" else got.transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(nchw, conv_ref(x, x_zp, wt, w_zp, (s, s), pads, (1, 1), group, bias))
        handed_out.append((got, got.copy()))
    for got, snapshot in handed_out:
        np.testing.assert_array_equal(got, snapshot)
