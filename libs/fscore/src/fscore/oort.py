"""Oort (Lai et al., OSDI 2021), complete: utility-guided selection with its pacer and its blacklist (issue 18).

Oort picks participants whose data is still useful and whose devices are fast (its §4, Algorithm 1):

- **statistical utility** of a participant is |B_i| * sqrt(mean of its squared per-sample training losses)
  from its last update (:func:`fscore.client_manager.statistical_utility`; trainers report
  ``loss_square_mean``). Utilities are clipped at their ``clip_quantile`` and scaled by it, so one outlier
  does not flatten everyone else, and get a bonus sqrt(0.1 ln R / r) for not having been picked since call
  r of R (the paper's temporal uncertainty);
- **system utility**: beyond the preferred round duration T a participant's utility is multiplied by
  (T/t)^alpha, t its response time. T is the ``preferred_quantile`` of the known response times;
- **the pacer** widens T when statistical utility stalls: every ``pacer_step`` rounds W it compares the
  utility that the participants picked by exploitation reported in the last W rounds (counted for the round
  they were picked in, when they reply) with the W before; unless it grew by more than ``pacer_tolerance``,
  the quantile moves up by ``pacer_delta``, letting slower participants with more useful data back in (the
  paper's "if sum U(R-2W:R-W) > sum U(R-W:R): T += delta", with FedScale's tolerance for a flat curve);
- **the blacklist**: a participant that took part (replied) more than ``blacklist_rounds`` times is no
  longer picked, as FedScale counts, so a few fast devices cannot dominate the model. At most
  ``blacklist_max_share`` of the participants are blacklisted (those most often in first), and if too few
  idle participants would be left for a cohort, the least-used blacklisted ones are let back for that
  pick, so the blacklist never shrinks a cohort. Off by default, as in FedScale;
- **exploration**: of k picks a share epsilon goes to participants never heard from, faster ones more
  likely (a fractional pick is made with that probability, so one pick at a time still explores);
  the rest exploit, drawn with probability proportional to utility from those within ``cutoff`` of the
  k-th best. epsilon decays by ``epsilon_decay`` a round down to ``min_epsilon``.

Rounds are the coordinator's (``at``); a sampler used without ``at`` counts its calls as rounds.

It is the coordinator's :class:`~fscore.samplers.Sampler` (FedScale's ``register_client``,
``register_feedback`` and ``select_clients`` are its ``joined``, ``feedback`` and ``sample``). Its state is
plain attributes changed only by those calls, made in inbox order, so recovery, replay and snapshots
rebuild it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated

import numpy as np
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, validate_call

from fscore.client_manager import statistical_utility
from fscore.samplers import Sampler, Share


class OortSampler(Sampler):
    """Oort's participant selection; see the module docstring for every option."""

    @validate_call
    def __init__(self, alpha: NonNegativeFloat = 2.0, epsilon: Share = 0.9, epsilon_decay: Share = 0.98,
                 min_epsilon: Share = 0.2, cutoff: Share = 0.95,
                 preferred_quantile: Annotated[float, Field(gt=0, le=1)] = 0.5, clip_quantile: Share = 0.95,
                 pacer_step: NonNegativeInt = 20, pacer_delta: Share = 0.05, pacer_tolerance: NonNegativeFloat = 0.1,
                 blacklist_rounds: PositiveInt | None = None, blacklist_max_share: Share = 0.3) -> None:
        self.alpha, self.epsilon, self.epsilon_decay, self.min_epsilon = alpha, epsilon, epsilon_decay, min_epsilon
        self.cutoff, self.clip_quantile = cutoff, clip_quantile
        self.preferred_quantile = preferred_quantile  # moved by the pacer
        self.pacer_step, self.pacer_delta, self.pacer_tolerance = pacer_step, pacer_delta, pacer_tolerance
        self.blacklist_rounds, self.blacklist_max_share = blacklist_rounds, blacklist_max_share
        self.statistical: dict[str, float] = {}
        self.last_picked: dict[str, int] = {}  # the round + 1 it was last picked in
        self.participations: dict[str, int] = {}  # updates it reported (FedScale's count)
        self.calls = 0
        self.round: int | None = None  # the coordinator's round, from ``at``; else calls count rounds
        self.decayed_at = -1  # the last round epsilon decayed in
        #: picked by exploitation and not yet replied: participant -> the round it was picked in
        self.exploiting: dict[str, int] = {}
        #: summed statistical utility that exploitation's picks reported, per round they were picked in
        self.exploited: list[float] = []
        self.paced_at = 0  # the last round the pacer looked at
        #: (round, new preferred quantile) each time the pacer widened T
        self.pacer_moves: list[list[float]] = []
        self.preferred_duration: float | None = None  # T in seconds, as last computed

    def at(self, round: int, now: float) -> None:
        self.round = round

    def feedback(self, participant: str, *, num_samples: int, metrics: Mapping[str, float], duration: float) -> None:
        utility = statistical_utility(num_samples, metrics)
        self.statistical[participant] = utility
        self.participations[participant] = self.participations.get(participant, 0) + 1
        picked_in = self.exploiting.pop(participant, None)
        if picked_in is not None:
            self._record(picked_in, utility)

    def utilities(self, explored: Sequence[str], response_times: Mapping[str, float]) -> np.ndarray:
        """Each explored participant's utility: clipped statistical utility, temporal bonus, system penalty."""
        stat = np.array([self.statistical[c] for c in explored])
        bound = float(np.quantile(stat, self.clip_quantile)) if len(stat) else 0.0
        stat = np.minimum(stat, bound) / bound if bound > 0 else np.zeros_like(stat)
        now = self._now()
        bonus = np.array([math.sqrt(0.1 * math.log(max(now, 1)) / self.last_picked.get(c, 1)) for c in explored])
        util = stat + bonus
        if response_times:
            preferred = float(np.quantile(list(response_times.values()), self.preferred_quantile))
            self.preferred_duration = preferred
            times = np.array([response_times.get(c, preferred) for c in explored])
            slow = times > preferred
            util[slow] *= (preferred / times[slow]) ** self.alpha
        return util

    def blacklist(self, population: int) -> list[str]:
        """Who is picked no more: over ``blacklist_rounds`` participations, the most first, capped by share."""
        if self.blacklist_rounds is None:
            return []
        counts = self.participations
        over = sorted((c for c, n in counts.items() if n > self.blacklist_rounds), key=lambda c: (-counts[c], c))
        return over[: math.floor(self.blacklist_max_share * population)]

    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator, *,
               response_times: Mapping[str, float] | None = None) -> list[str]:
        self.calls += 1
        round = self._now() - 1
        self._pace(round)
        times = response_times or {}
        allowed = self._allowed(candidates, k)
        exploited: list[str] = []
        if k >= len(allowed):
            chosen = list(allowed)
        else:
            explored = [c for c in allowed if c in self.statistical]
            unexplored = [c for c in allowed if c not in self.statistical]
            wanted = self.epsilon * k  # the fraction is explored with that probability, so k = 1 still explores
            wanted = math.floor(wanted) + int(rng.random() < wanted - math.floor(wanted))
            explore = min(len(unexplored), max(wanted, k - len(explored)))
            exploited = self._exploit(explored, k - explore, rng, times)
            chosen = exploited + self._explore(unexplored, explore, rng, times)
        for c in exploited:
            self.exploiting[c] = round
        for c in chosen:
            self.last_picked[c] = round + 1
        if round > self.decayed_at:
            self.decayed_at = round
            self.epsilon = max(self.epsilon * self.epsilon_decay, self.min_epsilon)
        order = {c: i for i, c in enumerate(candidates)}
        return sorted(chosen, key=order.__getitem__)

    def _now(self) -> int:
        """R of the paper: the current round, counted from 1."""
        return self.calls if self.round is None else self.round + 1

    def _allowed(self, candidates: Sequence[str], k: int) -> list[str]:
        banned = self.blacklist(len(set(candidates) | set(self.participations)))
        if not banned:
            return list(candidates)
        out = set(banned)
        allowed = [c for c in candidates if c not in out]
        if len(allowed) < k:  # let the least-picked back rather than shrink the cohort
            back = sorted((c for c in candidates if c in out), key=lambda c: (self.participations[c], c))
            allowed += back[: k - len(allowed)]
        return allowed

    def _record(self, round: int, utility: float) -> None:
        while len(self.exploited) <= round:
            self.exploited.append(0.0)
        self.exploited[round] += utility

    def _pace(self, round: int) -> None:
        """Widen T if the utility exploitation found in the last W rounds did not grow over the W before."""
        w = self.pacer_step
        if not w or round < 2 * w or round - self.paced_at < w:  # a round with no selection cannot skip a check
            return
        self.paced_at = round
        before = sum(self.exploited[round - 2 * w: round - w])
        recent = sum(self.exploited[round - w: round])
        if before > 0 and recent <= before * (1 + self.pacer_tolerance) and self.preferred_quantile < 1.0:
            self.preferred_quantile = min(1.0, round_to(self.preferred_quantile + self.pacer_delta))
            self.pacer_moves.append([round, self.preferred_quantile])

    def _exploit(self, explored: Sequence[str], k: int, rng: np.random.Generator,
                 times: Mapping[str, float]) -> list[str]:
        if k <= 0:
            return []
        util = self.utilities(explored, times)
        threshold = self.cutoff * np.sort(util)[::-1][k - 1]
        pool = [i for i in range(len(explored)) if util[i] >= threshold]
        weights = np.maximum(util[pool], 1e-12)
        picked = rng.choice(len(pool), size=k, replace=False, p=weights / weights.sum())
        return [explored[pool[i]] for i in picked]

    @staticmethod
    def _explore(unexplored: Sequence[str], k: int, rng: np.random.Generator,
                 times: Mapping[str, float]) -> list[str]:
        if k <= 0:
            return []
        speed = np.array([1.0 / max(times.get(c, 1.0), 1e-9) for c in unexplored])
        picked = rng.choice(len(unexplored), size=k, replace=False, p=speed / speed.sum())
        return [unexplored[i] for i in picked]


def round_to(x: float) -> float:
    """``x`` without the float error that repeated steps add (0.5 + 5 x 0.1 is 1.0, not 0.9999999999999999)."""
    return round(x, 9)


def oort_sampler(groups: int = 5, **options: object) -> OortSampler:
    """The ``oort`` entry of the sampler registry (``groups`` is the strategy's, and unused here)."""
    return OortSampler(**options)  # type: ignore[arg-type]
