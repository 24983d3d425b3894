"""Kernel-test fixtures: run a test once per kernel path this CPU supports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("numba")

from edgeai.kernels.cpu import available_paths, set_kernel_path


@pytest.fixture(params=available_paths())
def kernel_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Force each kernel path this CPU can run ("vnni", "avx2", "portable"), then restore auto."""
    set_kernel_path(request.param)
    try:
        yield request.param
    finally:
        set_kernel_path(None)
