"""Loading edgeai's kernels from numba's cache without numba's full target refresh
(:mod:`edgeai.kernels.cached_kernels`): the results stay ONNX Runtime's, and other code's numba
functions (cached or compiled) still get the full set-up."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import edgeai
from edgeai.kernels.cached_kernels import is_edgeai_function

ort = pytest.importorskip("onnxruntime")

# Run twice in fresh processes with the environment's numba cache: the first run fills it where it
# is cold, the second loads every kernel from it. The probe file holds a user's own cached numba
# function (numba caches functions of files only).
_PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from numba import njit
    from numba.core import event

    compiled = []


    class _Compiles(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__qualname__)

        def on_end(self, ev):
            pass


    event.register("numba:compile", _Compiles())

    import edgeai
    from edgeai.kernels import cached_kernels

    model, images, threads, out = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    session = edgeai.Session(model, device="native", threads=threads)
    name = session.inputs[0].name
    first = session.run(None, {name: images})[0]
    for _ in range(3):  # the later runs build (or load) the model's compiled programs
        again = session.run(None, {name: images})[0]
        assert again.dtype == first.dtype and np.array_equal(again, first)
    np.save(out, first)
    report = {
        "installed": cached_kernels.installed(),
        "model_compiles": list(compiled),
        "full_refresh_after_model": "numba.np.arraymath" in sys.modules,
    }


    @njit(cache=True)
    def user_stats(a):  # np.median and np.sort are typed and lowered by numba.np.arraymath
        return np.median(a), np.sort(a)[0]


    # a cached @vectorize of edgeai's (Erf) builds its ufunc wrapper with the context after the load:
    # it must get the full set-up (it failed with NumbaNotImplementedError when it did not)
    from onnx import TensorProto, helper

    erf = helper.make_graph(
        [helper.make_node("Erf", ["x"], ["y"])], "erf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    erf_model = helper.make_model(erf, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    xs = np.array([0.0, 0.5, -1.0, 2.0], np.float32)
    report["erf"] = edgeai.Session(erf_model, device="native").run(None, {"x": xs})[0].tolist()

    a = np.array([3.0, 1.0, 2.0, 7.0])
    report["user_stats"] = [float(v) for v in user_stats(a)]
    report["full_refresh_after_user"] = "numba.np.arraymath" in sys.modules
    try:
        import scipy.linalg.cython_blas  # noqa: F401  numba's BLAS comes from scipy
    except ImportError:
        report["user_dot"] = None
    else:

        @njit
        def user_dot(x, y):
            return np.dot(x, y)

        m = np.arange(6.0).reshape(2, 3)
        report["user_dot"] = np.array_equal(user_dot(m, m.T), m @ m.T)
    print(json.dumps(report))
    """
)


def _probe(tmp_path: Path, model: Path, images: np.ndarray, threads: int) -> tuple[dict, np.ndarray]:
    probe = tmp_path / "probe_cached_loads.py"
    probe.write_text(_PROBE)
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / f"out{threads}.npy"
    cmd = [sys.executable, str(probe), str(model), str(tmp_path / "images.npy"), str(threads), str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), np.load(out)


def _check_warm_run(tmp_path: Path, model: Path, images: np.ndarray, threads: int) -> None:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: images})[0]

    _probe(tmp_path, model, images, threads)  # fills the caches where they are cold
    report, got = _probe(tmp_path, model, images, threads)

    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert report["installed"]
    assert report["model_compiles"] == []  # a warm cache: every kernel (and program) loads from it ...
    assert not report["full_refresh_after_model"]  # ... without numba's registries
    # a cached function outside edgeai still loads with the full refresh, and its results are numpy's
    assert report["full_refresh_after_user"]
    assert report["user_stats"] == [2.5, 1.0]
    want_erf = [math.erf(v) for v in (0.0, 0.5, -1.0, 2.0)]
    np.testing.assert_allclose(report["erf"], want_erf, rtol=1e-6, atol=1e-7)
    assert report["user_dot"] in (None, True)


@pytest.mark.parametrize("threads", [1, 2])
def test_warm_cache_run_matches_onnxruntime_and_leaves_numba_whole(tmp_path: Path, threads: int) -> None:
    images, _ = edgeai.demo.samples()
    _check_warm_run(tmp_path, Path(edgeai.demo.model_path("int8")), images, threads)


def test_warm_cache_mobilenetv2_with_its_programs(tmp_path: Path, mobilenetv2_qdq: Path) -> None:
    # its later runs load compiled programs (edgeai.graph.program), which the light loading serves too
    images = np.random.default_rng(3).standard_normal((1, 3, 96, 96)).astype(np.float32)
    _check_warm_run(tmp_path, mobilenetv2_qdq, images, 1)


def test_only_edgeai_functions_are_served() -> None:
    from edgeai.kernels import cpu

    assert is_edgeai_function(cpu.kernel_path)
    assert not is_edgeai_function(np.median)
    assert not is_edgeai_function(json.dumps)
    assert not is_edgeai_function(None)
    from edgeai.ops import elementwise  # its cached @vectorize ufuncs need the full set-up

    assert not is_edgeai_function(elementwise.as_dtype)

    def local() -> None: ...

    assert not is_edgeai_function(local)  # a test module is not edgeai's package
