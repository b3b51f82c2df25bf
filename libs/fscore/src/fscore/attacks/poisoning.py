"""Model poisoning (config ``attack``, or the ``model_poisoning`` plug-in): shows what an aggregator withstands.

A malicious participant trains honestly, then sends something else in place of its update:

- ``sign_flip``: the model it received minus ``scale`` times what training changed (gradient ascent,
  pushing the global model the wrong way);
- ``scale``: the model it received plus ``scale`` times the change (a boosted update, as in model
  replacement backdoors);
- ``gaussian``: the model it received plus Gaussian noise of standard deviation ``scale``.

It is a pair of payload transforms (§3.6): on the way in it notes the model each round was sent,
on the way out it rewrites the update. Only floating-point tensors are touched. The noise is drawn
from (seed, participant, round), so a course with attackers is as reproducible as one without.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

from fscore.message import Message
from fscore.plugins import PluginContext, UpdateRewriter
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.attacks")

_STREAM_ATTACK = 5


class PoisoningOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sign_flip", "scale", "gaussian"]
    scale: float = Field(4.0, gt=0, description="sign_flip/scale: the factor on the update; gaussian: noise std")


def poison(kind: str, scale: float, received: Mapping[str, np.ndarray], trained: Mapping[str, np.ndarray],
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """What a malicious participant sends instead of ``trained``, the model it trained from ``received``."""
    out = {}
    for name, mine in trained.items():
        base = received[name]
        if not np.issubdtype(mine.dtype, np.floating):
            out[name] = mine
        elif kind == "sign_flip":
            out[name] = (base - scale * (mine - base)).astype(mine.dtype)
        elif kind == "scale":
            out[name] = (base + scale * (mine - base)).astype(mine.dtype)
        else:
            out[name] = (base + rng.normal(0.0, scale, mine.shape)).astype(mine.dtype)
    return out


class ModelPoisoning(UpdateRewriter):
    name = "model_poisoning"
    Options = PoisoningOptions

    def __init__(self, context: PluginContext, **options: object) -> None:
        super().__init__(context, **options)
        self.kind, self.scale = self.options.kind, self.options.scale
        self._announced = False  # said once, when it first poisons (not when a course check merely builds it)

    def rewrite(self, worker: BaseWorker, message: Message, received: Mapping[str, np.ndarray],
                trained: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._announced:
            self._announced = True
            log.warning("malicious_participant", participant=message.sender, attack=self.kind, scale=self.scale)
        rng = np.random.default_rng([self.context.seed, _STREAM_ATTACK, self.context.index, message.round])
        return poison(self.kind, self.scale, received, trained, rng)
