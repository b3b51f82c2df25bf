"""FedAvg (McMahan et al. 2017): the sample-weighted mean of the participants' models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fscore.aggregators.averaging import weighted_average
from fscore.aggregators.base import Aggregator, ClientUpdate, Params, register_aggregator


class FedAvg(Aggregator):
    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        if not updates:
            return dict(global_params)
        weights = [u.num_samples for u in updates]
        return {name: weighted_average([u.params[name] for u in updates], weights) for name in global_params}


register_aggregator("fedavg", FedAvg)
