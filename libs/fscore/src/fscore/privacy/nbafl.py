"""NbAFL, noising before model aggregation (Wei et al. 2020), as one plug-in given to every worker (paper §4.1).

Each participant clips its trained model's weights to L2 norm C and adds Gaussian noise before sending
(the uplink); the coordinator adds noise to the global model it broadcasts when the uplink noise alone is
not enough (the downlink). The noise levels follow from the privacy target (ε, δ), the clip, and the
course's shape, as in the paper:

- c = sqrt(2 ln(1.25/δ)), the classic Gaussian mechanism's constant;
- uplink: σ_U = c·L·ΔS_U/ε with sensitivity ΔS_U = 2C/m, where L is how many times a participant's model is
  exposed (``exposures``; by default the expected number of rounds it takes part in) and m its number of
  training examples;
- downlink (their Theorem 2): σ_D = 2cC·sqrt(T² − L²N)/(m·N·ε) when T > L·sqrt(N), else no noise; T is the
  course's rounds, N its participants and m the smallest participant's examples.

The coordinator keeps the clean aggregate (its held-out evaluation and its sha256 are of that); what it sends
carries the downlink noise, drawn once per round, so the models of one round (for training, evaluation and
the final one) are the same noised model and replay re-creates them bit for bit.

The accountant (:mod:`fscore.privacy.accounting`) reports what the uplink spends, each release a Gaussian
mechanism of noise multiplier σ_U/ΔS_U = c·L/ε, composed with Rényi DP: the paper's bound is by simple
composition and the accountant's ε is never larger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fscore.message import COORDINATOR, EVALUATE, FINISH, MODEL_PARAMETERS, PARTICIPANT, Message
from fscore.plugins import PluginContext, UpdateRewriter, replace_payload
from fscore.privacy.accounting import Spend
from fscore.privacy.noise import clip, noise, replaced
from fscore.worker import BaseWorker

_MODEL_TYPES = (MODEL_PARAMETERS, EVALUATE, FINISH)


class NbAFLOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(gt=0, description="the privacy target ε of each participant")
    delta: float = Field(1e-5, gt=0, lt=1)
    clip: float = Field(gt=0, description="C: the bound on the L2 norm of a participant's model weights")
    exposures: int | None = Field(None, ge=1, description="L: rounds a participant's model is exposed "
                                                           "(default: the expected rounds it takes part in)")


class NbAFL(UpdateRewriter):
    name = "nbafl"
    roles = frozenset({COORDINATOR, PARTICIPANT})
    Options = NbAFLOptions
    protects = "participant"

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        o, config = self.options, context.config
        self.delta = o.delta
        self.constant = math.sqrt(2 * math.log(1.25 / o.delta))
        self.rounds = config.rounds if config is not None else 1
        self.participants = config.participants if config is not None else 1
        self.exposures = o.exposures or _expected_exposures(config)
        if self.exposures > self.rounds:
            raise ValueError(f"exposures: {self.exposures} exceeds the course's {self.rounds} rounds")
        #: σ_U over the sensitivity ΔS_U: what the accountant composes per release
        self.noise_multiplier = self.constant * self.exposures / o.epsilon
        self.uplink_std: float | None = None  # fixed at the first update (needs the participant's examples)
        self.downlink_std: float | None = None  # fixed at the first broadcast (needs the participants' sizes)

    def spends(self, releases: int, train_samples: int = 0) -> list[Spend]:
        return [Spend("gaussian", self.noise_multiplier, releases)]

    def rewrite(self, worker: BaseWorker, message: Message, received: Mapping[str, np.ndarray],
                trained: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.uplink_std is None:
            examples = max(len(worker.data.train), 1)  # type: ignore[attr-defined]
            self.uplink_std = self.noise_multiplier * 2 * self.options.clip / examples
        weights = {n: t.astype(np.float64) for n, t in trained.items() if np.issubdtype(t.dtype, np.floating)}
        clipped, _ = clip(weights, self.options.clip)
        return replaced(trained, noise(clipped, self.uplink_std, "gaussian", self.rng(message.round)))

    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        if self.context.role == PARTICIPANT:
            return super().outgoing(worker, message)
        if message.type not in _MODEL_TYPES:
            return message
        std = self._downlink(worker)
        if std == 0:
            return message
        tensors = message.payload["tensors"]
        weights = {n: t.astype(np.float64) for n, t in tensors.items() if np.issubdtype(t.dtype, np.floating)}
        return replace_payload(message, tensors=replaced(tensors, noise(weights, std, "gaussian",
                                                                         self.rng(message.round))))

    def _downlink(self, worker: BaseWorker) -> float:
        if self.downlink_std is None:
            T, L, N = self.rounds, self.exposures, self.participants
            joined = worker.state.membership.participants.values()  # type: ignore[attr-defined]
            m = max(min((p.num_train_samples for p in joined), default=1), 1)
            self.downlink_std = (2 * self.constant * self.options.clip * math.sqrt(T * T - L * L * N)
                                 / (m * N * self.options.epsilon)) if L * math.sqrt(N) < T else 0.0
        return self.downlink_std

    def summary(self) -> dict[str, Any]:
        return {"epsilon_target": self.options.epsilon, "delta": self.delta, "clip": self.options.clip,
                "exposures": self.exposures, "noise_multiplier": self.noise_multiplier,
                "downlink_std": self.downlink_std}


def _expected_exposures(config: Any) -> int:
    if config is None:
        return 1
    cohort = min(math.ceil((config.sample_size or config.participants)
                           * config.strategy.setting("overselection")), config.participants)
    return max(1, math.ceil(config.rounds * cohort / config.participants))
