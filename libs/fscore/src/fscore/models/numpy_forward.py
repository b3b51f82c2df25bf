"""Forward passes of the zoo's dense models in numpy, so the coordinator evaluates without a framework.

Only logreg and the MLP: a convolution in numpy would be a second implementation of ConvNet2 to
keep in step, so the coordinator service reports participants' metrics alone for ConvNet2.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fscore.data.dataset import Dataset
from fscore.models.zoo import ModelSpec


def logits(spec: ModelSpec, params: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)
    if spec.name == "logreg":
        return x @ params["fc.weight"].T + params["fc.bias"]
    hidden = np.maximum(x @ params["fc1.weight"].T + params["fc1.bias"], 0.0)
    return hidden @ params["fc2.weight"].T + params["fc2.bias"]


class NumpyEvaluator:
    def __init__(self, spec: ModelSpec, data: Dataset) -> None:
        self.spec = spec
        self.data = data

    @classmethod
    def for_spec(cls, spec: ModelSpec, data: Dataset) -> NumpyEvaluator | None:
        return cls(spec, data) if spec.name in ("logreg", "mlp") else None

    def __call__(self, params: Mapping[str, np.ndarray]) -> dict[str, float]:
        z = logits(self.spec, params, self.data.x).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        y = self.data.y
        return {"accuracy": float((z.argmax(1) == y).mean()), "loss": float(-log_probs[np.arange(len(y)), y].mean())}
