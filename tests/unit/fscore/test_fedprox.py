"""FedProx's proximal term (trainer.proximal_mu) in both trainers: local training stays nearer the model it was sent."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.config import TrainerConfig
from fscore.data.dataset import Dataset
from fscore.models.keras_zoo import build_keras_model
from fscore.models.torch_zoo import build_torch_model
from fscore.models.zoo import ModelSpec, init_params, zoo_layout
from fscore.trainers.keras_trainer import KerasTrainer
from fscore.trainers.torch_trainer import TorchTrainer

SPEC = ModelSpec("mlp", (1, 8, 8), 10, 32)
BUILD = {"torch": (TorchTrainer, build_torch_model), "tensorflow": (KerasTrainer, build_keras_model)}


def drift(backend: str, mu: float) -> tuple[float, float]:
    """How far 3 local epochs move the model from where they started, and the loss the trainer reports."""
    cls, build = BUILD[backend]
    trainer = cls(build(SPEC), TrainerConfig(lr=0.1, local_epochs=3, proximal_mu=mu), seed=(0, 3, 0))
    start = init_params(zoo_layout(SPEC), np.random.default_rng(1))
    trainer.set_parameters(start)
    trainer.start_round(1)
    rng = np.random.default_rng(5)
    result = trainer.train(Dataset(rng.random((64, 64), dtype=np.float32), rng.integers(0, 3, 64)))
    moved = trainer.get_parameters()
    distance = float(np.sqrt(sum(np.sum((moved[k] - start[k]) ** 2) for k in start)))
    return distance, result.metrics["loss"]


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_the_proximal_term_keeps_local_training_near_the_received_model(backend):
    plain, _ = drift(backend, 0.0)
    some, _ = drift(backend, 1.0)
    strong, loss = drift(backend, 5.0)
    assert strong < some < plain
    assert strong < 0.5 * plain
    assert 0 < loss < 5  # the task loss (cross-entropy), not the proximal objective


def test_both_backends_drift_alike_with_the_same_mu():
    torch_drift, keras_drift = drift("torch", 1.0)[0], drift("tensorflow", 1.0)[0]
    assert keras_drift == pytest.approx(torch_drift, rel=1e-4)


def test_a_negative_mu_is_refused():
    with pytest.raises(ValueError, match="proximal_mu"):
        TrainerConfig(proximal_mu=-0.1)
