"""FedNova: updates normalised by how far each participant's optimizer went (Wang et al. 2020)."""

import numpy as np
import pytest

from fscore.aggregators import ClientUpdate, FedAvg, FedNova
from fscore.config import TrainerConfig
from fscore.trainers.base import effective_steps


def update(name: str, delta: float, steps: float, n: int = 1) -> ClientUpdate:
    return ClientUpdate(name, {"w": np.full(3, delta, np.float32)}, n, 0,
                        metrics={"steps": steps, "effective_steps": steps})


def test_a_participant_that_took_more_steps_counts_per_step_not_per_distance():
    zero = {"w": np.zeros(3, np.float32)}
    ups = [update("a", 1.0, 1), update("b", 2.0, 4)]
    # p = ½ each; τ_eff = 2.5; Σ pᵢ Δᵢ/aᵢ = ½·1 + ½·0.5 = 0.75; step = 2.5 x 0.75 = 1.875 (FedAvg: 1.5)
    np.testing.assert_allclose(FedNova().aggregate(zero, ups)["w"], 1.875, rtol=1e-6)
    np.testing.assert_allclose(FedAvg().aggregate(zero, ups)["w"], 1.5, rtol=1e-6)


def test_with_equal_steps_fednova_is_fedavg():
    zero = {"w": np.zeros(3, np.float32)}
    ups = [update("a", 1.0, 5, n=10), update("b", 3.0, 5, n=30)]
    np.testing.assert_allclose(FedNova().aggregate(zero, ups)["w"], FedAvg().aggregate(zero, ups)["w"], rtol=1e-6)


def test_updates_without_reported_steps_fall_back_to_fedavg():
    zero = {"w": np.zeros(3, np.float32)}
    ups = [ClientUpdate("a", {"w": np.full(3, 1.0, np.float32)}, 1, 0),
           ClientUpdate("b", {"w": np.full(3, 3.0, np.float32)}, 1, 0)]
    np.testing.assert_allclose(FedNova().aggregate(zero, ups)["w"], 2.0, rtol=1e-6)


@pytest.mark.parametrize(("steps", "momentum", "expected"), [
    (7, 0.0, 7.0),
    (1, 0.9, 1.0),     # the first momentum step is a plain step
    (2, 0.9, 2.9),     # then 1 + 0.9
    (3, 0.5, 4.25),    # 1 + 1.5 + 1.75
])
def test_effective_steps_of_sgd_with_momentum(steps, momentum, expected):
    assert effective_steps(steps, TrainerConfig(momentum=momentum)) == pytest.approx(expected)


def test_adam_reports_plain_steps():
    assert effective_steps(5, TrainerConfig(optimizer="adam", momentum=0.9)) == 5.0
