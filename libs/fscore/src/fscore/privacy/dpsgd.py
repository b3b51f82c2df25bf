"""DP-SGD inside local training (Abadi et al. 2016), through Opacus, for example-level guarantees (paper §4.1).

Client-side noise (:mod:`fscore.privacy.client`) protects a participant's whole update; DP-SGD protects each
of its training examples instead, with far less noise: every local step clips each example's gradient to
``max_grad_norm`` and adds Gaussian noise of std ``noise_multiplier * max_grad_norm`` to their sum. Opacus
does both (its ``GradSampleModule`` computes the per-example gradients, its ``DPOptimizer`` clips and
noises); the plug-in puts them into the participant's torch trainer for the length of each round
(``TorchTrainer.privatizer``) and takes them out again, so the model and its wire layout are untouched.

Accounting: each local step is a Gaussian mechanism on a batch of ``batch_size`` of the participant's ``n``
examples, accounted as Poisson sampling with probability batch_size / n (the analysis Opacus and TF Privacy
report for shuffled batches too; fscope's batches are a seeded shuffle, so this is the usual approximation,
not a proof), composed over the steps of every round the participant trained.

The noise comes from a torch generator seeded by (course seed, plug-in, participant, round), so training
stays deterministic and the course replays.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fscore.errors import ConfigError, FscoreError
from fscore.message import PARTICIPANT
from fscore.plugins import Plugin, PluginContext
from fscore.privacy.accounting import Spend, calibrate, epsilon
from fscore.worker import BaseWorker


class DPSGDOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_grad_norm: float = Field(gt=0, description="the L2 clip of each example's gradient")
    noise_multiplier: float | None = Field(None, ge=0, description="noise std over max_grad_norm")
    epsilon: float | None = Field(None, gt=0, description="the ε target at delta, for a participant training in "
                                                           "every round with data.min_samples_per_participant "
                                                           "examples")
    delta: float = Field(1e-5, gt=0, lt=1)

    @model_validator(mode="after")
    def _noise_given(self) -> DPSGDOptions:
        if self.noise_multiplier is None and self.epsilon is None:
            raise ValueError("noise_multiplier: give a noise_multiplier, or an epsilon target to derive it from")
        return self


class DPSGD(Plugin):
    name = "dp_sgd"

    @classmethod
    def snapshot_fixes_rounds(cls, options: BaseModel) -> str:
        """Its noise is calibrated to an ε target over the course's rounds: a restore may not change them."""
        return "calibrates its noise to an epsilon target over the course's rounds" if options.epsilon else ""

    roles = frozenset({PARTICIPANT})
    Options = DPSGDOptions
    protects = "example"

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        o, config = self.options, context.config
        self.delta = o.delta
        self.config = config
        if config is not None:
            _check_course(config, context.index or 0)
        if o.noise_multiplier is None:
            if config is None:
                raise ValueError("epsilon: an epsilon target needs the course config; give noise_multiplier")
            n = config.data.min_samples_per_participant
            steps, q = self._steps(n), self._sampling(n)
            self.noise_multiplier = calibrate("gaussian", steps * config.rounds, o.epsilon, o.delta, q)
        else:
            self.noise_multiplier = o.noise_multiplier
            if o.epsilon is not None and config is not None:
                n = config.data.min_samples_per_participant
                spent = epsilon(self.spends(config.rounds, n), o.delta)
                if spent > o.epsilon:
                    raise ValueError(f"epsilon: the target {o.epsilon:g} cannot be met: {config.rounds} rounds at "
                                     f"noise_multiplier {o.noise_multiplier:g} spend ε={spent:.3g} at δ={o.delta:g} "
                                     f"for a participant of {n} examples")

    def _trainer_cfg(self) -> Any:
        return self.config.trainer_for(self.context.index or 0)

    def _steps(self, n: int) -> int:
        cfg = self._trainer_cfg()
        return cfg.local_steps if cfg.local_steps is not None else cfg.local_epochs * math.ceil(max(n, 1) /
                                                                                                 cfg.batch_size)

    def _sampling(self, n: int) -> float:
        return min(1.0, self._trainer_cfg().batch_size / max(n, 1))

    def spends(self, releases: int, train_samples: int = 0) -> list[Spend]:
        """A participant of ``train_samples`` examples that trained ``releases`` rounds."""
        n = train_samples or self.config.data.min_samples_per_participant
        return [Spend("gaussian", self.noise_multiplier, releases * self._steps(n), self._sampling(n))]

    def install(self, worker: BaseWorker) -> None:
        from fscore.trainers.base import NoOpTrainer

        trainer = worker.trainer  # type: ignore[attr-defined]
        if isinstance(trainer, NoOpTrainer):  # a course check builds participants with no trainer
            return
        from fscore.trainers.torch_trainer import TorchTrainer

        if not isinstance(trainer, TorchTrainer):
            raise FscoreError(f"dp_sgd: participant {worker.address}'s trainer is {type(trainer).__name__}; DP-SGD "
                              "runs inside the plain torch trainer")
        trainer.privatizer = self._privatize

    def _privatize(self, model: Any, optimizer: Any, round_: int) -> Any:
        import torch
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        # Opacus's hooks on a first layer whose input needs no gradient: torch says so on every step, harmlessly
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        generator = torch.Generator().manual_seed(int(self.rng(round_).integers(2**62)))
        wrapped = GradSampleModule(model)
        private = DPOptimizer(optimizer, noise_multiplier=self.noise_multiplier,
                              max_grad_norm=self.options.max_grad_norm,
                              expected_batch_size=self._trainer_cfg().batch_size, generator=generator)

        def undo() -> None:
            wrapped._close()  # the hooks and per-example gradients go; the module is the trainer's again

        return wrapped, private, undo


def _check_course(config: Any, index: int) -> None:
    if config.backend_for(index) != "torch":
        raise ConfigError(f"trainer.backend: dp_sgd runs inside torch training (Opacus); participant {index} uses "
                          f"{config.backend_for(index)}")
    if config.personalization.name != "none":
        raise ConfigError("personalization.name: dp_sgd privatizes the plain torch trainer; "
                          f"{config.personalization.name} trains with its own loop")
    if config.trainer_for(index).proximal_mu:
        raise ConfigError("trainer.proximal_mu: DP-SGD clips per-example gradients, and the proximal term is not one")
    if config.model.name not in ("logreg", "mlp", "convnet2"):
        raise ConfigError(f"model.name: Opacus computes per-example gradients of logreg, mlp and convnet2, not "
                          f"{config.model.name} (BatchNorm mixes examples)")



