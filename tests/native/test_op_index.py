"""``edgeai.ops.load_for``: a model's op modules only, from the committed index
``edgeai/ops/_op_index.py``, and the same op classes as a full load; every module for an op the
index does not list. The committed index must be what ``scripts/gen_op_index.py`` writes now."""

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
    import edgeai.ops._op_index as index
    if os.environ.get("DROP"):  # an index that does not list this op
        index.OPS = {k: v for k, v in index.OPS.items() if k != os.environ["DROP"]}
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


def _probe(model: Path, full: bool = False, drop: str | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("FULL", "DROP")}
    if full:
        env["FULL"] = "1"
    if drop:
        env["DROP"] = drop
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(model)], env=env, capture_output=True, text=True, timeout=600, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def model() -> Path:
    return Path(edgeai.demo.model_path())


@pytest.fixture(scope="module")
def full(model: Path) -> dict[str, object]:
    return _probe(model, full=True)


def test_committed_index_is_what_a_full_load_sees() -> None:
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "scripts"))
    try:
        import gen_op_index
    finally:
        sys.path.pop(0)
    committed = (root / "edgeai" / "ops" / "_op_index.py").read_text(encoding="utf-8")
    assert gen_op_index.render(gen_op_index.observe()) == committed, "stale: run python scripts/gen_op_index.py"


def test_load_for_imports_only_what_the_model_needs(model: Path, full: dict[str, object]) -> None:
    lazy = _probe(model)
    assert lazy["missing"] == full["missing"] == 0
    assert set(lazy["modules"]) < set(full["modules"])  # type: ignore[arg-type]
    # the same class for every op of the model as after a full load
    for key, cls in lazy["classes"].items():  # type: ignore[attr-defined]
        assert full["classes"][key] == cls, key  # type: ignore[index]


def test_an_op_the_index_does_not_list_means_a_full_load(model: Path, full: dict[str, object]) -> None:
    result = _probe(model, drop="|Conv")
    assert result["missing"] == 0
    assert set(result["modules"]) == set(full["modules"])  # type: ignore[arg-type]


def test_index_lists_the_module_a_package_registers_through() -> None:
    """Op modules imported by another (a package's submodules, elementwise through activations)
    are listed under the module whose import registered them, which imports them again."""
    from edgeai.ops._op_index import OPS, ORDER

    listed = {name for names in OPS.values() for name in names}
    assert listed <= set(ORDER)
    assert any(name.startswith("edgeai.ops.quantized") for name in OPS["com.microsoft|QLinearConv"])
