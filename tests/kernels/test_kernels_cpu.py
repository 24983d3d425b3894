"""Kernel path selection from the CPU's features."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeai.errors import EdgeAIError
from edgeai.kernels.cpu import PATHS, available_paths, cpu_features, kernel_path, set_kernel_path


def test_features_and_paths_are_consistent() -> None:
    f = cpu_features()
    paths = available_paths()
    assert paths[-1] == "portable"
    assert ("avx2" in paths) == f["avx2"]
    assert ("vnni" in paths) == (f["avx512vnni"] and f["avx512bw"] and f["avx512f"])
    if "amx" in paths:
        assert f["amx_int8"] and "vnni" in paths  # AMX remainders run on the VNNI kernel
    assert kernel_path() == paths[0]


def test_set_kernel_path_forces_and_restores() -> None:
    try:
        set_kernel_path("portable")
        assert kernel_path() == "portable"
    finally:
        set_kernel_path(None)
    assert kernel_path() == available_paths()[0]


def test_unknown_or_unsupported_path_is_refused() -> None:
    with pytest.raises(EdgeAIError, match="unknown kernel path 'sse9'"):
        set_kernel_path("sse9")
    missing = [p for p in PATHS if p not in available_paths()]
    for p in missing:
        with pytest.raises(EdgeAIError, match="lacks"):
            set_kernel_path(p)


def test_environment_variable_forces_a_path() -> None:
    code = "from edgeai.kernels.cpu import kernel_path; print(kernel_path())"
    env = {"EDGEAI_KERNEL_PATH": "portable", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "portable"


def test_import_edgeai_kernels_is_light() -> None:
    code = "import sys, edgeai.kernels; print('numba' in sys.modules, 'llvmlite' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
