"""The strategy section (paper §3.3): named strategies, their presets, and explicit overrides."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fscore.config.sections import _Strict

Trigger = Literal["all_received", "goal_achieved", "time_up"]
Broadcast = Literal["after_aggregating", "after_receiving"]
Discount = Literal["polynomial", "constant", "hinge"]
StrategyName = Literal["sync_vanilla", "sync_os", "async_goal_aggr_unif", "async_goal_rece_unif",
                       "async_time_aggr_unif", "async_goal_aggr_group", "custom"]

STRATEGY_NAMES: tuple[str, ...] = StrategyName.__args__  # type: ignore[attr-defined]

#: The paper's named strategies (§5.3.1): Async-<event>-<broadcast manner>-<sampler>. Keys left unset in a
#: strategy config take the preset's value; keys set explicitly win.
STRATEGY_PRESETS: dict[str, dict[str, Any]] = {
    "sync_vanilla": {"trigger": "all_received", "broadcast": "after_aggregating", "sampler": "uniform",
                     "staleness_toleration": 0},
    "sync_os": {"trigger": "goal_achieved", "broadcast": "after_aggregating", "sampler": "uniform",
                "staleness_toleration": 0, "overselection": 1.3},
    "async_goal_aggr_unif": {"trigger": "goal_achieved", "broadcast": "after_aggregating", "sampler": "uniform"},
    "async_goal_rece_unif": {"trigger": "goal_achieved", "broadcast": "after_receiving", "sampler": "uniform"},
    "async_time_aggr_unif": {"trigger": "time_up", "broadcast": "after_aggregating", "sampler": "uniform"},
    "async_goal_aggr_group": {"trigger": "goal_achieved", "broadcast": "after_aggregating", "sampler": "group"},
    "custom": {},
}
_STRATEGY_DEFAULTS: dict[str, Any] = {"trigger": "all_received", "broadcast": "after_aggregating",
                                      "sampler": "uniform", "staleness_toleration": 10, "overselection": 1.0}


class StrategyConfig(_Strict):
    """How the coordinator triggers aggregation, broadcasts and samples (paper §3.3).

    ``sample_size`` (top level) is the concurrency: how many participants train at once. Sync
    strategies (toleration 0, after_aggregating) send each round's model to a fresh cohort of
    ceil(sample_size x overselection) idle participants; async ones keep sample_size participants busy.
    """

    name: StrategyName = "sync_vanilla"
    trigger: Trigger | None = None
    broadcast: Broadcast | None = None
    sampler: str | None = Field(None, description=(
        "uniform | responsiveness | group | oort, a registered sampler, an entry point of group fscope.samplers, "
        "or module:attr"))
    min_received: int | None = Field(None, ge=1, description="goal_achieved: aggregate once this many updates "
                                                             "are buffered (default: half the sample size)")
    min_received_rate: float | None = Field(None, gt=0, le=1, description="goal_achieved: k as a share of the "
                                                                          "sample size")
    time_budget_s: float | None = Field(None, gt=0, description="time_up: seconds per round (virtual in "
                                                                "simulation, wall-clock in deployment)")
    overselection: float | None = Field(None, ge=1.0, description="sync_os: sample this many times the sample "
                                                                  "size, aggregate the first sample_size")
    staleness_toleration: int | None = Field(None, ge=0, description="drop updates staler than this many rounds")
    reply_timeout_s: float | None = Field(None, gt=0, description=(
        "give up on a participant that has not answered a model or an evaluation request this long after it "
        "was sent: the round goes on without it, its late reply is dead-lettered, and it is not sampled again "
        "until it is heard from (virtual seconds in simulation, wall-clock in deployment); unset: wait for ever"))
    staleness_discount: Discount = "polynomial"
    discount_exponent: float = Field(0.5, ge=0, description="polynomial: weight (1+s)^-a; hinge: the slope a")
    discount_hinge: int = Field(4, ge=0, description="hinge: staleness up to this is not discounted")
    groups: int = Field(5, ge=1, description="group sampler: number of responsiveness bins")
    sampler_options: dict[str, Any] = Field(default_factory=dict, description=(
        "options of the sampler beyond groups, e.g. oort's {alpha: 2, pacer_step: 20, blacklist_rounds: 10}"))

    def setting(self, key: str) -> Any:
        """The effective value of ``key``: explicit, else the preset's, else the default."""
        explicit = getattr(self, key)
        if explicit is not None:
            return explicit
        return STRATEGY_PRESETS[self.name].get(key, _STRATEGY_DEFAULTS.get(key))


