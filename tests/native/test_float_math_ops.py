"""Float math ops of the native engine beyond ONNX's node tests.

Oracles: ONNX Runtime (the com.microsoft fused ops, Gemm/Einsum/TopK/Cast
over random inputs), numpy in float64 and Python's own integer arithmetic
(broadcasting, dtypes, edge values). Property tests draw shapes and values
with hypothesis. ONNX's node tests for these ops run in
``tests/native/test_onnx_node_tests.py``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import edgeai.ops.activations
import edgeai.ops.contrib_float
import edgeai.ops.elementwise
import edgeai.ops.linalg
import edgeai.ops.reductions  # noqa: F401  (registers the ops)
from edgeai.errors import InferenceError, UnsupportedOpError
from edgeai.ops._base import OpContext, lookup

from .ort_single_node import ort_node

MS = "com.microsoft"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def native(
    op_type: str,
    *inputs: Any,
    attrs: dict[str, Any] | None = None,
    opset: int = 21,
    domain: str = "",
    num_outputs: int = 1,
    consts: tuple[Any, ...] = (),
) -> tuple[np.ndarray, ...]:
    """Build the registered op for one node and run it once."""
    cls = lookup(op_type, domain, opset)
    assert cls is not None, f"{op_type} is not registered for opset {opset}"
    ctx = OpContext(
        node_name="n0",
        op_type=op_type,
        domain=domain,
        opset=opset,
        attrs=dict(attrs or {}),
        input_consts=consts,
        num_outputs=num_outputs,
    )
    return cls(ctx).run(*inputs)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- broadcasting and dtypes

shapes_pair = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)
finite32 = st.floats(-1e3, 1e3, width=32, allow_nan=False)


@SETTINGS
@given(shapes=shapes_pair, data=st.data(), op=st.sampled_from(["Add", "Sub", "Mul", "Div"]))
def test_binary_arithmetic_broadcasts_like_float64(shapes: Any, data: Any, op: str) -> None:
    a = data.draw(hnp.arrays(np.float32, shapes.input_shapes[0], elements=finite32))
    b = data.draw(hnp.arrays(np.float32, shapes.input_shapes[1], elements=finite32.filter(lambda v: v != 0)))
    (got,) = native(op, a, b, opset=14)
    ref = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](
        a.astype(np.float64), b.astype(np.float64)
    )
    assert got.dtype == np.float32 and got.shape == shapes.result_shape
    # IEEE float32 ops are correctly rounded, and float64 leaves no double-rounding error: bit-exact
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, ref.astype(np.float32))


int32s = st.integers(-(2**31), 2**31 - 1)


@SETTINGS
@given(
    a=st.lists(int32s, min_size=1, max_size=16),
    b=st.lists(st.integers(-1000, 1000).filter(lambda v: v != 0), min_size=1, max_size=1),
)
def test_integer_div_truncates_and_mod_follows_divisor(a: list[int], b: list[int]) -> None:
    x = np.array(a, np.int32)
    y = np.array(b, np.int32)
    (q,) = native("Div", x, y, opset=14)
    (m,) = native("Mod", x, y, opset=13)
    (fm,) = native("Mod", x, y, opset=13, attrs={"fmod": 1})
    d = b[0]
    assert q.dtype == m.dtype == fm.dtype == np.int32
    assert q.tolist() == [int(v / d) if abs(v) < 2**52 else -(-v // d) if v * d < 0 else v // d for v in a]
    assert m.tolist() == [v % d for v in a]  # Python's % takes the divisor's sign
    assert fm.tolist() == [int(math.fmod(v, d)) for v in a]


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.uint16]
)
def test_binary_ops_keep_the_input_dtype(dtype: Any) -> None:
    a = np.array([[1, 2, 3]], dtype)
    b = np.array([[2], [1]], dtype)
    for op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Sum"):
        (got,) = native(op, a, b, opset=14)
        assert got.dtype == dtype and got.shape == (2, 3), op
    (mean,) = native("Mean", a.astype(np.float32), b.astype(np.float32), opset=13)
    assert mean.dtype == np.float32


def test_legacy_broadcast_attribute_aligns_b_at_axis() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = np.array([10, 20, 30], np.float32)
    (got,) = native("Add", a, b, opset=6, attrs={"broadcast": 1, "axis": 1})
    close(got, a + b[None, :, None])
    with pytest.raises(InferenceError, match="broadcast=1"):
        native("Add", a, b, opset=6)


def test_shapes_that_do_not_broadcast_raise_a_clear_error() -> None:
    with pytest.raises(InferenceError, match=r"\(2, 3\) and \(4,\) cannot be broadcast"):
        native("Mul", np.ones((2, 3), np.float32), np.ones(4, np.float32), opset=14)


def test_round_is_half_to_even_and_max_min_propagate_nan() -> None:
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5], np.float32)
    assert native("Round", x, opset=22)[0].tolist() == [-2, -2, -0, 0, 2, 2, 4]
    a = np.array([1.0, np.nan, 3.0], np.float32)
    b = np.array([np.nan, 2.0, 1.0], np.float32)
    for op in ("Max", "Min"):
        got = native(op, a, b, opset=13)[0]
        assert np.isnan(got[:2]).all() and got[2] == (3.0 if op == "Max" else 1.0)


@SETTINGS
@given(x=hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=5), elements=finite32))
def test_unary_math_matches_float64(x: np.ndarray) -> None:
    x64 = x.astype(np.float64)
    cases = {
        "Exp": np.exp(np.clip(x64, -80, 80)),
        "Abs": np.abs(x64),
        "Neg": -x64,
        "Tanh": np.tanh(x64),
        "Sigmoid": 0.5 * (1 + np.tanh(x64 / 2)),  # the logistic function, without overflow
        "Softplus": np.logaddexp(0, x64),
        "Erf": np.array([math.erf(v) for v in x64.ravel()]).reshape(x.shape),
        "Sin": np.sin(x64),
        "Atan": np.arctan(x64),
        "Softsign": x64 / (1 + np.abs(x64)),
    }
    for op, ref in cases.items():
        arg = np.clip(x, -80, 80) if op == "Exp" else x
        (got,) = native(op, arg, opset=22)
        assert got.dtype == np.float32, op
        np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-7, err_msg=op)


def test_gelu_variants_match_the_float64_formulas() -> None:
    x = np.linspace(-6, 6, 97, dtype=np.float32)
    x64 = x.astype(np.float64)
    exact = 0.5 * x64 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x64]))
    tanh = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    np.testing.assert_allclose(native("Gelu", x, opset=20)[0], exact, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        native("Gelu", x, opset=20, attrs={"approximate": "tanh"})[0], tanh, rtol=1e-6, atol=1e-7
    )
    half = native("Gelu", x.astype(np.float16), opset=20)[0]
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, exact, rtol=2e-3, atol=2e-3)


def test_sigmoid_saturates_without_overflow() -> None:
    x = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], np.float32)
    with np.errstate(all="raise"):
        got = native("Sigmoid", x, opset=13)[0]
    assert got.tolist() == [0.0, pytest.approx(3.7e-44, rel=0.1), 0.5, 1.0, 1.0]


# --------------------------------------------------------------------------- softmax and reductions


@SETTINGS
@given(
    x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), elements=finite32),
    data=st.data(),
)
def test_softmax_and_logsoftmax_match_float64(x: np.ndarray, data: Any) -> None:
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    ref = e / e.sum(axis=axis, keepdims=True)
    close(native("Softmax", x, opset=13, attrs={"axis": axis})[0], ref.astype(np.float32), atol=1e-6)
    close(
        native("LogSoftmax", x, opset=13, attrs={"axis": axis})[0],
        (shifted - np.log(e.sum(axis=axis, keepdims=True))).astype(np.float32),
        rtol=1e-5,
        atol=2e-5,
    )


def test_softmax_before_opset_13_flattens_to_2d_at_axis() -> None:
    x = rng().standard_normal((2, 3, 4)).astype(np.float32)
    flat = x.reshape(2, 12).astype(np.float64)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    ref = (e / e.sum(axis=1, keepdims=True)).reshape(2, 3, 4).astype(np.float32)
    close(native("Softmax", x, opset=11)[0], ref)


REDUCERS = {
    "ReduceSum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "ReduceMean": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "ReduceL1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "ReduceL2": lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k)),
    "ReduceSumSquare": lambda x, a, k: np.sum(x * x, axis=a, keepdims=k),
    "ReduceLogSumExp": lambda x, a, k: np.log(np.sum(np.exp(x), axis=a, keepdims=k)),
}


@SETTINGS
@given(
    x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), elements=st.floats(-3, 3, width=32)),
    data=st.data(),
    op=st.sampled_from(sorted(REDUCERS)),
    keepdims=st.booleans(),
)
def test_reductions_match_float64_with_axes_as_attribute_and_input(
    x: np.ndarray, data: Any, op: str, keepdims: bool
) -> None:
    axes = data.draw(st.lists(st.integers(-x.ndim, x.ndim - 1), min_size=1, max_size=x.ndim, unique=True))
    if len({a % x.ndim for a in axes}) != len(axes):
        axes = sorted({a % x.ndim for a in axes})
    ref = REDUCERS[op](x.astype(np.float64), tuple(axes), keepdims).astype(np.float32)
    attrs = {"keepdims": int(keepdims)}
    from_input = native(op, x, np.array(axes, np.int64), opset=18, attrs=attrs)[0]
    # axes moved from attribute to input at opset 13 (ReduceSum) and 18 (the others)
    from_attr = native(op, x, opset=11, attrs={**attrs, "axes": axes})[0]
    close(from_input, ref, rtol=1e-5, atol=1e-5)
    close(from_attr, ref, rtol=1e-5, atol=1e-5)


def test_reduce_empty_axes_reduces_all_or_is_a_noop() -> None:
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    total = native("ReduceSum", x, np.array([], np.int64), opset=13)[0]
    assert total.dtype == np.int32 and total.shape == (1, 1) and total.item() == 15
    same = native("ReduceSum", x, None, opset=13, attrs={"noop_with_empty_axes": 1})[0]
    assert np.array_equal(same, x)


def test_reductions_over_an_empty_axis_give_the_identity() -> None:
    x = np.zeros((2, 0, 3), np.float32)
    axes = np.array([1], np.int64)
    expect = {"ReduceSum": 0.0, "ReduceProd": 1.0, "ReduceMax": -np.inf, "ReduceMin": np.inf, "ReduceL2": 0.0}
    for op, v in expect.items():
        got = native(op, x, axes, opset=18, attrs={"keepdims": 0})[0]
        assert got.shape == (2, 3) and (got == v).all(), op


def test_argmax_select_last_index() -> None:
    x = np.array([[1, 5, 5, 2], [7, 7, 0, 7]], np.int32)
    assert native("ArgMax", x, opset=13, attrs={"axis": 1})[0].tolist() == [[1], [0]]
    got = native("ArgMax", x, opset=13, attrs={"axis": 1, "keepdims": 0, "select_last_index": 1})[0]
    assert got.dtype == np.int64 and got.tolist() == [2, 3]
    assert native("ArgMin", x, opset=13, attrs={"axis": 0, "select_last_index": 1})[0].tolist() == [[0, 0, 1, 0]]


@SETTINGS
@given(
    x=hnp.arrays(np.float32, (3, 7), elements=st.sampled_from([-1.0, 0.0, 0.5, 2.0])),
    k=st.integers(0, 7),
    largest=st.booleans(),
)
def test_topk_matches_onnxruntime_including_ties(x: np.ndarray, k: int, largest: bool) -> None:
    attrs = {"axis": 1, "largest": int(largest), "sorted": 1}
    want = ort_node("TopK", [x, np.array([k], np.int64)], n_outputs=2, attrs=attrs)
    got = native("TopK", x, np.array([k], np.int64), opset=11, attrs=attrs)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_topk_with_k_larger_than_the_axis_raises() -> None:
    with pytest.raises(InferenceError, match="k=5"):
        native("TopK", np.ones((2, 3), np.float32), np.array([5]), opset=11)


def test_cumsum_exclusive_reverse_matches_onnxruntime() -> None:
    x = rng(1).standard_normal((3, 4)).astype(np.float32)
    for exclusive in (0, 1):
        for reverse in (0, 1):
            attrs = {"exclusive": exclusive, "reverse": reverse}
            want = ort_node("CumSum", [x, np.array(1, np.int64)], attrs=attrs, opset=14)[0]
            close(native("CumSum", x, np.array(1, np.int64), opset=14, attrs=attrs)[0], want)


# --------------------------------------------------------------------------- linalg


@SETTINGS
@given(
    m=st.integers(1, 6),
    k=st.integers(1, 6),
    n=st.integers(1, 6),
    ta=st.booleans(),
    tb=st.booleans(),
    c_shape=st.sampled_from(["none", "scalar", "row", "col", "full"]),
    alpha=st.sampled_from([1.0, 0.5]),
    beta=st.sampled_from([1.0, 2.0]),
    b_const=st.booleans(),
)
def test_gemm_matches_onnxruntime(
    m: int, k: int, n: int, ta: bool, tb: bool, c_shape: str, alpha: float, beta: float, b_const: bool
) -> None:
    r = rng(m * 100 + k * 10 + n)
    a = r.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = r.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c = {
        "none": None,
        "scalar": np.array(0.25, np.float32),
        "row": r.standard_normal(n).astype(np.float32),
        "col": r.standard_normal((m, 1)).astype(np.float32),
        "full": r.standard_normal((m, n)).astype(np.float32),
    }[c_shape]
    attrs = {"transA": int(ta), "transB": int(tb), "alpha": alpha, "beta": beta}
    want = ort_node("Gemm", [a, b, c], n_feeds=1 if b_const else 3, attrs=attrs, opset=13)[0]
    consts = (None, b if b_const else None, None)
    got = native("Gemm", a, b, c, opset=13, attrs=attrs, consts=consts)[0]
    close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("equation", "shapes"),
    [
        ("ij,jk->ik", [(3, 4), (4, 5)]),
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
        ("ii->i", [(4, 4)]),
        ("ij->", [(3, 4)]),
        ("...ij,...jk", [(2, 3, 4), (2, 4, 2)]),
        ("i,j,k->ijk", [(2,), (3,), (4,)]),
    ],
)
def test_einsum_matches_onnxruntime(equation: str, shapes: list[tuple[int, ...]]) -> None:
    xs = [rng(i).standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)]
    want = ort_node("Einsum", xs, n_feeds=len(xs), attrs={"equation": equation}, opset=12)[0]
    close(native("Einsum", *xs, opset=12, attrs={"equation": equation})[0], want, atol=1e-5)


def test_matmul_half_precision_and_batched_broadcast() -> None:
    a = rng(2).standard_normal((2, 1, 3, 4)).astype(np.float16)
    b = rng(3).standard_normal((5, 4, 2)).astype(np.float16)
    got = native("MatMul", a, b, opset=13)[0]
    ref = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float16)
    assert got.dtype == np.float16 and got.shape == (2, 5, 3, 2)
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), rtol=2e-3, atol=2e-3)
    with pytest.raises(InferenceError, match="MatMul"):
        native("MatMul", np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), opset=13)


# --------------------------------------------------------------------------- Cast


@pytest.mark.parametrize(
    "to", ["FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT16", "BFLOAT16", "INT8", "UINT8", "BOOL"]
)
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_matches_onnx_reference(to: str, saturate: int) -> None:
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    x = np.concatenate(
        [
            rng(4).standard_normal(64).astype(np.float32) * 100,
            np.array([0.0, -0.0, 1e6, -1e6, 464.0, 127.5, np.inf, -np.inf, np.nan, 1e-9]),
        ]
    ).astype(np.float32)
    if to in ("INT8", "UINT8"):
        x = np.clip(np.trunc(np.nan_to_num(x)), -128 if to == "INT8" else 0, 127)
    attrs: dict[str, Any] = {"to": int(getattr(TensorProto, to))}
    if to.startswith("FLOAT8"):
        attrs["saturate"] = saturate
    node = helper.make_node("Cast", ["x"], ["y"], **attrs)
    with np.errstate(over="ignore"):  # the reference's own float -> float16 overflow to inf
        want = ReferenceEvaluator(node).run(None, {"x": x})[0]
    got = native("Cast", x, opset=21, attrs=attrs)[0]
    assert got.dtype == want.dtype
    same_bits = got.view(np.uint8 if got.itemsize == 1 else np.uint16) == want.view(
        np.uint8 if got.itemsize == 1 else np.uint16
    )
    both_nan = np.isnan(got.astype(np.float32)) & np.isnan(want.astype(np.float32))
    assert (same_bits | both_nan).all(), x[~(same_bits | both_nan)]


def test_cast_to_an_unknown_type_is_refused_when_built() -> None:
    with pytest.raises(UnsupportedOpError, match="cast to ONNX data type 999"):
        native("Cast", np.ones(2, np.float32), attrs={"to": 999})


# --------------------------------------------------------------------------- com.microsoft fused ops


@pytest.mark.parametrize(
    ("op", "n_inputs"), [("Gelu", 1), ("BiasGelu", 2), ("FastGelu", 1), ("FastGelu", 2), ("QuickGelu", 1)]
)
def test_contrib_gelus_match_onnxruntime(op: str, n_inputs: int) -> None:
    x = rng(5).standard_normal((2, 3, 16)).astype(np.float32) * 3
    bias = rng(6).standard_normal(16).astype(np.float32)
    ins = [x, bias][:n_inputs]
    want = ort_node(op, ins, n_feeds=n_inputs, domain=MS)[0]
    close(native(op, *ins, domain=MS, opset=1)[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_beta", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_skip_layer_normalization_matches_onnxruntime(with_beta: bool, with_bias: bool) -> None:
    r = rng(7)
    x, skip = (r.standard_normal((2, 5, 16)).astype(np.float32) for _ in range(2))
    gamma, beta, bias = (r.standard_normal(16).astype(np.float32) for _ in range(3))
    ins = [x, skip, gamma, beta if with_beta else None, bias if with_bias else None]
    want = ort_node("SkipLayerNormalization", ins, n_feeds=2, n_outputs=4, domain=MS, attrs={"epsilon": 1e-5})
    got = native("SkipLayerNormalization", *ins, domain=MS, opset=1, num_outputs=4, attrs={"epsilon": 1e-5})
    for g, w in zip(got, want):
        close(g, w, atol=2e-6)


def test_simplified_layer_normalizations_match_onnxruntime() -> None:
    r = rng(8)
    x, skip = (r.standard_normal((2, 5, 16)).astype(np.float32) for _ in range(2))
    gamma, bias = (r.standard_normal(16).astype(np.float32) for _ in range(2))
    want = ort_node("SkipSimplifiedLayerNormalization", [x, skip, gamma, bias], n_feeds=2, n_outputs=4, domain=MS)
    got = native("SkipSimplifiedLayerNormalization", x, skip, gamma, bias, domain=MS, opset=1, num_outputs=4)
    for g, w in zip(got, want):
        close(g, w, atol=2e-6)
    want = ort_node("SimplifiedLayerNormalization", [x, gamma], n_outputs=2, opset=17)
    got = native("SimplifiedLayerNormalization", x, gamma, opset=17, num_outputs=2)
    for g, w in zip(got, want):
        close(g, w, atol=2e-6)


B, S, D, HEADS = 2, 5, 16, 4
MASKS: dict[str, tuple[np.ndarray | None, dict[str, Any]]] = {
    "no mask": (None, {}),
    "key lengths": (np.array([3, 5], np.int32), {}),
    "end and start positions": (np.array([4, 5, 1, 0], np.int32), {}),
    "raw 2-D mask": (np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], np.int32), {}),
    "raw 3-D mask": ((rng(9).random((B, S, S)) > 0.3).astype(np.int32), {}),
    "causal": (None, {"unidirectional": 1}),
    "causal and raw mask": (np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 0]], np.int32), {"unidirectional": 1}),
    "scale": (None, {"scale": 0.1}),
}


@pytest.mark.parametrize("case", sorted(MASKS))
def test_attention_matches_onnxruntime(case: str) -> None:
    mask, extra = MASKS[case]
    r = rng(10)
    x = r.standard_normal((B, S, D)).astype(np.float32)
    w = (r.standard_normal((D, 3 * D)) * 0.3).astype(np.float32)
    bias = r.standard_normal(3 * D).astype(np.float32)
    attrs = {"num_heads": HEADS, **extra}
    want = ort_node("Attention", [x, w, bias, mask], domain=MS, attrs=attrs)[0]
    close(native("Attention", x, w, bias, mask, domain=MS, opset=1, attrs=attrs)[0], want, atol=2e-6)


def test_attention_with_past_and_uneven_qkv_sizes_matches_onnxruntime() -> None:
    r = rng(11)
    x = r.standard_normal((B, S, D)).astype(np.float32)
    w = (r.standard_normal((D, 3 * D)) * 0.3).astype(np.float32)
    bias = r.standard_normal(3 * D).astype(np.float32)
    past = r.standard_normal((2, B, HEADS, 3, D // HEADS)).astype(np.float32)
    mask = np.ones((B, 3 + S), np.int32)
    attrs = {"num_heads": HEADS, "unidirectional": 1}
    want = ort_node("Attention", [x, w, bias, mask, past], n_outputs=2, domain=MS, attrs=attrs)
    got = native("Attention", x, w, bias, mask, past, domain=MS, opset=1, attrs=attrs, num_outputs=2)
    for g, wnt in zip(got, want):
        close(g, wnt, atol=2e-6)
    w2 = (r.standard_normal((D, 8 + 8 + 12)) * 0.3).astype(np.float32)
    b2 = r.standard_normal(28).astype(np.float32)
    attrs = {"num_heads": 4, "qkv_hidden_sizes": [8, 8, 12]}
    want = ort_node("Attention", [x, w2, b2], domain=MS, attrs=attrs)[0]
    close(native("Attention", x, w2, b2, domain=MS, opset=1, attrs=attrs)[0], want, atol=2e-6)


def test_attention_refuses_what_it_does_not_implement() -> None:
    with pytest.raises(UnsupportedOpError, match="do_rotary"):
        native("Attention", domain=MS, opset=1, attrs={"num_heads": 2, "do_rotary": 1})
    with pytest.raises(UnsupportedOpError, match="num_heads"):
        native("Attention", domain=MS, opset=1)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint8, np.uint64])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_28_matches_python_integers(dtype: Any, direction: str) -> None:
    info = np.iinfo(dtype)
    bits = info.bits
    x = np.array([info.min, -5 if info.min < 0 else 250, 5, info.max], dtype)
    for shift in (-1, 0, 1, bits - 1, bits, bits + 3):
        s = np.array([shift], dtype if shift >= 0 or info.min < 0 else np.int64).astype(dtype)
        got = native("BitShift", x, s, opset=28, attrs={"direction": direction})[0]
        want = []
        for v in x.tolist():
            if not 0 <= shift < bits:
                want.append(-1 if direction == "RIGHT" and v < 0 else 0)
            elif direction == "LEFT":  # keep the low bits, reinterpret in two's complement
                r = (v << shift) & ((1 << bits) - 1)
                want.append(r - (1 << bits) if info.min < 0 and r >> (bits - 1) else r)
            else:
                want.append(v >> shift)  # Python's >> is arithmetic
        assert got.dtype == dtype and got.tolist() == want, (shift, got, want)


def test_mod_28_float_special_cases() -> None:
    a = np.array([-0.0, 5.0, -5.0, np.inf, 3.0, 7.5, -7.5], np.float32)
    b = np.array([3.0, np.inf, np.inf, 2.0, 0.0, -2.0, 2.0], np.float32)
    got = native("Mod", a, b, opset=28)[0]
    want = [0.0, 5.0, np.inf, np.nan, np.nan, -0.5, 0.5]
    np.testing.assert_array_equal(got, np.array(want, np.float32))
    assert not np.signbit(got[0])  # sign of the divisor
    fm = native("Mod", a, b, opset=28, attrs={"fmod": 1})[0]
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(fm, np.fmod(a, b))


def test_cumprod_exclusive_reverse_matches_python() -> None:
    x = np.array([[1, 2, 3, 4], [2, 0, 5, -1]], np.int32)
    got = native("CumProd", x, np.array(1), opset=26, attrs={"exclusive": 1, "reverse": 1})[0]
    want = [[math.prod(row[j + 1 :]) for j in range(4)] for row in x.tolist()]
    assert got.dtype == np.int32 and got.tolist() == want


def test_bitcast_reinterprets_bits_and_refuses_other_widths() -> None:
    from onnx import TensorProto

    x = np.array([1.0, -2.0, np.inf], np.float32)
    got = native("BitCast", x, opset=26, attrs={"to": TensorProto.INT32})[0]
    assert got.dtype == np.int32 and got.tolist() == [0x3F800000, -0x40000000, 0x7F800000]
    with pytest.raises(InferenceError, match="widths must match"):
        native("BitCast", x, opset=26, attrs={"to": TensorProto.INT16})


ONNX_ATTENTION_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (attributes, which optional inputs to feed)
    "gqa 3-D causal": ({"q_num_heads": 4, "kv_num_heads": 2, "is_causal": 1}, {}),
    "bool mask, softcap, mode 2": ({"softcap": 2.0, "qk_matmul_output_mode": 2}, {"mask": "bool"}),
    "short float mask, mode 3": ({"qk_matmul_output_mode": 3, "scale": 0.3}, {"mask": "short"}),
    "past cache, causal": ({"is_causal": 1}, {"past": True}),
    "external cache, causal": ({"is_causal": 1}, {"nonpad": True}),
    "sliding window": ({"left_window_size": 1, "right_window_size": 0}, {}),
    "fully masked rows": ({"is_causal": 1}, {"nonpad_short": True}),
}


@pytest.mark.parametrize("case", sorted(ONNX_ATTENTION_CASES))
def test_onnx_attention_matches_onnx_reference(case: str) -> None:
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    attrs, feeds = ONNX_ATTENTION_CASES[case]
    r = rng(12)
    b, sq, skv, h = 2, 3, 5, 4
    if "q_num_heads" in attrs:
        q = r.standard_normal((b, sq, 4 * h)).astype(np.float32)
        k = r.standard_normal((b, skv, 2 * h)).astype(np.float32)
        v = r.standard_normal((b, skv, 2 * h)).astype(np.float32)
    else:
        q = r.standard_normal((b, 2, sq, h)).astype(np.float32)
        k = r.standard_normal((b, 2, skv, h)).astype(np.float32)
        v = r.standard_normal((b, 2, skv, h)).astype(np.float32)
    inputs: list[np.ndarray | None] = [q, k, v, None, None, None, None]
    total = skv
    if feeds.get("past"):
        inputs[4] = r.standard_normal((b, 2, 2, h)).astype(np.float32)
        inputs[5] = r.standard_normal((b, 2, 2, h)).astype(np.float32)
        total += 2
    if feeds.get("mask") == "bool":
        inputs[3] = r.random((sq, total)) > 0.3
    elif feeds.get("mask") == "short":
        inputs[3] = r.standard_normal((b, 1, sq, total - 2)).astype(np.float32)
    if feeds.get("nonpad"):
        inputs[6] = np.array([4, 5], np.int64)
    if feeds.get("nonpad_short"):
        inputs[6] = np.array([1, 5], np.int64)  # 1 key for 3 queries: the first rows see nothing
    names = [f"i{i}" if x is not None else "" for i, x in enumerate(inputs)]
    while names and not names[-1]:
        names.pop()
    node = helper.make_node("Attention", names, ["y", "pk", "pv", "qk"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
            for n, x in zip(names, inputs)
            if n
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "pk", "pv", "qk")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
    want = ReferenceEvaluator(model).run(None, {n: x for n, x in zip(names, inputs) if n})
    got = native("Attention", *inputs[: len(names)], opset=25, attrs=attrs, num_outputs=4)
    for g, w in zip(got, want):
        assert not np.isnan(g).any()
        close(g, w, atol=1e-5)


# --------------------------------------------------------------------------- end to end through Session


def _fused_encoder_model(b: int, s: int, d: int, heads: int, ff: int) -> Any:
    """A BERT-style encoder block as ONNX Runtime's transformer optimizer writes it, plus a classifier."""
    from onnx import TensorProto, helper, numpy_helper

    r = rng(13)

    def init(name: str, *shape: int, scale: float = 0.2) -> Any:
        return numpy_helper.from_array((r.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        init("qkv_w", d, 3 * d),
        init("qkv_b", 3 * d),
        init("ln1_g", d, scale=1.0),
        init("ln1_b", d),
        init("attn_out_w", d, d),
        init("attn_out_b", d),
        init("ff1_w", d, ff),
        init("ff1_b", ff),
        init("ff2_w", ff, d),
        init("ff2_b", d),
        init("ln2_g", d, scale=1.0),
        init("ln2_b", d),
        init("rms_g", d, scale=1.0),
        init("cls_w", 3, d),
        init("cls_b", 3),
        numpy_helper.from_array(np.array([2], np.int64), "k"),
    ]
    ms = "com.microsoft"
    nodes = [
        helper.make_node("Attention", ["x", "qkv_w", "qkv_b", "mask"], ["ctx"], domain=ms, num_heads=heads),
        helper.make_node("MatMul", ["ctx", "attn_out_w"], ["proj"]),
        helper.make_node(
            "SkipLayerNormalization", ["proj", "x", "ln1_g", "ln1_b", "attn_out_b"], ["h1"], domain=ms, epsilon=1e-5
        ),
        helper.make_node("MatMul", ["h1", "ff1_w"], ["ff1"]),
        helper.make_node("FastGelu", ["ff1", "ff1_b"], ["act"], domain=ms),
        helper.make_node("MatMul", ["act", "ff2_w"], ["ff2"]),
        helper.make_node(
            "SkipLayerNormalization",
            ["ff2", "h1", "ln2_g", "ln2_b", "ff2_b"],
            ["h2", "", "", "sum2"],
            domain=ms,
            epsilon=1e-5,
        ),
        helper.make_node("SimplifiedLayerNormalization", ["h2", "rms_g"], ["h3"], epsilon=1e-6),
        helper.make_node("BiasGelu", ["h3", "ln2_b"], ["h4"], domain=ms),
        helper.make_node("ReduceMean", ["h4"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Gemm", ["pooled", "cls_w", "cls_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        helper.make_node("TopK", ["probs", "k"], ["top_p", "top_i"], axis=-1),
        helper.make_node("Erf", ["sum2"], ["erf_sum"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fused_encoder",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [b, s, d]),
            helper.make_tensor_value_info("mask", TensorProto.INT32, [b, s]),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [b, 3]),
            helper.make_tensor_value_info("top_p", TensorProto.FLOAT, [b, 2]),
            helper.make_tensor_value_info("top_i", TensorProto.INT64, [b, 2]),
            helper.make_tensor_value_info("erf_sum", TensorProto.FLOAT, [b, s, d]),
        ],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)], ir_version=9
    )
    return model


def test_fused_transformer_block_runs_end_to_end_like_onnxruntime(tmp_path: Any) -> None:
    import onnx
    import onnxruntime as ort

    import edgeai

    b, s, d = 2, 6, 16
    model = _fused_encoder_model(b, s, d, heads=4, ff=32)
    path = tmp_path / "fused_encoder.onnx"
    onnx.save(model, path)
    feeds = {
        "x": rng(14).standard_normal((b, s, d)).astype(np.float32),
        "mask": np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], np.int32),
    }
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    with edgeai.Session(path, device="native") as sess:
        got = sess.run(None, feeds)
    assert [g.dtype for g in got] == [w.dtype for w in want]
    for g, w in zip(got, want):
        if g.dtype == np.int64:
            assert np.array_equal(g, w)
        else:
            close(g, w, rtol=1e-4, atol=1e-5)


def test_cast_to_and_from_strings_matches_onnxruntime() -> None:
    from onnx import TensorProto

    floats = np.array([0.1, 1 / 3, 1e10, 1.5e-7, np.nan, np.inf, -np.inf, -0.0, 123456789.0], np.float32)
    for x in (floats, floats.astype(np.float64), np.array([True, False]), np.array([-5, 7], np.int8)):
        want = ort_node("Cast", [x], attrs={"to": TensorProto.STRING})[0]
        got = native("Cast", x, opset=21, attrs={"to": TensorProto.STRING})[0]
        assert got.tolist() == want.tolist()
    strings = np.array(["1.5", "-2", "NaN", "INF", "-inf", "1e3", " 7 ", "0x10"], dtype=object)
    for to in (TensorProto.FLOAT, TensorProto.DOUBLE):
        want = ort_node("Cast", [strings], attrs={"to": to})[0]
        got = native("Cast", strings, opset=21, attrs={"to": to})[0]
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    big = np.array(["15", "-2", "9007199254740993"], dtype=object)
    want = ort_node("Cast", [big], attrs={"to": TensorProto.INT64})[0]
    assert native("Cast", big, opset=21, attrs={"to": TensorProto.INT64})[0].tolist() == want.tolist()


def _export_mini_bert(path: Any) -> dict[str, np.ndarray]:
    """A two-layer BERT written like Hugging Face's, exported from torch; returns its feeds."""
    torch = pytest.importorskip("torch", reason="torch is in the test extra: pip install -e '.[test]'")
    nn = torch.nn
    hidden, heads, vocab, ffn = 32, 4, 50, 64

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
            self.ln = nn.LayerNorm(hidden, eps=1e-12)

        def heads(self, x: Any) -> Any:
            return x.view(x.size(0), x.size(1), heads, hidden // heads).permute(0, 2, 1, 3)

        def forward(self, x: Any, mask: Any) -> Any:
            scores = torch.matmul(self.heads(self.q(x)), self.heads(self.k(x)).transpose(-1, -2))
            probs = torch.softmax(scores / math.sqrt(hidden // heads) + mask, -1)
            ctx = torch.matmul(probs, self.heads(self.v(x))).permute(0, 2, 1, 3).contiguous()
            return self.ln(self.o(ctx.view(ctx.size(0), ctx.size(1), hidden)) + x)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.up, self.down = SelfAttention(), nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
            self.ln = nn.LayerNorm(hidden, eps=1e-12)

        def forward(self, x: Any, mask: Any) -> Any:
            a = self.attn(x, mask)
            return self.ln(self.down(nn.functional.gelu(self.up(a))) + a)

    class Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word, self.pos, self.seg = (
                nn.Embedding(vocab, hidden),
                nn.Embedding(16, hidden),
                nn.Embedding(2, hidden),
            )
            self.ln = nn.LayerNorm(hidden, eps=1e-12)
            self.layers = nn.ModuleList([Layer(), Layer()])
            self.cls = nn.Linear(hidden, 3)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            pos = torch.arange(input_ids.size(1)).unsqueeze(0)
            x = self.ln(self.word(input_ids) + self.pos(pos) + self.seg(token_type_ids))
            mask = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
            for layer in self.layers:
                x = layer(x, mask)
            return torch.softmax(self.cls(x[:, 0]), -1), x

    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[0, 6:] = 0
    segments = torch.zeros(2, 8, dtype=torch.int64)
    segments[:, 4:] = 1
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():  # the TorchScript exporter (like tests/models.py) is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Bert().eval(),
            (ids, mask, segments),
            str(path),
            dynamo=False,
            opset_version=14,
            input_names=names,
            output_names=["probs", "hidden"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names},
        )
    return dict(zip(names, (ids.numpy(), mask.numpy(), segments.numpy())))


@pytest.mark.slow  # torch import and export
def test_bert_fused_by_the_onnxruntime_optimizer_runs_natively(tmp_path: Any) -> None:
    import onnxruntime as ort
    from onnxruntime.transformers import optimizer

    import edgeai

    feeds = _export_mini_bert(tmp_path / "bert.onnx")
    fused = optimizer.optimize_model(str(tmp_path / "bert.onnx"), model_type="bert", num_heads=4, hidden_size=32)
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    assert stats == {"EmbedLayerNormalization": 1, "Attention": 2, "BiasGelu": 2, "SkipLayerNormalization": 4}
    path = tmp_path / "bert_fused.onnx"
    fused.save_model_to_file(str(path))
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    with edgeai.Session(path, device="native") as sess:
        got = sess.run(None, feeds)
    for g, w in zip(got, want):
        close(g, w, rtol=1e-4, atol=1e-5)


def test_embed_layer_normalization_matches_onnxruntime() -> None:
    r = rng(15)
    b, s, h = 2, 6, 8
    ids = r.integers(0, 20, (b, s)).astype(np.int32)
    seg = r.integers(0, 2, (b, s)).astype(np.int32)
    word, pos, segt = (r.standard_normal((n, h)).astype(np.float32) for n in (20, 10, 2))
    gamma, beta = (r.standard_normal(h).astype(np.float32) for _ in range(2))
    mask = np.array([[1, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1]], np.int32)
    position_ids = np.array([[5, 4, 3, 2, 1, 0]], np.int32)
    for ins in (
        [ids, seg, word, pos, segt, gamma, beta, mask],
        [ids, None, word, pos, None, gamma, beta, None],
        [ids, seg, word, pos, segt, gamma, beta, mask, position_ids],
    ):
        want = ort_node("EmbedLayerNormalization", ins, n_feeds=2, n_outputs=3, domain=MS, attrs={"epsilon": 1e-5})
        got = native("EmbedLayerNormalization", *ins, domain=MS, opset=1, num_outputs=3, attrs={"epsilon": 1e-5})
        for g, w in zip(got, want):
            close(g, w, atol=2e-6)
    with pytest.raises(InferenceError, match=r"input_ids must be in \[0, 20\)"):
        native("EmbedLayerNormalization", ids + 15, seg, word, pos, segt, gamma, beta, domain=MS, opset=1)


MHA_B, MHA_S, MHA_L, MHA_N, MHA_H = 2, 4, 6, 2, 4


def _mha_inputs() -> dict[str, np.ndarray]:
    r = rng(16)
    d = MHA_N * MHA_H
    f = np.float32
    return {
        "q": r.standard_normal((MHA_B, MHA_S, d)).astype(f),
        "k": r.standard_normal((MHA_B, MHA_L, d)).astype(f),
        "v": r.standard_normal((MHA_B, MHA_L, d)).astype(f),
        "k_self": r.standard_normal((MHA_B, MHA_S, d)).astype(f),
        "v_self": r.standard_normal((MHA_B, MHA_S, d)).astype(f),
        "bias": r.standard_normal(3 * d).astype(f),
        "mask": np.array([[1, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1]], np.int32),
        "lengths": np.array([3, 6], np.int32),
        "attention_bias": r.standard_normal((1, MHA_N, MHA_S, MHA_L)).astype(f),
        "past_key": r.standard_normal((MHA_B, MHA_N, 3, MHA_H)).astype(f),
        "past_value": r.standard_normal((MHA_B, MHA_N, 3, MHA_H)).astype(f),
        "k_bnsh": r.standard_normal((MHA_B, MHA_N, MHA_L, MHA_H)).astype(f),
        "v_bnsh": r.standard_normal((MHA_B, MHA_N, MHA_L, MHA_H)).astype(f),
    }


MHA_CASES: dict[str, tuple[list[str | None], dict[str, Any], int]] = {
    "cross": (["q", "k", "v"], {}, 1),
    "cross with bias and padding mask": (["q", "k", "v", "bias", "mask"], {}, 1),
    "key lengths": (["q", "k", "v", None, "lengths"], {}, 1),
    "attention bias and scale": (["q", "k", "v", None, None, "attention_bias"], {"scale": 0.2}, 1),
    "causal self": (["q", "k_self", "v_self"], {"unidirectional": 1}, 1),
    "past and present, causal": (
        ["q", "k_self", "v_self", "bias", None, None, "past_key", "past_value"],
        {"unidirectional": 1},
        3,
    ),
    "per-head key/value": (["q", "k_bnsh", "v_bnsh", "bias"], {}, 1),
}


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_multi_head_attention_matches_onnxruntime(case: str) -> None:
    names, extra, n_out = MHA_CASES[case]
    data = _mha_inputs()
    ins = [None if n is None else data[n] for n in names]
    attrs = {"num_heads": MHA_N, **extra}
    want = ort_node("MultiHeadAttention", ins, n_feeds=len(ins), n_outputs=n_out, domain=MS, attrs=attrs)
    got = native("MultiHeadAttention", *ins, domain=MS, opset=1, attrs=attrs, num_outputs=n_out)
    for g, w in zip(got, want):
        close(g, w, atol=2e-6)


def test_multi_head_attention_packed_layouts_equal_the_unpacked_result() -> None:
    # ONNX Runtime's CPU kernel refuses packed QKV/KV, so the oracle is ORT on the same tensors unpacked
    r = rng(17)
    qkv = r.standard_normal((MHA_B, MHA_S, MHA_N, 3, MHA_H)).astype(np.float32)
    q, k, v = (qkv[:, :, :, i].reshape(MHA_B, MHA_S, -1) for i in range(3))
    attrs = {"num_heads": MHA_N}
    want = ort_node("MultiHeadAttention", [q, k, v], n_feeds=3, domain=MS, attrs=attrs)[0]
    close(native("MultiHeadAttention", qkv, domain=MS, opset=1, attrs=attrs)[0], want, atol=2e-6)
    kv = np.stack([k, v], axis=2).reshape(MHA_B, MHA_S, 2, MHA_N, MHA_H).transpose(0, 1, 3, 2, 4)
    close(native("MultiHeadAttention", q, kv, domain=MS, opset=1, attrs=attrs)[0], want, atol=2e-6)


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    tiny = np.finfo(np.float32).tiny
    step = np.spacing(np.maximum(np.abs(want), tiny).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / step


def test_float32_erf_and_erfc_are_within_a_few_ulps_of_libm() -> None:
    from edgeai.ops.elementwise import erf, erfc

    x = np.concatenate(
        [np.linspace(-11, 11, 200_001), np.geomspace(1e-30, 0.6, 500), -np.geomspace(1e-30, 0.6, 500)]
    ).astype(np.float32)
    want_erf = np.array([math.erf(v) for v in x.tolist()])
    want_erfc = np.array([math.erfc(v) for v in x.tolist()])
    got_erf, got_erfc = erf(x), erfc(x)
    assert got_erf.dtype == got_erfc.dtype == np.float32
    assert _ulps(got_erf, want_erf).max() <= 2.5
    normal = want_erfc > np.finfo(np.float32).tiny
    assert _ulps(got_erfc[normal], want_erfc[normal]).max() <= 4
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], np.float32)
    np.testing.assert_array_equal(erf(special), [np.nan, 1, -1, 0, -0.0, 1, -1])
    np.testing.assert_array_equal(erfc(special), [np.nan, 0, 2, 1, 1, 0, 2])
    assert np.signbit(erf(special)[4])


@pytest.mark.parametrize(
    ("layout", "positions", "attrs"),
    [
        ("3d", "ids", {}),
        ("3d", "offset", {"num_heads": 3}),
        ("4d", "ids", {}),
        ("4d", "offset", {"interleaved": 1}),
        ("3d", "ids", {"num_heads": 3, "rotary_embedding_dim": 4}),
    ],
)
def test_ms_rotary_embedding_matches_onnxruntime(layout: str, positions: str, attrs: dict[str, Any]) -> None:
    r = rng(18)
    b, s, n, h = 2, 5, 3, 8
    rot = attrs.get("rotary_embedding_dim", h)
    cos, sin = (r.standard_normal((20, rot // 2)).astype(np.float32) for _ in range(2))
    x = r.standard_normal((b, s, n * h) if layout == "3d" else (b, n, s, h)).astype(np.float32)
    pos = r.integers(0, 20, (b, s)).astype(np.int64) if positions == "ids" else np.array([7], np.int64)
    want = ort_node("RotaryEmbedding", [x, pos, cos, sin], n_feeds=2, domain=MS, attrs=attrs)[0]
    close(native("RotaryEmbedding", x, pos, cos, sin, domain=MS, opset=1, attrs=attrs)[0], want, atol=2e-6)


def test_gemm_fast_gelu_equals_onnxruntime_matmul_then_fast_gelu() -> None:
    # ONNX Runtime's CPU provider has no GemmFastGelu kernel: the oracle is its two-node spelling
    r = rng(19)
    x, w, bias = r.standard_normal((2, 4, 8)), r.standard_normal((8, 16)), r.standard_normal(16)
    x, w, bias = (a.astype(np.float32) for a in (x, w, bias))
    want = ort_node("FastGelu", [ort_node("MatMul", [x, w], n_feeds=2)[0], bias], n_feeds=2, domain=MS)[0]
    close(native("GemmFastGelu", x, w, bias, domain=MS, opset=1)[0], want, atol=2e-6)


# --------------------------------------------------------------------------- every dtype, old opsets (vs ORT)

UNARY_OPS = [
    "Abs",
    "Neg",
    "Exp",
    "Log",
    "Sqrt",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Erf",
    "IsNaN",
    "IsInf",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
    "Celu",
    "Mish",
    "Softplus",
    "Softsign",
    "ThresholdedRelu",
    "Softmax",
    "LogSoftmax",
    "Hardmax",
    "Shrink",
    "Not",
    "BitwiseNot",
]
BINARY_OPS = [
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Mod",
    "BitShift",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
    "Equal",
    "Greater",
    "Less",
    "GreaterOrEqual",
    "LessOrEqual",
    "And",
    "Or",
    "Xor",
    "PRelu",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "MatMul",
]


def _sample(r: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...], positive: bool) -> np.ndarray:
    if dtype == np.bool_:
        return r.random(shape) > 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return r.integers(1 if positive else max(info.min, -100), min(info.max, 100), shape).astype(dtype)
    v = r.standard_normal(shape) * 3
    return (np.abs(v) + 0.1 if positive else v).astype(dtype)


def _schema_dtypes(op: str) -> list[np.dtype]:
    import onnx
    import onnx.defs
    from onnx import helper

    schema = onnx.defs.get_schema(op)
    allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}[schema.inputs[0].type_str]
    out = []
    for t in allowed:
        elem = getattr(onnx.TensorProto, t[len("tensor(") : -1].upper(), None)
        if elem is not None:
            dt = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
            if dt.kind in "biuf":
                out.append(dt)
    return out


@pytest.mark.parametrize("op", UNARY_OPS + BINARY_OPS)
def test_every_dtype_of_the_schema_matches_onnxruntime(op: str) -> None:
    """Each numeric type the op's schema allows: same dtype, shape and values as ORT (where ORT has a kernel)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    r = rng(20)
    compared = 0
    for dt in _schema_dtypes(op):
        x = _sample(r, dt, (3, 4), positive=op in ("Log", "Sqrt", "Acosh"))
        if op == "Acosh":
            x = (x.astype(np.float64) + 1).astype(dt)
        if op in ("Asin", "Acos", "Atanh"):
            x = (np.tanh(x.astype(np.float64)) * 0.9).astype(dt)
        ins = [x]
        attrs: dict[str, Any] = {}
        if op in BINARY_OPS:
            y = _sample(r, dt, (4, 2) if op == "MatMul" else (4,), positive=op in ("Div", "Mod", "Pow", "BitShift"))
            if op == "Pow":
                y = (np.abs(y.astype(np.float64)) % 3).astype(dt)
            if op == "BitShift":
                y, attrs = (y.astype(np.int64) % 8).astype(dt), {"direction": "LEFT"}
            ins.append(y)
        if op == "Mod" and dt.kind == "f":
            attrs = {"fmod": 1}
        try:
            want = ort_node(op, ins, n_feeds=len(ins), opset=21, attrs=attrs)[0]
        except Exception:  # ONNX Runtime has no kernel for this type: nothing to compare with
            continue
        got = native(op, *ins, opset=21, attrs=attrs)[0]
        assert got.dtype == want.dtype and got.shape == want.shape, (dt, got.dtype, want.dtype)
        if want.dtype.kind == "f":
            tol = 1e-2 if want.dtype.itemsize < 4 else 1e-5
            np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=tol, err_msg=str(dt))
        else:
            np.testing.assert_array_equal(got, want, err_msg=str(dt))
        compared += 1
    assert compared >= 1


OLD_OPSET_CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("Softmax", 1, {"axis": 1}),
    ("LogSoftmax", 11, {"axis": 2}),
    ("Hardmax", 11, {"axis": 0}),
    ("Clip", 6, {"min": -0.5, "max": 0.5}),
    ("ReduceSum", 1, {"axes": [1], "keepdims": 0}),
    ("ReduceMean", 11, {"axes": [-1]}),
    ("ReduceLogSumExp", 11, {}),
    ("ArgMax", 1, {"axis": 2}),
    ("TopK", 1, {"k": 2}),
    ("MatMul", 1, {}),
    ("Cast", 6, {"to": 7}),
    ("Max", 6, {}),
    ("Mean", 6, {}),
    ("Relu", 6, {}),
    ("Elu", 6, {"alpha": 0.5}),
    ("HardSigmoid", 6, {}),
]


@pytest.mark.parametrize(("op", "opset", "attrs"), OLD_OPSET_CASES)
def test_old_opset_semantics_match_onnxruntime(op: str, opset: int, attrs: dict[str, Any]) -> None:
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    x = rng(21).standard_normal((2, 3, 4)).astype(np.float32)
    ins = {"MatMul": [x, x.transpose(0, 2, 1).copy()], "Max": [x, -x], "Mean": [x, x * 3]}.get(op, [x])
    n_out = 2 if op == "TopK" else 1
    want = ort_node(op, ins, n_feeds=len(ins), n_outputs=n_out, opset=opset, attrs=attrs)
    got = native(op, *ins, opset=opset, attrs=attrs, num_outputs=n_out)
    for g, w in zip(got, want):
        close(g, w)


REDUCE_OPS = [
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "ArgMax",
    "ArgMin",
    "CumSum",
    "TopK",
    "Clip",
]


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduction_dtypes_match_onnxruntime(op: str) -> None:
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    r = rng(22)
    compared = 0
    for dt in _schema_dtypes(op):
        x = _sample(r, dt, (3, 4, 2), positive=op in ("ReduceLogSum", "ReduceProd"))
        ins: list[Any] = [x]
        attrs: dict[str, Any] = {}
        if op.startswith("Reduce"):
            ins.append(np.array([1], np.int64))
            attrs = {"keepdims": 0}
        elif op in ("ArgMax", "ArgMin"):
            attrs = {"axis": 1, "select_last_index": 1}
        elif op == "CumSum":
            ins.append(np.array(1, np.int64))
            attrs = {"exclusive": 1}
        elif op == "TopK":
            ins.append(np.array([2], np.int64))
            attrs = {"axis": 1}
        elif op == "Clip":
            ins += [np.array(x.flat[0], dt), np.array(x.flat[5], dt)]
        n_out = 2 if op == "TopK" else 1
        try:
            want = ort_node(op, ins, n_feeds=1, n_outputs=n_out, opset=21, attrs=attrs)
        except Exception:  # no ONNX Runtime kernel for this type
            continue
        got = native(op, *ins, opset=21, attrs=attrs, num_outputs=n_out)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape, (dt, g.dtype, w.dtype)
            tol = 1e-2 if w.dtype.kind == "f" and w.dtype.itemsize < 4 else 1e-5
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol, err_msg=str(dt))
        compared += 1
    assert compared >= 1


def _gqa_cases() -> dict[str, tuple[list[Any], dict[str, Any], int]]:
    r = rng(23)
    b, s, n, kvn, h, past = 2, 4, 4, 2, 16, 3
    f = np.float32
    q = r.standard_normal((b, s, n * h)).astype(f)
    k = r.standard_normal((b, s, kvn * h)).astype(f)
    v = r.standard_normal((b, s, kvn * h)).astype(f)
    pk, pv = (r.standard_normal((b, kvn, past, h)).astype(f) for _ in range(2))
    big_k, big_v = np.zeros((b, kvn, 8, h), f), np.zeros((b, kvn, 8, h), f)
    big_k[:, :, :past], big_v[:, :, :past] = pk, pv
    q1, k1, v1 = q[:, :1].copy(), k[:, :1].copy(), v[:, :1].copy()
    cos, sin = (r.standard_normal((16, h // 2)).astype(f) for _ in range(2))
    prompt = [q, k, v, None, None, np.array([s - 1, s - 1], np.int32), np.array(s, np.int32)]
    padded = [q, k, v, None, None, np.array([s - 1, s - 3], np.int32), np.array(s, np.int32)]
    step = [q1, k1, v1, pk, pv, np.array([past, past - 1], np.int32), np.array(past + 1, np.int32)]
    big = [q1, k1, v1, big_k, big_v, *step[5:]]
    rope = [cos, sin]
    return {
        "first prompt": (prompt, {}, 3),
        "right-padded prompt": (padded, {}, 3),
        "packed QKV prompt": ([np.concatenate([q, k, v], -1), None, None, *prompt[3:]], {}, 1),
        "bidirectional prompt": (prompt, {"causal": 0}, 3),
        "token step": (step, {}, 5),
        "token step, shared max-length buffer": (big, {}, 5),
        "local window": (step, {"local_window_size": 2}, 5),
        "softcap and scale": (step, {"softcap": 1.5, "scale": 0.3}, 5),
        "smooth softmax": (step, {"smooth_softmax": 1}, 5),
        "head sink": ([*step, None, None, None, None, r.standard_normal(n).astype(f)], {}, 5),
        "attention bias": ([*step, None, None, None, r.standard_normal((b, 1, 1, past + 1)).astype(f)], {}, 5),
        "rotary prompt": ([*prompt, *rope], {"do_rotary": 1}, 3),
        "rotary prompt, position ids": ([*prompt, *rope, np.array([[5, 6, 7, 8], [2, 3, 4, 5]])], {"do_rotary": 1}, 3),
        "rotary step, interleaved": ([*step, *rope], {"do_rotary": 1, "rotary_interleaved": 1}, 5),
        "rotary step, position ids": ([*step, *rope, np.array([[9], [4]])], {"do_rotary": 1}, 5),
    }


GQA_CASES = _gqa_cases()


@pytest.mark.parametrize("case", sorted(GQA_CASES))
def test_group_query_attention_matches_onnxruntime(case: str) -> None:
    ins, extra, n_feeds = GQA_CASES[case]
    attrs = {"num_heads": 4, "kv_num_heads": 2, **extra}
    want = ort_node("GroupQueryAttention", ins, n_feeds=n_feeds, n_outputs=3, domain=MS, attrs=attrs)
    got = native("GroupQueryAttention", *ins, domain=MS, opset=1, attrs=attrs, num_outputs=3)
    for g, w in zip(got, want):
        close(g, w, atol=2e-6)


def test_group_query_attention_refuses_quantized_caches() -> None:
    with pytest.raises(UnsupportedOpError, match="quantized KV cache"):
        native(
            "GroupQueryAttention",
            domain=MS,
            opset=1,
            attrs={"num_heads": 4, "kv_num_heads": 2, "k_quant_type": "PER_TENSOR"},
        )


def _tiny_decoder_model() -> Any:
    """One LLaMA-style decoder layer as ONNX Runtime's GenAI builder writes it, with a KV cache."""
    from onnx import TensorProto, helper, numpy_helper

    r = rng(24)
    d, n, kvn, h, ff, vocab = 64, 4, 2, 16, 96, 40

    def init(name: str, *shape: int, scale: float = 0.1) -> Any:
        return numpy_helper.from_array((r.standard_normal(shape) * scale).astype(np.float32), name)

    inv = 1.0 / 10000 ** (np.arange(0, h, 2) / h)
    angles = np.arange(32)[:, None] * inv[None, :]
    inits = [
        init("embed", vocab, d, scale=1.0),
        init("ln1", d, scale=1.0),
        init("wq", d, n * h),
        init("wk", d, kvn * h),
        init("wv", d, kvn * h),
        init("wo", n * h, d),
        init("ln2", d, scale=1.0),
        init("w_up", d, ff),
        init("w_down", ff, d),
        init("lm_head", d, vocab),
        numpy_helper.from_array(np.cos(angles).astype(np.float32), "cos"),
        numpy_helper.from_array(np.sin(angles).astype(np.float32), "sin"),
    ]
    ms = "com.microsoft"
    nodes = [
        helper.make_node("Gather", ["embed", "input_ids"], ["x"]),
        helper.make_node("SimplifiedLayerNormalization", ["x", "ln1"], ["x_norm"], epsilon=1e-6),
        helper.make_node("MatMul", ["x_norm", "wq"], ["q"]),
        helper.make_node("MatMul", ["x_norm", "wk"], ["k"]),
        helper.make_node("MatMul", ["x_norm", "wv"], ["v"]),
        helper.make_node(
            "GroupQueryAttention",
            ["q", "k", "v", "past_key", "past_value", "seqlens_k", "total_sequence_length", "cos", "sin"],
            ["attn", "present_key", "present_value"],
            domain=ms,
            num_heads=n,
            kv_num_heads=kvn,
            do_rotary=1,
        ),
        helper.make_node("MatMul", ["attn", "wo"], ["attn_out"]),
        helper.make_node(
            "SkipSimplifiedLayerNormalization",
            ["attn_out", "x", "ln2"],
            ["h_norm", "", "", "h"],
            domain=ms,
            epsilon=1e-6,
        ),
        helper.make_node("MatMul", ["h_norm", "w_up"], ["up"]),
        helper.make_node("QuickGelu", ["up"], ["act"], domain=ms),
        helper.make_node("MatMul", ["act", "w_down"], ["down"]),
        helper.make_node("Add", ["h", "down"], ["y"]),
        helper.make_node("MatMul", ["y", "lm_head"], ["logits"]),
        helper.make_node("ArgMax", ["logits"], ["next_token"], axis=-1, keepdims=0),
    ]
    f, i64, i32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
    graph = helper.make_graph(
        nodes,
        "tiny_decoder",
        [
            helper.make_tensor_value_info("input_ids", i64, ["b", "s"]),
            helper.make_tensor_value_info("past_key", f, ["b", kvn, "p", h]),
            helper.make_tensor_value_info("past_value", f, ["b", kvn, "p", h]),
            helper.make_tensor_value_info("seqlens_k", i32, ["b"]),
            helper.make_tensor_value_info("total_sequence_length", i32, []),
        ],
        [
            helper.make_tensor_value_info("logits", f, ["b", "s", vocab]),
            helper.make_tensor_value_info("next_token", i64, ["b", "s"]),
            helper.make_tensor_value_info("present_key", f, ["b", kvn, "t", h]),
            helper.make_tensor_value_info("present_value", f, ["b", kvn, "t", h]),
        ],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)], ir_version=9
    )


def test_tiny_llm_decoder_prompt_then_token_steps_match_onnxruntime(tmp_path: Any) -> None:
    import onnx
    import onnxruntime as ort

    import edgeai

    path = tmp_path / "tiny_decoder.onnx"
    onnx.save(_tiny_decoder_model(), path)
    prompt = np.array([[3, 14, 15, 9, 2], [6, 5, 35, 8, 9]], np.int64)
    empty = np.zeros((2, 2, 0, 16), np.float32)
    feeds = {
        "input_ids": prompt,
        "past_key": empty,
        "past_value": empty,
        "seqlens_k": np.array([4, 4], np.int32),
        "total_sequence_length": np.array(5, np.int32),
    }
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with edgeai.Session(path, device="native") as sess:
        for step in range(3):  # the prompt, then two generated tokens fed back with the cache
            want = ref.run(None, feeds)
            got = sess.run(None, feeds)
            for g, w in zip(got, want):
                if g.dtype == np.int64:
                    assert np.array_equal(g, w), step
                else:
                    close(g, w, rtol=1e-4, atol=1e-5)
            total = int(feeds["total_sequence_length"]) + 1
            feeds = {
                "input_ids": want[1][:, -1:],
                "past_key": want[2],
                "past_value": want[3],
                "seqlens_k": np.array([total - 1, total - 1], np.int32),
                "total_sequence_length": np.array(total, np.int32),
            }


ERROR_CASES: list[tuple[str, dict[str, Any], list[Any], type[Exception], str]] = [
    ("ReduceSum", {}, [np.ones((2, 3), np.float32), np.array([2])], InferenceError, "axis 2 is out of range"),
    ("ArgMax", {"axis": 3}, [np.ones((2, 3), np.float32)], InferenceError, "axis 3 is out of range"),
    ("CumSum", {}, [np.ones((2, 3), np.float32), np.array(-3)], InferenceError, "axis -3 out of range"),
    ("Softmax", {"axis": 2}, [np.ones((2, 3), np.float32)], InferenceError, "axis 2 is out of range"),
    (
        "Where",
        {},
        [np.ones((2,), bool), np.ones((3,), np.float32), np.ones(3, np.float32)],
        InferenceError,
        "broadcast",
    ),
    ("Einsum", {"equation": "ij,jk->ik"}, [np.ones((2, 3)), np.ones((4, 2))], InferenceError, "does not fit"),
    ("Det", {}, [np.ones((2, 3), np.float32)], InferenceError, r"\[\.\.\., M, M\]"),
    ("Gemm", {}, [np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)], InferenceError, "inner dimensions"),
    ("BitShift", {"direction": "UP"}, [], UnsupportedOpError, "direction must be"),
    ("Gelu", {"approximate": "fast"}, [], UnsupportedOpError, "approximate must be"),
    ("Einsum", {}, [], UnsupportedOpError, "equation"),
]


@pytest.mark.parametrize(("op", "attrs", "inputs", "error", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_bad_models_and_feeds_raise_clear_edgeai_errors(
    op: str, attrs: dict[str, Any], inputs: list[Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        native(op, *inputs, opset=22, attrs=attrs)
    assert "node 'n0'" in str(info.value) or op in str(info.value)


POW_TYPES = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "int32": np.int32,
    "int64": np.int64,
}


@pytest.mark.parametrize("base_type", sorted(POW_TYPES))
def test_pow_with_mixed_base_and_exponent_types_matches_onnxruntime(base_type: str) -> None:
    r = rng(25)
    base = POW_TYPES[base_type]
    if np.dtype(base).kind == "f":
        x = (r.standard_normal(6) * 3).astype(base)
    else:
        x = np.array([-3, -2, 0, 1, 2, 5], base)
    for exp_type, exp in POW_TYPES.items():
        if np.dtype(exp).kind == "f":
            y = np.array([0.5, 2, 3, -1, 1.5, 0], exp)
        else:
            y = np.array([2, 3, 0, 1, 4, 2], exp)
        want = ort_node("Pow", [x, y], n_feeds=2, opset=15)[0]
        got = native("Pow", x, y, opset=15)[0]
        assert got.dtype == want.dtype, exp_type
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-3, atol=1e-5, err_msg=exp_type)


@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
@pytest.mark.parametrize("per_head_decay", [False, True])
def test_linear_attention_matches_onnx_reference(rule: str, per_head_decay: bool) -> None:
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    r = rng(26)
    b, t, qn, kvn, dk, dv = 2, 5, 4, 2, 3, 4
    f = np.float32
    q = r.standard_normal((b, t, qn * dk)).astype(f)
    k = r.standard_normal((b, t, kvn, dk))
    k = (k / np.linalg.norm(k, axis=-1, keepdims=True)).reshape(b, t, kvn * dk).astype(f)  # L2-normalised keys
    v = r.standard_normal((b, t, kvn * dv)).astype(f)
    past = r.standard_normal((b, kvn, dk, dv)).astype(f)
    decay = -np.abs(r.standard_normal((b, t, kvn if per_head_decay else kvn * dk))).astype(f)
    beta = (1 / (1 + np.exp(-r.standard_normal((b, t, kvn))))).astype(f)
    names = ["q", "k", "v", "past", "decay" if "gated" in rule else "", "beta" if "delta" in rule else ""]
    while not names[-1]:
        names.pop()
    feeds = {"q": q, "k": k, "v": v, "past": past, "decay": decay, "beta": beta}
    attrs = {"q_num_heads": qn, "kv_num_heads": kvn, "update_rule": rule}
    node = helper.make_node("LinearAttention", names, ["y", "state"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, feeds[n].shape) for n in names if n],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "state")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 27)])
    want = ReferenceEvaluator(model).run(None, {n: feeds[n] for n in names if n})
    ins = [feeds[n] if n else None for n in names]
    got = native("LinearAttention", *ins, opset=27, attrs=attrs, num_outputs=2)
    for g, w in zip(got, want):
        close(g, w, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(data=st.data(), a_rank=st.integers(1, 4), b_rank=st.integers(1, 4))
def test_matmul_broadcasts_batches_and_promotes_vectors_like_float64(data: Any, a_rank: int, b_rank: int) -> None:
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))

    def operand(rank: int, batch_shape: tuple[int, ...], rows: int, cols: int) -> tuple[int, ...]:
        if rank == 1:  # a vector: promoted to a matrix and squeezed again, as in numpy
            return (k,)
        return (*batch_shape[len(batch_shape) - min(rank - 2, len(batch_shape)) :], rows, cols)

    a_shape = operand(a_rank, batch.input_shapes[0], m, k)
    b_shape = operand(b_rank, batch.input_shapes[1], k, n)
    a = data.draw(hnp.arrays(np.float32, a_shape, elements=st.floats(-4, 4, width=32)))
    b = data.draw(hnp.arrays(np.float32, b_shape, elements=st.floats(-4, 4, width=32)))
    try:
        ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    except ValueError:
        with pytest.raises(InferenceError, match="MatMul"):
            native("MatMul", a, b, opset=13)
        return
    close(native("MatMul", a, b, opset=13)[0], ref.astype(np.float32), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), data=st.data())
def test_comparisons_and_where_broadcast_like_numpy(shapes: Any, data: Any) -> None:
    small = st.integers(-3, 3)
    c = data.draw(hnp.arrays(np.bool_, shapes.input_shapes[0]))
    x = data.draw(hnp.arrays(np.int32, shapes.input_shapes[1], elements=small))
    y = data.draw(hnp.arrays(np.int32, shapes.input_shapes[2], elements=small))
    got = native("Where", c, x, y, opset=16)[0]
    assert got.dtype == np.int32 and np.array_equal(got, np.where(c, x, y))
    for op, fn in (("Less", np.less), ("GreaterOrEqual", np.greater_equal), ("Equal", np.equal)):
        out = native(op, x, y, opset=19)[0]
        assert out.dtype == np.bool_ and np.array_equal(out, fn(x, y)), op
