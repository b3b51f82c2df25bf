"""The Trainer extension point. Trainers know nothing of messages: parameters in, parameters out.

Parameters cross this interface in the backend-independent wire form (name -> numpy array), so a
participant never converts; each trainer converts with its backend's adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from fscore.config import TrainerConfig
from fscore.data.dataset import Dataset
from fscore.interfaces import RequiredMethods, abstract
from fscore.registry import Registry


@dataclass(frozen=True)
class TrainResult:
    num_samples: int  # the weight of this update in FedAvg: the size of the local training set
    metrics: dict[str, float] = field(default_factory=dict)
    samples_processed: int = 0  # examples seen, epochs included: what the virtual clock charges for


@dataclass(frozen=True)
class EvalResult:
    num_samples: int
    metrics: dict[str, float] = field(default_factory=dict)


class Trainer(RequiredMethods):
    required = ("get_parameters", "set_parameters", "train", "evaluate")
    backend = "numpy"

    @abstract
    def get_parameters(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @abstract
    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    @abstract
    def train(self, data: Dataset) -> TrainResult:
        raise NotImplementedError

    @abstract
    def evaluate(self, data: Dataset) -> EvalResult:
        raise NotImplementedError

    def start_round(self, round_: int) -> None:
        """Called before ``train`` for each round: derive this round's randomness from the round number.

        Keyed by round rather than drawn from one running stream, so a participant restarted
        mid-course trains exactly as it would have without the restart.
        """


def batches(n: int, cfg: TrainerConfig, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index batches for local training: ``local_epochs`` seeded permutations of ``n`` examples, cut into
    ``batch_size`` pieces, or exactly ``local_steps`` batches when that is set. Every backend's trainer
    iterates these, so torch and TensorFlow participants see their data in the same order."""
    steps = 0
    for _ in range(cfg.local_epochs if cfg.local_steps is None else 1_000_000):
        order = rng.permutation(n)
        for start in range(0, n, cfg.batch_size):
            yield order[start:start + cfg.batch_size]
            steps += 1
            if cfg.local_steps is not None and steps >= cfg.local_steps:
                return


class NoOpTrainer(Trainer):
    """Returns the parameters it was given: measures the framework's own per-message cost."""

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}

    def get_parameters(self) -> dict[str, np.ndarray]:
        return self._params

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        self._params = dict(params)

    def train(self, data: Dataset) -> TrainResult:
        return TrainResult(len(data), {})

    def evaluate(self, data: Dataset) -> EvalResult:
        return EvalResult(len(data), {"accuracy": 0.0, "loss": 0.0})


def effective_steps(steps: int, cfg: TrainerConfig) -> float:
    """‖aᵢ‖₁ of FedNova (Wang et al. 2020, §4): how far, in units of one plain SGD step, local training
    moved. Plain SGD: the number of steps τ. SGD with momentum rho accumulates, each step moving up to
    1/(1-rho) times a plain one: [τ - rho(1 - rho^τ)/(1 - rho)] / (1 - rho). Adam has no such closed form;
    it reports τ. Reported by the participant because only it knows its optimizer."""
    rho = cfg.momentum if cfg.optimizer == "sgd" else 0.0
    if rho == 0.0:
        return float(steps)
    return (steps - rho * (1 - rho**steps) / (1 - rho)) / (1 - rho)


def train_result(cfg: TrainerConfig, num_samples: int, steps: int, seen: int, total_loss: float,
                 total_square_loss: float | None = None) -> TrainResult:
    """What every trainer reports after local training: mean loss, steps, FedNova's effective steps and,
    given the sum of squared per-sample losses, their mean ``loss_square_mean`` (Oort's statistical
    utility, Lai et al. 2021 §4.2, is |B_i| * sqrt of it). It is over the examples as they are, unweighted,
    also where a trainer weighs its loss (FedEM's responsibilities), since it measures the data's loss."""
    metrics = {"loss": total_loss / max(seen, 1), "steps": float(steps), "effective_steps": effective_steps(steps, cfg)}
    if total_square_loss is not None:
        metrics["loss_square_mean"] = total_square_loss / max(seen, 1)
    return TrainResult(num_samples, metrics, seen)


#: trainers a config names in ``trainer.factory``: factories called as (ModelSpec, TrainerConfig, seed)
TRAINERS: Registry[Trainer] = Registry("trainer")


def register_trainer(name: str, factory: Callable[..., Trainer] | str) -> None:
    """Make ``factory`` available as ``trainer.factory: name``; an installed package can instead declare it
    as an entry point of group ``fscope.trainers``."""
    TRAINERS.register(name, factory)
