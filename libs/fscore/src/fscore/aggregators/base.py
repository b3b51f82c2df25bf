"""The Aggregator extension point: updates in, next global model out, all in numpy.

Aggregators know nothing of messages or transports (ARCHITECTURE principle 5). A new rule is one
file with one class implementing ``aggregate`` plus one ``register_aggregator`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fscore.interfaces import RequiredMethods, abstract

Params = Mapping[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class ClientUpdate:
    """One participant's trained model, as the coordinator accepted it.

    ``staleness`` is how many aggregations happened since the model it trained from (round
    ``base_round``) was sent; ``base`` is that model when it is not the current one, so an
    aggregator can apply the update as a delta; ``weight`` is the strategy's staleness discount.
    """

    sender: str
    params: Params
    num_samples: int
    base_round: int
    staleness: int = 0
    weight: float = 1.0
    base: Params | None = None


class Aggregator(RequiredMethods):
    required = ("aggregate",)

    @abstract
    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        """The next global model. ``updates`` arrive sorted by sender, so results are deterministic."""
        raise NotImplementedError


_REGISTRY: dict[str, Callable[..., Aggregator]] = {}


def register_aggregator(name: str, factory: Callable[..., Aggregator]) -> None:
    """``factory`` is called with the aggregator config's options as keywords (``server_lr``)."""
    _REGISTRY[name] = factory


def aggregator_names() -> list[str]:
    return sorted(_REGISTRY)


def make_aggregator(name: str, **options: Any) -> Aggregator:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown aggregator {name!r}; known: {', '.join(aggregator_names())}") from None
    return factory(**options)
