"""Programs (``edgeai.graph.program``): runs of kernel-only steps compiled into one numba function after
the second run. Every test checks the outputs against ONNX Runtime, and what was (or was not) compiled."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from edgeai.backends.native import GRAPH_PASSES, apply_passes
from edgeai.graph import program as program_mod
from edgeai.graph.executor import PROGRAM_AFTER_RUNS, CompiledGraph
from edgeai.graph.onnx_import import import_onnx
from edgeai.kernels import _record
from edgeai.kernels.cpu import available_paths, set_kernel_path

from .test_nhwc_raw import _model


@pytest.fixture(autouse=True)
def _private_programs_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated sources in a directory of this test session (numba caches them there too)."""
    folder = tmp_path_factory.getbasetemp() / "edgeai-cache"
    monkeypatch.setenv("EDGEAI_CACHE_DIR", str(folder))
    monkeypatch.setattr(program_mod, "_DIR", None)


def _ort(model: bytes | Path, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(model) if isinstance(model, Path) else model, so, providers=["CPUExecutionProvider"]
    )


def _compiled(model: bytes | Path, **options: Any) -> CompiledGraph:
    """The graph as a native session compiles it (after its graph passes: QDQ fusion)."""
    return CompiledGraph(apply_passes(import_onnx(model), GRAPH_PASSES), options=options)


def _warm(cg: CompiledGraph, feeds: dict[str, np.ndarray]) -> None:
    for _ in range(PROGRAM_AFTER_RUNS):
        cg.run(feeds)


def _inputs(shape: tuple[int, ...], n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * 2).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("fmt", ["qdq", "qop"])
def test_mobilenetv2_runs_as_one_program_bit_exact(
    fmt: str, threads: int, mobilenetv2_qdq: Path, mobilenetv2_qoperator: Path
) -> None:
    model = mobilenetv2_qdq if fmt == "qdq" else mobilenetv2_qoperator
    ref = _ort(model, threads)
    name = ref.get_inputs()[0].name
    cg = _compiled(model, threads=threads)
    xs = _inputs((1, 3, 96, 96), 5)
    assert cg.programs == []
    _warm(cg, {name: xs[0]})
    assert cg.program_error is None
    # the convolutions, adds and the quantize/dequantize around them: one program of nearly all steps
    assert len(cg.programs) == 1
    start, stop, calls = cg.programs[0]
    assert stop - start >= cg.steps - 6 and calls >= stop - start
    for x in xs:
        np.testing.assert_array_equal(cg.run({name: x})[0], ref.run(None, {name: x})[0])


def test_other_layouts_run_the_steps(tmp_path: Path) -> None:
    model = _model([1, 4, 9, 11])
    ref = _ort(model)
    cg = _compiled(model)
    x = _inputs((1, 4, 9, 11), 1)[0]
    _warm(cg, {"x": x})
    assert len(cg.programs) == 1
    program = cg._program_objects[0]
    calls: list[int] = []
    fallback = program._fallback
    program._fallback = lambda *v: (calls.append(1), fallback(*v))[1]
    # a Fortran-ordered and a read-only input are not the recorded layout: the original steps run
    for y in (np.asfortranarray(x * 0.5), np.frombuffer((x + 1).tobytes(), np.float32).reshape(x.shape)):
        np.testing.assert_array_equal(cg.run({"x": y})[0], ref.run(None, {"x": np.ascontiguousarray(y)})[0])
    assert len(calls) == 2
    np.testing.assert_array_equal(cg.run({"x": x})[0], ref.run(None, {"x": x})[0])
    assert len(calls) == 2  # the recorded layout: the program


def test_a_program_that_misses_a_call_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net: a kernel call the recording does not see (here: the convolutions' input staging,
    dropped; the steps' outputs still come from recorded calls) makes the program disagree with the
    steps on the random inputs it is checked on, so the steps stay."""
    from edgeai.kernels import conv

    stage = conv.stage_from_nhwc
    append = _record.Recorder.append

    def drop_staging(self: _record.Recorder, item: Any) -> None:
        if item[0] is not stage:
            append(self, item)

    monkeypatch.setattr(_record.Recorder, "append", drop_staging)
    model = _model([1, 4, 9, 11])
    ref = _ort(model)
    cg = _compiled(model)
    x = _inputs((1, 4, 9, 11), 1)[0]
    _warm(cg, {"x": x})
    assert cg.programs == []
    assert cg.program_error is not None and "does not reproduce" in cg.program_error
    np.testing.assert_array_equal(cg.run({"x": x})[0], ref.run(None, {"x": x})[0])


def test_programs_off_keeps_the_steps() -> None:
    model = _model([1, 4, 9, 11])
    cg = _compiled(model, programs=False)
    x = _inputs((1, 4, 9, 11), 1)[0]
    for _ in range(PROGRAM_AFTER_RUNS + 2):
        cg.run({"x": x})
    assert cg.programs == [] and cg.program_error is None


def test_programs_from_several_threads_at_once() -> None:
    """Each concurrent run takes its own arena (scratch and intermediates are never shared)."""
    model = _model([1, 4, 17, 13])
    ref = _ort(model)
    cg = _compiled(model)
    xs = _inputs((1, 4, 17, 13), 8, seed=3)
    _warm(cg, {"x": xs[0]})
    assert len(cg.programs) == 1
    want = [ref.run(None, {"x": x})[0] for x in xs]
    got: dict[int, list[np.ndarray]] = {}
    barrier = threading.Barrier(4)

    def work(t: int) -> None:
        barrier.wait()
        got[t] = [cg.run({"x": xs[(t + i) % len(xs)]})[0] for i in range(40)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(4):
        for i, y in enumerate(got[t]):
            np.testing.assert_array_equal(y, want[(t + i) % len(xs)])
    assert len(cg._program_objects[0]._pool) >= 1


def test_the_same_model_records_the_same_program() -> None:
    """A program holds offsets, never this process's addresses: two graphs of one model (different
    allocations) write out one source, which numba caches once."""
    model = _model([1, 4, 9, 11])
    x = _inputs((1, 4, 9, 11), 1)[0]
    specs = []
    for _ in range(2):
        cg = _compiled(model)
        _warm(cg, {"x": x})
        specs.append(cg._program_objects[0].spec)
    assert specs[0] == specs[1]
    sources = list(Path(program_mod.programs_dir()).glob("p_*.py"))
    assert sources and all(s.read_text().startswith('"""A compiled segment') for s in sources)


def test_plan_segments_and_random_inputs() -> None:
    assert program_mod.plan_segments([True, True, False, True, True, True]) == [(0, 2), (3, 6)]
    assert program_mod.plan_segments([True, False, True], min_steps=2) == []
    assert program_mod.plan_segments([True] * 3, min_steps=1) == [(0, 3)]
    rng = np.random.default_rng(0)
    base = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    view = base.transpose(0, 3, 1, 2)  # an NCHW view of NHWC bytes, as the INT8 ops hand on
    fresh = program_mod._random_like(view, rng)
    assert fresh.shape == view.shape and fresh.strides == view.strides and fresh.dtype == view.dtype
    assert not np.shares_memory(fresh, base)


@pytest.mark.parametrize("path", available_paths())
def test_programs_on_every_kernel_path(path: str) -> None:
    """The recording covers each path's call sites (AMX, VNNI, AVX2 and the portable loops differ in
    drivers, staging and scratch)."""
    model = _model([1, 4, 13, 10])
    ref = _ort(model)
    set_kernel_path(path)
    try:
        cg = _compiled(model)
    finally:
        set_kernel_path(None)
    xs = _inputs((1, 4, 13, 10), 3, seed=7)
    _warm(cg, {"x": xs[0]})
    assert cg.program_error is None
    assert len(cg.programs) == 1
    for x in xs:
        np.testing.assert_array_equal(cg.run({"x": x})[0], ref.run(None, {"x": x})[0])


def _layout(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "fortran":
        return np.asfortranarray(x)
    if kind == "channels_last_own_base":  # img.transpose(2, 0, 1)[None].astype(np.float32) / 255 gives such
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) * np.float32(1)
    y = x.copy()
    y.flags.writeable = False
    return y


@pytest.mark.parametrize("kind", ["fortran", "channels_last_own_base", "readonly"])
def test_recorded_on_another_input_layout_every_later_input_is_exact(kind: str) -> None:
    """The check runs the compiled program (never its fallback) on fresh inputs of the recorded layout:
    a first step that took an unrecorded path for that layout is left out of the program, or the
    program is rejected, but never trusted on stale bytes."""
    model = _model([1, 4, 9, 11])
    ref = _ort(model)
    cg = _compiled(model)
    xs = _inputs((1, 4, 9, 11), 5, seed=11)
    for x in xs[:PROGRAM_AFTER_RUNS]:
        cg.run({"x": _layout(kind, x)})
    if kind == "fortran":  # the QuantizeLinear's NHWC result is then a view of an NCHW copy, which the
        # next convolution copies again (numpy, unrecorded): that program is caught by its check
        assert not cg.programs and "does not reproduce" in str(cg.program_error)
    else:
        assert cg.programs, cg.program_error
    for x in xs:
        np.testing.assert_array_equal(cg.run({"x": _layout(kind, x)})[0], ref.run(None, {"x": x})[0])
        np.testing.assert_array_equal(cg.run({"x": x})[0], ref.run(None, {"x": x})[0])


def test_a_step_that_took_an_unrecorded_path_splits_the_segment() -> None:
    model = _model([1, 4, 9, 11])
    cg = _compiled(model)
    x = _layout("channels_last_own_base", _inputs((1, 4, 9, 11), 1)[0])  # quantized by numpy, unrecorded
    _warm(cg, {"x": x})
    ((start, stop, _),) = cg.programs
    assert cg._step_nodes[0].op_type == "QuantizeLinear" and start == 1 and stop == cg.steps


def test_int8_activations_run_as_a_program() -> None:
    """int8 activations reach the GEMM kernels as uint8 through a recorded kernel (s8 ^ 0x80), so
    their models compile too."""
    import onnx

    proto = onnx.load_from_string(_model([1, 4, 9, 11]))
    for init in proto.graph.initializer:
        if init.data_type == onnx.TensorProto.UINT8:  # every zero point: activations become int8
            value = onnx.numpy_helper.to_array(init).astype(np.int16) - 128
            init.CopyFrom(onnx.numpy_helper.from_array(value.astype(np.int8), init.name))
    model = proto.SerializeToString()
    ref = _ort(model)
    cg = _compiled(model)
    xs = _inputs((1, 4, 9, 11), 4, seed=5)
    _warm(cg, {"x": xs[0]})
    assert cg.programs and cg.program_error is None, cg.program_error
    for x in xs:
        np.testing.assert_array_equal(cg.run({"x": x})[0], ref.run(None, {"x": x})[0])


def test_two_graphs_recording_at_once_both_get_their_programs() -> None:
    """One recording at a time per process (the recorder is one global): a graph whose recording run
    finds another graph recording runs its steps and records on its next run."""
    models = [_model([1, 4, 9, 11]), _model([1, 4, 12, 7])]
    shapes = [(1, 4, 9, 11), (1, 4, 12, 7)]
    graphs = [_compiled(m) for m in models]
    refs = [_ort(m) for m in models]
    barrier = threading.Barrier(2)
    results: dict[int, list[np.ndarray]] = {}

    def work(t: int) -> None:
        xs = _inputs(shapes[t], 30, seed=t)
        barrier.wait()
        out = []
        for x in xs:
            out.append(graphs[t].run({"x": x})[0])
            if graphs[t].programs and len(out) >= PROGRAM_AFTER_RUNS + 2:
                break
        results[t] = out

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(2):
        xs = _inputs(shapes[t], 30, seed=t)
        for x, y in zip(xs, results[t]):
            np.testing.assert_array_equal(y, refs[t].run(None, {"x": x})[0])
        # (the one that found the other recording, for as long as that took, records on a later run)
        for x in xs[:PROGRAM_AFTER_RUNS]:
            np.testing.assert_array_equal(graphs[t].run({"x": x})[0], refs[t].run(None, {"x": x})[0])
        assert graphs[t].programs, graphs[t].program_error
