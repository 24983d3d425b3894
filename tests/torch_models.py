"""Small torch modules shared by the ExecuTorch, Core ML and export tests (imports torch)."""

from __future__ import annotations

import torch


class SmallCNN(torch.nn.Module):
    """Conv-ReLU-Conv(stride 2)-ReLU-GlobalMean-Linear: conv and linear go to XNNPACK, mean does not."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        return self.fc(x.mean((2, 3)))
