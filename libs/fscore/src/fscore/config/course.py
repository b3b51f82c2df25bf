"""The whole course config and the checks across its sections that need no built object."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from pydantic import Field, model_validator

from fscore.config.personal import PersonalizationConfig, check_overrides, overrides_for, trainer_for
from fscore.config.sections import (
    AggregatorConfig,
    AttackConfig,
    ConditionConfig,
    DataConfig,
    EvaluationConfig,
    HandlerConfig,
    JoiningConfig,
    LimitsConfig,
    MessageTypeConfig,
    ModelConfig,
    PluginConfig,
    SimulationConfig,
    TrainerConfig,
    _Strict,
)
from fscore.config.strategy import StrategyConfig
from fscore.config.transport import TransportConfig
from fscore.config.trust import TrustConfig


class CourseConfig(_Strict):
    course_id: str = Field("course", pattern=r"^[A-Za-z0-9._-]+$")
    seed: int = 0
    participants: int = Field(10, ge=1)
    sample_size: int | None = Field(None, ge=1, description="participants per round; all when unset")
    rounds: int = Field(30, ge=1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    trainer: TrainerConfig = TrainerConfig()
    aggregator: AggregatorConfig = AggregatorConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    attack: AttackConfig = AttackConfig()
    simulation: SimulationConfig = SimulationConfig()
    strategy: StrategyConfig = StrategyConfig()
    joining: JoiningConfig = JoiningConfig()
    limits: LimitsConfig = LimitsConfig()
    transport: TransportConfig = TransportConfig()
    trust: TrustConfig = TrustConfig()
    message_types: list[MessageTypeConfig] = Field(default_factory=list)
    conditions: list[ConditionConfig] = Field(default_factory=list)
    handlers: list[HandlerConfig] = Field(default_factory=list)
    plugins: list[PluginConfig] = Field(default_factory=list)
    participant_overrides: dict[int | str, dict[str, Any]] = Field(default_factory=dict, description=(
        "participant index (7) or range (\"0-24\") -> trainer keys it uses instead of the trainer section's, "
        "and its task (e.g. parity); later entries win"))
    personalization: PersonalizationConfig = PersonalizationConfig()

    @model_validator(mode="after")
    def _consistent(self) -> CourseConfig:
        if self.sample_size is not None and self.sample_size > self.participants:
            raise ValueError(f"sample_size ({self.sample_size}) exceeds participants ({self.participants})")
        _check_strategy(self.strategy, self.sample_size or self.participants, self.participants)
        if self.joining.min_participants > self.participants:
            raise ValueError(f"joining.min_participants: {self.joining.min_participants} exceeds participants "
                             f"({self.participants})")
        for key, indices in (("trainer.participant_backends", self.trainer.participant_backends),
                             ("attack.participants", self.attack.participants),
                             *((f"plugins[{i}].participants", p.participants or [])
                               for i, p in enumerate(self.plugins))):
            outside = sorted(i for i in indices if not 0 <= i < self.participants)
            if outside:
                raise ValueError(f"{key}: participants {outside} do not exist (indices run from 0 "
                                 f"to {self.participants - 1})")
        check_overrides(self.participant_overrides, self.trainer, self.participants)
        if self.evaluation.split == "validation" and self.data.validation_fraction == 0:
            raise ValueError("evaluation.split: validation needs data.validation_fraction > 0 (the participants "
                             "keep no validation split)")
        if self.attack.kind != "none" and not self.attack.participants:
            raise ValueError(f"attack.participants: attack {self.attack.kind!r} names no malicious participant")
        return self

    def trainer_for(self, index: int) -> TrainerConfig:
        """Participant ``index``'s trainer section, its ``participant_overrides`` applied."""
        return trainer_for(self.trainer, self.participant_overrides, index, self.participants)

    def backend_for(self, index: int) -> str:
        """Participant ``index``'s backend: its override, else ``trainer.participant_backends``, else the course's."""
        override = overrides_for(self.participant_overrides, index, self.participants).get("backend")
        return override or self.trainer.participant_backends.get(index, self.trainer.backend)

    def task_for(self, index: int) -> str:
        """Participant ``index``'s learning goal (``participant_overrides.<i>.task``); ``default`` is the dataset's."""
        return overrides_for(self.participant_overrides, index, self.participants).get("task", "default")

    def plugin_entries(self) -> list[tuple[str, PluginConfig]]:
        """Every plug-in of the course with the config key it came from; the ``attack`` section is the
        shorthand of one ``model_poisoning`` plug-in."""
        entries = [(f"plugins[{i}]", p) for i, p in enumerate(self.plugins)]
        if self.attack.kind != "none":
            entries.append(("attack", PluginConfig(name="model_poisoning", participants=self.attack.participants,
                                                   options={"kind": self.attack.kind, "scale": self.attack.scale})))
        return entries

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the validated config: equal configs hash equal."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _check_strategy(strategy: StrategyConfig, sample_size: int, participants: int) -> None:
    """Refuse, before the course starts, a strategy that cannot work; the message names the key."""
    trigger = strategy.setting("trigger")
    if trigger == "goal_achieved" and strategy.min_received is not None and strategy.min_received > sample_size:
        raise ValueError(f"strategy.min_received: goal_achieved waits for {strategy.min_received} updates, but only "
                         f"sample_size={sample_size} participants train at once, so the goal is never achieved")
    if trigger == "time_up" and strategy.setting("time_budget_s") is None:
        raise ValueError(f"strategy.time_budget_s: strategy {strategy.name} (trigger time_up) needs a time budget "
                         "in seconds")
    cohort = math.ceil(sample_size * strategy.setting("overselection"))
    if cohort > participants:
        raise ValueError(f"strategy.overselection: {strategy.setting('overselection')} x sample_size {sample_size} "
                         f"asks for {cohort} participants, but the course has {participants}")
    if strategy.setting("broadcast") == "after_receiving" and trigger == "all_received":
        raise ValueError("strategy.broadcast: after_receiving sends a new model as soon as an update arrives, so "
                         "all_received (nobody left training) would never hold; use goal_achieved or time_up")
    if strategy.setting("broadcast") == "after_receiving" and strategy.setting("staleness_toleration") == 0:
        raise ValueError("strategy.staleness_toleration: after_receiving broadcasts while others still train, so "
                         "a toleration of 0 would drop nearly every update; use after_aggregating or toleration >= 1")


