"""The NHWC depthwise kernel's own loops (edgeai.kernels.dwvec): 3x3 of stride 1 and 2 with the ONNX
requantization in the vector store, the general nine-tap loop, partial channel blocks and bands."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import pytest
from kernel_refs import conv_ref, ort_qlinear_conv

from edgeai.kernels.api import Requant, prepare_conv
from edgeai.kernels.dwvec import LANES
from edgeai.quant.requant import requantize_onnx

_PER_CH = (slice(None), None, None)


def _case(rng: np.random.Generator, c: int, h: int, w: int, x_dtype: type, k: int = 3) -> tuple:
    xi = np.iinfo(x_dtype)
    # extremes (the largest products) mixed with ordinary values
    x = np.where(
        rng.random((1, c, h, w)) < 0.3,
        rng.choice(np.array([xi.min, xi.max], x_dtype), (1, c, h, w)),
        rng.integers(xi.min, int(xi.max) + 1, (1, c, h, w)),
    ).astype(x_dtype)
    wt = rng.integers(-128, 128, (c, 1, k, k)).astype(np.int8)
    wt[0] = -128
    w_zp = rng.integers(-4, 5, c).astype(np.int8)
    return x, wt, w_zp


@pytest.mark.parametrize("s", [1, 2])
@pytest.mark.parametrize("c", [16, 48, 24])  # whole blocks of 8 and 16 lanes; 24 of 8 only
@pytest.mark.parametrize(("h", "w"), [(1, 1), (2, 7), (11, 9), (30, 13)])
@pytest.mark.parametrize("x_dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("wide_bias", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_requant_store_matches_reference(
    s: int, c: int, h: int, w: int, x_dtype: type, wide_bias: bool, threads: int
) -> None:
    """3x3, channels a multiple of the vector (LANES 8 or 16): the ONNX requantization runs in the taps loop (float32 bias
    when every sum stays exact, else the int32 one with wrap-around). Power-of-two scales put many
    products exactly on .5, so the rounding (half to even) is checked, not only the clamping."""
    rng = np.random.default_rng(c * 1000 + h * 10 + s)
    x, wt, w_zp = _case(rng, c, h, w, x_dtype)
    x_zp = int(rng.integers(np.iinfo(x_dtype).min, int(np.iinfo(x_dtype).max) + 1))
    if wide_bias:  # past 2**24: the int32 bias; scaled into range, channel 0's wraps around int32
        bias = (rng.choice([-1, 1], c) * 2**24 + rng.integers(-5000, 5000, c)).astype(np.int32)
        bias[0] = 2**31 - 1
        scale = (2.0 ** -rng.integers(18, 20, c)).astype(np.float32)
    else:
        bias = rng.integers(-20000, 20000, c).astype(np.int32)
        scale = (2.0 ** -rng.integers(6, 11, c)).astype(np.float32)
    out_dtype = np.dtype(np.int8) if x_dtype is np.int8 else np.dtype(np.uint8)
    qi = np.iinfo(out_dtype)
    y_zp = int(rng.integers(qi.min, int(qi.max) + 1))
    pads = (1, 1, 1, 1) if h > 1 else (0, 1, 2, 1)
    geo = {"strides": (s, s), "pads": pads, "dilations": (1, 1), "group": c}
    rq = Requant("onnx", scale, None, None, y_zp, out_dtype)
    f = prepare_conv(wt, w_zp, x_dtype=x_dtype, bias=bias, requant=rq, layout="NHWC", threads=threads, **geo)
    assert f.dw_mode == (1 if wide_bias else 3)
    got = f(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), x_zp).transpose(0, 3, 1, 2)
    acc = conv_ref(x, x_zp, wt, w_zp, (s, s), pads, (1, 1), c, bias)
    want = requantize_onnx(acc, scale[_PER_CH], y_zp, int(qi.min), int(qi.max), dtype=out_dtype)
    np.testing.assert_array_equal(got, want)
    inside = (want > qi.min) & (want < qi.max)
    assert inside.mean() > 0.2  # many outputs are rounded, not clamped


def test_fused_requant_store_matches_onnx_runtime() -> None:
    """The same fused store against ONNX Runtime's QLinearConv (uint8, per-channel weights)."""
    rng = np.random.default_rng(7)
    for s in (1, 2):
        x, wt, _ = _case(rng, 32, 17, 15, np.uint8)
        w_scale = rng.uniform(0.002, 0.02, 32).astype(np.float32)
        bias = rng.integers(-20000, 20000, 32).astype(np.int32)
        x_scale, y_scale = np.float32(0.05), np.float32(0.7)
        want = ort_qlinear_conv(
            x, float(x_scale), 131, wt, w_scale, np.zeros(32, np.int8), float(y_scale), 121, bias,
            (s, s), (1, 1, 1, 1), (1, 1), 32, np.uint8,
        )  # fmt: skip
        rq = Requant("onnx", (x_scale * w_scale / y_scale).astype(np.float32), None, None, 121, np.dtype(np.uint8))
        geo = {"strides": (s, s), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 32}
        f = prepare_conv(wt, 0, x_dtype=np.uint8, bias=bias, requant=rq, layout="NHWC", **geo)
        got = f(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 131).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("c", "k", "s", "d"),
    [(12, 3, 1, 1), (20, 3, 2, 1), (16, 3, 3, 1), (16, 3, 1, 2), (9, 5, 1, 1), (16, 2, 2, 1), (8, 7, 2, 1)],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_other_shapes_take_the_general_loop(c: int, k: int, s: int, d: int, threads: int) -> None:
    """Partial channel blocks, strides 3, dilations, other kernel sizes (several chunks of nine taps)
    and two threads (several bands): the accumulating loop and the requantization after it."""
    rng = np.random.default_rng(c * k * s * d)
    x, wt, w_zp = _case(rng, c, 23, 19, np.uint8, k)
    bias = rng.integers(-20000, 20000, c).astype(np.int32)
    scale = (2.0 ** -rng.integers(6, 11, c)).astype(np.float32)
    pads = (k // 2, k // 2, k // 2, k // 2)
    geo = {"strides": (s, s), "pads": pads, "dilations": (d, d), "group": c}
    rq = Requant("onnx", scale, None, None, 100, np.dtype(np.uint8))
    f = prepare_conv(wt, w_zp, x_dtype=np.uint8, bias=bias, requant=rq, layout="NHWC", threads=threads, **geo)
    got = f(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 77).transpose(0, 3, 1, 2)
    acc = conv_ref(x, 77, wt, w_zp, (s, s), pads, (d, d), c, bias)
    np.testing.assert_array_equal(got, requantize_onnx(acc, scale[_PER_CH], 100, 0, 255, dtype=np.uint8))


def test_band_padding_stays_zero_across_sizes_and_zero_points() -> None:
    """The cached band is never re-zeroed in its padding columns (nor, with one band, in its padding rows):
    calls of several sizes and zero points, in any order, all match the reference (a stale value in the
    padding would show at the borders)."""
    rng = np.random.default_rng(3)
    c = 16
    wt = rng.integers(-128, 128, (c, 1, 3, 3)).astype(np.int8)
    bias = rng.integers(-20000, 20000, c).astype(np.int32)
    f = prepare_conv(wt, 0, x_dtype=np.uint8, bias=bias, pads=(1, 1, 1, 1), group=c, layout="NHWC")
    # 200x90 runs in several bands through one buffer: its padding rows are rewritten, the others never
    sizes = [(9, 7, 0), (9, 7, 255), (40, 33, 3), (200, 90, 5), (9, 7, 128), (40, 33, 250), (1, 1, 9), (200, 90, 77)]
    for h, w, x_zp in sizes:
        x = rng.integers(0, 256, (1, c, h, w)).astype(np.uint8)
        got = f(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), x_zp).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(got, conv_ref(x, x_zp, wt, 0, (1, 1), (1, 1, 1, 1), (1, 1), c, bias))


@pytest.mark.skipif(LANES != 16 or platform.machine() not in ("x86_64", "AMD64"), reason="runs where LANES is 16")
def test_eight_lane_loops_on_an_avx2_target(tmp_path: Path) -> None:
    """The AVX2 build (8 float lanes, ``ymm``) of these loops, compiled here by targeting numba at a
    Haswell without AVX-512: this whole file in a subprocess, with its own numba cache. (Where numba
    targets AVX2 the file's own run is that build.)"""
    import os
    import subprocess

    from numba.core.codegen import get_host_cpu_features

    feats = ",".join(
        "-" + f[1:] if f[1:].startswith(("avx512", "amx", "avx10", "evex512")) else f
        for f in str(get_host_cpu_features()).split(",")
    )
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": feats, "NUMBA_CACHE_DIR": str(tmp_path)}
    here = Path(__file__)
    probe = subprocess.run(
        [sys.executable, "-c", "from edgeai.kernels.dwvec import LANES; print(LANES)"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "8"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(here), "-q", "-p", "no:cacheprovider", "-k", "not eight_lane"],
        env=env, capture_output=True, text=True, cwd=here.parent, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


_GUARD_SCRIPT = """
import ctypes, mmap
import numpy as np
from edgeai.kernels import prepare_conv

libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PAGE = mmap.PAGESIZE
rng = np.random.default_rng(0)
for c in (1, 3, 9, 15, 16, 17, 20, 30, 33, 48):
    for k, s in ((3, 1), (3, 2), (5, 1)):
        for h, w in ((1, 1), (2, 3), (7, 6)):
            x = rng.integers(0, 256, (1, h, w, c)).astype(np.uint8)
            wt = rng.integers(-128, 128, (c, 1, k, k)).astype(np.int8)
            f = prepare_conv(wt, 0, x_dtype=np.uint8, strides=(s, s), pads=(k // 2,) * 4, group=c, layout="NHWC")
            want = f(x, 7)
            # the same input ending right before an inaccessible page: a read past its end is a segfault
            pages = -(-x.nbytes // PAGE) + 1
            buf = mmap.mmap(-1, pages * PAGE)
            base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
            assert libc.mprotect(base + (pages - 1) * PAGE, PAGE, 0) == 0
            end = (pages - 1) * PAGE
            guarded = np.frombuffer(buf, np.uint8)[end - x.nbytes : end].reshape(x.shape)
            guarded[...] = x
            assert np.array_equal(f(guarded, 7), want), (c, k, s, h, w)
            del guarded
print("ok")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="the guard page uses POSIX mprotect")
def test_staging_never_reads_past_the_end_of_its_input() -> None:
    """A partial channel block is staged one vector at a time where the read stays in the row: every
    channel count, kernel and size on an input that ends at an inaccessible page (in a subprocess, so
    that an over-read fails the test instead of the test run)."""
    import subprocess

    run = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), f"rc {run.returncode}\n{run.stderr[-3000:]}"


@pytest.mark.parametrize(
    ("strides", "dilations", "hw", "batch"),
    [
        ((1, 1), (2, 1), (11, 9), 1),
        ((2, 1), (3, 1), (17, 10), 1),
        ((3, 2), (1, 1), (13, 12), 2),
        ((1, 1), (1, 1), (200, 90), 2),  # several bands through one serial buffer: padding rows rewritten
        ((2, 2), (1, 1), (161, 70), 1),
    ],
)
@pytest.mark.parametrize("wide_bias", [False, True])
def test_fused_loop_vertical_steps_bands_and_batches(
    strides: tuple, dilations: tuple, hw: tuple, batch: int, wide_bias: bool
) -> None:
    """The fused 3x3 loop takes any vertical stride and dilation (its rows come from the geometry), bands
    of a tall image through one buffer, and batches; checked to run that loop, and against the reference
    on several zero points in turn (a stale padding row or a wrong row offset would show)."""
    rng = np.random.default_rng(hw[0] * 7 + strides[0])
    c = 2 * LANES
    wt = rng.integers(-128, 128, (c, 1, 3, 3)).astype(np.int8)
    w_zp = rng.integers(-3, 4, c).astype(np.int8)
    if wide_bias:
        bias = (rng.choice([-1, 1], c) * 2**24 + rng.integers(-5000, 5000, c)).astype(np.int32)
        scale = (2.0 ** -rng.integers(18, 20, c)).astype(np.float32)
    else:
        bias = rng.integers(-20000, 20000, c).astype(np.int32)
        scale = (2.0 ** -rng.integers(6, 11, c)).astype(np.float32)
    pads = (1, 1, 1, 1)
    rq = Requant("onnx", scale, None, None, 100, np.dtype(np.uint8))
    geo = {"strides": strides, "pads": pads, "dilations": dilations, "group": c}
    f = prepare_conv(wt, w_zp, x_dtype=np.uint8, bias=bias, requant=rq, layout="NHWC", **geo)
    for x_zp in (0, 255, 131):
        x = rng.integers(0, 256, (batch, c, *hw)).astype(np.uint8)
        got = f(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), x_zp).transpose(0, 3, 1, 2)
        acc = conv_ref(x, x_zp, wt, w_zp, strides, pads, dilations, c, bias)
        np.testing.assert_array_equal(got, requantize_onnx(acc, scale[_PER_CH], 100, 0, 255, dtype=np.uint8))
    assert {plan[0].py_func.__name__ for plan in f._dw_plans.values()} == {"depthwise_nhwc3"}


def test_zero_point_as_a_numpy_scalar() -> None:
    """A zero point given as a numpy scalar or a 0-d array works on every call (the repeated-call
    fast path keys on Python ints only)."""
    rng = np.random.default_rng(5)
    wt = rng.integers(-128, 128, (16, 1, 3, 3)).astype(np.int8)
    f = prepare_conv(wt, 0, x_dtype=np.uint8, pads=(1, 1, 1, 1), group=16, layout="NHWC")
    x = rng.integers(0, 256, (1, 6, 5, 16)).astype(np.uint8)
    want = conv_ref(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), 9, wt, 0, (1, 1), (1, 1, 1, 1), (1, 1), 16, None)
    for zp in (9, 9, np.uint8(9), np.array(9), 9):
        np.testing.assert_array_equal(f(x, zp).transpose(0, 3, 1, 2), want)
