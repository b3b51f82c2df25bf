"""Samplers choose which idle participants train next (paper §3.3 (ii)).

Randomness comes from the rng passed in, so a course's sampling is a function of its seed and of
the order of events. ``response_times`` is the coordinator's estimate of each participant's
round-trip time in seconds: from the device it reported when joining, then from its observed replies.
A sampler that learns from training results (Oort, :mod:`fscore.oort`) overrides ``feedback``, FedScale's
register_feedback (:mod:`fscore.client_manager` takes FedScale's whole client-manager interface):
the coordinator calls it for every update it accepts, in the order it handles
them, so recovery and replay rebuild the sampler's state exactly.
A new sampler is one subclass plus one :func:`register_sampler` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from fscore.interfaces import RequiredMethods, abstract
from fscore.registry import Registry

#: the coordinator's sampling stream, ``default_rng([seed, SAMPLER_STREAM])`` (course.py numbers the others)
SAMPLER_STREAM = 2


def sampling_stream(seed: int) -> np.random.Generator:
    """The coordinator's sampling stream as a course starts it (bench/peers/export.py draws the peers' cohorts
    on it)."""
    return np.random.default_rng([seed, SAMPLER_STREAM])


class Sampler(RequiredMethods):
    required = ("sample",)

    @abstract
    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator, *,
               response_times: Mapping[str, float] | None = None) -> list[str]:
        """Up to ``k`` of ``candidates`` (all of them when k >= len), in candidate order."""
        raise NotImplementedError

    def feedback(self, participant: str, *, num_samples: int, metrics: Mapping[str, float], duration: float) -> None:
        """What one participant's training just yielded: its sample count, its trainer's metrics (``loss``)
        and how long the round trip took. Most samplers ignore it."""

    def joined(self, participant: str, *, num_samples: int, duration: float) -> None:
        """A participant was admitted: its training examples and its expected round trip (FedScale's
        register_client). Most samplers ignore it."""

    def at(self, round: int, now: float) -> None:
        """The coordinator's round and clock, given before each ``sample`` and ``feedback``."""


class UniformSampler(Sampler):
    """k participants uniformly without replacement."""

    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator, *,
               response_times: Mapping[str, float] | None = None) -> list[str]:
        if k >= len(candidates):
            return list(candidates)
        chosen = rng.choice(len(candidates), size=k, replace=False)
        return [candidates[i] for i in sorted(chosen)]


class ResponsivenessSampler(Sampler):
    """Probability proportional to 1/sqrt(estimated response time): fast devices more often, slow ones still.

    The square root (as in FederatedScope's responsiveness-related sampler) tempers the bias, so
    a device ten times slower is picked about a third as often rather than a tenth.
    """

    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator, *,
               response_times: Mapping[str, float] | None = None) -> list[str]:
        if k >= len(candidates):
            return list(candidates)
        times = np.array([max((response_times or {}).get(c, 1.0), 1e-9) for c in candidates])
        p = 1.0 / np.sqrt(times)
        chosen = rng.choice(len(candidates), size=k, replace=False, p=p / p.sum())
        return [candidates[i] for i in sorted(chosen)]


class GroupSampler(Sampler):
    """Participants are binned by responsiveness; each call samples from the next bin in turn.

    Participants training at the same time then have similar speeds, so fewer updates go stale,
    and every bin gets its turn, so slow participants are not starved (Chai et al., FedAT/TiFL).
    Bins are recomputed from the current estimates at each call: ``groups`` equal-sized quantiles.
    A bin with too few idle members is topped up from the following bins.
    """

    def __init__(self, groups: int = 5) -> None:
        self.groups = groups
        self._turn = 0

    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator, *,
               response_times: Mapping[str, float] | None = None) -> list[str]:
        if k >= len(candidates):
            return list(candidates)
        times = response_times or {}
        everyone = sorted(times, key=lambda a: (times[a], a)) if times else list(candidates)
        bins = [list(b) for b in np.array_split(np.array(everyone, dtype=object), self.groups) if len(b)]
        idle = set(candidates)
        chosen: list[str] = []
        for step in range(len(bins)):
            members = [a for a in bins[(self._turn + step) % len(bins)] if a in idle]
            need = k - len(chosen)
            if len(members) <= need:
                chosen += members
            else:
                chosen += [members[i] for i in sorted(rng.choice(len(members), size=need, replace=False))]
            if len(chosen) >= k:
                break
        self._turn = (self._turn + 1) % max(len(bins), 1)
        if len(chosen) < k:  # participants the estimates do not know yet
            rest = [c for c in candidates if c not in set(chosen)]
            chosen += rest[: k - len(chosen)]
        order = {c: i for i, c in enumerate(candidates)}
        return sorted(chosen, key=order.__getitem__)


Share = Annotated[float, Field(ge=0, le=1)]


#: factories take the strategy's sampler options as keywords (``groups``, and ``strategy.sampler_options``)
SAMPLERS: Registry[Sampler] = Registry("sampler", {
    "uniform": lambda groups=5: UniformSampler(),
    "responsiveness": lambda groups=5: ResponsivenessSampler(),
    "group": lambda groups=5: GroupSampler(groups),
    "oort": "fscore.oort:oort_sampler",  # imported when first named
})


def register_sampler(name: str, factory: Callable[..., Sampler]) -> None:
    """``factory`` takes ``groups`` and the ``strategy.sampler_options`` as keywords. An installed package
    can instead declare it as an entry point of group ``fscope.samplers``; a config can name it as
    ``module:attr``."""
    SAMPLERS.register(name, factory)


def sampler_names() -> list[str]:
    return SAMPLERS.names()


def make_sampler(name: str, groups: int = 5, **options: Any) -> Sampler:
    """Build ``name``; errors are ConfigErrors naming the ``strategy.sampler`` keys."""
    return SAMPLERS.build(name, options, key="strategy.sampler", options_key="strategy.sampler_options",
                          implicit={"groups": groups})
