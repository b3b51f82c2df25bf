"""Torch twins of the zoo's models; their state_dict matches :func:`fscore.models.zoo.layout`."""

from __future__ import annotations

import torch
from torch import nn

from fscore.models.zoo import ModelSpec


class LogReg(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.fc = nn.Linear(spec.num_features, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.fc1 = nn.Linear(spec.num_features, spec.hidden)
        self.fc2 = nn.Linear(spec.hidden, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class ConvNet2(nn.Module):
    """Two 5x5 conv layers with max-pooling, then two dense layers (the paper's ConvNet2)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        ch, h, w = spec.input_shape
        self.input_shape = spec.input_shape
        self.conv1 = nn.Conv2d(ch, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * (h // 4) * (w // 4), spec.hidden)
        self.fc2 = nn.Linear(spec.hidden, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, *self.input_shape)
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


_MODELS: dict[str, type[nn.Module]] = {"logreg": LogReg, "mlp": MLP, "convnet2": ConvNet2}


def build_torch_model(spec: ModelSpec) -> nn.Module:
    return _MODELS[spec.name](spec)
