"""Checks of a course that need built objects, run once by the course builder before anything starts.

Config models are pure data (:mod:`fscore.config`). Whether an aggregator takes the options given,
whether it can work with the strategy's batch of updates, whether a plug-in exists, may go where
it is given and takes its options: these need the extension itself, which may live in a user
module or an installed package. The builder imports those first (:mod:`fscore.registry`), then
runs this. Every error is a :class:`ConfigError` of one line naming the key.
"""

from __future__ import annotations

from collections.abc import Sequence

from fscore.aggregators import Aggregator, make_aggregator
from fscore.client_manager import ClientManager, ManagedSampler
from fscore.config import CourseConfig, PluginConfig, StrategyConfig
from fscore.data.sources import dataset_source
from fscore.errors import ConfigError
from fscore.plugins import PLUGINS, Plugin, PluginContext
from fscore.samplers import SAMPLERS, Sampler
from fscore.strategy import Strategy
from fscore.trainers.base import TRAINERS


def build_aggregator(config: CourseConfig) -> Aggregator:
    return make_aggregator(config.aggregator.name, **config.aggregator.options())


def build_sampler(strategy: StrategyConfig) -> Sampler:
    if "groups" in strategy.sampler_options:
        raise ConfigError("strategy.sampler_options.groups: the number of groups is strategy.groups")
    name = strategy.setting("sampler")
    factory = SAMPLERS.resolve(name, "strategy.sampler")
    managed = isinstance(factory, type) and issubclass(factory, ClientManager)  # FedScale's: its own options only
    built = SAMPLERS.construct(factory, name, strategy.sampler_options, options_key="strategy.sampler_options",
                               implicit=None if managed else {"groups": strategy.groups})
    return ManagedSampler(built) if managed else built


def plugin_class(key: str, entry: PluginConfig) -> type[Plugin]:
    """The plug-in class ``entry`` names (registered, ``module:attr`` or entry point), checked to be one."""
    found = PLUGINS.resolve(entry.name, f"{key}.name")
    if not (isinstance(found, type) and issubclass(found, Plugin)):
        raise ConfigError(f"{key}.name: {entry.name!r} is {type(found).__name__} {found!r}, not a subclass of "
                          "fscore.plugins.Plugin")
    wanted = {"coordinator", "participant"} if entry.role == "all" else {entry.role}
    if not wanted <= found.roles:
        raise ConfigError(f"{key}.role: plug-in {entry.name} cannot be given to {entry.role} (only to "
                          f"{' or '.join(sorted(found.roles))})")
    return found


def build_plugin(key: str, entry: PluginConfig, cls: type[Plugin], context: PluginContext) -> Plugin:
    """One instance of ``cls`` for one worker; a bad option names ``plugins[i].options.<option>``."""
    options_key = f"{key}.options" if key.startswith("plugins") else key
    return PLUGINS.construct(cls, entry.name, entry.options, options_key=options_key, args=(context,))


def validate_course(config: CourseConfig, plugins: Sequence[tuple[str, PluginConfig, type[Plugin]]]) -> None:
    """Refuse, before the course starts, what its extensions cannot do; the message names the key."""
    aggregator = build_aggregator(config)
    build_sampler(config.strategy)
    _check_aggregator(config, aggregator)
    source = dataset_source(config.data)  # the dataset exists (it is loaded later, by whoever needs the examples)
    if config.data.feature_skew is not None:
        from fscore.data.skew import check_skew

        problem = check_skew(config.data.feature_skew, source.shape(config.data)[0])
        if problem is not None:
            raise ConfigError(f"data.feature_skew.{problem}")
    factory = config.trainer.factory
    if factory is not None and factory not in TRAINERS:  # not imported here: it may need torch, the coordinator not
        TRAINERS.resolve(factory, "trainer.factory")  # raises, naming the key and the known trainers
    seen: dict[str, str] = {}
    for key, entry, cls in plugins:
        label = cls.name or cls.__name__
        if label in seen:  # their randomness and their summaries would be one
            raise ConfigError(f"{key}.name: plug-in {label} is already given by {seen[label]}; give it once")
        seen[label] = key
        role = "coordinator" if entry.role == "coordinator" else "participant"
        build_plugin(key, entry, cls, PluginContext(config.course_id, config.seed, role,
                                                     None if role == "coordinator" else 0, config))


def _check_aggregator(config: CourseConfig, aggregator: Aggregator) -> None:
    """Refuse a rule that needs more updates than the strategy aggregates at a time (Krum's 2f+3)."""
    needed = aggregator.min_updates
    sample_size = config.sample_size or config.participants
    resolved = Strategy.from_config(config.strategy, sample_size)
    if resolved.trigger == "time_up" or needed <= 1:
        return  # time_up aggregates whatever came in time; too few then keeps the model (documented)
    fewest, key = (resolved.goal, "strategy.min_received") if resolved.trigger == "goal_achieved" else \
        (sample_size, "sample_size")
    if fewest < needed:
        raise ConfigError(f"aggregator: {config.aggregator.name} with these options needs at least {needed} updates "
                          f"per aggregation, but the strategy aggregates {fewest} ({key})")
