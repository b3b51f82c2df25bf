"""Arrays of one participant's (or the coordinator's) examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"dataset has {len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset(self.x[idx], self.y[idx])


@dataclass(frozen=True)
class ClientData:
    train: Dataset
    test: Dataset  # the split the participant is evaluated on (its validation split with evaluation.split)
    validation: Dataset | None = None  # data.validation_fraction of its training examples, kept back


@dataclass(frozen=True)
class Federation:
    """A dataset split for a course: one ClientData per participant plus the coordinator's held-out set."""

    clients: list[ClientData]
    heldout: Dataset
    num_features: int
    num_classes: int
    input_shape: tuple[int, ...]
