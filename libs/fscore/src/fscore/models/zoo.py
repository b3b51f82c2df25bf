"""The model zoo's agreed layouts: parameter names, shapes and a seeded numpy initialisation.

The layout is backend-independent, so the coordinator (which imports no ML framework) builds the
initial global model from it, and every backend's twin of a model loads the same parameters.
Names and shapes follow torch's conventions (Linear weight is [out, in], Conv2d is OIHW).
Initialisation matches torch's defaults for Linear and Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

A ``custom`` model is not in the zoo: the course config declares its layout (``model.layout``),
and each backend's model comes from the config's ``model.builders``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fstranslation.layout import TensorSpec

MODELS = ("logreg", "mlp", "mlp_bn", "convnet2", "custom")


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
    if spec.name == "custom":
        raise ValueError("a custom model is not in the zoo; its layout is declared in model.layout")
    c = spec.num_classes
    if spec.name == "logreg":
        return {"fc.weight": (c, spec.num_features), "fc.bias": (c,)}
    if spec.name == "mlp":
        h = spec.hidden
        return {"fc1.weight": (h, spec.num_features), "fc1.bias": (h,), "fc2.weight": (c, h), "fc2.bias": (c,)}
    if spec.name == "mlp_bn":  # the MLP with BatchNorm after its hidden layer: what FedBN keeps local
        h = spec.hidden
        return {"fc1.weight": (h, spec.num_features), "fc1.bias": (h,), **batchnorm_layout("bn1", h),
                "fc2.weight": (c, h), "fc2.bias": (c,)}
    ch, height, width = spec.input_shape
    flat = 64 * (height // 4) * (width // 4)
    return {"conv1.weight": (32, ch, 5, 5), "conv1.bias": (32,), "conv2.weight": (64, 32, 5, 5), "conv2.bias": (64,),
            "fc1.weight": (spec.hidden, flat), "fc1.bias": (spec.hidden,),
            "fc2.weight": (c, spec.hidden), "fc2.bias": (c,)}


#: BatchNorm's parameters and statistics, in torch's names, with their initial values (scale 1, shift 0, mean 0,
#: variance 1). torch's step counter ``num_batches_tracked`` is not among them: with a fixed momentum it is never
#: read, and Keras has none, so the zoo's torch twins do not keep it.
BATCHNORM_INIT = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}


def batchnorm_layout(layer: str, features: int) -> dict[str, tuple[int, ...]]:
    return {f"{layer}.{name}": (features,) for name in BATCHNORM_INIT}


def batchnorm_constants(names: Mapping[str, object] | list[str]) -> dict[str, float]:
    """The initial value of each BatchNorm tensor among ``names`` (zoo layers named ``bn<k>``, under any prefix)."""
    out = {}
    for name in names:
        layer, _, var = name.rpartition(".")
        if layer.rpartition(".")[2].startswith("bn") and var in BATCHNORM_INIT:
            out[name] = BATCHNORM_INIT[var]
    return out


def zoo_layout(spec: ModelSpec) -> dict[str, TensorSpec]:
    return {name: TensorSpec(shape) for name, shape in layout(spec).items()}


def init_params(agreed: Mapping[str, TensorSpec], rng: np.random.Generator,
                constants: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Torch's default Linear/Conv initialisation over a layout, in its order: each tensor of two or more
    dimensions is a weight with fan-in prod(shape[1:]); a one-dimensional tensor (a bias) takes the bound of
    the weight before it. Models needing anything else (BatchNorm's running variance) set ``model.init``."""
    params: dict[str, np.ndarray] = {}
    fan_in = 1
    for name, spec in agreed.items():
        if len(spec.shape) >= 2:
            fan_in = math.prod(spec.shape[1:])
        if constants and name in constants:  # e.g. BatchNorm: scale 1, mean 0, variance 1
            params[name] = np.full(spec.shape, constants[name], dtype=spec.dtype)
            continue
        bound = 1.0 / math.sqrt(fan_in)
        params[name] = rng.uniform(-bound, bound, spec.shape).astype(spec.dtype)
    return params
