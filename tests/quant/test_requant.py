"""Requantization arithmetic against independent exact references (fractions) and known values."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeai.quant import requant as rq
from edgeai.quant.float32 import fma_f32

INT32 = st.integers(-(2**31), 2**31 - 1)
SETTINGS = settings(max_examples=300, deadline=None)


def _round_half_up(q: Fraction) -> int:
    return math.floor(q + Fraction(1, 2))


def _round_half_away(q: Fraction) -> int:
    return int(math.copysign(math.floor(abs(q) + Fraction(1, 2)), q))


def _srdhm_ref(a: int, b: int) -> int:
    """Nearest a*b/2**31 with ties toward +inf, saturated (gemmlowp's definition, derived by hand)."""
    return min(_round_half_up(Fraction(a * b, 2**31)), 2**31 - 1)


def _mbqm_ref(x: int, m: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    xl = ((x * 2**left + 2**31) % 2**32) - 2**31
    return _round_half_away(Fraction(_srdhm_ref(xl, m), 2**right))


# ---------------------------------------------------------------- fixed point


def test_known_values() -> None:
    # gemmlowp: the only overflow case saturates
    assert rq.saturating_rounding_doubling_high_mul(-(2**31), -(2**31)) == 2**31 - 1
    # ties: SRDHM rounds -1.5 to -1 and 1.5 to 2; RoundingDivideByPOT rounds -1.5 to -2
    assert rq.saturating_rounding_doubling_high_mul(-3, 2**30) == -1
    assert rq.saturating_rounding_doubling_high_mul(3, 2**30) == 2
    assert rq.rounding_divide_by_pot(-3, 1) == -2
    assert rq.rounding_divide_by_pot(3, 1) == 2
    assert rq.rounding_divide_by_pot(-5, 2) == -1
    # TFLite QuantizeMultiplier: 0.5 = 2**30 * 2**(0-31); 1.0 -> shift 1; 0.75 -> 0.75 * 2**31
    assert rq.quantize_multiplier(0.5) == (2**30, 0)
    assert rq.quantize_multiplier(1.0) == (2**30, 1)
    assert rq.quantize_multiplier(0.75) == (3 * 2**29, 0)
    assert rq.quantize_multiplier(2.0**-40) == (0, 0)
    # rounding up to 2**31 renormalises
    assert rq.quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)


def test_quantize_multiplier_rejects_bad_scale() -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        rq.quantize_multiplier(-0.1)


@SETTINGS
@given(INT32, INT32)
def test_srdhm_matches_exact(a: int, b: int) -> None:
    assert rq.saturating_rounding_doubling_high_mul(a, b) == _srdhm_ref(a, b)


@SETTINGS
@given(INT32, st.integers(0, 31))
def test_rounding_divide_by_pot_matches_exact(x: int, e: int) -> None:
    assert rq.rounding_divide_by_pot(x, e) == _round_half_away(Fraction(x, 2**e))


@SETTINGS
@given(st.floats(2.0**-30, 2.0**10, allow_nan=False))
def test_quantize_multiplier_represents_the_real(real: float) -> None:
    m, shift = rq.quantize_multiplier(real)
    assert 2**30 <= m < 2**31
    approx = Fraction(m) * Fraction(2) ** (shift - 31)
    assert abs(approx - Fraction(real)) <= Fraction(2) ** (shift - 32)


@SETTINGS
@given(
    st.lists(INT32, min_size=1, max_size=20),
    st.floats(2.0**-20, 4.0, allow_nan=False),
    st.integers(-128, 127),
)
def test_requantize_tflite_vector_matches_scalar_and_exact(acc: list[int], real: float, zp: int) -> None:
    m, shift = rq.quantize_multiplier(real)
    got = rq.requantize_tflite(np.array(acc, np.int32), m, shift, zp, -128, 127)
    for a, g in zip(acc, got.tolist()):
        want = min(max(_mbqm_ref(a, m, shift) + zp, -128), 127)
        assert g == want
        assert rq.requantize_tflite_scalar(a, m, shift, zp, -128, 127) == want


# ---------------------------------------------------------------------- ONNX


@SETTINGS
@given(
    st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=20),
    st.floats(2.0**-20, 2.0, allow_nan=False, width=32),
    st.integers(0, 255),
)
def test_requantize_onnx_matches_exact(acc: list[int], scale: float, zp: int) -> None:
    s = np.float32(scale)
    got = rq.requantize_onnx(np.array(acc, np.int32), s, zp, 0, 255)
    for a, g in zip(acc, got.tolist()):
        prod = Fraction(float(np.float32(a))) * Fraction(float(s))
        v = float(np.float32(float(prod)))  # float32 product, correctly rounded
        want = min(max(round(Fraction(v)) + zp, 0), 255)  # Python round: ties to even
        assert g == want
        assert rq.requantize_onnx_scalar(a, s, zp, 0, 255) == want


def test_round_half_even_ties() -> None:
    assert [rq.round_half_even(v) for v in (0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999)] == [
        0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 2.0,
    ]  # fmt: skip


def test_jit_helpers_agree_with_python() -> None:
    numba = pytest.importorskip("numba")

    @numba.njit(cache=False)
    def both(acc: int, scale: np.float32, m: int, shift: int) -> tuple[int, int]:
        return (
            rq.requantize_onnx_scalar(acc, scale, 3, -128, 127),
            rq.requantize_tflite_scalar(acc, m, shift, 3, -128, 127),
        )

    rng = np.random.default_rng(0)
    for _ in range(200):
        acc = int(rng.integers(-(2**20), 2**20))
        real = float(rng.uniform(1e-5, 0.1))
        scale = np.float32(real)
        m, shift = rq.quantize_multiplier(real)
        assert both(acc, scale, m, shift) == (
            rq.requantize_onnx_scalar(acc, scale, 3, -128, 127),
            rq.requantize_tflite_scalar(acc, m, shift, 3, -128, 127),
        )


# ----------------------------------------------------------------------- FMA


@SETTINGS
@given(*(st.floats(-(2.0**20), 2.0**20, allow_nan=False, width=32) for _ in range(3)))
def test_fma_is_correctly_rounded(a: float, b: float, c: float) -> None:
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    r = fma_f32(np.float32(a), np.float32(b), np.float32(c))
    # the float32 nearest to the exact value, ties to even
    below = np.float32(float(exact))
    cands = {
        float(below),
        float(np.nextafter(below, np.float32(np.inf))),
        float(np.nextafter(below, np.float32(-np.inf))),
    }
    best = min(cands, key=lambda v: (abs(Fraction(v) - exact), int(np.float32(v).view(np.int32)) & 1))
    assert float(r) == best


# ------------------------------------------------------- TFLite mode in an op


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), per_channel=st.booleans())
def test_qlinear_conv_tflite_mode_matches_reference_formula(seed: int, per_channel: bool) -> None:
    """QLinearConv with ``requant_mode="tflite"``: TFLite's formula applied to the exact accumulator."""
    import edgeai.ops.quantized  # noqa: F401
    from edgeai.ops._base import OpContext, lookup

    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, 3, 6, 5)).astype(np.int8)
    w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 4).astype(np.int32)
    xs, ys = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.05, 0.5))
    ws = rng.uniform(0.001, 0.02, 4 if per_channel else 1).astype(np.float32)
    xz, yz = np.int8(rng.integers(-20, 20)), np.int8(rng.integers(-20, 20))
    ctx = OpContext("c", "QLinearConv", opset=10, attrs={"pads": [1, 1, 1, 1]}, requant_mode="tflite")
    got = lookup("QLinearConv", "", 10)(ctx).run(x, xs, xz, w, ws, np.int8(0), ys, yz, bias)[0]
    # independent accumulator: direct loops in Python integers
    xp = np.pad(x.astype(np.int64) - int(xz), ((0, 0), (0, 0), (1, 1), (1, 1)))
    for m in range(4):
        real = float(xs) * float(ws[m % ws.size]) / float(ys)  # TFLite: double arithmetic
        mult, shift = rq.quantize_multiplier(real)
        for i in range(6):
            for j in range(5):
                acc = int((xp[0, :, i : i + 3, j : j + 3] * w[m].astype(np.int64)).sum()) + int(bias[m])
                want = min(max(_mbqm_ref(acc, mult, shift) + int(yz), -128), 127)
                assert got[0, m, i, j] == want


def _tflite_ctx(op: str, domain: str = "com.microsoft", opset: int = 1) -> object:
    import edgeai.ops.quantized  # noqa: F401
    from edgeai.ops._base import OpContext, lookup

    return lookup(op, domain, opset)(OpContext("n", op, domain, opset, requant_mode="tflite"))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    sa=st.floats(2.0**-10, 0.5, width=32),
    sb=st.floats(2.0**-10, 0.5, width=32),
    sc=st.floats(2.0**-10, 0.5, width=32),
)
def test_tflite_add_mul_match_reference_formulas(seed: int, sa: float, sb: float, sc: float) -> None:
    """TFLite's reference ADD (left shift 20, three multipliers) and MUL, on every element."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, 40).astype(np.int8)
    b = rng.integers(-128, 128, 40).astype(np.int8)
    za, zb, zc = (np.int8(v) for v in rng.integers(-30, 30, 3))
    f = np.float32
    ins = (a, f(sa), za, b, f(sb), zb, f(sc), zc)
    got_add = _tflite_ctx("QLinearAdd").run(*ins)[0]  # type: ignore[attr-defined]
    got_mul = _tflite_ctx("QLinearMul").run(*ins)[0]  # type: ignore[attr-defined]
    twice_max = 2.0 * max(float(f(sa)), float(f(sb)))
    m1, s1 = rq.quantize_multiplier(float(f(sa)) / twice_max)
    m2, s2 = rq.quantize_multiplier(float(f(sb)) / twice_max)
    mo, so = rq.quantize_multiplier(twice_max / ((1 << 20) * float(f(sc))))
    mm, sm = rq.quantize_multiplier(float(f(sa)) * float(f(sb)) / float(f(sc)))
    for i in range(a.size):
        x1, x2 = int(a[i]) - int(za), int(b[i]) - int(zb)
        raw = _mbqm_ref(x1 << 20, m1, s1) + _mbqm_ref(x2 << 20, m2, s2)
        assert got_add[i] == min(max(_mbqm_ref(raw, mo, so) + int(zc), -128), 127)
        assert got_mul[i] == min(max(_mbqm_ref(x1 * x2, mm, sm) + int(zc), -128), 127)


def test_tflite_quantize_rounds_ties_away_from_zero() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], np.float32)
    q = _tflite_ctx("QuantizeLinear", "", 13).run(x, np.float32(1.0), np.int8(0))[0]  # type: ignore[attr-defined]
    assert q.tolist() == [1, 2, 3, -1, -2, -3]


def test_ops_without_tflite_arithmetic_refuse_tflite_mode() -> None:
    from edgeai.errors import UnsupportedOpError

    for op in ("QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearSoftmax", "QLinearSigmoid"):
        with pytest.raises(UnsupportedOpError, match="requant_mode='tflite'"):
            _tflite_ctx(op)


def test_jit_fma_matches_exact_numpy_fma() -> None:
    numba = pytest.importorskip("numba")
    from edgeai.quant.float32 import fma_f32_jit

    @numba.njit(cache=False)
    def fma_all(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        for i in range(a.size):
            out[i] = fma_f32_jit(a[i], b[i], c[i])
        return out

    rng = np.random.default_rng(0)
    a, b, c = ((rng.standard_normal(20000) * 2.0 ** rng.integers(-20, 20, 20000)).astype(np.float32) for _ in range(3))
    c[::3] = -(a[::3].astype(np.float64) * b[::3]).astype(np.float32)  # cancellation: FMA and mul+add differ
    got = fma_all(a, b, c)
    assert np.array_equal(got, fma_f32(a, b, c))
    assert not np.array_equal(got, (a * b + c).astype(np.float32))
