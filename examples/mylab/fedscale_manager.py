"""A client selector written against FedScale's client-manager interface (issue 18), as a FedScale user would.

It keeps what FedScale's aggregator tells it (``register_client`` at check-in, ``register_feedback`` with each
result) and picks by it in ``select_clients``: a share ``explore`` of the picks goes to clients never heard
from, fastest first, the rest to the highest reward per second of round trip. Only two things differ from a
FedScale manager: whom it may pick is ``self.feasible`` and its randomness is ``self.rng``, both set by fscope
before each selection, so a course with it replays bit for bit.

    strategy: {sampler: "mylab.fedscale_manager:RewardManager", sampler_options: {explore: 0.3}}
"""

from __future__ import annotations

from fscore.client_manager import ClientManager


class RewardManager(ClientManager):
    def __init__(self, explore: float = 0.3) -> None:
        self.explore = explore
        self.size: dict[str, int] = {}
        self.duration: dict[str, float] = {}
        self.reward: dict[str, float] = {}
        self.last_round: dict[str, int] = {}

    def register_client(self, client_id: str, size: int, duration: float) -> None:
        self.size[client_id] = size
        self.duration[client_id] = duration

    def register_feedback(self, client_id: str, reward: float, auxi=1.0, time_stamp: int = 0,
                          duration: float = 1.0, success: bool = True) -> None:
        if success:
            self.reward[client_id] = reward
            self.duration[client_id] = duration
            self.last_round[client_id] = time_stamp

    def select_clients(self, num: int, cur_time: float = 0.0) -> list[str]:
        heard = [c for c in self.feasible if c in self.reward]
        unheard = sorted((c for c in self.feasible if c not in self.reward),
                         key=lambda c: (self.duration.get(c, 0.0), c))
        explore = min(len(unheard), max(0, num - len(heard)), num) or min(len(unheard), round(num * self.explore))
        picks = unheard[:explore]
        by_value = sorted(heard, key=lambda c: (-self.reward[c] / max(self.duration[c], 1e-9), c))
        top = by_value[:max(num - explore, 0) * 2]  # a little randomness among the best, from fscope's stream
        if top:
            order = self.rng.permutation(len(top))
            picks += [top[i] for i in sorted(order[:num - explore])]
        return picks
