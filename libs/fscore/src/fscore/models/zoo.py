"""The model zoo's agreed layouts: parameter names, shapes and a seeded numpy initialisation.

The layout is backend-independent, so the coordinator (which imports no ML framework) builds the
initial global model from it, and every backend's twin of a model loads the same parameters.
Names and shapes follow torch's conventions (Linear weight is [out, in], Conv2d is OIHW).
Initialisation matches torch's defaults for Linear and Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MODELS = ("logreg", "mlp", "convnet2")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    hidden: int = 64

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"unknown model {self.name!r}; the zoo has {', '.join(MODELS)}")
        if self.name == "convnet2" and len(self.input_shape) != 3:
            raise ValueError(f"convnet2 needs image inputs (channels, height, width), not shape {self.input_shape}")

    @property
    def num_features(self) -> int:
        return math.prod(self.input_shape)


def layout(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape, in the order backends and the wire use."""
    c = spec.num_classes
    if spec.name == "logreg":
        return {"fc.weight": (c, spec.num_features), "fc.bias": (c,)}
    if spec.name == "mlp":
        h = spec.hidden
        return {"fc1.weight": (h, spec.num_features), "fc1.bias": (h,), "fc2.weight": (c, h), "fc2.bias": (c,)}
    ch, height, width = spec.input_shape
    flat = 64 * (height // 4) * (width // 4)
    return {"conv1.weight": (32, ch, 5, 5), "conv1.bias": (32,), "conv2.weight": (64, 32, 5, 5), "conv2.bias": (64,),
            "fc1.weight": (spec.hidden, flat), "fc1.bias": (spec.hidden,),
            "fc2.weight": (c, spec.hidden), "fc2.bias": (c,)}


def init_params(spec: ModelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    params: dict[str, np.ndarray] = {}
    fan_in = 1
    for name, shape in layout(spec).items():
        if name.endswith(".weight"):
            fan_in = math.prod(shape[1:])
        bound = 1.0 / math.sqrt(fan_in)
        params[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return params
