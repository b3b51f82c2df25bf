"""pFedMe (Dinh et al., NeurIPS 2020): personalized models as Moreau envelopes of the local losses.

Each participant keeps a personal model theta and trains its local copy w of the global model. For each
batch it first solves the inner problem approximately, ``inner_steps`` gradient steps on

    theta <- argmin f(theta; batch) + lam/2 ||theta - w||^2,

then moves w towards theta: ``w <- w - lr * lam * (w - theta)``. It sends w. The server's step
``w_global <- (1 - beta) w_global + beta * mean(w_i)`` is FedAvg with ``aggregator.server_lr: beta``.
Evaluation reports theta on the participant's test set. Torch participants only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fscore.data.dataset import Dataset
from fscore.personalization.base import Personalization, TrainerParts
from fscore.personalization.sharing import full_copy
from fscore.trainers.base import EvalResult, Trainer, TrainResult, batches, train_result


class PFedMeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lam: float = Field(15.0, gt=0, description="the Moreau envelope's regularisation: how close theta stays to w")
    inner_steps: int = Field(5, ge=1, description="gradient steps on the inner problem per batch (K)")
    personal_lr: float = Field(0.05, gt=0, description="the inner problem's step size")


def torch_model(trainer: Trainer) -> Any:
    """The torch module under ``trainer`` (through sharing wrappers)."""
    while not hasattr(trainer, "model") and hasattr(trainer, "inner"):
        trainer = trainer.inner  # type: ignore[attr-defined]
    return trainer.model  # type: ignore[attr-defined]


class PFedMeTrainer(Trainer):
    backend = "torch"

    def __init__(self, local: Trainer, personal: Trainer, options: PFedMeOptions) -> None:
        self.local, self.personal, self.options = local, personal, options
        self.cfg = personal.cfg  # type: ignore[attr-defined]
        self.rng = np.random.default_rng(0)
        self._started = False

    def get_parameters(self) -> dict[str, np.ndarray]:
        return self.local.get_parameters()

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        self.local.set_parameters(params)
        if not self._started:
            self.personal.set_parameters(full_copy(self.local))
            self._started = True

    def start_round(self, round_: int) -> None:
        self.local.start_round(round_)
        self.personal.start_round(round_)
        self.rng = self.personal.rng  # type: ignore[attr-defined]

    def train(self, data: Dataset) -> TrainResult:
        import torch
        from torch import nn

        o, cfg = self.options, self.cfg
        theta_model, w_model = torch_model(self.personal), torch_model(self.local)
        theta, w = list(theta_model.parameters()), list(w_model.parameters())
        x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
        theta_model.train()
        steps, seen, total_loss = 0, 0, 0.0
        for batch in batches(len(data), cfg, self.rng):
            idx = torch.from_numpy(batch)
            for _ in range(o.inner_steps):
                theta_model.zero_grad()
                loss = nn.functional.cross_entropy(theta_model(x[idx]), y[idx])
                loss.backward()
                with torch.no_grad():
                    for t, anchor in zip(theta, w, strict=True):
                        t -= o.personal_lr * (t.grad + o.lam * (t - anchor))
            with torch.no_grad():
                for anchor, t in zip(w, theta, strict=True):
                    anchor -= cfg.lr * o.lam * (anchor - t)
            total_loss += loss.item() * len(idx)
            seen += len(idx)
            steps += 1
        return train_result(cfg, len(data), steps, seen * o.inner_steps, total_loss * o.inner_steps)

    def evaluate(self, data: Dataset) -> EvalResult:
        return self.personal.evaluate(data)


class PFedMe(Personalization):
    name = "pfedme"
    Options = PFedMeOptions
    backends = frozenset({"torch"})

    def trainer(self, parts: TrainerParts) -> Trainer:
        return PFedMeTrainer(parts.base, parts.make(1), self.options)
