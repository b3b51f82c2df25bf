"""Model-poisoning participants, for showing what an aggregator withstands (config section ``attack``).

A malicious participant trains honestly, then sends something else in place of its update:

- ``sign_flip``: the model it received minus ``scale`` times what training changed (gradient ascent,
  pushing the global model the wrong way);
- ``scale``: the model it received plus ``scale`` times the change (a boosted update, as in model
  replacement backdoors);
- ``gaussian``: the model it received plus Gaussian noise of standard deviation ``scale``.

Only floating-point tensors are touched. The noise is drawn from (seed, participant, round), so a
course with attackers is as reproducible as one without.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fscore.config import AttackConfig

_STREAM_ATTACK = 5


class ModelPoisoning:
    def __init__(self, config: AttackConfig, seed: int, index: int) -> None:
        self.kind, self.scale, self.seed, self.index = config.kind, config.scale, seed, index

    def __call__(self, received: Mapping[str, np.ndarray], trained: Mapping[str, np.ndarray], round_: int
                 ) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, _STREAM_ATTACK, self.index, round_])
        out = {}
        for name, mine in trained.items():
            base = received[name]
            if not np.issubdtype(mine.dtype, np.floating):
                out[name] = mine
            elif self.kind == "sign_flip":
                out[name] = (base - self.scale * (mine - base)).astype(mine.dtype)
            elif self.kind == "scale":
                out[name] = (base + self.scale * (mine - base)).astype(mine.dtype)
            else:
                out[name] = (base + rng.normal(0.0, self.scale, mine.shape)).astype(mine.dtype)
        return out


def poisoner(config: AttackConfig, seed: int, index: int) -> ModelPoisoning | None:
    """Participant ``index``'s attack, or None if it is honest."""
    return ModelPoisoning(config, seed, index) if config.kind != "none" and index in config.participants else None
