"""Clipping and noise on models in wire form (name -> numpy array), the arithmetic every DP plug-in shares.

Only floating-point tensors carry learned values; integer tensors (counters) pass untouched. Norms
are taken over all floating-point tensors as one vector, as DP-FedAvg and NbAFL define them, and the
arithmetic is done in float64 and cast back, so float32 models round once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fscore.privacy.accounting import Mechanism

Params = Mapping[str, np.ndarray]


def floating(params: Params) -> list[str]:
    return [name for name, t in params.items() if np.issubdtype(t.dtype, np.floating)]


def difference(after: Params, before: Params) -> dict[str, np.ndarray]:
    """``after - before`` over the floating-point tensors, in float64."""
    return {name: after[name].astype(np.float64) - before[name] for name in floating(after)}


def norm(vector: Params, order: int = 2) -> float:
    """The L2 (or L1) norm of all of ``vector``'s tensors taken as one vector."""
    if order == 1:
        return float(sum(np.abs(t).sum() for t in vector.values()))
    return float(np.sqrt(sum(np.square(t).sum() for t in vector.values())))


def clip(vector: Params, bound: float, order: int = 2) -> tuple[dict[str, np.ndarray], float]:
    """``vector`` scaled down to norm ``bound`` if it is longer, and its norm before clipping."""
    length = norm(vector, order)
    factor = min(1.0, bound / length) if length > 0 else 1.0
    return {name: t * factor for name, t in vector.items()}, length


def noise(vector: Params, scale: float, mechanism: Mechanism, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``vector`` plus i.i.d. noise: Gaussian of standard deviation ``scale``, or Laplace of scale ``scale``.
    Tensors are drawn in name order, so the noise depends on the seed and the layout only."""
    out = {}
    for name in sorted(vector):
        t = vector[name]
        drawn = rng.normal(0.0, scale, t.shape) if mechanism == "gaussian" else rng.laplace(0.0, scale, t.shape)
        out[name] = t + drawn if scale > 0 else t
    return {name: out[name] for name in vector}


def applied(base: Params, change: Params) -> dict[str, np.ndarray]:
    """``base + change`` cast to each tensor's dtype; tensors ``change`` does not name are ``base``'s."""
    return {name: (t + change[name]).astype(t.dtype) if name in change else t for name, t in base.items()}


def replaced(like: Params, values: Params) -> dict[str, np.ndarray]:
    """``values`` cast to the dtypes of ``like``; tensors ``values`` does not name are ``like``'s."""
    return {name: np.asarray(values[name]).astype(t.dtype) if name in values else t for name, t in like.items()}
