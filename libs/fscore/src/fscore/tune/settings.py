"""What ``fscope tune`` is asked to do, and the Optuna sampler and pruner each method stands for.

The algorithms are Optuna's (§4.3, Figure 13): random search is its ``RandomSampler`` run to full fidelity;
successive halving is its ``SuccessiveHalvingPruner`` (asynchronous SHA) over random configurations; Hyperband
is its ``HyperbandPruner``; ``bo`` is its TPE sampler. fscope supplies the fidelity (rounds, trained rung by rung
from snapshots) and the objective (the participants' validation metrics).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fscore.errors import ConfigError

Method = Literal["rs", "sha", "hyperband", "bo"]
MULTI_FIDELITY = ("sha", "hyperband")


class TuneSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method = "rs"
    budget: int = Field(ge=1, description="rounds trained over all trials (the final test run not counted)")
    trials: int | None = Field(None, ge=1, description="at most this many configurations")
    min_rounds: int | None = Field(None, ge=1, description="the lowest fidelity (SHA, Hyperband)")
    max_rounds: int | None = Field(None, ge=1, description="the full fidelity; default: the config's rounds")
    eta: int = Field(3, ge=2, description="reduction factor of SHA and Hyperband")
    objective: Literal["loss", "accuracy"] = "loss"
    jobs: int = Field(1, ge=1, description="rungs trained at once, each in its own process")
    batch: int = Field(4, ge=1, description="rungs scheduled together; the schedule depends on it, not on jobs")
    seed: int = 0
    storage: str | None = Field(None, description="an Optuna storage URL; default: a journal file in the output")
    study_name: str | None = None
    validation_fraction: float | None = Field(None, gt=0, lt=1, description=(
        "the participants' validation share; default: the config's data.validation_fraction, else 0.2"))
    test: bool = True
    fedex: bool = Field(False, description="wrap the method around FedEx, which explores the space's trainer.* keys "
                                           "per participant and round inside each trial")
    fedex_arms: int = Field(3, ge=2, description="FedEx: candidate values drawn per local key for each trial")

    @property
    def metric(self) -> str:
        return f"validation.{self.objective}"

    @property
    def direction(self) -> str:
        return "minimize" if self.objective == "loss" else "maximize"


def fidelity(settings: TuneSettings, config_rounds: int, eval_every: int) -> list[int]:
    """The rounds a trial pauses at to be judged, ending with the full fidelity: r_min * eta^k below r_max, then
    r_max (every rung of every Hyperband bracket is one of them). RS and BO judge only the full course."""
    r_max = settings.max_rounds or config_rounds
    if settings.method not in MULTI_FIDELITY:
        if settings.min_rounds is not None:
            raise ConfigError(f"--min-rounds: method {settings.method} trains every trial to its full "
                              f"{r_max} rounds; only sha and hyperband have a lower fidelity")
        rungs = [r_max]
    else:
        r_min = settings.min_rounds or max(1, r_max // settings.eta ** 2)
        if r_min >= r_max:
            raise ConfigError(f"--min-rounds: {r_min} is not below the full fidelity of {r_max} rounds")
        rungs = []
        r = r_min
        while r < r_max:
            rungs.append(r)
            r *= settings.eta
        rungs.append(r_max)
    if settings.budget < rungs[0]:
        raise ConfigError(f"--budget: {settings.budget} rounds cannot train one trial to the lowest fidelity of "
                          f"{rungs[0]} rounds")
    odd = [r for r in rungs if r % eval_every and r != r_max]
    if odd:
        raise ConfigError(f"evaluation.every: {eval_every} does not divide the rungs {odd}, so a trial would not be "
                          "evaluated where it is judged; set --set evaluation.every=1")
    return rungs


def sampler_and_pruner(settings: TuneSettings, r_min: int, r_max: int) -> tuple[Any, Any]:
    import optuna

    if settings.method == "bo":
        sampler: Any = optuna.samplers.TPESampler(seed=settings.seed)
    else:
        sampler = optuna.samplers.RandomSampler(seed=settings.seed)
    if settings.method == "sha":
        pruner: Any = optuna.pruners.SuccessiveHalvingPruner(min_resource=r_min, reduction_factor=settings.eta)
    elif settings.method == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=r_min, max_resource=r_max,
                                                reduction_factor=settings.eta)
    else:
        pruner = optuna.pruners.NopPruner()
    return sampler, pruner
