"""The torch backend: a ``state_dict`` <-> numpy arrays, sharing memory where torch allows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

name = "torch"


def to_wire(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """CPU numpy views of a state dict; tensors already on the CPU are not copied."""
    return {k: v.detach().cpu().numpy() for k, v in params.items()}


def from_wire(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Torch tensors for decoded arrays; copied, because wire arrays are read-only views of a message."""
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}
