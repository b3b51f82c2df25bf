"""FedAvg (McMahan et al. 2017), and its staleness-aware form for async courses (FedBuff, Nguyen et al. 2022).

With every update fresh (staleness 0, the sync case) the next model is the sample-weighted mean
of the participants' models, computed exactly as plain FedAvg.

When some updates are stale, averaging their models would pull the global model back to the old
version they started from. Each update is applied as a delta from its own base model instead:

    next = current + server_lr * sum_i w_i (x_i - base_i) / sum_i w_i,   w_i = n_i * discount(staleness_i)

``n_i`` is the participant's sample count and ``discount`` the strategy's staleness weight
((1+s)^-a by default). The weights are normalised to sum to 1, so the step never grows with the
number or the freshness of the updates; a fresh update's base is the current model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import PositiveFloat, validate_call

from fscore.aggregators.averaging import mean_delta, sample_weights, weighted_average
from fscore.aggregators.base import Aggregator, ClientUpdate, Params, register_aggregator


class FedAvg(Aggregator):
    @validate_call
    def __init__(self, server_lr: PositiveFloat = 1.0) -> None:
        self.server_lr = server_lr

    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        if not updates:
            return dict(global_params)
        weights = sample_weights(updates)
        if self.server_lr == 1.0 and all(u.base is None for u in updates):
            return {name: weighted_average([u.params[name] for u in updates], weights) for name in global_params}
        step = mean_delta(global_params, updates, weights)
        return {name: (now + self.server_lr * step[name]).astype(now.dtype, copy=False)
                for name, now in global_params.items()}


register_aggregator("fedavg", FedAvg)
