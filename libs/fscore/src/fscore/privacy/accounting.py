"""The privacy accountant: what a course's DP mechanisms spend, as ε at a given δ (paper §4.1).

Accounting is not hand-rolled: Google's ``dp-accounting`` composes the mechanisms with its Rényi-DP
accountant (Mironov 2017; Poisson-subsampled Gaussian after Mironov, Talwar and Zhang 2019), the
accountant TensorFlow Privacy and Opacus use. A DP plug-in says what one participant's data goes
through as a list of :class:`Spend` (how many releases of which mechanism, at what noise multiplier
and sampling probability); this module turns that into ε, and finds the noise multiplier that meets
a target ε.

``dp-accounting`` is imported on first use, so a course without DP never loads it.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Mechanism = Literal["gaussian", "laplace"]

#: Rényi orders the accountant tries: dense near 1 (small ε), sparse further out (large noise, many steps)
_ORDERS = [1 + x / 10 for x in range(1, 10)] + list(range(2, 64)) + [80, 96, 128, 192, 256, 512]


@dataclass(frozen=True)
class Spend:
    """``count`` releases of one mechanism. ``noise_multiplier`` is the noise's standard deviation (Laplace:
    its scale) over the released quantity's sensitivity; ``sampling`` the probability that the protected
    unit takes part in one release (1: every time; DP-SGD: batch size over examples)."""

    mechanism: Mechanism
    noise_multiplier: float
    count: int
    sampling: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "noise_multiplier": self.noise_multiplier, "releases": self.count,
                "sampling": self.sampling}


def _event(spend: Spend) -> Any:
    import dp_accounting as dp

    if spend.count == 0:
        return dp.NoOpDpEvent()
    if spend.noise_multiplier <= 0:
        return dp.NonPrivateDpEvent()
    one = (dp.GaussianDpEvent(spend.noise_multiplier) if spend.mechanism == "gaussian"
           else dp.LaplaceDpEvent(spend.noise_multiplier))
    if spend.sampling < 1.0:
        one = dp.PoissonSampledDpEvent(spend.sampling, one)
    return dp.SelfComposedDpEvent(one, spend.count)


def _accountant() -> Any:
    from dp_accounting.rdp import RdpAccountant

    logging.getLogger("absl").setLevel(logging.ERROR)  # orders the series does not converge for are skipped: fine
    return RdpAccountant(orders=_ORDERS)


def epsilon(spends: Sequence[Spend], delta: float) -> float:
    """ε of all ``spends`` composed, at ``delta``; ``math.inf`` when any release adds no noise."""
    import dp_accounting as dp

    if not spends or all(s.count == 0 for s in spends):
        return 0.0
    accountant = _accountant()
    accountant.compose(dp.ComposedDpEvent([_event(s) for s in spends]))
    return float(accountant.get_epsilon(delta))


def calibrate(mechanism: Mechanism, releases: int, target: float, delta: float, sampling: float = 1.0) -> float:
    """The smallest noise multiplier z for which ``releases`` releases of ``mechanism`` (each sampled with
    probability ``sampling``) stay within ε = ``target`` at ``delta``. Cached: every participant of a course
    calibrates the same."""
    return _calibrated(mechanism, releases, target, delta, sampling)


@functools.lru_cache(maxsize=256)
def _calibrated(mechanism: Mechanism, releases: int, target: float, delta: float, sampling: float) -> float:
    import dp_accounting as dp

    def event(z: float) -> Any:
        return _event(Spend(mechanism, z, releases, sampling))

    try:
        return float(dp.calibrate_dp_mechanism(_accountant, event, target, delta,
                                               dp.LowerEndpointAndGuess(1e-4, 1.0), tol=1e-4))
    except (dp.mechanism_calibration.NoBracketIntervalFoundError, ValueError):
        raise ValueError(f"epsilon: no noise multiplier meets ε={target:g} at δ={delta:g} over {releases} "
                         f"{mechanism} releases (the accountant's bound does not go that low or high); give "
                         "noise_multiplier instead") from None


def finite_or_none(value: float) -> float | None:
    """ε for JSON: ``None`` stands for no guarantee (a release without noise)."""
    return value if math.isfinite(value) else None
