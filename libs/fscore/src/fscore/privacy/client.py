"""Client-side differential privacy (paper §4.1): each participant clips its update and adds noise before
sending, so the coordinator, and anyone reading the course's log, only ever sees a noised update.

What is protected is a participant's whole update in each round it takes part (participant-level,
"local" DP against an honest-but-curious server). The update's change from the model it was sent is
clipped to norm ``clip`` (L2 for Gaussian noise, L1 for Laplace: the norm that bounds each
mechanism's sensitivity), then noise of scale ``noise_multiplier * clip`` is added. Each release is
one Gaussian (Laplace) mechanism; the accountant (:mod:`fscore.privacy.accounting`) composes a
participant's releases into its ε.

Give either ``noise_multiplier``, or a target ``epsilon``: the noise multiplier is then calibrated
so that a participant sending in every round of the course spends at most that ε at ``delta``. Give
both, and a course whose rounds would spend more than the target is refused before it starts.

The noise is drawn from (course seed, plug-in, participant, round), so the course is deterministic and
its log replays bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fscore.message import Message
from fscore.plugins import PluginContext, UpdateRewriter
from fscore.privacy.accounting import Spend, calibrate, epsilon
from fscore.privacy.noise import applied, clip, difference, noise
from fscore.worker import BaseWorker


class ClientDPOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: float = Field(gt=0, description="the bound on the update's norm (L2 for gaussian, L1 for laplace)")
    noise_multiplier: float | None = Field(None, ge=0, description="noise scale over the clip")
    epsilon: float | None = Field(None, gt=0, description="the ε target at delta, over the course's rounds")
    delta: float = Field(1e-5, gt=0, lt=1)
    mechanism: Literal["gaussian", "laplace"] = "gaussian"

    @model_validator(mode="after")
    def _noise_given(self) -> ClientDPOptions:
        if self.noise_multiplier is None and self.epsilon is None:
            raise ValueError("noise_multiplier: give a noise_multiplier, or an epsilon target to derive it from")
        return self


class ClientDP(UpdateRewriter):
    name = "client_dp"

    @classmethod
    def snapshot_fixes_rounds(cls, options: BaseModel) -> str:
        """Its noise is calibrated to an ε target over the course's rounds: a restore may not change them."""
        return "calibrates its noise to an epsilon target over the course's rounds" if options.epsilon else ""

    Options = ClientDPOptions
    #: the unit whose privacy the accountant reports (see fscore.privacy.report)
    protects = "participant"

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        o = self.options
        self.mechanism, self.clip, self.delta = o.mechanism, o.clip, o.delta
        self.order = 2 if o.mechanism == "gaussian" else 1
        rounds = getattr(context.config, "rounds", None)
        if o.noise_multiplier is None:
            if rounds is None:
                raise ValueError("epsilon: an epsilon target needs the course's rounds; give noise_multiplier")
            self.noise_multiplier = calibrate(o.mechanism, rounds, o.epsilon, o.delta)
        else:
            self.noise_multiplier = o.noise_multiplier
            if o.epsilon is not None and rounds is not None:
                spent = epsilon(self.spends(rounds), o.delta)
                if spent > o.epsilon:
                    raise ValueError(f"epsilon: the target {o.epsilon:g} cannot be met: {rounds} rounds at "
                                     f"noise_multiplier {o.noise_multiplier:g} spend ε={spent:.3g} at δ={o.delta:g}; "
                                     "raise the noise, lower the rounds, or drop noise_multiplier to derive it")

    def spends(self, releases: int, train_samples: int = 0) -> list[Spend]:
        """What a participant that sent ``releases`` updates has spent (the accountant composes it)."""
        return [Spend(self.mechanism, self.noise_multiplier, releases)]

    def rewrite(self, worker: BaseWorker, message: Message, received: Mapping[str, np.ndarray],
                trained: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        clipped, _ = clip(difference(trained, received), self.clip, self.order)
        noised = noise(clipped, self.noise_multiplier * self.clip, self.mechanism, self.rng(message.round))
        return applied(received, noised) | {n: t for n, t in trained.items() if n not in noised}
