"""FedScale's client manager as an fscope extension point (issue 18; seed 003, "Client Selection").

FedScale's aggregator calls ``client_manager.register_client(...)`` when a device checks in,
``register_feedback(...)`` when it reports a result, and ``select_clients(...)`` at the start of a round. A
:class:`ClientManager` has those three methods, under those names and meanings, so a selector written for
FedScale comes over with its logic unchanged. ``strategy.sampler`` names one like any sampler (a registered
name, ``module:attr`` or an entry point of ``fscope.samplers``), and :class:`ManagedSampler` adapts it to the
coordinator's :class:`~fscore.samplers.Sampler`:

- a participant's ``join_in`` is ``register_client(client_id, size, duration)``: its training examples and the
  coordinator's first estimate of its round trip;
- an accepted ``model_update`` is ``register_feedback(client_id, reward, auxi, time_stamp, duration, success)``:
  the reward is Oort's statistical utility, ``num_samples * sqrt(mean squared per-sample loss)`` when the
  trainer reports ``loss_square_mean``, else ``num_samples * loss``; ``auxi`` is the trainer's metrics,
  ``time_stamp`` the round;
- choosing a cohort is ``select_clients(num, cur_time)`` with ``cur_time`` the course's (virtual, in
  simulation) clock, as FedScale passes its global virtual clock. Before each call the
  adapter sets ``feasible`` (who may be picked now: idle, responsive participants) and ``rng`` (the
  coordinator's seeded stream): FedScale's managers track availability and draw randomness themselves, and
  fscope's must use these two so that a course replays.

Every call is made from a coordinator handler, in the order the inbox is handled, so a manager that keeps its
state in attributes and draws only from ``rng`` is rebuilt exactly by recovery and replay, and snapshotted
with the coordinator. What it returns is checked: ids that are not feasible, repeats and any beyond ``num``
are dropped with a warning, so a faulty manager cannot send a model to someone who is busy or unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import structlog

from fscore.interfaces import RequiredMethods, abstract
from fscore.samplers import Sampler

log = structlog.get_logger("fscore.client_manager")


class ClientManager(RequiredMethods):
    """FedScale's ``ClientManager``: what a selector learns from check-ins and results, and whom it picks."""

    required = ("register_client", "register_feedback", "select_clients")
    #: who may be selected now; set by fscope before each select_clients call
    feasible: list[str]
    #: the course's seeded stream for this selection; set by fscope before each select_clients call
    rng: np.random.Generator

    @abstract
    def register_client(self, client_id: str, size: int, duration: float) -> None:
        """A device checked in: its number of training examples and its expected round-trip seconds."""
        raise NotImplementedError

    @abstract
    def register_feedback(self, client_id: str, reward: float, auxi: Any = 1.0, time_stamp: int = 0,
                          duration: float = 1.0, success: bool = True) -> None:
        """A device reported: its statistical utility (``reward``), extra information (``auxi``: here its
        trainer's metrics), the round (``time_stamp``), how long its round trip took, and whether it succeeded."""
        raise NotImplementedError

    @abstract
    def select_clients(self, num: int, cur_time: float = 0.0) -> list[str]:
        """Up to ``num`` clients among ``self.feasible``, at time ``cur_time`` (seconds of course time)."""
        raise NotImplementedError


def statistical_utility(num_samples: int, metrics: Mapping[str, float]) -> float:
    """Oort's statistical utility of one update: |B_i| * sqrt(mean of the squared per-sample losses)."""
    if "loss_square_mean" in metrics:
        return num_samples * math.sqrt(max(float(metrics["loss_square_mean"]), 0.0))
    return num_samples * abs(float(metrics.get("loss", 0.0)))


class ManagedSampler(Sampler):
    """A :class:`ClientManager` as the coordinator's sampler."""

    def __init__(self, manager: ClientManager) -> None:
        self.manager = manager
        self.round, self.now = 0, 0.0

    def at(self, round: int, now: float) -> None:
        self.round, self.now = round, now

    def joined(self, participant: str, *, num_samples: int, duration: float) -> None:
        self.manager.register_client(participant, num_samples, duration)

    def feedback(self, participant: str, *, num_samples: int, metrics: Mapping[str, float], duration: float) -> None:
        self.manager.register_feedback(participant, statistical_utility(num_samples, metrics), dict(metrics),
                                       self.round, duration, True)

    def sample(self, candidates: Sequence[str], k: int, rng: np.random.Generator, *,
               response_times: Mapping[str, float] | None = None) -> list[str]:
        self.manager.feasible, self.manager.rng = list(candidates), rng
        picked = list(self.manager.select_clients(k, self.now))
        feasible, chosen = set(candidates), []
        for client in picked:
            if client in feasible and client not in chosen and len(chosen) < k:
                chosen.append(client)
        if len(chosen) != len(picked):
            log.warning("client_manager_choice_trimmed", manager=type(self.manager).__name__, picked=len(picked),
                        kept=len(chosen), wanted=k, reason="ids not feasible now, repeated, or beyond num")
        order = {c: i for i, c in enumerate(candidates)}
        return sorted(chosen, key=order.__getitem__)
