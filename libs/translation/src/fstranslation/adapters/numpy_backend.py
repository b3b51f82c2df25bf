"""The numpy backend: parameters already are the wire form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

name = "numpy"


def to_wire(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in params.items()}


def from_wire(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return dict(arrays)
