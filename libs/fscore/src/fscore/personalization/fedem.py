"""FedEM (Marfoq et al., NeurIPS 2021): each participant's data as a mixture of K shared components.

The global model is K component models (``c0.``, ``c1.`` ... in front of the zoo's names); the coordinator
averages each component like any parameter. Each participant keeps its mixture weights pi, which never
leave it. A round is one EM step on the participant's data:

- E: the responsibility of component k for example i, q_ik ∝ pi_k p_k(y_i | x_i), from the received components;
- M: pi_k = mean_i q_ik, then local training of every component on the loss weighted by q_ik.

Its prediction is the mixture sum_k pi_k p_k(y | x), which evaluation reports. Torch participants only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fscore.data.dataset import Dataset
from fscore.personalization.base import Layout, Personalization, TrainerParts
from fscore.personalization.pfedme import torch_model
from fscore.trainers.base import EvalResult, Trainer, TrainResult
from fstranslation.layout import TensorSpec


class FedEMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    components: int = Field(3, ge=2, le=16, description="K, the number of shared component models")


def _prefix(k: int) -> str:
    return f"c{k}."


class FedEMTrainer(Trainer):
    backend = "torch"

    def __init__(self, components: list[Trainer]) -> None:
        self.components = components
        self.weights = np.full(len(components), 1.0 / len(components))  # pi: private to the participant

    def get_parameters(self) -> dict[str, np.ndarray]:
        return {_prefix(k) + n: v for k, c in enumerate(self.components) for n, v in c.get_parameters().items()}

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        for k, c in enumerate(self.components):
            pre = _prefix(k)
            c.set_parameters({n[len(pre):]: v for n, v in params.items() if n.startswith(pre)})

    def start_round(self, round_: int) -> None:
        for c in self.components:
            c.start_round(round_)

    def _log_likelihoods(self, data: Dataset) -> np.ndarray:
        """log p_k(y_i | x_i), shape (K, n)."""
        import torch

        x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
        out = []
        with torch.no_grad():
            for c in self.components:
                model = torch_model(c)
                model.eval()
                out.append(torch.log_softmax(model(x), 1)[torch.arange(len(y)), y].double().numpy())
        return np.stack(out)

    def train(self, data: Dataset) -> TrainResult:
        log_q = np.log(self.weights)[:, None] + self._log_likelihoods(data)
        log_q -= log_q.max(0, keepdims=True)
        q = np.exp(log_q)
        q /= q.sum(0, keepdims=True)
        self.weights = q.mean(1)
        results = []
        for k, c in enumerate(self.components):
            torch_trainer = c if hasattr(c, "sample_weights") else c.inner  # type: ignore[attr-defined]
            torch_trainer.sample_weights = q[k]
            results.append(c.train(data))
            torch_trainer.sample_weights = None
        first = results[0]
        loss = float(sum(r.metrics.get("loss", 0.0) for r in results) / len(results))
        return TrainResult(first.num_samples, {**first.metrics, "loss": loss},
                           sum(r.samples_processed for r in results))

    def evaluate(self, data: Dataset) -> EvalResult:
        if len(data) == 0:
            return EvalResult(0, {})
        log_mix = np.logaddexp.reduce(np.log(self.weights)[:, None] + self._log_likelihoods(data), axis=0)
        # accuracy needs every class's probability, not only the true one's
        probs = sum(w * self._probabilities(c, data) for w, c in zip(self.weights, self.components, strict=True))
        acc = float(np.mean(np.argmax(probs, axis=1) == data.y))
        return EvalResult(len(data), {"accuracy": acc, "loss": float(-log_mix.mean())})

    @staticmethod
    def _probabilities(component: Trainer, data: Dataset) -> np.ndarray:
        import torch

        model = torch_model(component)
        model.eval()
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(data.x)), 1).double().numpy()


class FedEM(Personalization):
    name = "fedem"
    Options = FedEMOptions
    backends = frozenset({"torch"})
    complete_global = False  # a mixture needs each participant's weights
    private_parts = False  # each component is a whole model

    def global_layout(self, shared: Layout) -> dict[str, TensorSpec]:
        return {_prefix(k) + n: spec for k in range(self.options.components) for n, spec in shared.items()}

    def trainer(self, parts: TrainerParts) -> Trainer:
        return FedEMTrainer([parts.base, *(parts.make(k) for k in range(1, self.options.components))])
