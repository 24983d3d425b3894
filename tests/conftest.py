"""Shared fixtures: models built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

# CI reruns must see the same examples: a property failure is then reproducible, never a coin toss.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def mobilenetv2_float(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MobileNetV2 (width 0.5, 96x96) in float, exported from torch."""
    pytest.importorskip("torch", reason="torch is in the test extra: pip install -e '.[test]'")
    from models import export_mobilenetv2

    return export_mobilenetv2(tmp_path_factory.mktemp("mbv2") / "mobilenetv2.onnx")


@pytest.fixture(scope="session")
def mobilenetv2_qdq(mobilenetv2_float: Path) -> Path:
    from models import quantize_mobilenetv2

    return quantize_mobilenetv2(mobilenetv2_float, mobilenetv2_float.with_name("mbv2_qdq.onnx"))


@pytest.fixture(scope="session")
def mobilenetv2_qoperator(mobilenetv2_float: Path) -> Path:
    from models import quantize_mobilenetv2

    return quantize_mobilenetv2(mobilenetv2_float, mobilenetv2_float.with_name("mbv2_qop.onnx"), fmt="QOperator")
