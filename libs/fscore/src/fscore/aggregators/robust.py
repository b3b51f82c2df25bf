"""Byzantine-robust aggregation: rules that still work when up to f participants send anything at all.

Each rule works on the updates' deltas (what training changed, measured from the model each update
started from), flattened into one vector per participant, and the result is applied to the current
model: next = current + rule(deltas).

- ``krum`` (Blanchard et al. 2017): the single delta whose n - f - 2 nearest neighbours are closest.
  Needs n ≥ 2f + 3.
- ``multi_krum``: the mean of the ``select`` best Krum scores (default n - f).
- ``median``: the coordinate-wise median (Yin et al. 2018).
- ``trimmed_mean``: per coordinate, drop the f largest and f smallest, average the rest (Yin et al.
  2018). Needs n ≥ 2f + 1.
- ``bulyan`` (El Mhamdi et al. 2018): pick θ = n - 2f deltas by repeated Krum among those left (f
  lowered once fewer than 2f + 3 are left, so Krum still has a neighbour to measure), then per
  coordinate average the β = θ - 2f values closest to their median. Needs n ≥ 4f + 3.
- ``norm_bounding`` (Sun et al. 2019): clip each delta to L2 norm ``max_norm``, then FedAvg.

Sample counts and staleness discounts are ignored by the first five on purpose: a participant can
claim any sample count, so a rule that trusted it could be steered by a single liar. norm_bounding
keeps FedAvg's weights, since clipping already bounds each participant's pull.

``byzantine`` (f) is the number of attackers a rule is sized for. An aggregation with fewer updates
than a rule needs keeps the current model and logs why; the course config is refused up front if its
strategy would aggregate fewer at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
import structlog
from pydantic import Field, NonNegativeInt, PositiveFloat, validate_call

from fscore.aggregators.averaging import sample_weights, weighted_average
from fscore.aggregators.base import Aggregator, ClientUpdate, Params, register_aggregator

log = structlog.get_logger("fscore.aggregators")


# ----------------------------------------------------------------------------- the rules, on an (n, d) matrix

def squared_distances(deltas: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import pdist, squareform  # imported here: a course without Krum need not load scipy

    return squareform(pdist(deltas, "sqeuclidean"))


def krum_order(distances: np.ndarray, byzantine: int) -> np.ndarray:
    """Row indices from best to worst Krum score (each row's sum of squared distances to its n - f - 2
    nearest others); ties go to the lower index. ``distances`` is the rows' squared distance matrix."""
    return np.argsort(krum_scores(distances, byzantine), kind="stable")


def krum_scores(distances: np.ndarray, byzantine: int) -> np.ndarray:
    n = len(distances)
    return np.sort(distances, axis=1)[:, 1:n - byzantine - 1].sum(axis=1)  # column 0 is the row itself


def coordinate_median(deltas: np.ndarray) -> np.ndarray:
    """np.median along the rows, from one sort: about 3x faster than np.median's partition on (n, d)
    matrices with few rows and many columns (bench/robust.py)."""
    ordered = np.sort(deltas, axis=0)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def trimmed_mean(deltas: np.ndarray, trim: int) -> np.ndarray:
    """scipy.stats.trim_mean with ``trim`` rows cut from each end, from one sort (as coordinate_median)."""
    return np.sort(deltas, axis=0)[trim:len(deltas) - trim].mean(axis=0) if trim else deltas.mean(axis=0)


def bulyan(deltas: np.ndarray, byzantine: int) -> np.ndarray:
    """Bulyan: θ = n - 2f rows chosen one at a time by Krum among those left, then a median-centred mean."""
    distances = squared_distances(deltas)  # once: Krum among a subset only needs the subset's sub-matrix
    remaining = list(range(len(deltas)))
    chosen = []
    for _ in range(len(deltas) - 2 * byzantine):
        f = min(byzantine, max(len(remaining) - 3, 0) // 2)  # Krum among the rest, sized for what is left
        best = remaining[int(krum_order(distances[np.ix_(remaining, remaining)], f)[0])]
        chosen.append(best)
        remaining.remove(best)
    selected = deltas[sorted(chosen)]
    beta = len(selected) - 2 * byzantine
    median = coordinate_median(selected)
    closest = np.argsort(np.abs(selected - median), axis=0, kind="stable")[:beta]
    return np.take_along_axis(selected, closest, axis=0).mean(axis=0)


def clip_to_norm(deltas: np.ndarray, max_norm: float) -> np.ndarray:
    norms = np.linalg.norm(deltas, axis=1, keepdims=True)
    return deltas * np.minimum(1.0, max_norm / np.maximum(norms, 1e-30))


# ----------------------------------------------------------------------------- flattening

def flat_deltas(current: Params, updates: Sequence[ClientUpdate]) -> np.ndarray:
    """One row per update: its delta, every tensor flattened in the model's order, in float64."""
    rows = np.empty((len(updates), sum(a.size for a in current.values())), dtype=np.float64)
    for row, update in zip(rows, updates, strict=True):
        base, start = update.trained_from(current), 0
        for name, now in current.items():  # straight into the row: no per-update delta dict, no second copy
            np.subtract(update.params[name].reshape(-1), base[name].reshape(-1), out=row[start:start + now.size])
            start += now.size
    return rows


def apply_flat(current: Params, step: np.ndarray) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for name, now in current.items():
        part = step[start:start + now.size].reshape(now.shape)
        start += now.size
        if not np.issubdtype(now.dtype, np.floating):
            part = np.rint(part)
        out[name] = (now + part).astype(now.dtype)
    return out


# ----------------------------------------------------------------------------- the aggregators

class RobustRule(Aggregator):
    """The shared part: the ``byzantine`` option, how many updates that needs, flatten, combine, unflatten."""

    name = "robust"
    needs_individual_updates = True
    #: min_updates = per_attacker x byzantine + extra (Krum: 2f + 3)
    per_attacker, extra = 0, 1

    @validate_call
    def __init__(self, byzantine: NonNegativeInt = 1) -> None:
        self.byzantine = byzantine

    @property
    def min_updates(self) -> int:  # type: ignore[override]
        return self.per_attacker * self.byzantine + self.extra

    def combine(self, deltas: np.ndarray, updates: Sequence[ClientUpdate]) -> np.ndarray:
        raise NotImplementedError

    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        if len(updates) < self.min_updates:
            log.warning("too_few_updates_for_robust_rule", rule=self.name, updates=len(updates),
                        needed=self.min_updates, byzantine=self.byzantine, detail="the model is kept as it was")
            return dict(global_params)
        return apply_flat(global_params, self.combine(flat_deltas(global_params, updates), updates))


class Krum(RobustRule):
    name, per_attacker, extra = "krum", 2, 3

    def combine(self, deltas: np.ndarray, updates: Sequence[ClientUpdate]) -> np.ndarray:
        return deltas[krum_order(squared_distances(deltas), self.byzantine)[0]]


class MultiKrum(Krum):
    name = "multi_krum"

    @validate_call
    def __init__(self, byzantine: NonNegativeInt = 1, select: Annotated[int, Field(ge=1)] | None = None) -> None:
        super().__init__(byzantine)
        self.select = select

    @property
    def min_updates(self) -> int:  # type: ignore[override]
        return max(super().min_updates, self.select or 1)

    def combine(self, deltas: np.ndarray, updates: Sequence[ClientUpdate]) -> np.ndarray:
        keep = self.select or len(deltas) - self.byzantine
        return deltas[np.sort(krum_order(squared_distances(deltas), self.byzantine)[:keep])].mean(axis=0)


class Median(RobustRule):
    name = "median"

    @validate_call
    def __init__(self) -> None:  # no options: the median needs no estimate of the attackers
        super().__init__(0)

    def combine(self, deltas: np.ndarray, updates: Sequence[ClientUpdate]) -> np.ndarray:
        return coordinate_median(deltas)


class TrimmedMean(RobustRule):
    name, per_attacker, extra = "trimmed_mean", 2, 1

    def combine(self, deltas: np.ndarray, updates: Sequence[ClientUpdate]) -> np.ndarray:
        return trimmed_mean(deltas, self.byzantine)


class Bulyan(RobustRule):
    name, per_attacker, extra = "bulyan", 4, 3

    def combine(self, deltas: np.ndarray, updates: Sequence[ClientUpdate]) -> np.ndarray:
        return bulyan(deltas, self.byzantine)


class NormBounding(RobustRule):
    name = "norm_bounding"

    @validate_call
    def __init__(self, max_norm: PositiveFloat = 1.0) -> None:
        super().__init__(0)
        self.max_norm = max_norm

    def combine(self, deltas: np.ndarray, updates: Sequence[ClientUpdate]) -> np.ndarray:
        clipped = clip_to_norm(deltas, self.max_norm)
        return weighted_average(list(clipped), sample_weights(updates))


for _rule in (Krum, MultiKrum, Median, TrimmedMean, Bulyan, NormBounding):
    register_aggregator(_rule.name, _rule)
