"""FedNova (Wang et al. 2020, "Tackling the Objective Inconsistency Problem in Heterogeneous FL").

Participants that take more local steps (more data, more epochs) move further, and FedAvg then
drifts toward their local optimum. FedNova divides each update by how far its participant's
optimizer went, ‖aᵢ‖₁ (``effective_steps``, reported by the participant's trainer; plain ``steps``
if a trainer reports only that), and rescales the mean by the weighted mean of those lengths:

    next = current + server_lr · τ_eff · Σ pᵢ (xᵢ - baseᵢ) / ‖aᵢ‖₁,   τ_eff = Σ pᵢ ‖aᵢ‖₁

with pᵢ = nᵢ · discount(sᵢ) / Σ nⱼ · discount(sⱼ). When every participant took the same number of
steps this is exactly FedAvg's step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import structlog

from fscore.aggregators.averaging import mean_delta, sample_weights
from fscore.aggregators.base import ClientUpdate, Params, register_aggregator
from fscore.aggregators.fedavg import FedAvg

log = structlog.get_logger("fscore.aggregators")


def local_steps(update: ClientUpdate) -> float:
    """‖aᵢ‖₁ as the participant reported it; 0 when its trainer reported neither metric."""
    return float(update.metrics.get("effective_steps", update.metrics.get("steps", 0.0)))


class FedNova(FedAvg):
    """FedAvg's options (``server_lr``), with each update normalised by its participant's steps."""

    needs_individual_updates = True

    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        if not updates:
            return dict(global_params)
        steps = [local_steps(u) for u in updates]
        samples = sample_weights(updates)
        if min(steps) <= 0:
            unknown = [u.sender for u, s in zip(updates, steps, strict=True) if s <= 0]
            log.warning("fednova_steps_unknown", participants=unknown,
                        detail="their trainers reported no steps; this aggregation is plain FedAvg")
            steps = [1.0] * len(updates)
        total = sum(samples)
        tau_eff = sum(w * s for w, s in zip(samples, steps, strict=True)) / total
        # Σ pᵢ Δᵢ/‖aᵢ‖₁ is the weighted mean of the deltas with weights pᵢ/‖aᵢ‖₁, rescaled by their sum.
        normalised = [w / s for w, s in zip(samples, steps, strict=True)]
        scale = self.server_lr * tau_eff * sum(normalised) / total
        step = mean_delta(global_params, updates, normalised)
        return {name: (now + scale * step[name]).astype(now.dtype, copy=False) for name, now in global_params.items()}


register_aggregator("fednova", FedNova)
