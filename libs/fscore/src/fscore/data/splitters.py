"""Splitting one labelled dataset over participants: IID, or label-skewed by Dirichlet(alpha) (LDA).

The Dirichlet splitter follows the usual construction (Hsu et al. 2019; FederatedScope's
``LDASplitter``): for each class, draw participant proportions from Dir(alpha) and deal that
class's examples out accordingly; redraw until every participant holds at least ``min_size``.
"""

from __future__ import annotations

import numpy as np

_MAX_DRAWS = 100


class SplitError(ValueError):
    """A federation that cannot be dealt out, naming the config ``key`` a user changes to fix it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def iid_split(num_examples: int, num_parts: int, rng: np.random.Generator) -> list[np.ndarray]:
    if num_parts > num_examples:
        raise SplitError("participants", f"{num_parts} participants cannot share {num_examples} training "
                         f"examples (the pool left after data.heldout_fraction); at most {num_examples}")
    return [np.sort(part) for part in np.array_split(rng.permutation(num_examples), num_parts)]


def sampled_split(num_examples: int, num_parts: int, per_part: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each participant draws ``per_part`` distinct examples of the pool, independently: participants overlap, so
    there may be more of them than examples (a cross-device population over a small dataset, issue 19)."""
    if per_part > num_examples:
        raise SplitError("data.samples_per_participant", f"{per_part} examples per participant, but the pool left "
                         f"after data.heldout_fraction holds {num_examples}")
    return [np.sort(rng.choice(num_examples, per_part, replace=False)) for _ in range(num_parts)]


def dirichlet_split(labels: np.ndarray, num_parts: int, alpha: float, rng: np.random.Generator,
                    *, min_size: int = 2) -> list[np.ndarray]:
    if alpha <= 0:
        raise SplitError("data.alpha", f"Dirichlet alpha must be positive, not {alpha}")
    if num_parts * min_size > len(labels):
        raise SplitError("participants", f"{num_parts} participants with data.min_samples_per_participant="
                         f"{min_size} need {num_parts * min_size} examples, but the pool left after "
                         f"data.heldout_fraction holds {len(labels)}; at most {len(labels) // min_size} "
                         f"participants, or lower data.min_samples_per_participant")
    parts: list[list[int]] = []
    for _ in range(_MAX_DRAWS):
        parts = _draw(labels, num_parts, alpha, rng)
        if min(len(p) for p in parts) >= min_size:
            break
    else:
        # Very skewed splits of few examples over many participants rarely give everyone min_size;
        # top the small ones up from the largest, which keeps the skew of nearly every participant.
        _top_up(parts, min_size, rng)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _draw(labels: np.ndarray, num_parts: int, alpha: float, rng: np.random.Generator) -> list[list[int]]:
    parts: list[list[int]] = [[] for _ in range(num_parts)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        props = rng.dirichlet(np.full(num_parts, alpha))
        # Don't give more of this class to participants that already hold an even share.
        sizes = np.array([len(p) for p in parts])
        props = props * (sizes < len(labels) / num_parts)
        props = props / props.sum() if props.sum() > 0 else np.full(num_parts, 1.0 / num_parts)
        cuts = (np.cumsum(props) * len(idx)).astype(int)[:-1]
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.extend(chunk.tolist())
    return parts


def _top_up(parts: list[list[int]], min_size: int, rng: np.random.Generator) -> None:
    for small in sorted(range(len(parts)), key=lambda i: len(parts[i])):
        while len(parts[small]) < min_size:
            donor = max(range(len(parts)), key=lambda i: len(parts[i]))
            parts[small].append(parts[donor].pop(int(rng.integers(len(parts[donor])))))


def train_test_split(num_examples: int, test_fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-participant split; a participant with two or more examples keeps at least one of each."""
    perm = rng.permutation(num_examples)
    n_test = round(num_examples * test_fraction)
    if num_examples >= 2:
        n_test = min(max(n_test, 1), num_examples - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def classes_split(labels: np.ndarray, num_parts: int, per_part: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Pathological label skew (McMahan et al. 2017): each participant holds ``per_part`` classes. Classes are
    dealt out in turn from a seeded order, so every class is held by someone while parts last; each class's
    examples are then split evenly between the participants holding it."""
    classes = np.unique(labels)
    if per_part > len(classes):
        raise SplitError("data.classes_per_participant", f"{per_part} classes per participant, but the dataset "
                         f"has {len(classes)}")
    order = rng.permutation(classes)
    held = [[order[(i * per_part + j) % len(classes)] for j in range(per_part)] for i in range(num_parts)]
    parts: list[list[int]] = [[] for _ in range(num_parts)]
    for c in classes:
        holders = [i for i in range(num_parts) if c in held[i]]
        if not holders:
            continue
        idx = rng.permutation(np.flatnonzero(labels == c))
        for holder, chunk in zip(holders, np.array_split(idx, len(holders)), strict=True):
            parts[holder].extend(chunk.tolist())
    small = [i for i, p in enumerate(parts) if len(p) < 2]
    if small:
        raise SplitError("participants", f"{num_parts} participants holding {per_part} classes each leave "
                         f"participant {small[0]} fewer than 2 examples; use fewer participants or more classes each")
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
