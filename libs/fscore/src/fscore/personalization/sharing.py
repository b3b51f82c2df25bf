"""Shared and private parameters (paper §3.4.2): what a participant sends, and what never leaves it.

``model.share`` lists glob patterns over the agreed parameter names; a personalization may keep more
back (FedBN: BatchNorm). A participant's trainer is wrapped in :class:`SharedPart`, so it declares, sends
and receives only the shared parameters: the private ones are on no topic and in no aggregate, and the
coordinator's model, layout check and aggregation cover the shared ones only. Private parameters start
from a seeded initialisation of their own, so every run and every process of a course agrees on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

import numpy as np

from fscore.data.dataset import Dataset
from fscore.trainers.base import EvalResult, Trainer, TrainResult


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def shared_names(names: Sequence[str], share: Sequence[str], private: Sequence[str] = ()) -> list[str]:
    """The names matched by a ``share`` pattern and by no ``private`` one, in layout order."""
    return [n for n in names if _matches(n, share) and not _matches(n, private)]


def private_names(names: Sequence[str], share: Sequence[str], private: Sequence[str] = ()) -> list[str]:
    kept = set(shared_names(names, share, private))
    return [n for n in names if n not in kept]


def unmatched(names: Sequence[str], patterns: Sequence[str]) -> list[int]:
    """Positions of the patterns that match none of ``names`` (a typo, or a layer the model lacks)."""
    return [i for i, p in enumerate(patterns) if not any(fnmatchcase(n, p) for n in names)]


class SharedPart(Trainer):
    """A trainer that exchanges only its shared parameters and keeps the others to itself.

    ``set_parameters`` takes the shared ones and merges them into the full model; ``get_parameters``
    returns the shared ones only. Training and evaluation use the whole model, private parts included.
    """

    def __init__(self, inner: Trainer, shared: Sequence[str], private_init: Mapping[str, np.ndarray]) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.shared = list(shared)
        full = inner.get_parameters()
        # the private parameters' seeded start, and the shared ones' until the coordinator's first model
        inner.set_parameters({k: np.asarray(private_init.get(k, v)) for k, v in full.items()})

    def full_parameters(self) -> dict[str, np.ndarray]:
        """Every parameter of the participant's model, private ones included (never sent)."""
        return self.inner.get_parameters()

    def get_parameters(self) -> dict[str, np.ndarray]:
        full = self.inner.get_parameters()
        return {k: full[k] for k in self.shared}

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        full = dict(self.inner.get_parameters())
        full.update(params)
        self.inner.set_parameters(full)

    def start_round(self, round_: int) -> None:
        self.inner.start_round(round_)

    def train(self, data: Dataset) -> TrainResult:
        return self.inner.train(data)

    def evaluate(self, data: Dataset) -> EvalResult:
        return self.inner.evaluate(data)


def full_copy(trainer: Trainer) -> dict[str, np.ndarray]:
    """A copy of every parameter of ``trainer``'s model, private ones included (a :class:`SharedPart` keeps some
    back from ``get_parameters``): where Ditto and pFedMe start a personal model."""
    full = getattr(trainer, "full_parameters", trainer.get_parameters)
    return {k: np.array(v, copy=True) for k, v in full().items()}
