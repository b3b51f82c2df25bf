"""The accountant (dp-accounting's RDP) and the clipping/noise arithmetic the DP plug-ins share."""

import math

import numpy as np
import pytest

from fscore.privacy.accounting import Spend, calibrate, epsilon
from fscore.privacy.noise import applied, clip, difference, noise, norm


def test_more_noise_fewer_releases_or_sampling_spend_less():
    base = epsilon([Spend("gaussian", 1.0, 30)], 1e-5)
    assert epsilon([Spend("gaussian", 2.0, 30)], 1e-5) < base
    assert epsilon([Spend("gaussian", 1.0, 10)], 1e-5) < base
    assert epsilon([Spend("gaussian", 1.0, 30, sampling=0.1)], 1e-5) < base
    assert epsilon([Spend("gaussian", 1.0, 30)], 1e-3) < base  # a looser delta
    assert epsilon([Spend("laplace", 1.0, 30)], 1e-5) > 0


def test_composition_adds_up_and_no_noise_is_no_guarantee():
    one = epsilon([Spend("gaussian", 1.0, 20)], 1e-5)
    assert epsilon([Spend("gaussian", 1.0, 10), Spend("gaussian", 1.0, 10)], 1e-5) == pytest.approx(one)
    assert epsilon([Spend("gaussian", 0.0, 1)], 1e-5) == math.inf
    assert epsilon([Spend("gaussian", 1.0, 0)], 1e-5) == 0.0


@pytest.mark.parametrize(("target", "sampling"), [(1.0, 1.0), (8.0, 1.0), (2.0, 0.2)])
def test_calibration_meets_the_target_tightly(target, sampling):
    z = calibrate("gaussian", 30, target, 1e-5, sampling)
    assert epsilon([Spend("gaussian", z, 30, sampling)], 1e-5) <= target
    assert epsilon([Spend("gaussian", z * 0.98, 30, sampling)], 1e-5) > target


def test_clipping_bounds_the_norm_and_keeps_short_vectors():
    v = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}
    clipped, length = clip(v, 6.5)
    assert length == pytest.approx(13.0) and norm(clipped) == pytest.approx(6.5)
    assert clip(v, 20.0)[0]["a"].tolist() == [3.0, 4.0]
    l1, length1 = clip(v, 9.5, order=1)
    assert length1 == pytest.approx(19.0) and norm(l1, 1) == pytest.approx(9.5)


def test_noise_is_seeded_and_in_name_order_and_applied_in_the_model_dtype():
    v = {"b": np.zeros(3), "a": np.zeros(2)}
    one, two = noise(v, 1.0, "gaussian", np.random.default_rng(1)), noise(v, 1.0, "gaussian", np.random.default_rng(1))
    assert all(np.array_equal(one[k], two[k]) for k in v) and list(one) == ["b", "a"]
    assert np.array_equal(noise(v, 0.0, "laplace", np.random.default_rng(1))["a"], v["a"])
    model = {"w": np.ones(2, np.float32), "n": np.array([3], np.int64)}
    change = difference({"w": np.full(2, 1.5, np.float32), "n": np.array([4])}, model)
    assert list(change) == ["w"]  # integer tensors are not learned values
    out = applied(model, change)
    assert out["w"].dtype == np.float32 and out["w"].tolist() == [1.5, 1.5] and out["n"].tolist() == [3]
