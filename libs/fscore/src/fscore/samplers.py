"""Samplers choose which participants train in a round. Randomness comes from the rng passed in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fscore.interfaces import RequiredMethods, abstract


class Sampler(RequiredMethods):
    required = ("sample",)

    @abstract
    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
        raise NotImplementedError


class UniformSampler(Sampler):
    """k participants uniformly without replacement, returned in candidate order."""

    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
        if k >= len(candidates):
            return list(candidates)
        chosen = rng.choice(len(candidates), size=k, replace=False)
        return [candidates[i] for i in sorted(chosen)]
