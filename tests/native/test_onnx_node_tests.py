"""Every ONNX node test of every op and opset the native engine claims.

The cases come from onnx 1.22.0's ``onnx/backend/test/data/node`` (fetched
and cached by ``onnx_node_data``). A case is collected when every op in its
model, at the model's opset, is covered by the native registry
(:func:`edgeai.ops._base.lookup`); it then runs through
``edgeai.Session(model, device="native")`` and is compared with the stored
outputs using onnx's runner tolerances (exact for integer, bool and string
outputs). Cases whose ops are not claimed are not collected; nothing else is
left out. The run ends with a pass-count line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from onnx_node_data import (
    assert_outputs_match,
    load_case,
    node_test_dirs,
    run_native,
    tolerances,
    unclaimed_ops,
)


def _split_dirs() -> tuple[list[Path], list[Path]]:
    claimed, unclaimed = [], []
    for case_dir in node_test_dirs():
        (unclaimed if unclaimed_ops(case_dir / "model.onnx") else claimed).append(case_dir)
    return claimed, unclaimed


CLAIMED, UNCLAIMED = _split_dirs()
_RESULTS: dict[str, bool] = {}


class _PassCount:
    """A pytest plugin that prints the pass-count line in the terminal summary."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not _RESULTS:
            return
        passed = sum(_RESULTS.values())
        failed = len(_RESULTS) - passed
        terminalreporter.write_line(
            f"ONNX node tests on the native engine: {passed} passed, {failed} failed of "
            f"{len(_RESULTS)} run ({len(CLAIMED)} claimed); {len(UNCLAIMED)} not collected "
            "(ops not claimed)"
        )


@pytest.fixture(scope="module", autouse=True)
def _pass_count_line(request: pytest.FixtureRequest) -> Iterator[None]:
    manager = request.config.pluginmanager
    if not manager.has_plugin("edgeai-node-test-pass-count"):
        manager.register(_PassCount(), "edgeai-node-test-pass-count")
    yield


@pytest.mark.parametrize("case_dir", CLAIMED, ids=[d.name for d in CLAIMED])
def test_node(case_dir: Path) -> None:
    rtol, atol = tolerances(case_dir)
    ok = False
    try:
        for case in load_case(case_dir):
            assert_outputs_match(case.outputs, run_native(case), rtol, atol)
        ok = True
    finally:
        _RESULTS[case_dir.name] = ok


def test_claimed_ops_have_node_tests() -> None:
    """The harness found claimed cases at all (guards against an empty registry)."""
    assert len(CLAIMED) > 0
