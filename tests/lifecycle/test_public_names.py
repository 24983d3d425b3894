"""The public names of edgeai.lifecycle, edgeai.security and edgeai.monitor resolve, lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["edgeai.lifecycle", "edgeai.security", "edgeai.monitor"])
def test_all_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError):
        _ = module.no_such_name


def test_packages_import_no_heavy_dependency() -> None:
    code = (
        "import sys, edgeai.lifecycle, edgeai.security, edgeai.monitor\n"
        "print(sorted(m for m in ('cryptography', 'psutil', 'prometheus_client', 'onnxruntime', 'pydantic')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
