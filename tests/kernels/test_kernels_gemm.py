"""INT8 GEMM kernels against an int64 numpy reference, edgeai's requantization reference and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_refs import fixed_point_exact, gemm_ref, ort_matmul_integer, ort_qlinear_matmul

from edgeai.errors import InputShapeError, InputTypeError
from edgeai.kernels.api import KernelArgumentError, Requant, prepare_gemm
from edgeai.kernels.cpu import available_paths
from edgeai.kernels.requant import requantize_fixed_point, requantize_fixed_point_branchless
from edgeai.quant.requant import quantize_multiplier, requantize_onnx, requantize_tflite

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = [np.dtype(np.uint8), np.dtype(np.int8)]


def _values(draw: st.DrawFn, dtype: np.dtype, shape: tuple[int, ...], style: str, seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    if style == "extreme":  # the saturation case of vpmaddubsw: only the end points of the range
        return rng.choice(np.array([info.min, info.max], dtype), shape)
    if style == "7bit":  # reduce_range weights
        lo, hi = (0, 127) if dtype == np.uint8 else (-64, 63)
        return rng.integers(lo, hi + 1, shape).astype(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


@st.composite
def gemm_case(draw: st.DrawFn) -> dict:
    m = draw(st.integers(1, 40))
    k = draw(st.integers(1, 80))
    n = draw(st.integers(1, 70))
    a_dtype = draw(st.sampled_from(DTYPES))
    b_dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31))
    a = _values(draw, a_dtype, (m, k), draw(st.sampled_from(["full", "extreme"])), seed)
    b = _values(draw, b_dtype, (k, n), draw(st.sampled_from(["full", "extreme", "7bit"])), seed + 1)
    ai, bi = np.iinfo(a_dtype), np.iinfo(b_dtype)
    a_zp = draw(st.integers(int(ai.min), int(ai.max)))
    if draw(st.booleans()):
        b_zp = np.random.default_rng(seed + 2).integers(int(bi.min), int(bi.max) + 1, n).astype(b_dtype)
    else:
        b_zp = np.asarray(draw(st.integers(int(bi.min), int(bi.max))), b_dtype)
    bias = np.random.default_rng(seed + 3).integers(-50000, 50000, n).astype(np.int32) if draw(st.booleans()) else None
    return {"a": a, "a_zp": a_zp, "b": b, "b_zp": b_zp, "bias": bias}


@SETTINGS
@given(case=gemm_case())
def test_gemm_int32_matches_reference_and_onnxruntime(kernel_path: str, case: dict) -> None:
    a, a_zp, b, b_zp, bias = case["a"], case["a_zp"], case["b"], case["b_zp"], case["bias"]
    f = prepare_gemm(b, b_zp, a_dtype=a.dtype, bias=bias)
    got = f(a, a_zp)
    assert got.dtype == np.int32 and got.shape == (a.shape[0], b.shape[1])
    np.testing.assert_array_equal(got, gemm_ref(a, a_zp, b, b_zp, bias))
    if bias is None:
        np.testing.assert_array_equal(got, ort_matmul_integer(a, a_zp, b, b_zp))


@SETTINGS
@given(case=gemm_case(), data=st.data())
def test_gemm_requant_onnx_matches_qlinearmatmul(kernel_path: str, case: dict, data: st.DataObject) -> None:
    a, a_zp, b, b_zp = case["a"], case["a_zp"], case["b"], case["b_zp"]
    y_dtype = data.draw(st.sampled_from(DTYPES))
    yi = np.iinfo(y_dtype)
    y_zp = data.draw(st.integers(int(yi.min), int(yi.max)))
    a_s = np.float32(data.draw(st.floats(1e-3, 0.1)))
    b_s = np.float32(data.draw(st.floats(1e-3, 0.1)))
    y_s = np.float32(data.draw(st.floats(0.05, 20.0)))
    scale = a_s * b_s / y_s  # in float32, as ONNX Runtime computes it
    f = prepare_gemm(b, b_zp, a_dtype=a.dtype, requant=Requant("onnx", scale, None, None, y_zp, y_dtype))
    got = f(a, a_zp)
    assert got.dtype == y_dtype
    want = requantize_onnx(gemm_ref(a, a_zp, b, b_zp, None), scale, y_zp, int(yi.min), int(yi.max))
    np.testing.assert_array_equal(got, want)
    # ONNX Runtime implements QLinearMatMul for y of a's type, and not for int8 a with uint8 b
    if b_zp.ndim == 0 and y_dtype == a.dtype and not (a.dtype == np.int8 and b.dtype == np.uint8):
        ort = ort_qlinear_matmul(a, float(a_s), a_zp, b, float(b_s), b_zp, float(y_s), y_zp, y_dtype)
        np.testing.assert_array_equal(got, ort)


@SETTINGS
@given(case=gemm_case(), data=st.data())
def test_gemm_requant_tflite_per_channel(kernel_path: str, case: dict, data: st.DataObject) -> None:
    a, a_zp, b, b_zp, bias = case["a"], case["a_zp"], case["b"], case["b_zp"], case["bias"]
    n = b.shape[1]
    reals = data.draw(st.lists(st.floats(1e-5, 3.0), min_size=n, max_size=n))
    ms = np.array([quantize_multiplier(r) for r in reals], np.int64)
    mult, shift = ms[:, 0].astype(np.int32), ms[:, 1].astype(np.int32)
    act = data.draw(st.sampled_from([(None, None), (-20, 90)]))
    rq = Requant("tflite", None, mult, shift, -3, np.dtype(np.int8), act_min=act[0], act_max=act[1])
    got = prepare_gemm(b, b_zp, a_dtype=a.dtype, bias=bias, requant=rq)(a, a_zp)
    qmin, qmax = rq.bounds()
    want = requantize_tflite(gemm_ref(a, a_zp, b, b_zp, bias), mult, shift, -3, qmin, qmax, dtype=np.int8)
    np.testing.assert_array_equal(got, want)


I32_EDGES = [-(2**31), -(2**31) + 1, -(2**30) - 1, -65537, -3, -2, -1, 0, 1, 2, 3, 65537, 2**30, 2**31 - 2, 2**31 - 1]
MULT_EDGES = [-(2**31), -(2**31) + 1, -1, 0, 1, 2**30, 2**30 + 1, 1518500250, 2**31 - 1]


def _fixed_point_loop() -> object:
    from numba import njit

    @njit(cache=False)
    def loop(acc, mult, shift, zp, qmin, qmax, out):  # type: ignore[no-untyped-def]
        # the form the fused store runs: one call per element of a contiguous loop (vectorized)
        for i in range(acc.size):
            out[i] = requantize_fixed_point_branchless(acc[i], mult[i], shift[i], zp, qmin, qmax)

    return loop


def _check_fixed_point(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, zp: int, qmin: int, qmax: int) -> None:
    got = np.empty(acc.size, np.int64)
    _fixed_point_loop()(acc, mult, shift, zp, qmin, qmax, got)
    for i in range(acc.size):
        args = (int(acc[i]), int(mult[i]), int(shift[i]), zp, qmin, qmax)
        want = fixed_point_exact(*args)
        assert requantize_fixed_point(*args) == want, args  # the scalar reference itself
        assert requantize_fixed_point_branchless(*args) == want, args  # as plain Python
        assert got[i] == want, args  # compiled, in a vectorized loop


@pytest.mark.parametrize("zp, qmin, qmax", [(0, -(2**31), 2**31 - 1), (-3, -128, 127), (128, 0, 255), (5, -20, 90)])
def test_fixed_point_branchless_matches_scalar_on_edge_cases(zp: int, qmin: int, qmax: int) -> None:
    """INT32_MIN/MAX accumulators, multiplier INT32_MIN (the one SRDHM overflow), every shift in [-31, 30]."""
    grid = np.array(np.meshgrid(I32_EDGES, MULT_EDGES, np.arange(-31, 31), indexing="ij")).reshape(3, -1)
    acc, mult, shift = grid[0].astype(np.int32), grid[1].astype(np.int32), grid[2].astype(np.int32)
    _check_fixed_point(acc, mult, shift, zp, qmin, qmax)


@settings(max_examples=60, deadline=None)
@given(
    acc=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=40),
    mult=st.integers(-(2**31), 2**31 - 1),
    shift=st.integers(-31, 30),
    zp=st.integers(-128, 255),
)
def test_fixed_point_branchless_matches_exact_random(acc: list, mult: int, shift: int, zp: int) -> None:
    n = len(acc)
    _check_fixed_point(
        np.array(acc, np.int32), np.full(n, mult, np.int32), np.full(n, shift, np.int32), zp, -(2**31), 2**31 - 1
    )


@pytest.mark.parametrize("m, k", [(1, 16), (7, 16), (33, 16), (70, 64)])
def test_gemm_requant_tflite_extreme_accumulators_and_shifts(kernel_path: str, m: int, k: int) -> None:
    """Accumulators at the int32 ends (through the bias) and every shift from -31 to 30, per column."""
    rng = np.random.default_rng(m)
    n = 64  # two full 32-column panels (the vector store) ...
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    bias = np.where(np.arange(n) % 2 == 0, 2**31 - 1, -(2**31)).astype(np.int32)  # wraps past the ends
    shift = rng.permutation(np.r_[np.arange(-31, 31), -5, 3]).astype(np.int32)
    mult = rng.choice(np.array([0, 1, 2**30, 2**31 - 1, 1518500250], np.int32), n)
    for dtype, zp in ((np.dtype(np.int8), -3), (np.dtype(np.uint8), 128)):
        for cols in (n, n - 2):  # ... and a partial one (masked vector store, or the scalar one)
            rq = Requant("tflite", None, mult[:cols], shift[:cols], zp, dtype)
            got = prepare_gemm(b[:, :cols], 0, a_dtype=np.uint8, bias=bias[:cols], requant=rq)(a, 7)
            qmin, qmax = rq.bounds()
            acc = gemm_ref(a, 7, b[:, :cols], 0, bias[:cols])
            want = np.array(
                [[fixed_point_exact(int(acc[i, j]), int(mult[j]), int(shift[j]), zp, qmin, qmax) for j in range(cols)]
                 for i in range(m)]
            )  # fmt: skip
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("m, k", [(70, 100), (96, 64), (33, 288)])
def test_gemm_full_tiles_every_mode(kernel_path: str, m: int, k: int) -> None:
    """Full 32-column panels and AMX row blocks (the vector store) next to tails, per-column terms, clamps."""
    rng = np.random.default_rng(m + k)
    n = 100
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    b_zp = rng.integers(-128, 128, n).astype(np.int8)
    bias = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    acc = gemm_ref(a, 9, b, b_zp, bias)
    np.testing.assert_array_equal(prepare_gemm(b, b_zp, a_dtype=np.uint8, bias=bias)(a, 9), acc)
    scale = (rng.random(n) * 2e-5).astype(np.float32)
    for dtype, zp, act in ((np.dtype(np.uint8), 120, (None, None)), (np.dtype(np.int8), -7, (-100, 90))):
        rq = Requant("onnx", scale, None, None, zp, dtype, act_min=act[0], act_max=act[1])
        got = prepare_gemm(b, b_zp, a_dtype=np.uint8, bias=bias, requant=rq)(a, 9)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, requantize_onnx(acc, scale, zp, *rq.bounds()).astype(dtype))
        ms = np.array([quantize_multiplier(float(r)) for r in scale], np.int64)
        rq = Requant("tflite", None, ms[:, 0].astype(np.int32), ms[:, 1].astype(np.int32), zp, dtype, *act)
        got = prepare_gemm(b, b_zp, a_dtype=np.uint8, bias=bias, requant=rq)(a, 9)
        want = requantize_tflite(acc, ms[:, 0], ms[:, 1], zp, *rq.bounds(), dtype=dtype)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("a_dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
@pytest.mark.parametrize("k", [256, 200])
def test_gemm_large_repeated_calls_any_input_alignment(kernel_path: str, a_dtype: np.dtype, k: int) -> None:
    """GEMMs above api._ALIGN_MIN_MACS write a 64-byte aligned output; on AMX, A rows off 64-byte boundaries (A at
    every 16-byte offset, K = 200) are copied block by block into an aligned scratch (17 panels); a strided A,
    int32 and requantized outputs, the first and the direct calls."""
    rng = np.random.default_rng(11)
    m, n = 160, 520  # 17-21 M MACs
    info = np.iinfo(a_dtype)
    a0 = rng.integers(int(info.min), int(info.max) + 1, (m, k)).astype(a_dtype)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    bias = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    acc = gemm_ref(a0, 3, b, 0, bias)
    scale = np.float32(2e-5)
    rq = Requant("onnx", scale, None, None, 128, np.dtype(np.uint8))
    f32 = prepare_gemm(b, 0, a_dtype=a_dtype, bias=bias)
    fq = prepare_gemm(b, 0, a_dtype=a_dtype, bias=bias, requant=rq)
    buf = np.zeros(m * k + 64, a_dtype)
    for offset in (0, 16, 32, 48, 1, 0, 16):
        a = buf[offset : offset + m * k].reshape(m, k)
        a[...] = a0
        np.testing.assert_array_equal(f32(a, 3), acc)
        np.testing.assert_array_equal(fq(a, 3), requantize_onnx(acc, scale, 128, 0, 255).astype(np.uint8))
    wide = np.zeros((m, 2 * k), a_dtype)
    wide[:, ::2] = a0
    np.testing.assert_array_equal(f32(wide[:, ::2], 3), acc)


@pytest.mark.parametrize("b_zp", [0, 3, "per-column"])
def test_gemm_output_beyond_l2_every_call(kernel_path: str, b_zp: object) -> None:
    """int32 outputs of 2 MB and more: on AMX, full tiles go out through the non-temporal store (column terms,
    the row term of a weight zero point), the rest (VNNI rows after the last 32-row block, the narrow last panel)
    through the vector store; the first, binding and direct calls."""
    rng = np.random.default_rng(5)
    m, k, n = 1030, 72, 560  # 2.2 MB of int32: 32 full row blocks, 6 VNNI rows, a 16-column last panel
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    zp = rng.integers(-128, 128, n).astype(np.int8) if b_zp == "per-column" else np.int8(b_zp)
    bias = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    f = prepare_gemm(b, zp, a_dtype=np.uint8, bias=bias)
    want = gemm_ref(a, 17, b, zp, bias)
    for _ in range(4):
        np.testing.assert_array_equal(f(a, 17), want)


@pytest.mark.parametrize("k", [1, 3, 4, 8, 12, 16, 20, 32])
def test_gemm_small_k_many_rows_every_mode(kernel_path: str, k: int) -> None:
    """Small K (the 1x1 convolutions of thin layers) over many rows: AMX row blocks, or VNNI tiles
    only for K <= 16; tails of row blocks; a narrow last panel (N = 48); weight zero points zero in
    the first panel and not in the second (the store drops the row term per tile)."""
    rng = np.random.default_rng(k)
    m, n = 291, 48
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    bias = rng.integers(-(2**16), 2**16, n).astype(np.int32)
    scale = (rng.random(n) * 4e-3 + 1e-4).astype(np.float32)
    ms = np.array([quantize_multiplier(float(r)) for r in scale], np.int64)
    mult, shift = ms[:, 0].astype(np.int32), ms[:, 1].astype(np.int32)
    mixed = np.where(np.arange(n) < 32, 0, rng.integers(-128, 128, n)).astype(np.int8)
    for b_zp in (np.int8(0), np.int8(-5), mixed):
        acc = gemm_ref(a, 131, b, b_zp, bias)
        np.testing.assert_array_equal(prepare_gemm(b, b_zp, a_dtype=np.uint8, bias=bias)(a, 131), acc)
        rq = Requant("onnx", scale, None, None, 17, np.dtype(np.uint8), act_min=20, act_max=240)
        got = prepare_gemm(b, b_zp, a_dtype=np.uint8, bias=bias, requant=rq)(a, 131)
        np.testing.assert_array_equal(got, requantize_onnx(acc, scale, 17, 20, 240).astype(np.uint8))
        rq = Requant("tflite", None, mult, shift, -4, np.dtype(np.int8))
        got = prepare_gemm(b, b_zp, a_dtype=np.uint8, bias=bias, requant=rq)(a, 131)
        want = requantize_tflite(acc, mult, shift, -4, -128, 127, dtype=np.int8)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [1, 8, 16, 17, 32, 33, 48, 49, 64, 65, 96, 130])
def test_gemm_row_blocks_every_width_and_mode(kernel_path: str, n: int) -> None:
    """Symmetric weights on the AVX-512 paths run VNNI row blocks with the store fused (tiles.ROWS_ENTRIES):
    column blocks of 1 to 4 vectors (masked past N), blocks of 4, 6 or 8 rows with every row remainder (one row),
    K not a multiple of 4 (a padded copy of A), uint8 and int8 activations, every output mode, and
    accumulators past the float32 rounding tie and int32 saturation of the requantization."""
    rng = np.random.default_rng(n)
    for m, k in ((1, 20), (2, 3), (13, 8), (29, 36), (47, 16), (7, 37), (5, 70)):
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        bias = rng.integers(-(2**24), 2**24, n).astype(np.int32)
        scale = (rng.random(n) * 3e-3 + 1e-5).astype(np.float32)
        ms = np.array([quantize_multiplier(float(r)) for r in scale], np.int64)
        mult, shift = ms[:, 0].astype(np.int32), ms[:, 1].astype(np.int32)
        for a_dtype, a_zp in ((np.dtype(np.uint8), 201), (np.dtype(np.int8), -17)):
            info = np.iinfo(a_dtype)
            a = rng.integers(int(info.min), int(info.max) + 1, (m, k)).astype(a_dtype)
            acc = gemm_ref(a, a_zp, b, 0, bias)
            f = prepare_gemm(b, 0, a_dtype=a_dtype, bias=bias)
            np.testing.assert_array_equal(f(a, a_zp), acc)
            if kernel_path in ("vnni", "amx"):  # the path under test, not the tile drivers
                from edgeai.kernels.tiles import ROWS_ENTRIES

                assert f._plans[(m, a_zp)].fn is ROWS_ENTRIES[0]
            rq = Requant("onnx", scale, None, None, 7, np.dtype(np.uint8), act_min=3, act_max=250)
            got = prepare_gemm(b, 0, a_dtype=a_dtype, bias=bias, requant=rq)(a, a_zp)
            np.testing.assert_array_equal(got, requantize_onnx(acc, scale, 7, 3, 250).astype(np.uint8))
            rq = Requant("tflite", None, mult, shift, -4, np.dtype(np.int8))
            got = prepare_gemm(b, 0, a_dtype=a_dtype, bias=bias, requant=rq)(a, a_zp)
            np.testing.assert_array_equal(got, requantize_tflite(acc, mult, shift, -4, -128, 127, dtype=np.int8))


def test_gemm_repeated_calls_new_shapes_and_read_only_input(kernel_path: str) -> None:
    """The compiled entry bound on the first call serves later calls: other M, other a_zp, a
    read-only input (numba would type it as a different array), int8 activations."""
    rng = np.random.default_rng(3)
    b = rng.integers(-128, 128, (40, 70)).astype(np.int8)
    for a_dtype in (np.uint8, np.int8):
        f = prepare_gemm(b, 2, a_dtype=a_dtype)
        info = np.iinfo(a_dtype)
        for m, a_zp in ((5, 1), (77, -3 if a_dtype == np.int8 else 200), (5, 1), (1, 0)):
            a = rng.integers(int(info.min), int(info.max) + 1, (m, 40)).astype(a_dtype)
            a.flags.writeable = False
            np.testing.assert_array_equal(f(a, a_zp), gemm_ref(a, a_zp, b, 2, None))


def test_gemm_read_only_first_call_adds_no_compiled_variant(kernel_path: str) -> None:
    """A read-only input on the first call runs the writable specialization (each compiled variant of
    a driver entry costs seconds of JIT)."""
    rng = np.random.default_rng(4)
    b = rng.integers(-128, 128, (24, 40)).astype(np.int8)
    a = rng.integers(0, 256, (50, 24)).astype(np.uint8)
    prepare_gemm(b, 0, a_dtype=np.uint8)(a, 3)  # the writable specialization exists
    f = prepare_gemm(b, 0, a_dtype=np.uint8)
    before = len(f.fn.overloads)
    a.flags.writeable = False
    np.testing.assert_array_equal(f(a, 3), gemm_ref(a, 3, b, 0, None))
    np.testing.assert_array_equal(f(a, 3), gemm_ref(a, 3, b, 0, None))
    assert len(f.fn.overloads) == before


def test_gemm_requant_tflite_rounding_ties(kernel_path: str) -> None:
    """Exact halves at both rounding steps, negative and positive (ties up, then away from zero)."""
    m, n = 33, 64
    a = np.zeros((m, 8), np.uint8)  # acc = bias: every tie is placed by hand
    b = np.zeros((8, n), np.int8)
    bias = np.arange(-40, 24, dtype=np.int32) * 3
    mult = np.full(n, 2**30, np.int32)  # x / 2, ties toward +infinity
    for s in (0, -1, -2, -3):
        rq = Requant("tflite", None, mult, np.full(n, s, np.int32), 2, np.dtype(np.int8))
        got = prepare_gemm(b, 0, a_dtype=np.uint8, bias=bias, requant=rq)(a, 0)
        want = [fixed_point_exact(int(v), 2**30, s, 2, -128, 127) for v in bias]
        np.testing.assert_array_equal(got, np.tile(want, (m, 1)))


@pytest.mark.parametrize("m, k", [(32, 64), (63, 100), (64, 128), (97, 36)])
def test_gemm_int8_activations_row_blocks(kernel_path: str, m: int, k: int) -> None:
    """int8 A (taken as uint8 by x ^ 0x80, zero point + 128) over whole AMX row blocks and the rows after them."""
    rng = np.random.default_rng(m * k)
    n = 70
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    a[:3] = np.int8(-128)  # the ends of the range
    a[3:6] = np.int8(127)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    bias = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    for b_zp in (np.int8(0), rng.integers(-128, 128, n).astype(np.int8)):
        for a_zp in (-128, 5, 127):
            acc = gemm_ref(a, a_zp, b, b_zp, bias)
            np.testing.assert_array_equal(prepare_gemm(b, b_zp, a_dtype=np.int8, bias=bias)(a, a_zp), acc)
        rq = Requant("onnx", np.float32(2e-5), None, None, -3, np.dtype(np.int8))
        got = prepare_gemm(b, b_zp, a_dtype=np.int8, bias=bias, requant=rq)(a, 5)
        want = requantize_onnx(gemm_ref(a, 5, b, b_zp, bias), np.float32(2e-5), -3, -128, 127)
        np.testing.assert_array_equal(got, want)


def test_gemm_saturation_worst_case(kernel_path: str) -> None:
    """a = 255 against b = -128/127 pairs: where vpmaddubsw would saturate int16 pair sums."""
    a = np.full((9, 64), 255, np.uint8)
    b = np.tile(np.array([[-128], [-128], [127], [127]], np.int8), (16, 33))
    got = prepare_gemm(b, 0, a_dtype=np.uint8)(a, 0)
    np.testing.assert_array_equal(got, gemm_ref(a, 0, b, 0, None))
    b7 = np.tile(np.array([[-64], [-64], [63], [63]], np.int8), (16, 33))  # 7-bit extremes
    np.testing.assert_array_equal(prepare_gemm(b7, 0, a_dtype=np.uint8)(a, 0), gemm_ref(a, 0, b7, 0, None))
    # 7-bit ranges that vpmaddubsw only takes after a shift: uint8 reduce_range [0, 127] and a span of
    # 128 values off centre; pairs at both ends of the range, per-column zero points, every output mode
    for lo, dtype in ((0, np.uint8), (-100, np.int8)):
        pattern = np.array([[lo], [lo], [lo + 127], [lo + 127], [lo + 127], [lo], [lo], [lo + 127]])
        bw = np.tile(pattern, (8, 40)).astype(dtype)
        bzp = np.linspace(lo, lo + 127, 40).astype(dtype)
        acc = gemm_ref(a, 0, bw, bzp, None)
        np.testing.assert_array_equal(prepare_gemm(bw, bzp, a_dtype=np.uint8)(a, 0), acc)
        rq = Requant("onnx", np.float32(3e-6), None, None, 0, np.dtype(np.int8))
        got = prepare_gemm(bw, bzp, a_dtype=np.uint8, requant=rq)(a, 0)
        np.testing.assert_array_equal(got, requantize_onnx(acc, np.float32(3e-6), 0, -128, 127))


@pytest.mark.skipif("avx2" not in available_paths(), reason="this CPU has no AVX2")
def test_avx2_uses_vpmaddubsw_only_for_7bit_weights() -> None:
    from edgeai.kernels.pack import choose_kind

    assert choose_kind("avx2", np.array([[-64, 63]])) == ("avx2_7bit", 0)
    assert choose_kind("avx2", np.array([[0, 127]])) == ("avx2_7bit", 64)  # uint8 reduce_range
    assert choose_kind("avx2", np.array([[-65, 62]])) == ("avx2_7bit", -1)  # shifted to [-64, 63]
    assert choose_kind("avx2", np.array([[-65, 63]])) == ("avx2_i16", 0)  # 8 bits of range
    assert choose_kind("avx2", np.array([[-128, 127]])) == ("avx2_i16", 0)
    assert choose_kind("vnni", np.array([[0, 255]])) == ("vnni", 128)


def test_gemm_two_threads_matches_one() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (150, 70)).astype(np.uint8)
    b = rng.integers(-128, 128, (70, 100)).astype(np.int8)
    rq = Requant("onnx", np.float32(0.001), None, None, 10, np.dtype(np.uint8))
    one = prepare_gemm(b, 3, a_dtype=np.uint8, requant=rq)(a, 7)
    two = prepare_gemm(b, 3, a_dtype=np.uint8, requant=rq, threads=2)(a, 7)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, requantize_onnx(gemm_ref(a, 7, b, 3, None), np.float32(0.001), 10, 0, 255))


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_gemm_two_threads_every_path(kernel_path: str, mode: str) -> None:
    """Each path's parallel entry (its own prange loop over row blocks x panels; AMX: 32-row blocks, the VNNI
    tail rows and the last pending AMX tile of every work item) against the int64 reference."""
    rng = np.random.default_rng(11)
    a = rng.integers(0, 256, (150, 70)).astype(np.uint8)  # 4 AMX blocks + 22 rows; K not a multiple of 64
    b = rng.integers(-128, 128, (70, 100)).astype(np.int8)  # 4 panels, the last one narrow
    b_zp = rng.integers(-5, 6, 100).astype(np.int8)
    bias = rng.integers(-30000, 30000, 100).astype(np.int32)
    acc = gemm_ref(a, 7, b, b_zp, bias)
    if mode == "onnx":
        scale = np.float32(0.0007)
        rq = Requant("onnx", scale, None, None, 10, np.dtype(np.uint8))
        want = requantize_onnx(acc, scale, 10, 0, 255, dtype=np.uint8)
    else:
        mult, shift = np.int32(1518500250), np.int32(-9)
        rq = Requant("tflite", None, mult, shift, 10, np.dtype(np.uint8))
        want = requantize_tflite(acc, mult, shift, 10, 0, 255, dtype=np.uint8)
    got = prepare_gemm(b, b_zp, a_dtype=np.uint8, bias=bias, requant=rq, threads=2)(a, 7)
    np.testing.assert_array_equal(got, want)


def test_thread_scope_sets_and_restores_numba_threads() -> None:
    """The scope of a multi-threaded kernel call (threading layer's own calls, see api._thread_calls)."""
    import numba

    from edgeai.kernels.api import _ThreadScope

    limit = numba.config.NUMBA_NUM_THREADS
    before = numba.get_num_threads()
    with _ThreadScope(1):
        assert numba.get_num_threads() == 1
        with _ThreadScope(limit + 5):  # clamped to the threads numba launched
            assert numba.get_num_threads() == limit
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    numba.set_num_threads(1)
    try:
        with _ThreadScope(1):  # already at the count: nothing to set or restore
            assert numba.get_num_threads() == 1
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)


def test_gemm_bad_arguments_raise_clear_errors() -> None:
    b = np.ones((8, 4), np.int8)
    with pytest.raises(KernelArgumentError, match="uint8 or int8"):
        prepare_gemm(b.astype(np.float32), 0, a_dtype=np.uint8)
    with pytest.raises(KernelArgumentError, match="2-D"):
        prepare_gemm(b[0], 0, a_dtype=np.uint8)
    with pytest.raises(KernelArgumentError, match="b_zp"):
        prepare_gemm(b, np.zeros(3, np.int8), a_dtype=np.uint8)
    with pytest.raises(KernelArgumentError, match="bias"):
        prepare_gemm(b, 0, a_dtype=np.uint8, bias=np.zeros(4, np.int64))
    with pytest.raises(KernelArgumentError, match="mode"):
        prepare_gemm(b, 0, a_dtype=np.uint8, requant=Requant("fast", np.float32(1), None, None, 0, np.uint8))
    with pytest.raises(KernelArgumentError, match="multiplier"):
        prepare_gemm(b, 0, a_dtype=np.uint8, requant=Requant("tflite", None, None, None, 0, np.uint8))
    with pytest.raises(KernelArgumentError, match="threads"):
        prepare_gemm(b, 0, a_dtype=np.uint8, threads=0)
    f = prepare_gemm(b, 0, a_dtype=np.uint8)
    with pytest.raises(InputTypeError, match="uint8"):
        f(np.ones((2, 8), np.int8), 0)
    with pytest.raises(InputShapeError, match=r"\(M, 8\)"):
        f(np.ones((2, 7), np.uint8), 0)
    with pytest.raises(InputTypeError, match="a_zp"):
        f(np.ones((2, 8), np.uint8), 300)


def test_gemm_empty_dimensions(kernel_path: str) -> None:
    bias = np.array([1, -2, 3], np.int32)
    f = prepare_gemm(np.ones((0, 3), np.int8), 0, a_dtype=np.uint8, bias=bias)  # K = 0: bias only
    np.testing.assert_array_equal(f(np.ones((2, 0), np.uint8), 0), np.tile(bias, (2, 1)))
    assert prepare_gemm(np.ones((5, 3), np.int8), 0, a_dtype=np.uint8)(np.ones((0, 5), np.uint8), 0).shape == (0, 3)
    assert prepare_gemm(np.ones((5, 0), np.int8), 0, a_dtype=np.uint8)(np.ones((4, 5), np.uint8), 0).shape == (4, 0)


def test_gemm_non_contiguous_input(kernel_path: str) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (20, 60)).astype(np.uint8)[::2, ::3]
    b = rng.integers(-128, 128, (20, 9)).astype(np.int8)
    np.testing.assert_array_equal(prepare_gemm(b, 2, a_dtype=np.uint8)(a, 5), gemm_ref(a, 5, b, 2, None))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_gemm_array_subclass_input(kernel_path: str) -> None:
    """An ndarray subclass (np.matrix stays 2-D when flattened) is read as a plain array."""
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (37, 20)).astype(np.uint8)
    b = rng.integers(-128, 128, (20, 9)).astype(np.int8)
    f = prepare_gemm(b, 2, a_dtype=np.uint8)
    want = gemm_ref(a, 5, b, 2, None)
    np.testing.assert_array_equal(f(a, 5), want)  # binds the compiled entry
    got = f(np.matrix(a), 5)
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, want)
