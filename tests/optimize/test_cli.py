"""The quantize, prune and evaluate commands, end to end on files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeai.cli import main


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory, digits: dict[str, np.ndarray]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    np.save(root / "calib.npy", digits["x_train"][:64])
    np.savez(root / "test.npz", image=digits["x_test"][:100], labels=digits["y_test"][:100])
    return {"calib": root / "calib.npy", "test": root / "test.npz", "root": root}


def test_quantize_then_evaluate(
    data_files: dict[str, Path], demo_float: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = data_files["root"] / "q.onnx"
    args = ["quantize", str(demo_float), "-o", str(out), "-c", str(data_files["calib"])]
    assert main([*args, "--method", "percentile", "--limit", "32", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "percentile" and result["calibration_samples"] == 32
    assert result["path"] == str(out)
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(out)).graph.node)
    assert main(["evaluate", str(out), "-d", str(data_files["test"]), "-r", str(demo_float), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 100 and report["top1"] > 0.9 and report["agreement"] > 0.95
    assert main(["evaluate", str(out), "-d", str(data_files["test"]), "-r", str(demo_float)]) == 0
    assert "per-layer SQNR" in capsys.readouterr().out


def test_dynamic_and_prune(data_files: dict[str, Path], demo_float: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dq = data_files["root"] / "dq.onnx"
    assert main(["quantize", str(demo_float), "-o", str(dq), "--dynamic", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "dynamic"
    pruned = data_files["root"] / "pruned.onnx"
    assert main(["prune", str(demo_float), "-o", str(pruned), "--channels", "0.5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["macs_after"] == 60544 and pruned.stat().st_size == report["size_after"]
    sparse = data_files["root"] / "sparse.onnx"
    assert main(["prune", str(demo_float), "-o", str(sparse), "--sparsity", "0.7"]) == 0
    assert "unstructured" in capsys.readouterr().out


def test_quantize_with_accuracy_budget(
    data_files: dict[str, Path], demo_float: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = data_files["root"] / "qb.onnx"
    args = ["quantize", str(demo_float), "-o", str(out), "-c", str(data_files["calib"]), "--json"]
    assert main([*args, "--max-accuracy-drop", "0.01", "--eval-data", str(data_files["test"])]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["within_budget"] is True and result["accuracy_drop"] <= 0.01
    assert result["float_accuracy"] > 0.9 and result["max_accuracy_drop"] == 0.01
    assert main([*args, "--max-accuracy-drop", "0.01"]) == 2
    assert "needs --eval-data" in capsys.readouterr().err


def test_cli_errors(data_files: dict[str, Path], demo_float: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(data_files["root"] / "x.onnx")
    assert main(["quantize", str(demo_float), "-o", out]) == 2
    assert "needs --calibration" in capsys.readouterr().err
    empty = data_files["root"] / "empty.npy"
    np.save(empty, np.zeros((0, 1, 8, 8), np.float32))
    assert main(["quantize", str(demo_float), "-o", out, "-c", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err
    wrong = data_files["root"] / "wrong.npy"
    np.save(wrong, np.zeros((3, 1, 9, 9), np.float32))
    assert main(["quantize", str(demo_float), "-o", out, "-c", str(wrong)]) == 2
    assert "calibration sample 0" in capsys.readouterr().err
    assert not Path(out).exists()
