"""``edgeai.ops.load_for``: a model's op modules only, from the index a full load wrote, and the same
op classes as a full load; every module when the index is missing, stale or incomplete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import edgeai

# Prints, for the demo model and a QOperator MobileNetV2-like chain of ops, which class runs each
# op (after load_for, or load_all with FULL=1) and how many op modules were imported.
_PROBE = textwrap.dedent(
    """
    import json, os, sys
    import edgeai.ops
    from edgeai.graph.executor import find_missing_ops
    from edgeai.graph.onnx_import import import_onnx
    from edgeai.ops._base import lookup

    graph = import_onnx(sys.argv[1])
    if os.environ.get("FULL"):
        edgeai.ops.load_all()
    missing = find_missing_ops(graph)
    ops = [("", "Conv", 13), ("com.microsoft", "QLinearConv", 1), ("", "QuantizeLinear", 13), ("", "ReduceMean", 13)]
    ops += [(n.domain, n.op_type, 13) for n in graph.nodes]
    classes = {f"{d}|{o}": getattr(lookup(o, d, v), "__qualname__", None) for d, o, v in ops}
    print(json.dumps({
        "missing": len(missing),
        "modules": sorted(m for m in sys.modules if m.startswith("edgeai.ops.")),
        "classes": classes if os.environ.get("FULL") else {k: classes[k] for k in classes if k.split("|")[1] in
                   {n.op_type for n in graph.nodes}},
    }))
    """
)


def _probe(cache: Path | str, model: Path, full: bool = False) -> dict[str, object]:
    env = {**os.environ, "EDGEAI_CACHE_DIR": str(cache)}
    env.pop("FULL", None)
    if full:
        env["FULL"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(model)], env=env, capture_output=True, text=True, timeout=600, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def model() -> Path:
    return Path(edgeai.demo.model_path())


def test_full_load_writes_an_index_and_load_for_imports_only_what_the_model_needs(model: Path, tmp_path: Path) -> None:
    full = _probe(tmp_path, model, full=True)
    index = json.loads((tmp_path / "op-index.json").read_text())
    assert index["fingerprint"] and "|Conv" in index["ops"]
    lazy = _probe(tmp_path, model)
    assert lazy["missing"] == full["missing"] == 0
    assert set(lazy["modules"]) < set(full["modules"])  # type: ignore[arg-type]
    # the same class for every op of the model as after a full load
    for key, cls in lazy["classes"].items():  # type: ignore[attr-defined]
        assert full["classes"][key] == cls, key  # type: ignore[index]


def test_stale_or_incomplete_index_or_no_cache_means_a_full_load(model: Path, tmp_path: Path) -> None:
    full = _probe(tmp_path, model, full=True)
    path = tmp_path / "op-index.json"
    index = json.loads(path.read_text())
    every = set(full["modules"])  # type: ignore[arg-type]

    path.write_text(json.dumps({**index, "fingerprint": "0" * 64}))  # op sources changed since
    assert set(_probe(tmp_path, model)["modules"]) == every  # type: ignore[arg-type]

    # an op of the model the index does not list: every module (and the index is written again)
    path.write_text(json.dumps({**index, "ops": {k: v for k, v in index["ops"].items() if k != "|Conv"}}))
    assert set(_probe(tmp_path, model)["modules"]) == every  # type: ignore[arg-type]

    path.write_text("not json")
    assert set(_probe(tmp_path, model)["modules"]) == every  # type: ignore[arg-type]

    blocked = tmp_path / "a-file"  # a cache "directory" that is a file: nothing written, no error
    blocked.write_text("")
    result = _probe(blocked, model)
    assert result["missing"] == 0 and set(result["modules"]) == every  # type: ignore[arg-type]


def test_index_lists_the_module_a_package_registers_through(tmp_path: Path, model: Path) -> None:
    """Op modules imported by another (a package's submodules, elementwise through activations)
    are listed under the module whose import registered them, which imports them again."""
    _probe(tmp_path, model, full=True)
    index = json.loads((tmp_path / "op-index.json").read_text())
    listed = {name for names in index["ops"].values() for name in names}
    assert set(listed) <= set(index["order"])
    assert any(name.startswith("edgeai.ops.quantized") for name in index["ops"]["com.microsoft|QLinearConv"])
