"""ExecuTorch programs built once per test session with ExecuTorch's own export API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("executorch.runtime", reason='ExecuTorch is optional: pip install "edgeai[executorch]"')

import torch
from torch_models import SmallCNN


class TwoInTwoOut(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + b, (a * b).sum(1)


class Scaled(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 3 * a, b - a


def _lower(programs: Any, path: Path, xnnpack: bool) -> Path:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    partitioner = [XnnpackPartitioner()] if xnnpack else None
    edge = to_edge_transform_and_lower(programs, partitioner=partitioner)
    path.write_bytes(edge.to_executorch().buffer)
    return path


@pytest.fixture(scope="session")
def cnn() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return SmallCNN().eval(), torch.randn(1, 3, 16, 16)


@pytest.fixture(scope="session")
def et_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("executorch")


@pytest.fixture(scope="session")
def cnn_xnnpack(cnn: tuple[torch.nn.Module, torch.Tensor], et_dir: Path) -> Path:
    model, x = cnn
    return _lower(torch.export.export(model, (x,)), et_dir / "cnn_xnnpack.pte", xnnpack=True)


@pytest.fixture(scope="session")
def cnn_portable(cnn: tuple[torch.nn.Module, torch.Tensor], et_dir: Path) -> Path:
    model, x = cnn
    return _lower(torch.export.export(model, (x,)), et_dir / "cnn_portable.pte", xnnpack=False)


@pytest.fixture(scope="session")
def two_methods(et_dir: Path) -> Path:
    """A portable program with methods ``forward`` (a+b, sum(a*b)) and ``scaled`` (3a, b-a)."""
    args = (torch.randn(2, 5), torch.randn(2, 5))
    programs = {
        "forward": torch.export.export(TwoInTwoOut(), args),
        "scaled": torch.export.export(Scaled(), args),
    }
    return _lower(programs, et_dir / "two_methods.pte", xnnpack=False)
