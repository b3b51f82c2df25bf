"""Course configuration: pydantic models, read from YAML, with ``key=value`` overrides.

Validated once, at the edge; the core receives these typed objects, never dicts. The models are
pure data: checks that need a built object (an aggregator, a sampler, a plug-in) run when the
course is built (:mod:`fscore.validation`), after the user modules they name are imported.

    sections.py   the sections (data, model, trainer, aggregator, plugins, handlers ...)
    strategy.py   the strategy section and the paper's named strategies
    transport.py  how services reach Kafka
    trust.py      signed messages and the admitted keys
    course.py     the whole course and its cross-section checks
    loading.py    YAML, overrides and one-line errors
"""

from fscore.config.course import CourseConfig
from fscore.config.loading import apply_overrides, config_from_dict, load_config, parse_override
from fscore.config.sections import (
    AggregatorConfig,
    AttackConfig,
    Backend,
    ConditionConfig,
    DataConfig,
    EvaluationConfig,
    HandlerConfig,
    JoiningConfig,
    LimitsConfig,
    MessageTypeConfig,
    ModelConfig,
    ParameterConfig,
    PluginConfig,
    SimulationConfig,
    TrainerConfig,
)
from fscore.config.strategy import STRATEGY_NAMES, STRATEGY_PRESETS, Broadcast, StrategyConfig, Trigger
from fscore.config.transport import KafkaConfig, TransportConfig
from fscore.config.trust import TrustConfig
from fscore.errors import ConfigError

__all__ = ["STRATEGY_NAMES", "STRATEGY_PRESETS", "AggregatorConfig", "AttackConfig", "Backend", "Broadcast",
           "ConditionConfig", "ConfigError", "CourseConfig", "DataConfig", "EvaluationConfig", "HandlerConfig",
           "JoiningConfig", "KafkaConfig", "LimitsConfig", "MessageTypeConfig", "ModelConfig", "ParameterConfig",
           "PluginConfig", "SimulationConfig", "StrategyConfig", "TrainerConfig", "TransportConfig", "Trigger",
           "TrustConfig", "apply_overrides", "config_from_dict", "load_config", "parse_override"]
