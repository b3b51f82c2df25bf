"""A course's training strategy, resolved from its config: when to aggregate, whom to send to, what to drop.

The paper's §3.3 names the behaviours that make a course asynchronous; this module turns the
config's named strategy (plus explicit overrides) into concrete values the coordinator's
conditions and handlers read. Nothing here touches messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fscore.config import Broadcast, StrategyConfig, Trigger
from fscore.config.strategy import Discount, StrategyName


@dataclass(frozen=True)
class Strategy:
    name: StrategyName
    trigger: Trigger
    broadcast: Broadcast
    sampler: str  # a sampler's name or module:attr (fscore.samplers.SAMPLERS)
    concurrency: int  # participants training at once (a sync cohort's size)
    goal: int  # goal_achieved: updates to wait for
    time_budget_s: float | None
    toleration: int  # updates staler than this are dropped
    discount: Discount
    discount_exponent: float
    discount_hinge: int
    groups: int
    reply_timeout_s: float | None = None  # give up on requests unanswered this long
    participant_evaluation: bool | None = None  # None: only when the trigger is all_received

    @property
    def synchronous(self) -> bool:
        """Each round's model goes to a fresh cohort and only that round's updates count (toleration 0)."""
        return self.toleration == 0 and self.broadcast == "after_aggregating"

    @property
    def evaluates_participants(self) -> bool:
        """Whether rounds end with every participant evaluating the model (and the coordinator waiting).

        Only when the trigger waits for everyone anyway; otherwise waiting for the slowest
        participant's metrics would undo the point of not waiting for its update.
        """
        if self.participant_evaluation is not None:
            return self.participant_evaluation
        return self.trigger == "all_received"

    def weight(self, staleness: int) -> float:
        """The discount of an update ``staleness`` rounds old (1 for a fresh one)."""
        if self.discount == "constant" or staleness <= 0:
            return 1.0
        if self.discount == "polynomial":
            return float((1.0 + staleness) ** -self.discount_exponent)
        if staleness <= self.discount_hinge:  # hinge (FedAsync, Xie et al. 2019)
            return 1.0
        return 1.0 / (self.discount_exponent * (staleness - self.discount_hinge) + 1.0)

    @staticmethod
    def from_config(config: StrategyConfig, sample_size: int, participant_evaluation: bool | None = None
                    ) -> Strategy:
        """Resolve ``config`` for a course where ``sample_size`` participants train at once."""
        trigger = config.setting("trigger")
        overselection = config.setting("overselection")
        if config.min_received is not None:
            goal = config.min_received
        elif config.min_received_rate is not None:
            goal = max(1, math.ceil(config.min_received_rate * sample_size))
        elif config.name == "sync_os" or trigger != "goal_achieved":
            goal = sample_size
        else:
            goal = max(1, sample_size // 2)
        return Strategy(
            name=config.name, trigger=trigger, broadcast=config.setting("broadcast"), sampler=config.setting("sampler"),
            concurrency=math.ceil(sample_size * overselection), goal=goal,
            time_budget_s=config.setting("time_budget_s"), toleration=config.setting("staleness_toleration"),
            discount=config.staleness_discount, discount_exponent=config.discount_exponent,
            discount_hinge=config.discount_hinge, groups=config.groups, reply_timeout_s=config.reply_timeout_s,
            participant_evaluation=participant_evaluation)
