"""FedScale's server-side FedYoGi, ported as a FedScale user would (issue 18; seed 003, "Server aggregates").

FedScale averages the participants' models on the fly (FedAvg), then calls
``ServerOptimizer.update_round_gradient(last_model, current_model, target_model)``: with mode ``fed-yogi`` it
hands the difference current - last to a ``YoGi`` controller and sets the target to last + its answer. Here
the same two pieces sit behind fscope's :class:`~fscore.aggregators.base.Aggregator`: ``aggregate`` is the
on-the-fly average (fscope's sample-weighted mean of the updates) followed by ``update_round_gradient``.
The controller keeps its moments across rounds, which recovery and replay rebuild by aggregating the same
updates again. Adaptive Federated Optimization (Reddi et al., ICLR 2021), Algorithm 2, with v0 = tau^2:

    m <- beta m + (1 - beta) g;   v <- v - (1 - beta2) g^2 sign(v - g^2);   move = eta m / (sqrt(v) + tau)

    aggregator: {name: "mylab.fedscale_yogi:FedScaleServerOptimizer", yogi_eta: 0.01}

It computes what the built-in ``fedyogi`` computes (tested), so the port can be checked against it. As there,
integer buffers (BatchNorm's counter) take the plain average; FedScale would run YoGi on them too. Options
are checked when the course is built (``pydantic.validate_call``), so ``yogi_eta: -1`` or a value YAML
reads as a string is refused naming the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, PositiveFloat, validate_call

from fscore.aggregators.averaging import mean_delta, sample_weights
from fscore.aggregators.base import Aggregator, ClientUpdate, Params


class YoGi:
    """FedScale's ``utils.yogi.YoGi``: ``update(gradients)`` returns the move for each tensor."""

    def __init__(self, eta: float = 0.01, tau: float = 1e-3, beta: float = 0.9, beta2: float = 0.99) -> None:
        self.eta, self.tau, self.beta, self.beta2 = eta, tau, beta, beta2
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def update(self, gradients: list[np.ndarray]) -> list[np.ndarray]:
        if not self.m:
            self.m = [np.zeros_like(g) for g in gradients]
            self.v = [np.full_like(g, self.tau**2) for g in gradients]
        moves = []
        for i, g in enumerate(gradients):
            self.m[i] = self.beta * self.m[i] + (1 - self.beta) * g
            square = g * g
            self.v[i] = self.v[i] - (1 - self.beta2) * square * np.sign(self.v[i] - square)
            moves.append(self.eta * self.m[i] / (np.sqrt(self.v[i]) + self.tau))
        return moves


Beta = Annotated[float, Field(ge=0, lt=1)]


class FedScaleServerOptimizer(Aggregator):
    """FedScale's ``ServerOptimizer`` (modes ``fed-yogi`` and ``fed-avg``) as an fscope aggregator."""

    @validate_call
    def __init__(self, mode: Literal["fed-yogi", "fed-avg"] = "fed-yogi", yogi_eta: PositiveFloat = 0.01,
                 yogi_tau: PositiveFloat = 1e-3, yogi_beta: Beta = 0.9, yogi_beta2: Beta = 0.99) -> None:
        self.mode = mode
        self.gradient_controller = YoGi(eta=yogi_eta, tau=yogi_tau, beta=yogi_beta, beta2=yogi_beta2)

    def update_round_gradient(self, last_model: list[np.ndarray], current_model: list[np.ndarray]) -> list[np.ndarray]:
        """The target model from the last one and the on-the-fly average (FedScale's third argument, the
        model to write into, is the returned list here: fscope's aggregators return the next model)."""
        if self.mode == "fed-avg":  # the average has been applied on the fly
            return current_model
        diff_weight = self.gradient_controller.update([b - a for a, b in zip(last_model, current_model, strict=True)])
        return [a + d for a, d in zip(last_model, diff_weight, strict=True)]

    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        if not updates:
            return dict(global_params)
        mean = mean_delta(global_params, updates, sample_weights(updates))
        names = [n for n, p in global_params.items() if np.issubdtype(p.dtype, np.floating)]
        last = [global_params[n].astype(np.float64) for n in names]
        current = [global_params[n].astype(np.float64) + mean[n].astype(np.float64) for n in names]
        target = dict(zip(names, self.update_round_gradient(last, current), strict=True))
        return {n: (target[n] if n in target else p + mean[n]).astype(p.dtype) for n, p in global_params.items()}
