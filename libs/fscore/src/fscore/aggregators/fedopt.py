"""Server optimizers (FedOpt, Reddi et al. 2021, "Adaptive Federated Optimization"; FedAvgM, Hsu et al. 2019).

FedAvg's step Δ = Σ wᵢ(xᵢ - baseᵢ) / Σ wᵢ is treated as a pseudo-gradient and handed to an
optimizer on the server, which keeps its moments from round to round (Algorithm 2 of the paper):

    m ← β₁ m + (1 - β₁) Δ
    v ← v + Δ²                                  FedAdagrad
    v ← v - (1 - β₂) Δ² sign(v - Δ²)            FedYogi
    v ← β₂ v + (1 - β₂) Δ²                      FedAdam
    x ← x + η m / (√v + τ)

with m₀ = 0 and v₀ = τ², and no bias correction, as in the paper. FedAvgM is heavy-ball momentum
on the same pseudo-gradient: u ← β u + Δ, x ← x + η u.

The moments cover floating-point tensors only; an integer buffer (BatchNorm's batch counter) takes
the plain weighted average. The moments are state: recovery and replay rebuild them by aggregating
the same updates again, which is why the coordinator builds a fresh aggregator for every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import Field, PositiveFloat, validate_call

from fscore.aggregators.averaging import mean_delta, sample_weights
from fscore.aggregators.base import Aggregator, ClientUpdate, Params, register_aggregator

Beta = Annotated[float, Field(ge=0, lt=1)]


class ServerOptimizer(Aggregator):
    """The shared part: FedAvg's mean delta in, one optimizer step per floating-point tensor out."""

    def step(self, name: str, delta: np.ndarray) -> np.ndarray:
        """The move of tensor ``name`` given its pseudo-gradient ``delta`` (float64), updating the state."""
        raise NotImplementedError

    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        if not updates:
            return dict(global_params)
        mean = mean_delta(global_params, updates, sample_weights(updates))
        out = {}
        for name, now in global_params.items():
            if np.issubdtype(now.dtype, np.floating):
                out[name] = (now + self.step(name, mean[name].astype(np.float64))).astype(now.dtype)
            else:
                out[name] = now + mean[name]
        return out


class FedOpt(ServerOptimizer):
    """One class for the three adaptive rules: they differ only in how v is updated."""

    rules = ("adagrad", "yogi", "adam")

    @validate_call
    def __init__(self, rule: str = "adam", server_lr: PositiveFloat = 0.01, beta1: Beta = 0.9,
                 beta2: Beta = 0.99, tau: PositiveFloat = 1e-3) -> None:
        if rule not in self.rules:
            raise ValueError(f"rule: unknown rule {rule!r}; known: {', '.join(self.rules)}")
        self.rule, self.server_lr, self.beta1, self.beta2, self.tau = rule, server_lr, beta1, beta2, tau
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, name: str, delta: np.ndarray) -> np.ndarray:
        m = self.beta1 * self.m.get(name, 0.0) + (1 - self.beta1) * delta
        v = self.v.get(name, np.full_like(delta, self.tau**2))
        square = delta * delta
        if self.rule == "adagrad":
            v = v + square
        elif self.rule == "yogi":
            v = v - (1 - self.beta2) * square * np.sign(v - square)
        else:
            v = self.beta2 * v + (1 - self.beta2) * square
        self.m[name], self.v[name] = m, v
        return self.server_lr * m / (np.sqrt(v) + self.tau)


class FedAvgM(ServerOptimizer):
    @validate_call
    def __init__(self, server_lr: PositiveFloat = 1.0, momentum: Beta = 0.9) -> None:
        self.server_lr, self.momentum = server_lr, momentum
        self.velocity: dict[str, np.ndarray] = {}

    def step(self, name: str, delta: np.ndarray) -> np.ndarray:
        self.velocity[name] = self.momentum * self.velocity.get(name, 0.0) + delta
        return self.server_lr * self.velocity[name]


def _rule(rule: str):
    @validate_call
    def factory(server_lr: PositiveFloat = 0.01, beta1: Beta = 0.9, beta2: Beta = 0.99,
                tau: PositiveFloat = 1e-3) -> FedOpt:
        return FedOpt(rule, server_lr=server_lr, beta1=beta1, beta2=beta2, tau=tau)
    return factory


for _name in FedOpt.rules:
    register_aggregator(f"fed{_name}", _rule(_name))
register_aggregator("fedavgm", FedAvgM)
