"""INT8 ops of the native engine, bit-exact against ONNX Runtime on single-node models.

Every property test draws shapes, strides, pads, groups, scales and zero
points with hypothesis, runs the same node on ONNX Runtime (graph
optimizations off, so its own kernel runs) and on the native op (the
reference path: ``int8_kernels=False``), and requires identical arrays.
Types are restricted to the combinations ONNX Runtime's CPU kernels take.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import edgeai.ops.quantized  # noqa: F401  (registers the ops)
from edgeai.errors import ModelFormatError, UnsupportedOpError
from edgeai.ops._base import OpContext, lookup

from .ort_single_node import ort_node

MS = "com.microsoft"
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U8, S8 = np.uint8, np.int8
GEMM_TYPES = [(U8, U8), (U8, S8), (S8, S8)]  # (activation, weight) pairs ORT's kernels take


def native(
    op_type: str,
    *inputs: Any,
    attrs: dict[str, Any] | None = None,
    domain: str = "",
    opset: int = 21,
    consts: tuple[Any, ...] = (),
    num_outputs: int = 1,
    kernels: bool = False,
) -> tuple[Any, ...]:
    cls = lookup(op_type, domain, opset)
    assert cls is not None, f"{op_type} is not registered"
    ctx = OpContext(
        node_name="n0",
        op_type=op_type,
        domain=domain,
        opset=opset,
        attrs=dict(attrs or {}),
        input_consts=tuple(consts),
        num_outputs=num_outputs,
        options={"int8_kernels": kernels},
    )
    return cls(ctx).run(*inputs)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if not np.array_equal(got, want, equal_nan=got.dtype.kind == "f"):
        bad = np.argwhere(got != want)[:5]
        raise AssertionError(f"{np.sum(got != want)} elements differ, first at {bad.tolist()}")


def scales(n: int | None = None, lo: float = 1e-4, hi: float = 0.5) -> st.SearchStrategy[Any]:
    """Random float32 scales, and powers of two (exact products: rounding ties happen)."""
    pow2 = [np.float32(2.0**e) for e in range(-14, 3) if lo <= 2.0**e <= hi]
    one = st.one_of(st.floats(lo, hi, allow_nan=False).map(np.float32), st.sampled_from(pow2))
    if n is None:
        return one
    return st.lists(one, min_size=n, max_size=n).map(lambda v: np.array(v, np.float32))


def ints(dtype: Any, shape: tuple[int, ...], seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, int(info.max) + 1, shape).astype(dtype)


def zero_point(dtype: Any) -> st.SearchStrategy[Any]:
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max)).map(lambda v: np.array(v, dtype))


# -------------------------------------------------------------- Q / DQ


@SETTINGS
@given(
    dtype=st.sampled_from([U8, S8, np.uint16, np.int16]),
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    mode=st.sampled_from(["tensor", "axis", "block"]),
    data=st.data(),
)
def test_quantize_dequantize_linear(dtype: Any, shape: tuple[int, ...], mode: str, data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = (rng.standard_normal(shape) * data.draw(st.sampled_from([0.1, 10.0, 1e4]))).astype(np.float32)
    x.flat[0] = 0.5  # exact ties exercise round-half-to-even
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    attrs: dict[str, Any] = {"axis": axis}
    if mode == "tensor":
        pshape: tuple[int, ...] = ()
    elif mode == "axis":
        pshape = (shape[axis],)
    else:
        block = data.draw(st.integers(1, 3))
        attrs["block_size"] = block
        pshape = tuple(-(-d // block) if i == axis % len(shape) else d for i, d in enumerate(shape))
        assume(int(np.prod(pshape)) > 1)  # ORT reads one-element parameters as per-tensor
    s = (rng.uniform(0.01, 2.0, pshape)).astype(np.float32)
    zp = ints(dtype, pshape, rng.integers(1 << 30))
    want = ort_node("QuantizeLinear", [x, s, zp], attrs=attrs, opset=21)[0]
    got = native("QuantizeLinear", x, s, zp, attrs=attrs)[0]
    assert_same(got, want)
    want = ort_node("DequantizeLinear", [want, s, zp], attrs=attrs, opset=21)[0]
    assert_same(native("DequantizeLinear", got, s, zp, attrs=attrs)[0], want)


def test_quantize_linear_specials_match_onnxruntime() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.5, 1.5, 2.5, -0.5, -1.5, 1e30, -1e30], np.float32)
    for zp in (np.uint8(3), np.int8(-7), np.uint16(40000), np.int16(-3)):
        want = ort_node("QuantizeLinear", [x, np.float32(1.0), zp], opset=21)[0]
        assert_same(native("QuantizeLinear", x, np.float32(1.0), zp, opset=21)[0], want)


@SETTINGS
@given(dtype=st.sampled_from([U8, S8]), shape=st.sampled_from([(7,), (2, 3, 5), (1, 3, 4, 5), (2, 8, 3, 3)]),
       data=st.data())  # fmt: skip
def test_quantize_dequantize_constant_per_tensor(dtype: Any, shape: tuple[int, ...], data: st.DataObject) -> None:
    """Constant per-tensor parameters (the numba loop): ORT's bytes, also for NaN, infinities and
    ties, and for an NCHW view of an NHWC array (the result is a view of the same kind)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = (rng.standard_normal(shape) * data.draw(st.sampled_from([0.1, 10.0, 1e4]))).astype(np.float32)
    specials = [np.nan, np.inf, -np.inf, 0.5, 1.5, 2.5, -0.5, -1.5, 1e30, -1e30]
    x.flat[: len(specials)] = specials[: x.size]
    s = data.draw(scales(lo=1e-3, hi=2.0))
    zp = data.draw(zero_point(dtype))
    q = lookup("QuantizeLinear", "", 21)(OpContext("q", "QuantizeLinear", opset=21, input_consts=(None, s, zp)))
    dq = lookup("DequantizeLinear", "", 21)(OpContext("d", "DequantizeLinear", opset=21, input_consts=(None, s, zp)))
    assert q._per_tensor is not None and dq._per_tensor is not None  # the constant path is the one tested
    want = ort_node("QuantizeLinear", [x, s, zp], opset=21)[0]
    got = q.run(x, s, zp)[0]
    assert_same(got, want)
    want_dq = ort_node("DequantizeLinear", [want, s, zp], opset=21)[0]
    assert_same(dq.run(got, s, zp)[0], want_dq)
    if x.ndim == 4:
        view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        got_c = q.run(view, s, zp)[0]  # nhwc_views unset (no executor): C order
        assert_same(got_c, want)
        assert got_c.flags.c_contiguous
        nhwc_q = np.ascontiguousarray(want.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        got_dq = dq.run(nhwc_q, s, zp)[0]  # an NHWC view in, C-order NCHW out
        assert_same(got_dq, want_dq)
        assert got_dq.flags.c_contiguous
        q.nhwc_views = dq.nhwc_views = True  # what the executor sets when every reader takes views
        got_view = q.run(view, s, zp)[0]
        assert_same(got_view, want)
        assert got_view.transpose(0, 2, 3, 1).flags.c_contiguous  # NHWC in memory
        assert_same(dq.run(got_view, s, zp)[0], want_dq)
        got_nhwc = q.run(x, s, zp)[0]  # C-contiguous NCHW in, written NHWC for the readers
        assert_same(got_nhwc, want)
        assert got_nhwc.transpose(0, 2, 3, 1).flags.c_contiguous


@SETTINGS
@given(
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple),
    spread=st.sampled_from([1e-3, 1.0, 100.0]),
    shift=st.floats(-5, 5),
    seed=st.integers(0, 2**16),
)
def test_dynamic_quantize_linear(shape: tuple[int, ...], spread: float, shift: float, seed: int) -> None:
    x = (np.random.default_rng(seed).standard_normal(shape) * spread + shift).astype(np.float32)
    want = ort_node("DynamicQuantizeLinear", [x], n_outputs=3, opset=11)
    got = native("DynamicQuantizeLinear", x, opset=11, num_outputs=3)
    for g, w in zip(got, want):
        assert_same(g, w)


def test_dynamic_quantize_linear_constant_input() -> None:
    for x in (np.zeros(5, np.float32), np.full(3, 2.0, np.float32), np.full(3, -2.0, np.float32)):
        want = ort_node("DynamicQuantizeLinear", [x], n_outputs=3, opset=11)
        for g, w in zip(native("DynamicQuantizeLinear", x, opset=11, num_outputs=3), want):
            assert_same(g, w)


# ------------------------------------------------------------------- conv


@st.composite
def conv_cases(draw: st.DrawFn) -> dict[str, Any]:
    xt, wt = draw(st.sampled_from(GEMM_TYPES))
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    depthwise = draw(st.booleans())
    group = draw(st.integers(1, 6)) if depthwise else draw(st.integers(1, 3))
    cg = 1 if depthwise else draw(st.integers(1, 4))
    mg = draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 4))
    kernel = [draw(st.integers(1, 3)) for _ in range(nd)]
    spatial = [draw(st.integers(k, k + 5)) for k in kernel]
    strides = [draw(st.integers(1, 5)) for _ in range(nd)]
    attrs: dict[str, Any] = {"group": group, "strides": strides, "kernel_shape": kernel}
    if draw(st.booleans()):
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    else:
        attrs["dilations"] = [draw(st.integers(1, 2)) for _ in range(nd)]
        attrs["pads"] = [draw(st.integers(0, k - 1)) for k in kernel * 2]
        for i in range(nd):
            need = attrs["dilations"][i] * (kernel[i] - 1) + 1
            assume(spatial[i] + attrs["pads"][i] + attrs["pads"][i + nd] >= need)
    seed = draw(st.integers(0, 2**16))
    m = mg * group
    return {
        "x": ints(xt, (draw(st.integers(1, 2)), cg * group, *spatial), seed),
        "w": ints(wt, (m, cg, *kernel), seed + 1),
        "x_scale": draw(scales()),
        "x_zp": draw(zero_point(xt)),
        "w_scale": draw(st.one_of(scales(), scales(m))),
        "w_zp": np.array(0 if wt == S8 else draw(st.integers(0, 255)), wt),
        "y_scale": draw(scales(lo=0.01, hi=4.0)),
        "y_zp": draw(zero_point(xt)),
        "bias": np.random.default_rng(seed).integers(-20000, 20000, m).astype(np.int32)
        if draw(st.booleans())
        else None,
        "attrs": attrs,
    }


@SETTINGS
@given(case=conv_cases())
def test_qlinear_conv(case: dict[str, Any]) -> None:
    c = case
    ins = [c["x"], c["x_scale"], c["x_zp"], c["w"], c["w_scale"], c["w_zp"], c["y_scale"], c["y_zp"]]
    if c["bias"] is not None:
        ins.append(c["bias"])
    want = ort_node("QLinearConv", ins, attrs=c["attrs"], opset=10)[0]
    consts = (None, *ins[1:])
    assert_same(native("QLinearConv", *ins, attrs=c["attrs"], opset=10, consts=consts)[0], want)


@SETTINGS
@given(case=conv_cases())
def test_conv_integer(case: dict[str, Any]) -> None:
    c = case
    attrs = {k: v for k, v in c["attrs"].items() if k != "kernel_shape"}
    ins = [c["x"], c["w"], c["x_zp"], c["w_zp"]]
    want = ort_node("ConvInteger", ins, attrs=attrs, opset=10)[0]
    assert_same(native("ConvInteger", *ins, attrs=attrs, opset=10)[0], want)


def test_qlinear_conv_channels_last_matches_nchw() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1, 4, 5, 6)).astype(U8)
    w = rng.integers(-128, 128, (6, 2, 3, 3)).astype(S8)
    f = np.float32
    params = [f(0.02), U8(120), w, rng.uniform(0.001, 0.01, 6).astype(f), np.zeros(6, S8), f(0.1), U8(100)]
    attrs = {"group": 2, "pads": [1, 1, 1, 1], "strides": [2, 1]}
    want = ort_node("QLinearConv", [x, *params], attrs=attrs, opset=10)[0]
    got = native(
        "QLinearConv",
        np.ascontiguousarray(np.moveaxis(x, 1, -1)),
        *params,
        attrs={**attrs, "channels_last": 1},
        domain=MS,
        opset=1,
    )[0]
    assert_same(np.moveaxis(got, -1, 1), want)


# ---------------------------------------------------------------- matmul


@st.composite
def matmul_cases(draw: st.DrawFn) -> dict[str, Any]:
    at, bt = draw(st.sampled_from(GEMM_TYPES))
    m, k, n = (draw(st.integers(1, 24)) for _ in range(3))
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    seed = draw(st.integers(0, 2**16))
    return {
        "a": ints(at, (*batch, m, k), seed),
        "b": ints(bt, (k, n), seed + 1),
        "a_scale": draw(scales()),
        "a_zp": draw(zero_point(at)),
        "b_scale": draw(st.one_of(scales(), scales(n))),
        "b_zp": draw(zero_point(bt)),
        "y_scale": draw(scales(lo=0.01, hi=4.0)),
        "y_zp": draw(zero_point(at)),
    }


@SETTINGS
@given(case=matmul_cases())
def test_qlinear_matmul(case: dict[str, Any]) -> None:
    c = case
    ins = [c[k] for k in ("a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp")]
    ins[5] = np.full(np.shape(c["b_scale"]), c["b_zp"], c["b_zp"].dtype) if np.ndim(c["b_scale"]) else c["b_zp"]
    want = ort_node("QLinearMatMul", ins, opset=21)[0]
    assert_same(native("QLinearMatMul", *ins, consts=(None, *ins[1:]))[0], want)


@SETTINGS
@given(case=matmul_cases())
def test_matmul_integer(case: dict[str, Any]) -> None:
    c = case
    ins = [c["a"], c["b"], c["a_zp"], c["b_zp"]]
    want = ort_node("MatMulInteger", ins, opset=10)[0]
    assert_same(native("MatMulInteger", *ins, opset=10)[0], want)


@SETTINGS
@given(case=matmul_cases(), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_matmul_integer_to_float_and_dynamic(case: dict[str, Any], with_bias: bool, seed: int) -> None:
    c = case
    rng = np.random.default_rng(seed)
    n = c["b"].shape[1]
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    b_scale = np.broadcast_to(c["b_scale"], (n,)).astype(np.float32)
    ins = [c["a"], c["b"], c["a_scale"], b_scale, c["a_zp"], c["b_zp"], bias]
    want = ort_node("MatMulIntegerToFloat", ins, domain=MS)[0]
    assert_same(native("MatMulIntegerToFloat", *ins, domain=MS, opset=1)[0], want)
    a = (rng.standard_normal(c["a"].shape) * rng.uniform(0.1, 10)).astype(np.float32)
    ins = [a, c["b"], b_scale, c["b_zp"], bias]
    want = ort_node("DynamicQuantizeMatMul", ins, domain=MS)[0]
    assert_same(native("DynamicQuantizeMatMul", *ins, domain=MS, opset=1)[0], want)


@SETTINGS
@given(
    case=matmul_cases(),
    alpha=st.sampled_from([1.0, 0.5, 1.7]),
    trans=st.tuples(st.booleans(), st.booleans()),
    quantized_out=st.booleans(),
    with_c=st.booleans(),
)
def test_qgemm(case: dict[str, Any], alpha: float, trans: tuple[bool, bool], quantized_out: bool, with_c: bool) -> None:
    c = case
    a, b = c["a"].reshape(-1, c["a"].shape[-1]), c["b"]
    n = b.shape[1]
    a2 = np.ascontiguousarray(a.T) if trans[0] else a
    b2 = np.ascontiguousarray(b.T) if trans[1] else b
    bias = np.random.default_rng(1).integers(-5000, 5000, n).astype(np.int32) if with_c else None
    b_scale = np.broadcast_to(c["b_scale"], (n,)).astype(np.float32)
    ins = [a2, c["a_scale"], c["a_zp"], b2, b_scale, np.full(n, c["b_zp"]), bias]
    if quantized_out:
        ins += [c["y_scale"], c["y_zp"]]
    attrs = {"alpha": alpha, "transA": int(trans[0]), "transB": int(trans[1])}
    want = ort_node("QGemm", ins, attrs=attrs, domain=MS)[0]
    got = native("QGemm", *ins, attrs=attrs, domain=MS, opset=1, consts=(None, None, None, b2))[0]
    assert_same(got, want)


# ------------------------------------------------------------ elementwise

BROADCASTS = [
    ((7,), (7,)), ((3, 5), (1, 5)), ((3, 1), (1, 4)), ((1, 4), (3, 1)), ((37,), (1,)), ((1,), (37,)),
    ((2, 3, 17), (3, 1)), ((4, 1, 5), (1, 3, 5)), ((1,), (1,)),
]  # fmt: skip


@SETTINGS
@given(case=matmul_cases(), alpha=st.sampled_from([1.0, 0.5, 2.0]), trans=st.tuples(st.booleans(), st.booleans()),
       with_c=st.booleans(), mode=st.sampled_from(["onnx", "tflite"]))  # fmt: skip
def test_gemm_kernels_with_fused_requant_packed_at_construction(
    case: dict[str, Any], alpha: float, trans: tuple[bool, bool], with_c: bool, mode: str
) -> None:
    """QLinearMatMul and quantized-output QGemm with constant B and parameters pack a GEMM with
    bias and requantization fused when built; its bytes equal the reference path's (and ORT's,
    in ONNX mode)."""
    pytest.importorskip("edgeai.kernels.api")
    from edgeai.graph import Value

    c = case
    b_zp = np.full(np.shape(c["b_scale"]), c["b_zp"], c["b_zp"].dtype) if np.ndim(c["b_scale"]) else c["b_zp"]
    ins = [c["a"], c["a_scale"], c["a_zp"], c["b"], c["b_scale"], b_zp, c["y_scale"], c["y_zp"]]

    def build(op_type: str, domain: str, ins: list[Any], attrs: dict[str, Any], kernels: bool) -> Any:
        cls = lookup(op_type, domain, 21 if domain == "" else 1)
        assert cls is not None
        values = tuple(None if v is None else Value(f"v{i}") for i, v in enumerate(ins))
        ctx = OpContext(
            "g", op_type, domain, 21 if domain == "" else 1, attrs, (None, *ins[1:]), requant_mode=mode,
            options={"int8_kernels": kernels}, input_values=values,
        )  # fmt: skip
        return cls(ctx)

    ref = build("QLinearMatMul", "", ins, {}, False).run(*ins)[0]
    op = build("QLinearMatMul", "", ins, {}, True)
    assert op.fused is not None
    assert_same(op.run(*ins)[0], ref)
    if mode == "onnx":
        assert_same(ref, ort_node("QLinearMatMul", ins, opset=21)[0])

    a, b = c["a"].reshape(-1, c["a"].shape[-1]), c["b"]
    n = b.shape[1]
    a2 = np.ascontiguousarray(a.T) if trans[0] else a
    b2 = np.ascontiguousarray(b.T) if trans[1] else b
    bias = np.random.default_rng(1).integers(-5000, 5000, n).astype(np.int32) if with_c else None
    b_scale = np.broadcast_to(c["b_scale"], (n,)).astype(np.float32)
    gins = [a2, c["a_scale"], c["a_zp"], b2, b_scale, np.full(n, c["b_zp"]), bias, c["y_scale"], c["y_zp"]]
    attrs = {"alpha": alpha, "transA": int(trans[0]), "transB": int(trans[1])}
    ref = build("QGemm", MS, gins, attrs, False).run(*gins)[0]
    op = build("QGemm", MS, gins, attrs, True)
    assert op.fused is not None
    assert_same(op.run(*gins)[0], ref)
    if mode == "onnx":
        assert_same(ref, ort_node("QGemm", gins, attrs=attrs, domain=MS)[0])


@SETTINGS
@given(
    dtype=st.sampled_from([U8, S8]),
    shapes=st.sampled_from(BROADCASTS),
    op=st.sampled_from(["QLinearAdd", "QLinearMul"]),
    data=st.data(),
)
def test_qlinear_binary(dtype: Any, shapes: tuple[Any, Any], op: str, data: st.DataObject) -> None:
    seed = data.draw(st.integers(0, 2**16))
    a, b = ints(dtype, shapes[0], seed), ints(dtype, shapes[1], seed + 1)
    ins = [a, data.draw(scales()), data.draw(zero_point(dtype)), b, data.draw(scales())]
    ins += [data.draw(zero_point(dtype)), data.draw(scales(lo=1e-3, hi=1.0)), data.draw(zero_point(dtype))]
    want = ort_node(op, ins, n_feeds=4, domain=MS)[0]
    assert_same(native(op, *ins, domain=MS, opset=1)[0], want)


def test_qlinear_add_every_pair() -> None:
    """All 65536 (a, b) pairs for a few parameter sets: the FMA order must match exactly."""
    rng = np.random.default_rng(3)
    for dtype in (U8, S8):
        info = np.iinfo(dtype)
        vals = np.arange(info.min, int(info.max) + 1)
        a, b = np.repeat(vals, vals.size).astype(dtype), np.tile(vals, vals.size).astype(dtype)
        for _ in range(4):
            sa, sb, sc = (np.float32(rng.uniform(0.001, 0.2)) for _ in range(3))
            za, zb, zc = (dtype(rng.integers(info.min, info.max)) for _ in range(3))
            ins = [a, sa, za, b, sb, zb, sc, zc]
            assert_same(
                native("QLinearAdd", *ins, domain=MS, opset=1)[0], ort_node("QLinearAdd", ins, n_feeds=4, domain=MS)[0]
            )


def test_qlinear_add_constant_parameters_every_pair() -> None:
    """Constant scales and zero points (the fast same-shape loop): ORT's bytes for all 65536 pairs,
    and an NCHW view of NHWC inputs gives the same bytes as a view of the same kind."""
    rng = np.random.default_rng(4)
    cls = lookup("QLinearAdd", MS, 1)
    for dtype in (U8, S8):
        info = np.iinfo(dtype)
        vals = np.arange(info.min, int(info.max) + 1)
        a, b = np.repeat(vals, vals.size).astype(dtype), np.tile(vals, vals.size).astype(dtype)
        for _ in range(3):
            sa, sb, sc = (np.float32(rng.uniform(0.001, 0.2)) for _ in range(3))
            za, zb, zc = (dtype(rng.integers(info.min, info.max)) for _ in range(3))
            ins = [a, sa, za, b, sb, zb, sc, zc]
            op = cls(OpContext("n0", "QLinearAdd", MS, 1, input_consts=(None, sa, za, None, sb, zb, sc, zc)))
            want = ort_node("QLinearAdd", ins, n_feeds=4, domain=MS)[0]
            assert_same(op.run(*ins)[0], want)
            nhwc_a, nhwc_b = a.reshape(1, 16, 16, 256), b.reshape(1, 16, 16, 256)
            view_a, view_b = nhwc_a.transpose(0, 3, 1, 2), nhwc_b.transpose(0, 3, 1, 2)
            got = op.run(view_a, sa, za, view_b, sb, zb, sc, zc)[0]
            assert_same(got, want.reshape(1, 16, 16, 256).transpose(0, 3, 1, 2))
            assert got.flags.c_contiguous  # nhwc_views unset (no executor): C order
            op.nhwc_views = True  # what the executor sets when every reader takes views
            got = op.run(view_a, sa, za, view_b, sb, zb, sc, zc)[0]
            assert_same(got, want.reshape(1, 16, 16, 256).transpose(0, 3, 1, 2))
            assert got.strides == view_a.strides  # still NHWC in memory
            # a view against a contiguous array, and a broadcast: the general path, same bytes
            got = op.run(view_a, sa, za, np.ascontiguousarray(view_b), sb, zb, sc, zc)[0]
            assert_same(got, want.reshape(1, 16, 16, 256).transpose(0, 3, 1, 2))
            row = b[:256].reshape(1, 256)
            want_b = ort_node("QLinearAdd", [a.reshape(256, 256), sa, za, row, sb, zb, sc, zc], n_feeds=4, domain=MS)
            assert_same(op.run(a.reshape(256, 256), sa, za, row, sb, zb, sc, zc)[0], want_b[0])


@SETTINGS
@given(
    dtype=st.sampled_from([U8, S8]),
    op=st.sampled_from(["QLinearSigmoid", "QLinearLeakyRelu"]),
    alpha=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_qlinear_lookup_ops(dtype: Any, op: str, alpha: float, data: st.DataObject) -> None:
    info = np.iinfo(dtype)
    x = np.arange(info.min, int(info.max) + 1).astype(dtype)  # every input value
    y_scale = data.draw(st.one_of(st.just(np.float32(1 / 256)), scales(lo=1e-3, hi=0.05)))
    ins = [x, data.draw(scales(lo=1e-3, hi=0.3)), data.draw(zero_point(dtype)), y_scale, data.draw(zero_point(dtype))]
    attrs = {"alpha": alpha} if op == "QLinearLeakyRelu" else {}
    want = ort_node(op, ins, attrs=attrs, domain=MS)[0]
    assert_same(native(op, *ins, attrs=attrs, domain=MS, opset=1)[0], want)


# ------------------------------------------------------------------ pools


@SETTINGS
@given(dtype=st.sampled_from([U8, S8]), channels_last=st.booleans(), data=st.data())
def test_qlinear_global_average_pool(dtype: Any, channels_last: bool, data: st.DataObject) -> None:
    shape = [data.draw(st.integers(1, 2)), data.draw(st.integers(1, 8))]
    shape += [data.draw(st.integers(1, 12)) for _ in range(data.draw(st.integers(1, 3)))]
    x = ints(dtype, tuple(shape), data.draw(st.integers(0, 2**16)))
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    ins = [x, data.draw(scales()), data.draw(zero_point(dtype)), data.draw(scales()), data.draw(zero_point(dtype))]
    assume(2.0**-32 <= ins[1] / (ins[3] * np.prod(shape[2:])) < 256)  # ORT refuses other ratios
    attrs = {"channels_last": int(channels_last)}
    want = ort_node("QLinearGlobalAveragePool", ins, attrs=attrs, domain=MS)[0]
    assert_same(native("QLinearGlobalAveragePool", *ins, attrs=attrs, domain=MS, opset=1)[0], want)


@SETTINGS
@given(dtype=st.sampled_from([U8, S8]), channels_last=st.booleans(), data=st.data())
def test_qlinear_average_pool(dtype: Any, channels_last: bool, data: st.DataObject) -> None:
    nd = data.draw(st.integers(1, 3))
    spatial = [data.draw(st.integers(2, 8)) for _ in range(nd)]
    kernel = [data.draw(st.integers(1, min(4, s))) for s in spatial]
    attrs: dict[str, Any] = {
        "kernel_shape": kernel,
        "strides": [data.draw(st.integers(1, 5)) for _ in range(nd)],
        "count_include_pad": int(data.draw(st.booleans())),
        "ceil_mode": int(data.draw(st.booleans())),
        "channels_last": int(channels_last),
    }
    if data.draw(st.booleans()):
        attrs["auto_pad"] = data.draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    else:
        attrs["pads"] = [data.draw(st.integers(0, k - 1)) for k in kernel * 2]
    x = ints(dtype, (2, data.draw(st.integers(1, 4)), *spatial), data.draw(st.integers(0, 2**16)))
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    ins = [x, data.draw(scales()), data.draw(zero_point(dtype)), data.draw(scales()), data.draw(zero_point(dtype))]
    if kernel == spatial:  # ORT runs its global pool, which refuses some scale ratios
        assume(2.0**-32 <= ins[1] / (ins[3] * np.prod(spatial)) < 256)
    want = ort_node("QLinearAveragePool", ins, attrs=attrs, domain=MS)[0]
    assert_same(native("QLinearAveragePool", *ins, attrs=attrs, domain=MS, opset=1)[0], want)


# --------------------------------------------------------- concat, softmax


@SETTINGS
@given(dtype=st.sampled_from([U8, S8]), n=st.integers(1, 4), axis=st.sampled_from([0, 1, -1]), data=st.data())
def test_qlinear_concat(dtype: Any, n: int, axis: int, data: st.DataObject) -> None:
    ys, yz = data.draw(scales()), data.draw(zero_point(dtype))
    ins: list[Any] = [ys, yz]
    for i in range(n):
        shape = [2, 3, 4]
        shape[axis] = data.draw(st.integers(1, 3))
        same = data.draw(st.booleans())
        ins += [ints(dtype, tuple(shape), i)]
        ins += [ys, yz] if same else [data.draw(scales()), data.draw(zero_point(dtype))]
    want = ort_node("QLinearConcat", ins, n_feeds=0, attrs={"axis": axis}, domain=MS)[0]
    assert_same(native("QLinearConcat", *ins, attrs={"axis": axis}, domain=MS, opset=1)[0], want)


@SETTINGS
@given(dtype=st.sampled_from([U8, S8]), opset=st.sampled_from([11, 13]), data=st.data())
def test_qlinear_softmax(dtype: Any, opset: int, data: st.DataObject) -> None:
    shape = tuple(data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=4)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = ints(dtype, shape, data.draw(st.integers(0, 2**16)))
    if data.draw(st.booleans()):  # a few distinct values: equal entries, rows whose softmax ties at .5
        x = (np.iinfo(dtype).max - x.astype(np.int32) % data.draw(st.integers(1, 3))).astype(dtype)
    tie = st.integers(1, 300).map(lambda k: np.float32(1 / (k + 0.5)))  # floor(1 / y_scale) = k
    y_scale = data.draw(st.one_of(st.just(np.float32(1 / 256)), scales(lo=5e-4, hi=0.05), tie))
    y_zp = dtype(data.draw(st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).min) + 40)))
    ins = [x, data.draw(scales(lo=1e-3, hi=0.5)), data.draw(zero_point(dtype)), y_scale, y_zp]
    attrs = {"axis": axis, "opset": opset}
    want = ort_node("QLinearSoftmax", ins, attrs=attrs, domain=MS)[0]
    for kernels in (False, True):  # the numpy reference and the numba row loop
        assert_same(native("QLinearSoftmax", *ins, attrs=attrs, domain=MS, opset=1, kernels=kernels)[0], want)


def _softmax_vs_ort(x: np.ndarray, x_scale: float, y_scale: float, y_zp: int, axis: int = -1, opset: int = 13) -> None:
    ins = [x, np.float32(x_scale), x.dtype.type(0), np.float32(y_scale), x.dtype.type(y_zp)]
    attrs = {"axis": axis, "opset": opset}
    want = ort_node("QLinearSoftmax", ins, attrs=attrs, domain=MS)[0]
    for kernels in (False, True):
        assert_same(native("QLinearSoftmax", *ins, attrs=attrs, domain=MS, opset=1, kernels=kernels)[0], want)


def test_qlinear_softmax_tie_of_two_equal_values() -> None:
    """0.5 * floor(1 / 0.03172694) = 15.5 exactly; float32 t * (31 / s) came out 15.499999 and rounded to 15."""
    _softmax_vs_ort(ints(U8, (2, 5, 2), 8086), 0.5, 0.03172694, 0, axis=-1, opset=11)


def test_qlinear_softmax_rounds_the_double_quotient() -> None:
    """t * c / s = 75.4999993 in double: ORT rounds that (75), not its float32 rounding 75.5 (76)."""
    x = np.array([[124, 127, 126, 124, 124, 126, 125, 126]], S8)
    _softmax_vs_ort(x, 0.47073302, 0.0008074283, 0)


@pytest.mark.parametrize("dtype", [U8, S8])
def test_qlinear_softmax_all_equal_rows_at_half(dtype: Any) -> None:
    """Rows of D equal values with floor(1 / y_scale) / D = k + 0.5: exact ties, or near ties set by the
    float32 row sum (D * t rounds differently for each D, through the table's float32 logf headroom)."""
    for d in (2, 3, 5, 6, 8, 10, 12, 14, 16, 18, 20, 32, 33, 48):
        for k in (0, 1, 4, 8, 53):
            x = np.full((3, d), 100, dtype)
            x[1] = 7
            _softmax_vs_ort(x, 0.5, 1 / (d * (k + 0.5) + 0.25), 3)


@pytest.mark.parametrize("dtype", [U8, S8])
def test_qlinear_softmax_extreme_output_scales(dtype: Any) -> None:
    """Saturation at 255 / 127 (int8 used to wrap past 127 in old ORT), y_scale above 1 (c = 0: the zero point
    only), and a subnormal y_scale whose float32 reciprocal overflows (ORT keeps the real 1 / y_scale)."""
    lo = int(np.iinfo(dtype).min)
    x = np.array([[100, 90, 100, 40], [5, 5, 5, 5], [100, 99, 98, 97], [100, 0, 0, 0]], dtype)
    for y_scale in (1 / 256, 1e-3, 1e-5, 1e-9, 1e-30, 1e-39, 1e-45, 0.9, 1.0, 1.5, 100.0):
        for y_zp in (lo, lo + 3, 0):
            _softmax_vs_ort(x, 0.1, y_scale, y_zp)
    # entries far below the max: tiny (x_scale 0.5) and zero (x_scale 2) table values times a huge 1 / y_scale
    x = np.array([[int(np.iinfo(dtype).max), lo, lo + 1]], dtype)
    for x_scale in (0.5, 2.0):
        for y_scale in (1e-3, 1e-39, 1e-45):
            _softmax_vs_ort(x, x_scale, y_scale, lo + 7)


def test_qlinear_softmax_long_rows_use_c_logf() -> None:
    """D = 60594 is the first reduce length where float32(log(FLT_MAX / D)) and C logf differ by one ulp."""
    x = (250 - np.random.default_rng(0).integers(0, 3, (2, 60594))).astype(U8)
    _softmax_vs_ort(x, 0.12002618, 3.0091707e-07, 0)


@pytest.mark.parametrize("x_scale", [0.0, -0.1, float("nan"), -float("inf")])
def test_qlinear_softmax_refuses_a_non_positive_x_scale(x_scale: float) -> None:
    ins = [np.zeros((1, 4), U8), np.float32(x_scale), U8(0), np.float32(1 / 256), U8(0)]
    attrs = {"axis": -1, "opset": 13}
    with pytest.raises(Exception, match="x_scale must be positive"):  # ORT's own check, at run time
        ort_node("QLinearSoftmax", ins, attrs=attrs, domain=MS)
    for kernels in (False, True):
        with pytest.raises(ModelFormatError, match="x_scale must be positive"):
            native("QLinearSoftmax", *ins, attrs=attrs, domain=MS, opset=1, kernels=kernels)


def test_qlinear_softmax_refuses_a_scalar_input() -> None:
    """ORT's shape inference refuses a rank-0 X for any axis; numpy's AxisError is not an edgeai error."""
    ins = [U8(3), np.float32(0.1), U8(0), np.float32(1 / 256), U8(0)]
    for kernels in (False, True):
        with pytest.raises(ModelFormatError, match="rank 1 or more"):
            native("QLinearSoftmax", *ins, attrs={"axis": 0, "opset": 13}, domain=MS, opset=1, kernels=kernels)


def test_qlinear_softmax_random_near_ties() -> None:
    """Random scales, rows of few distinct values (sums of equal terms, near-ties), long rows (the sum order)
    and every axis, both opsets, both types, against ORT."""
    rng = np.random.default_rng(20261127)
    for i in range(60):
        dtype = (U8, S8)[int(rng.integers(2))]
        info = np.iinfo(dtype)
        shape = [int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 4)))]
        axis = int(rng.integers(-len(shape), len(shape)))
        shape[axis] = int(rng.choice([int(rng.integers(1, 20)), int(rng.integers(20, 300))]))
        x = (int(info.max) - rng.integers(0, int(rng.integers(1, 4)), shape)).astype(dtype)
        x_scale = float(rng.choice([rng.uniform(1e-3, 0.5), 2.0 ** -int(rng.integers(1, 10))]))
        y_scale = float(rng.choice([1 / 256, rng.uniform(1e-6, 1.5), 1 / (int(rng.integers(1, 3000)) + 0.5)]))
        _softmax_vs_ort(x, x_scale, y_scale, int(rng.integers(info.min, int(info.max) + 1)), axis, (11, 13)[i % 2])


# ----------------------------------------------------------------- errors


def test_bad_parameters_raise_clear_errors() -> None:
    x = np.zeros((1, 2, 3, 3), U8)
    w = np.zeros((4, 2, 1, 1), S8)
    f = np.float32
    with pytest.raises(ModelFormatError, match="w_scale must be a scalar or have 4 entries"):
        native("QLinearConv", x, f(1), U8(0), w, np.ones(3, f), S8(0), f(1), U8(0), opset=10)
    with pytest.raises(ModelFormatError, match="bias must be int32"):
        native("QLinearConv", x, f(1), U8(0), w, f(1), S8(0), f(1), U8(0), np.zeros(4, np.int64), opset=10)
    with pytest.raises(UnsupportedOpError, match="float32"):
        native(
            "QLinearMatMul", np.zeros((2, 2), np.float32), f(1), U8(0), np.zeros((2, 2), S8), f(1), S8(0), f(1), U8(0)
        )
    with pytest.raises(ModelFormatError, match="per-axis scale/zero point has 3 entries"):
        native("QuantizeLinear", np.zeros((2, 4), np.float32), np.ones(3, f), np.zeros(3, U8), attrs={"axis": 1})
    with pytest.raises(ModelFormatError, match="do not agree on K"):
        native("MatMulInteger", np.zeros((2, 3), U8), np.zeros((4, 2), U8))


# ------------------------------------------------------ fast kernel hookup


def test_fast_kernels_agree_with_reference() -> None:
    """When edgeai.kernels provides a kernel, the op's result must not change."""
    pytest.importorskip("edgeai.kernels.api")
    rng = np.random.default_rng(5)
    f = np.float32
    a = rng.integers(0, 256, (5, 40)).astype(U8)
    b = rng.integers(-128, 128, (40, 12)).astype(S8)
    ins = [a, f(0.02), U8(7), b, rng.uniform(0.001, 0.01, 12).astype(f), S8(0), f(0.3), U8(128)]
    ref = native("QLinearMatMul", *ins, consts=(None, *ins[1:]))[0]
    fast = native("QLinearMatMul", *ins, consts=(None, *ins[1:]), kernels=True)[0]
    assert_same(fast, ref)
    assert_same(ref, ort_node("QLinearMatMul", ins, opset=21)[0])


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_fast_conv_kernel_agrees_with_reference(mode: str) -> None:
    """QLinearConv through edgeai.kernels (fused bias + requantization) gives the reference's bytes."""
    pytest.importorskip("edgeai.kernels.api")
    rng = np.random.default_rng(6)
    f = np.float32
    for group, cg, m in ((1, 5, 7), (3, 2, 6), (8, 1, 8)):
        x = rng.integers(0, 256, (2, group * cg, 7, 6)).astype(U8)
        w = rng.integers(-128, 128, (m, cg, 3, 3)).astype(S8)
        bias = rng.integers(-3000, 3000, m).astype(np.int32)
        ins = [x, f(0.03), U8(9), w, rng.uniform(0.001, 0.01, m).astype(f), np.zeros(m, S8), f(0.2), U8(120), bias]
        attrs = {"group": group, "pads": [1, 0, 1, 2], "strides": [2, 1]}
        cls = lookup("QLinearConv", "", 10)
        assert cls is not None
        outs = []
        for kernels in (False, True):
            ctx = OpContext(
                "c", "QLinearConv", "", 10, dict(attrs), (None, *ins[1:]), requant_mode=mode,
                options={"int8_kernels": kernels},
            )  # fmt: skip
            outs.append(cls(ctx).run(*ins)[0])
        ref = outs[0]
        assert_same(outs[1], ref)
        if mode == "onnx":
            assert_same(ref, ort_node("QLinearConv", ins, attrs=attrs, opset=10)[0])


@SETTINGS
@given(case=conv_cases(), mode=st.sampled_from(["onnx", "tflite"]))
def test_qlinear_conv_nhwc_kernel_packed_at_construction(case: dict[str, Any], mode: str) -> None:
    """Constant parameters and static padding: the NHWC kernel is packed when the op is built, and
    a C-contiguous input, an NCHW view of an NHWC array, and results handed on as views (what the
    executor enables) all give the reference's bytes (and ORT's, in ONNX mode)."""
    pytest.importorskip("edgeai.kernels.api")
    from edgeai.graph import Value
    from edgeai.ops.quantized.reference import conv_output_pads

    c = case
    assume(c["x"].ndim == 4)
    ins = [c["x"], c["x_scale"], c["x_zp"], c["w"], c["w_scale"], c["w_zp"], c["y_scale"], c["y_zp"]]
    if c["bias"] is not None:
        ins.append(c["bias"])
    cls = lookup("QLinearConv", "", 10)
    assert cls is not None
    values = (Value("x", c["x"].dtype, c["x"].shape), *(Value(f"p{i}") for i in range(1, len(ins))))

    def build(kernels: bool) -> Any:
        return cls(
            OpContext(
                "c", "QLinearConv", "", 10, dict(c["attrs"]), (None, *ins[1:]), requant_mode=mode,
                options={"int8_kernels": kernels}, input_values=values,
            )
        )  # fmt: skip

    ref = build(False).run(*ins)[0]
    if mode == "onnx":
        assert_same(ref, ort_node("QLinearConv", ins, attrs=c["attrs"], opset=10)[0])
    op = build(True)
    a = c["attrs"]
    pads = conv_output_pads(c["x"].shape[2:], c["w"].shape[2:], a["strides"], a.get("dilations", [1, 1]),
                            a.get("pads"), a.get("auto_pad", "NOTSET"))  # fmt: skip
    # packed now, not at the first run (SAME padding that crops the input runs the reference)
    assert (op.nhwc_kernel is not None) == (min(pads) >= 0)
    view = np.ascontiguousarray(c["x"].transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for x in (c["x"], view):
        got = op.run(x, *ins[1:])[0]
        assert_same(got, ref)
        assert got.flags.c_contiguous
    op.nhwc_views = True
    got = op.run(view, *ins[1:])[0]
    assert_same(got, ref)
    if op.nhwc_kernel is not None:
        assert got.transpose(0, 2, 3, 1).flags.c_contiguous  # NHWC in memory, handed on without a copy


@pytest.mark.parametrize("xt, wt", GEMM_TYPES)
def test_pointwise_qlinear_conv_runs_as_one_gemm(xt: Any, wt: Any) -> None:
    """A 1x1, stride-1, unpadded, one-group QLinearConv packs a GEMM over the pixels (per-channel
    weight zero points and scales, bias): ORT's bytes for NCHW input and for NHWC views."""
    pytest.importorskip("edgeai.kernels.api")
    from edgeai.graph import Value
    from edgeai.ops.quantized.qlinear_conv import PointwiseConv

    rng = np.random.default_rng(9)
    cls = lookup("QLinearConv", "", 10)
    assert cls is not None
    m, c = 37, 21
    for shape in ((1, c, 5, 7), (2, c, 3, 3)):
        x = ints(xt, shape, 1)
        w = ints(wt, (m, c, 1, 1), 2)
        w_zp = np.zeros(m, wt) if wt == S8 else rng.integers(0, 256, m).astype(U8)
        bias = rng.integers(-5000, 5000, m).astype(np.int32)
        ins = [x, np.float32(0.03), xt(7), w, rng.uniform(0.001, 0.02, m).astype(np.float32), w_zp]
        ins += [np.float32(0.2), xt(-5 if xt == S8 else 130), bias]
        values = (Value("x", x.dtype, ("N", *shape[1:])), *(Value(f"p{i}") for i in range(1, 9)))
        op = cls(OpContext("c", "QLinearConv", "", 10, {}, (None, *ins[1:]), input_values=values))
        assert isinstance(op.nhwc_kernel, PointwiseConv)
        want = ort_node("QLinearConv", ins, opset=10)[0]
        assert_same(op.run(*ins)[0], want)
        op.nhwc_views = True
        view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        got = op.run(view, *ins[1:])[0]
        assert_same(got, want)
        assert got.transpose(0, 2, 3, 1).flags.c_contiguous


def test_same_padding_kernel_is_used_only_for_the_size_it_was_packed_for() -> None:
    """SAME pads are resolved for the input size the graph declares; another size at run time
    takes the shape-checked path and still gives ORT's bytes."""
    pytest.importorskip("edgeai.kernels.api")
    from edgeai.graph import Value

    rng = np.random.default_rng(10)
    cls = lookup("QLinearConv", "", 10)
    assert cls is not None
    w = rng.integers(-127, 128, (6, 4, 3, 3)).astype(S8)
    params = [np.float32(0.05), U8(3), w, np.float32(0.01), S8(0), np.float32(0.3), U8(128)]
    attrs = {"auto_pad": "SAME_UPPER", "strides": [2, 2]}
    values = (Value("x", np.dtype(U8), (1, 4, 8, 8)), *(Value(f"p{i}") for i in range(1, 8)))
    op = cls(OpContext("c", "QLinearConv", "", 10, attrs, (None, *params), input_values=values))
    assert op.nhwc_kernel is not None
    for hw in (8, 7, 9):
        x = rng.integers(0, 256, (1, 4, hw, hw)).astype(U8)
        assert_same(op.run(x, *params)[0], ort_node("QLinearConv", [x, *params], attrs=attrs, opset=10)[0])


def test_channels_last_qlinear_conv_packed_with_same_padding() -> None:
    """com.microsoft QLinearConv with channels_last=1 declares an NHWC input: SAME pads are resolved
    from its H and W, the kernel is packed at construction and gives ORT's (NCHW) bytes."""
    pytest.importorskip("edgeai.kernels.api")
    from edgeai.graph import Value

    rng = np.random.default_rng(13)
    x = rng.integers(0, 256, (1, 4, 7, 10)).astype(U8)
    w = rng.integers(-128, 128, (6, 4, 3, 3)).astype(S8)
    f = np.float32
    params = [f(0.02), U8(120), w, rng.uniform(0.001, 0.01, 6).astype(f), np.zeros(6, S8), f(0.1), U8(100)]
    attrs = {"auto_pad": "SAME_UPPER", "strides": [2, 2]}
    want = ort_node("QLinearConv", [x, *params], attrs=attrs, opset=10)[0]
    cls = lookup("QLinearConv", MS, 1)
    assert cls is not None
    values = (Value("x", np.dtype(U8), (1, 7, 10, 4)), *(Value(f"p{i}") for i in range(1, 8)))
    ctx = OpContext("c", "QLinearConv", MS, 1, {**attrs, "channels_last": 1}, (None, *params), input_values=values)
    op = cls(ctx)
    assert op.nhwc_kernel is not None and op._same_spatial == (7, 10)
    got = op.run(np.ascontiguousarray(np.moveaxis(x, 1, -1)), *params)[0]
    assert_same(np.moveaxis(got, -1, 1), want)


def test_kernels_run_parallel_only_for_enough_work() -> None:
    """With threads=2, a convolution packed at construction gets a second thread only when one call
    has at least 2 * MACS_PER_THREAD multiply-adds; the bytes are the same either way."""
    pytest.importorskip("edgeai.kernels.api")
    from edgeai.graph import Value
    from edgeai.ops.quantized._common import MACS_PER_THREAD

    rng = np.random.default_rng(8)
    cls = lookup("QLinearConv", "", 10)
    assert cls is not None
    w = rng.integers(-127, 128, (64, 64, 3, 3)).astype(S8)
    f = np.float32
    for hw, want_threads in ((8, 1), (64, 2)):
        assert (hw * hw * w.size >= 2 * MACS_PER_THREAD) == (want_threads == 2)
        x = rng.integers(0, 256, (1, 64, hw, hw)).astype(U8)
        ins = [x, f(0.02), U8(100), w, f(0.004), S8(0), f(0.3), U8(110)]
        values = (Value("x", x.dtype, ("N", 64, hw, hw)), *(Value(f"p{i}") for i in range(1, 8)))
        outs = []
        for threads in (1, 2):
            ctx = OpContext(
                "c", "QLinearConv", "", 10, {"pads": [1, 1, 1, 1]}, (None, *ins[1:]),
                options={"threads": threads}, input_values=values,
            )  # fmt: skip
            op = cls(ctx)
            assert op.nhwc_kernel is not None
            assert op.nhwc_kernel.threads == (1 if threads == 1 else want_threads)
            outs.append(op.run(*ins)[0])
        assert_same(outs[1], outs[0])
        assert_same(outs[0], ort_node("QLinearConv", ins, attrs={"pads": [1, 1, 1, 1]}, opset=10)[0])


# ------------------------------------------------------------------- LSTM


@SETTINGS
@given(
    dims=st.tuples(*(st.integers(1, 6) for _ in range(4))),
    direction=st.sampled_from(["forward", "reverse", "bidirectional"]),
    wdt=st.sampled_from([S8, U8]),
    per_column=st.booleans(),
    with_bias=st.booleans(),
    with_state=st.booleans(),
    extras=st.sets(st.sampled_from(["peepholes", "clip", "input_forget", "sequence_lens"])),
    seed=st.integers(0, 2**16),
)
def test_dynamic_quantize_lstm(
    dims: tuple[int, int, int, int], direction: str, wdt: Any, per_column: bool, with_bias: bool,
    with_state: bool, extras: set[str], seed: int,
) -> None:  # fmt: skip
    seq, batch, inp, hid = dims
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    f = np.float32
    shape = (d, 4 * hid) if per_column else (d,)
    zp = np.zeros(shape, wdt) if wdt == S8 else rng.integers(100, 150, shape).astype(wdt)
    assume(wdt == S8 or not per_column)  # ORT refuses per-column uint8 zero points
    ins = [
        (rng.standard_normal((seq, batch, inp)) * 2).astype(f),
        ints(wdt, (d, inp, 4 * hid), seed),
        ints(wdt, (d, hid, 4 * hid), seed + 1),
        (rng.standard_normal((d, 8 * hid)) * 0.3).astype(f) if with_bias else None,
        rng.integers(1, seq + 1, batch).astype(np.int32) if "sequence_lens" in extras else None,
        (rng.standard_normal((d, batch, hid)) * 0.5).astype(f) if with_state else None,
        (rng.standard_normal((d, batch, hid)) * 0.5).astype(f) if with_state else None,
        (rng.standard_normal((d, 3 * hid)) * 0.5).astype(f) if "peepholes" in extras else None,
        rng.uniform(0.002, 0.03, shape).astype(f),
        zp,
        rng.uniform(0.002, 0.03, shape).astype(f),
        zp.copy(),
    ]
    attrs: dict[str, Any] = {"hidden_size": hid, "direction": direction}
    if "clip" in extras:
        attrs["clip"] = 0.8
    if "input_forget" in extras:
        attrs["input_forget"] = 1
    want = ort_node("DynamicQuantizeLSTM", ins, n_outputs=3, attrs=attrs, domain=MS)
    got = native("DynamicQuantizeLSTM", *ins, attrs=attrs, domain=MS, opset=1, num_outputs=3)
    for g, w in zip(got, want):
        assert_same(g, w)


def test_dynamic_quantize_lstm_bad_input() -> None:
    with pytest.raises(UnsupportedOpError, match="activations"):
        attrs = {"hidden_size": 2, "activations": ["Relu", "Tanh", "Tanh"]}
        native("DynamicQuantizeLSTM", attrs=attrs, domain=MS, opset=1)
    x, w = np.zeros((2, 1, 3), np.float32), np.zeros((1, 3, 8), S8)
    r, s, z = np.zeros((1, 2, 8), S8), np.ones(1, np.float32), np.zeros(1, S8)
    with pytest.raises(ModelFormatError, match=r"sequence_lens must be 1 lengths in 1\.\.2"):
        native(
            "DynamicQuantizeLSTM", x, w, r, None, np.array([3], np.int32), None, None, None, s, z, s, z,
            attrs={"hidden_size": 2}, domain=MS, opset=1,
        )  # fmt: skip


@pytest.mark.parametrize("kind", ["pointwise", "3x3-same", "depthwise"])
def test_bound_conv_step_gives_ort_bytes(kind: str) -> None:
    """QLinearConv.bind_static (the function of ``x`` alone the executor calls): ORT's bytes for a
    C-contiguous input and an NHWC view, as a view or in C order as ``nhwc_views`` says, and through
    run()'s checked path for another SAME-padded size or an input of another dtype."""
    pytest.importorskip("edgeai.kernels.api")
    from edgeai.graph import Value

    rng = np.random.default_rng(21)
    cls = lookup("QLinearConv", "", 10)
    assert cls is not None
    c, m, group, k = {"pointwise": (12, 20, 1, 1), "3x3-same": (6, 10, 1, 3), "depthwise": (16, 16, 16, 3)}[kind]
    w = rng.integers(-127, 128, (m, c // group, k, k)).astype(S8)
    params = [np.float32(0.04), U8(9), w, rng.uniform(0.002, 0.02, m).astype(np.float32), np.zeros(m, S8)]
    params += [np.float32(0.25), U8(120), rng.integers(-3000, 3000, m).astype(np.int32)]
    attrs: dict[str, Any] = {"group": group}
    if kind == "3x3-same":
        attrs.update(auto_pad="SAME_UPPER", strides=[2, 2])
    elif kind == "depthwise":
        attrs.update(pads=[1, 1, 1, 1])
    values = (Value("x", np.dtype(U8), (1, c, 8, 8)), *(Value(f"p{i}") for i in range(1, 9)))
    for views in (False, True):
        op = cls(OpContext("c", "QLinearConv", "", 10, attrs, (None, *params), input_values=values))
        op.nhwc_views = views
        spec = op.bind_static()
        assert spec is not None and spec[1] == (0,)
        step = spec[0]
        for hw in (8, 7) if kind == "3x3-same" else (8,):
            x = rng.integers(0, 256, (1, c, hw, hw)).astype(U8)
            want = ort_node("QLinearConv", [x, *params], attrs=attrs, opset=10)[0]
            view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            for arg in (x, view):
                got = step(arg)
                assert type(got) is tuple and len(got) == 1
                assert_same(got[0], want)
                if views and hw == 8:
                    assert got[0].transpose(0, 2, 3, 1).flags.c_contiguous
                elif not views:
                    assert got[0].flags.c_contiguous
        with pytest.raises(UnsupportedOpError):  # an int16 input: run()'s checks, not the kernel
            step(rng.integers(0, 256, (1, c, 8, 8)).astype(np.int16))


def test_channels_last_and_unpacked_convs_bind_no_step() -> None:
    """com.microsoft channels_last=1 (run() moves the axes) and a conv with a run-time weight keep op.run."""
    from edgeai.graph import Value

    rng = np.random.default_rng(22)
    w = rng.integers(-128, 128, (6, 4, 3, 3)).astype(S8)
    params = [np.float32(0.02), U8(120), w, np.float32(0.01), S8(0), np.float32(0.1), U8(100)]
    values = (Value("x", np.dtype(U8), (1, 7, 10, 4)), *(Value(f"p{i}") for i in range(1, 8)))
    ms = lookup("QLinearConv", MS, 1)
    assert ms is not None
    op = ms(OpContext("c", "QLinearConv", MS, 1, {"channels_last": 1}, (None, *params), input_values=values))
    assert op.bind_static() is None
    cls = lookup("QLinearConv", "", 10)
    assert cls is not None
    dynamic_w = (None, *params[:2], None, *params[3:])
    assert cls(OpContext("c", "QLinearConv", "", 10, {}, dynamic_w)).bind_static() is None


def test_qlinear_add_bound_step_gives_ort_bytes() -> None:
    """QLinearAdd.bind_static (a function of A and B for the executor): ORT's bytes for same-shape
    arrays, NHWC views (a view or C order as nhwc_views says), and a broadcast through run()."""
    rng = np.random.default_rng(23)
    cls = lookup("QLinearAdd", MS, 1)
    assert cls is not None
    for dtype in (U8, S8):
        info = np.iinfo(dtype)
        sa, sb, sc = (np.float32(rng.uniform(0.001, 0.2)) for _ in range(3))
        za, zb, zc = (dtype(rng.integers(info.min, info.max)) for _ in range(3))
        a = rng.integers(info.min, int(info.max) + 1, (2, 8, 5, 6)).astype(dtype)
        b = rng.integers(info.min, int(info.max) + 1, (2, 8, 5, 6)).astype(dtype)
        want = ort_node("QLinearAdd", [a, sa, za, b, sb, zb, sc, zc], n_feeds=4, domain=MS)[0]
        for views in (False, True):
            op = cls(OpContext("n0", "QLinearAdd", MS, 1, input_consts=(None, sa, za, None, sb, zb, sc, zc)))
            op.nhwc_views = views
            spec = op.bind_static()
            assert spec is not None and spec[1] == (0, 3)
            step = spec[0]
            assert_same(step(a, b)[0], want)
            va = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            vb = np.ascontiguousarray(b.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            got = step(va, vb)[0]
            assert_same(got, want)
            assert got.transpose(0, 2, 3, 1).flags.c_contiguous if views else got.flags.c_contiguous
            row = b[:1, :1, :1]
            want_b = ort_node("QLinearAdd", [a, sa, za, row, sb, zb, sc, zc], n_feeds=4, domain=MS)[0]
            assert_same(step(a, row)[0], want_b)
    dynamic = cls(OpContext("n0", "QLinearAdd", MS, 1, input_consts=(None, None, za, None, sb, zb, sc, zc)))
    assert dynamic.bind_static() is None
