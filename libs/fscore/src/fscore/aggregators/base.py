"""The Aggregator extension point: updates in, next global model out, all in numpy.

Aggregators know nothing of messages or transports (ARCHITECTURE principle 5). A new rule is one
file with one class implementing ``aggregate`` plus one ``register_aggregator`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fscore.interfaces import RequiredMethods, abstract
from fscore.registry import Registry

Params = Mapping[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class ClientUpdate:
    """One participant's trained model, as the coordinator accepted it.

    ``staleness`` is how many aggregations happened since the model it trained from (round
    ``base_round``) was sent; ``base`` is that model when it is not the current one, so an
    aggregator can apply the update as a delta; ``weight`` is the strategy's staleness discount.
    ``metrics`` are what the participant's trainer reported (``steps``, ``effective_steps``, ``loss``):
    FedNova normalises by them.
    """

    sender: str
    params: Params
    num_samples: int
    base_round: int
    staleness: int = 0
    weight: float = 1.0
    base: Params | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    def trained_from(self, current: Params) -> Params:
        """The model this update's training started from: its own base if stale, else ``current``."""
        return self.base if self.base is not None else current

    def delta(self, current: Params) -> dict[str, np.ndarray]:
        """What this participant's training changed, measured from the model it trained from."""
        base = self.trained_from(current)
        return {name: self.params[name] - base[name] for name in current}


class Aggregator(RequiredMethods):
    """Turns accepted updates into the next global model.

    An aggregator may keep state across rounds (a server optimizer's moments): the coordinator
    builds a fresh one for every run, recovery and replay, and feeds it the same updates in the
    same order, so the state is rebuilt exactly.
    """

    required = ("aggregate",)
    #: the fewest updates one aggregation needs (Krum needs 2f+3); the course config is refused if its
    #: strategy may aggregate fewer, and at run time an aggregation with fewer keeps the current model
    min_updates: int = 1
    #: whether the rule looks at each update on its own (robust rules, FedNova's step counts), so it cannot work
    #: on a combination of them (central DP's noised mean, secure aggregation's masked sum)
    needs_individual_updates: bool = False

    @abstract
    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        """The next global model. ``updates`` arrive sorted by sender, so results are deterministic."""
        raise NotImplementedError


AGGREGATORS: Registry[Aggregator] = Registry("aggregator")


def register_aggregator(name: str, factory: Callable[..., Aggregator]) -> None:
    """``factory`` is called with the ``aggregator`` config section's other keys as keywords
    (``server_lr``, ``byzantine``). Decorate it with ``pydantic.validate_call`` and a bad or
    unknown option is refused before the course starts, naming the key. An installed package
    can instead declare it as an entry point of group ``fscope.aggregators``; a config can also
    name it as ``module:attr``."""
    AGGREGATORS.register(name, factory)


def aggregator_names() -> list[str]:
    return AGGREGATORS.names()


def make_aggregator(name: str, **options: Any) -> Aggregator:
    """Build ``name`` with ``options``; errors are ConfigErrors naming the ``aggregator`` key."""
    return AGGREGATORS.build(name, options, key="aggregator.name", options_key="aggregator")
