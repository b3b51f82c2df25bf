"""FedOpt's server optimizers and FedAvgM against hand-computed steps (Reddi et al. 2021, Algorithm 2)."""

import math

import numpy as np
import pytest

from fscore.aggregators import ClientUpdate, FedAvgM, make_aggregator


def moved(value: float, n: int = 3) -> list[ClientUpdate]:
    """One fresh update per participant, each moving every coordinate by ``value`` from zero."""
    return [ClientUpdate(f"p{i}", {"w": np.full(4, value, np.float32)}, 10, 0) for i in range(n)]


@pytest.mark.parametrize("name", ["fedadam", "fedyogi", "fedadagrad"])
def test_the_first_step_of_every_adaptive_rule_is_about_server_lr_in_the_direction_of_the_update(name):
    # m = 0.1 Δ and v ≈ 0.01 Δ² (adam, yogi) or Δ² (adagrad): m / √v = ±1 (adam, yogi) or ±0.1 (adagrad)
    opt = make_aggregator(name, server_lr=0.5, tau=1e-9)
    out = opt.aggregate({"w": np.zeros(4, np.float32)}, moved(-2.0))["w"]
    expected = -0.5 if name != "fedadagrad" else -0.05
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_fedadam_keeps_its_moments_from_round_to_round():
    opt = make_aggregator("fedadam", server_lr=1.0, beta1=0.9, beta2=0.99, tau=1e-9)
    zero = {"w": np.zeros(4, np.float32)}
    first = opt.aggregate(zero, moved(1.0))
    second = opt.aggregate(zero, moved(1.0))  # same pseudo-gradient again, from the same model
    # m₂ = 0.9·0.1 + 0.1 = 0.19; v₂ = 0.99·0.01 + 0.01 = 0.0199: the second step is 0.19/√0.0199 ≈ 1.347
    np.testing.assert_allclose(first["w"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(second["w"], 0.19 / math.sqrt(0.0199), rtol=1e-6)


def test_fedyogi_forgets_a_large_update_more_slowly_than_fedadam():
    adam, yogi = make_aggregator("fedadam", tau=1e-9), make_aggregator("fedyogi", tau=1e-9)
    zero = {"w": np.zeros(4, np.float32)}
    for value in (1.0, 0.01, 0.01):
        adam.aggregate(zero, moved(value))
        yogi.aggregate(zero, moved(value))
    # after Δ = 1 both have v = 0.01. Then Δ² = 1e-4: Yogi moves v by at most (1 - β₂)Δ² = 1e-6 a round,
    # Adam by 1 % of the gap (about 1e-4), so Adam's v decays while Yogi's stays near its high-water mark
    assert yogi.v["w"][0] == pytest.approx(0.01 - 2e-6, rel=1e-4)
    assert adam.v["w"][0] == pytest.approx(0.99 * (0.99 * 0.01 + 1e-6) + 1e-6, rel=1e-4)


def test_fedavgm_accumulates_velocity():
    opt = FedAvgM(server_lr=1.0, momentum=0.9)
    zero = {"w": np.zeros(4, np.float32)}
    assert opt.aggregate(zero, moved(1.0))["w"].tolist() == [1.0] * 4
    np.testing.assert_allclose(opt.aggregate(zero, moved(1.0))["w"], 1.9, rtol=1e-6)


def test_integer_buffers_take_the_plain_average_not_an_optimizer_step():
    current = {"w": np.zeros(2, np.float32), "count": np.array(4, np.int64)}
    ups = [ClientUpdate(f"p{i}", {"w": np.ones(2, np.float32), "count": np.array(6, np.int64)}, 1, 0)
           for i in range(2)]
    for name in ("fedadam", "fedavgm"):
        out = make_aggregator(name).aggregate(current, ups)
        assert out["count"].dtype == np.int64 and int(out["count"]) == 6
        assert out["w"].dtype == np.float32
