"""``edgeai ops`` and ``edgeai warmup``."""

from __future__ import annotations

import json

import pytest

import edgeai
import edgeai.ops
from edgeai.cli import main


def test_ops_json_is_the_registry_claim(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"domain": c.domain, "op_type": c.op_type, "versions": list(c.versions)} for c in edgeai.ops.supported()
    ]
    loop = next(r for r in rows if r["op_type"] == "Loop" and r["domain"] == "")
    assert 1 in loop["versions"] and 16 in loop["versions"]


def test_ops_table_and_domain_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops", "--domain", "ai.onnx"]) == 0
    out = capsys.readouterr().out
    assert "Identity" in out and "Native engine" in out
    assert main(["ops", "--json", "--domain", "no.such.domain"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_warmup_runs_the_model_twice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["warmup", "--json", "--batch", "3", str(edgeai.demo.model_path())]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "native:cpu"
    assert result["outputs"] == {"probabilities": [3, 10]}
    assert result["first_run_s"] > 0 and result["second_run_s"] > 0


def test_warmup_of_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["warmup", "no-such-model.onnx"]) == 2
    assert "does not exist" in capsys.readouterr().err
