"""The kernels never read past the end of their input: ``a`` (GEMM) and ``x`` (a 1x1 NHWC convolution,
read in place) end right before an inaccessible page, so an over-read is a segfault, not a silently
correct answer from the slack numpy usually leaves after a buffer.

AMX reads whole 64-byte K steps of each row (the bytes past K belong to the next row and meet zero
weights), so the rows whose step would pass the end of A must go to another kernel. Each case runs
in a subprocess: a crash fails the test instead of killing the test run. Results are checked
against an int64 reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba")

_SCRIPT = textwrap.dedent(
    """
    import ctypes, json, mmap, sys
    import numpy as np
    from edgeai.kernels import prepare_conv, prepare_gemm
    from edgeai.kernels.cpu import available_paths, set_kernel_path

    libc = ctypes.CDLL(None)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    PAGE = mmap.PAGESIZE

    def at_page_end(values):
        # a copy of ``values`` whose last byte is the last one before a PROT_NONE page
        pages = -(-values.nbytes // PAGE) + 1
        buf = mmap.mmap(-1, pages * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        assert libc.mprotect(base + (pages - 1) * PAGE, PAGE, 0) == 0
        raw = np.frombuffer(buf, np.uint8)
        end = (pages - 1) * PAGE
        out = raw[end - values.nbytes : end].view(values.dtype).reshape(values.shape)
        out[...] = values
        return out, buf

    rng = np.random.default_rng(0)
    done = []
    for path in available_paths():
        set_kernel_path(path)
        for k in range(4, 72, 4):
            for m in (1, 17, 33, 65):
                b = rng.integers(-128, 128, (k, 24)).astype(np.int8)
                a = rng.integers(0, 256, (m, k)).astype(np.uint8)
                want = (a.astype(np.int64) - 3) @ b.astype(np.int64)
                f = prepare_gemm(b, 0, a_dtype=np.uint8)
                f(a, 3)  # compiled (or loaded) before the guarded call
                guarded, keep = at_page_end(a)
                assert np.array_equal(f(guarded, 3), want), (path, k, m)
        for c in (8, 20, 24, 32, 40):  # 1x1 convolution over uint8 NHWC, read in place
            for hw in ((1, 1), (3, 3), (7, 5)):
                w = rng.integers(-128, 128, (16, c, 1, 1)).astype(np.int8)
                x = rng.integers(0, 256, (1, *hw, c)).astype(np.uint8)
                want = np.einsum("nhwc,mc->nhwm", x.astype(np.int64) - 5, w[:, :, 0, 0].astype(np.int64))
                f = prepare_conv(w, 0, x_dtype=np.uint8, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
                                 layout="NHWC")
                f(x, 5)
                guarded, keep = at_page_end(x)
                assert np.array_equal(f(guarded, 5), want), (path, c, hw)
        done.append(path)
    print(json.dumps(done))
    """
)


def test_no_kernel_reads_past_the_end_of_its_input() -> None:
    result = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"rc {result.returncode} (-11: a read past the end)\n{result.stderr[-3000:]}"
    paths = json.loads(result.stdout.strip().splitlines()[-1])
    assert "portable" in paths
