"""Central differential privacy: DP-FedAvg (McMahan et al. 2018), with fixed or adaptive clipping (Andrew et al.
2021), as a coordinator plug-in (paper §4.1).

The coordinator is trusted with the updates; what is protected is every participant's data from whoever sees
the global models (participants, users of the final model). In each aggregation the coordinator

1. clips each update's change to L2 norm C;
2. sums the clipped changes and adds Gaussian noise of standard deviation z·C to the sum;
3. hands the noised mean change to the course's aggregator as one update, so FedAvg applies it and a server
   optimizer (FedAdam, ...) takes it as its pseudo-gradient.

Each participant then counts once per round, whatever its sample count, so sample counts are not used:
they would leak, and they are unverified. An aggregator that needs the individual updates (robust rules,
FedNova) cannot follow and is refused.

**Adaptive clipping** (Andrew et al. 2021, Algorithm 1) moves C towards the ``target_quantile`` of the
update norms: each round the fraction b of updates no longer than C is estimated with its own noise
(std ``count_noise`` on the count), and C ← C·exp(−η(b̃ − γ)). That estimate spends privacy too, so the
updates get noise multiplier z_Δ = (z⁻² − (2σ_b)⁻²)^(-1/2) and the pair spends exactly what one Gaussian
mechanism of multiplier z does (their Theorem 1).

The accountant composes one Gaussian mechanism of multiplier z per aggregation, Poisson-subsampled at
sample_size / participants when the course samples its cohort uniformly (the amplification McMahan et al.
account for; fscope's uniform sampler draws without replacement, which the Poisson analysis approximates),
and not subsampled otherwise.

The clip's path is a function of the updates the coordinator accepted and of the seed, so recovery and
replay rebuild it, and the noise is drawn from (seed, plug-in, round).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fscore.aggregators.base import Aggregator, ClientUpdate, Params
from fscore.errors import ConfigError
from fscore.message import COORDINATOR
from fscore.plugins import Plugin, PluginContext
from fscore.privacy.accounting import Spend, calibrate, epsilon
from fscore.privacy.noise import applied, clip, difference, noise
from fscore.worker import BaseWorker


class CentralDPOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: float = Field(gt=0, description="the L2 bound on each update's change (the start, when adaptive)")
    noise_multiplier: float | None = Field(None, ge=0, description="z: noise std on the sum over the clip")
    epsilon: float | None = Field(None, gt=0, description="the ε target at delta over the course's rounds")
    delta: float = Field(1e-5, gt=0, lt=1)
    adaptive: bool = Field(False, description="adaptive clipping (Andrew et al. 2021)")
    target_quantile: float = Field(0.5, gt=0, lt=1, description="adaptive: γ, the share of updates left unclipped")
    clip_lr: float = Field(0.2, gt=0, description="adaptive: η, the geometric step of the clip")
    count_noise: float | None = Field(None, gt=0, description="adaptive: σ_b, the noise std on the unclipped count "
                                                               "(default: the cohort size / 20)")

    @model_validator(mode="after")
    def _noise_given(self) -> CentralDPOptions:
        if self.noise_multiplier is None and self.epsilon is None:
            raise ValueError("noise_multiplier: give a noise_multiplier, or an epsilon target to derive it from")
        return self


class CentralDP(Plugin):
    name = "central_dp"

    @classmethod
    def snapshot_fixes_rounds(cls, options: BaseModel) -> str:
        """Its noise is calibrated to an ε target over the course's rounds: a restore may not change them."""
        return "calibrates its noise to an epsilon target over the course's rounds" if options.epsilon else ""

    roles = frozenset({COORDINATOR})
    Options = CentralDPOptions
    protects = "course"

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        o, config = self.options, context.config
        self.delta = o.delta
        self.rounds = getattr(config, "rounds", None)
        self.sampling = _sampling(config)
        cohort = (config.sample_size or config.participants) if config is not None else 1
        self.count_noise = o.count_noise or cohort / 20
        if config is not None:
            _check_aggregator(config)
        if o.noise_multiplier is None:
            if self.rounds is None:
                raise ValueError("epsilon: an epsilon target needs the course's rounds; give noise_multiplier")
            self.noise_multiplier = calibrate("gaussian", self.rounds, o.epsilon, o.delta, self.sampling)
        else:
            self.noise_multiplier = o.noise_multiplier
            if o.epsilon is not None and self.rounds is not None:
                spent = epsilon(self.spends(self.rounds), o.delta)
                if spent > o.epsilon:
                    raise ValueError(f"epsilon: the target {o.epsilon:g} cannot be met: {self.rounds} rounds at "
                                     f"noise_multiplier {o.noise_multiplier:g} spend ε={spent:.3g} at δ={o.delta:g}")
        z, sb = self.noise_multiplier, self.count_noise
        if o.adaptive and z > 0 and 2 * sb <= z:
            raise ValueError(f"count_noise: adaptive clipping needs 2·count_noise > noise_multiplier (got "
                             f"{sb:g} and {z:g}): the count's noise takes a share of the privacy budget")
        #: z_Δ, the updates' own noise multiplier (all of z with fixed clipping)
        self.update_noise = (z ** -2 - (2 * sb) ** -2) ** -0.5 if o.adaptive and z > 0 else z
        self.clip = o.clip
        self.clips: list[float] = []  # the clip of each aggregation, for the summary
        self.unclipped: list[float] = []  # the share of updates within the clip, before noise

    def spends(self, aggregations: int) -> list[Spend]:
        return [Spend("gaussian", self.noise_multiplier, aggregations, self.sampling)]

    def install(self, worker: BaseWorker) -> None:
        worker.aggregator = _NoisedMean(worker.aggregator, self, worker)  # type: ignore[attr-defined]

    def aggregate_privately(self, round_: int, global_params: Params, updates: Sequence[ClientUpdate]
                            ) -> dict[str, np.ndarray]:
        """The noised mean change of round ``round_``'s updates, as a model (global + mean change)."""
        o = self.options
        changes, norms = [], []
        for update in updates:
            clipped, length = clip(difference(update.params, update.trained_from(global_params)), self.clip)
            changes.append(clipped)
            norms.append(length)
        total = {name: sum(c[name] for c in changes) for name in changes[0]}
        rng = self.rng(round_)
        noised = noise(total, self.update_noise * self.clip, "gaussian", rng)
        mean = {name: t / len(updates) for name, t in noised.items()}
        self.clips.append(self.clip)
        within = sum(1 for n in norms if n <= self.clip)
        self.unclipped.append(within / len(updates))
        if o.adaptive:
            estimate = (within + rng.normal(0.0, self.count_noise)) / len(updates)
            self.clip *= math.exp(-o.clip_lr * (estimate - o.target_quantile))
        return applied(global_params, mean)

    def summary(self) -> dict[str, Any]:
        return {"noise_multiplier": self.noise_multiplier, "update_noise_multiplier": self.update_noise,
                "sampling": self.sampling, "delta": self.delta, "adaptive": self.options.adaptive,
                "clips": self.clips, "unclipped_share": self.unclipped,
                "final_clip": self.clip}


class _NoisedMean(Aggregator):
    """The course's aggregator behind DP-FedAvg: it is given one update, the noised mean change."""

    def __init__(self, inner: Aggregator, dp: CentralDP, worker: BaseWorker) -> None:
        self.inner, self.dp, self.worker = inner, dp, worker

    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        if not updates:
            return self.inner.aggregate(global_params, updates)
        round_ = self.worker.state.round  # type: ignore[attr-defined]
        model = self.dp.aggregate_privately(round_, global_params, updates)
        return self.inner.aggregate(global_params, [ClientUpdate("central_dp", model, 1, round_)])


def _sampling(config: Any) -> float:
    """Poisson amplification is claimed only for a synchronous course that samples its cohort uniformly."""
    if config is None or config.sample_size is None or config.sample_size >= config.participants:
        return 1.0
    from fscore.strategy import Strategy

    strategy = Strategy.from_config(config.strategy, config.sample_size)
    if not strategy.synchronous or config.strategy.setting("sampler") != "uniform":
        return 1.0
    return math.ceil(config.sample_size * config.strategy.setting("overselection")) / config.participants


def _check_aggregator(config: Any) -> None:
    from fscore.validation import build_aggregator

    if build_aggregator(config).needs_individual_updates:
        raise ConfigError(f"aggregator.name: {config.aggregator.name} needs the individual updates, but central_dp "
                          "hands the aggregator one noised mean; use fedavg or a server optimizer (fedadam, ...)")
