"""A third-party extension of fscope, as a user would ship it: one package, three extensions, no fscope edits.

With ``tests/extension`` on the path, ``importlib.metadata`` finds ``fscope_demo_ext-0.1.dist-info``
and its entry points, exactly as it would for ``pip install fscope-demo-ext``:

- aggregator ``unweighted_mean``: every update counts the same, whatever its sample count;
- sampler ``round_robin``: participants take turns in address order;
- plug-in ``update_ledger`` (coordinator): counts the model updates that reach the coordinator;
- dataset ``five_digits``: scikit-learn's digits 0 to 4 only (a five-class course);
- plug-in ``broken_plugin``: an entry point whose module does not exist (for the error test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, PositiveFloat, validate_call

from fscore.aggregators import Aggregator
from fscore.data.dataset import Dataset
from fscore.data.sources import CentralDataset, Digits
from fscore.message import MODEL_UPDATE, Message
from fscore.plugins import Plugin
from fscore.samplers import Sampler


class UnweightedMean(Aggregator):
    def __init__(self, server_lr: float) -> None:
        self.server_lr = server_lr

    def aggregate(self, global_params: Mapping[str, np.ndarray], updates: Sequence[Any]) -> dict[str, np.ndarray]:
        out = {}
        for name, current in global_params.items():
            mean = np.mean([u.params[name].astype(np.float64) for u in updates], axis=0)
            out[name] = (current + self.server_lr * (mean - current)).astype(current.dtype)
        return out


@validate_call
def unweighted_mean(*, server_lr: PositiveFloat = 1.0) -> UnweightedMean:
    return UnweightedMean(server_lr)


class RoundRobin(Sampler):
    """Takes the next k participants in address order, wrapping around; its turn is its state."""

    def __init__(self) -> None:
        self.turn = 0

    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator, *,
               response_times: Mapping[str, float] | None = None) -> list[str]:
        if k >= len(candidates):
            return list(candidates)
        ordered = sorted(candidates)
        picked = {ordered[(self.turn + i) % len(ordered)] for i in range(k)}
        self.turn = (self.turn + k) % len(ordered)
        return [c for c in candidates if c in picked]


def round_robin(groups: int = 5) -> RoundRobin:
    return RoundRobin()


class LedgerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_sender: bool = True


class UpdateLedger(Plugin):
    """Counts, on the way in, the model updates that reach the coordinator (accepted or not)."""

    name = "update_ledger"
    roles = frozenset({"coordinator"})
    Options = LedgerOptions

    def __init__(self, context: Any, **options: Any) -> None:
        super().__init__(context, **options)
        self.updates: dict[str, int] = {}
        self.samples = 0

    def incoming(self, worker: Any, message: Message) -> Message:
        if message.type == MODEL_UPDATE:
            self.updates[message.sender] = self.updates.get(message.sender, 0) + 1
            self.samples += int(message.payload["num_samples"])
        return message

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"updates": sum(self.updates.values()), "samples": self.samples}
        if self.options.per_sender:
            out["per_sender"] = dict(sorted(self.updates.items()))
        return out


class FiveDigits(CentralDataset):
    """The digits 0 to 4 of scikit-learn's bundled set, split by the course's data.split like any central set."""

    input_shape = (1, 8, 8)
    num_classes = 5

    def load(self, cfg: Any) -> Dataset:
        every = Digits().load(cfg)
        keep = np.flatnonzero(every.y < 5)
        return every.subset(keep)
