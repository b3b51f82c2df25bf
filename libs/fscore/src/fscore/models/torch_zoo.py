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

    @staticmethod
    def batched_forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """K models at once (simulation.batched): parameters stacked on a first axis, ``x`` of shape [K, B, ...]."""
        return _linear(params, "fc", x.flatten(2))


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.fc1 = nn.Linear(spec.num_features, spec.hidden)
        self.fc2 = nn.Linear(spec.hidden, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    @staticmethod
    def batched_forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """K models at once (simulation.batched): parameters stacked on a first axis, ``x`` of shape [K, B, ...]."""
        return _linear(params, "fc2", torch.relu(_linear(params, "fc1", x.flatten(2))))


def _linear(params: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    """K dense layers on K batches: [K, B, in] x [K, out, in] + [K, out] -> [K, B, out]."""
    return torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), x, params[f"{name}.weight"].transpose(1, 2))


class BatchNorm1d(nn.BatchNorm1d):
    """torch's BatchNorm without its step counter (see zoo.BATCHNORM_INIT): the state dict is the agreed layout."""

    def __init__(self, features: int) -> None:
        super().__init__(features, momentum=0.1, eps=1e-5)
        self.num_batches_tracked = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:  # one example has no batch statistics: normalise by the running ones
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            False, 0.0, self.eps)
        return super().forward(x)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):  # type: ignore[no-untyped-def]
        # A state dict without torch's metadata counts as version 1, for which torch adds the counter back.
        super()._load_from_state_dict(state_dict, prefix, {**local_metadata, "version": 2}, *args, **kwargs)


class MLPBN(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.fc1 = nn.Linear(spec.num_features, spec.hidden)
        self.bn1 = BatchNorm1d(spec.hidden)
        self.fc2 = nn.Linear(spec.hidden, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn1(self.fc1(x.flatten(1)))))


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


_MODELS: dict[str, type[nn.Module]] = {"logreg": LogReg, "mlp": MLP, "mlp_bn": MLPBN, "convnet2": ConvNet2}


def build_torch_model(spec: ModelSpec) -> nn.Module:
    return _MODELS[spec.name](spec)
