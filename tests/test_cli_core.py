"""The edgeai command line, run in-process and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import edgeai
from edgeai.cli import main


def test_devices_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any(d["id"] == "onnxruntime:cpu" and d["kind"] == "CPU" for d in data)


def test_inspect_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(edgeai.demo.model_path()), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["inputs"] == ["image: float32[N, 1, 8, 8]"]
    assert info["op_counts"]["Conv"] == 3
    assert info["quantization"] == "none"
    assert info["opset"] == 17
    assert info["parameters"] == 16 * 9 + 16 + 32 * 16 * 9 + 32 + 32 * 32 * 9 + 32 + 128 * 10 + 10


def test_run_writes_npy_matching_onnxruntime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, _ = edgeai.demo.samples()
    np.save(tmp_path / "x.npy", images[:4])
    out_dir = tmp_path / "out"
    assert main(["run", str(edgeai.demo.model_path()), "-i", f"image={tmp_path / 'x.npy'}", "-o", str(out_dir)]) == 0
    got = np.load(out_dir / "probabilities.npy")
    raw = ort.InferenceSession(str(edgeai.demo.model_path()), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(got, raw.run(None, {"image": images[:4]})[0])
    # the one-input short form
    assert main(["run", str(edgeai.demo.model_path()), "-i", str(tmp_path / "x.npy"), "-o", str(out_dir)]) == 0


def test_run_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8), np.float32))
    code = main(["run", str(edgeai.demo.model_path()), "-i", f"image={tmp_path / 'x.npy'}", "-o", str(tmp_path)])
    assert code == 2
    assert "expects rank 4" in capsys.readouterr().err


def test_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "bench",
                str(edgeai.demo.model_path()),
                "--runs",
                "20",
                "--warmup",
                "2",
                "--json",
                "--batch",
                "4",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["runs"] == 20 and result["batch"] == 4
    assert 0 < result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]


def test_demo_subprocess_reports_accuracy_and_device() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeai", "demo"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "accuracy on 32 shipped held-out samples" in proc.stdout
    assert "ran on: onnxruntime:cpu" in proc.stdout
    assert "latency, batch 1" in proc.stdout


def test_missing_model_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "nope.onnx"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bench_compare_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(edgeai.demo.model_path())
    code = main(
        ["bench", "--compare", f"{path}@onnxruntime", f"{path}@native", "--runs", "20", "--rounds", "2", "--json"]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["device"] for r in rows] == ["onnxruntime:cpu", "native:cpu"]
    assert rows[0]["ratio"] == 1.0 and all(r["median_ms"] > 0 for r in rows)
