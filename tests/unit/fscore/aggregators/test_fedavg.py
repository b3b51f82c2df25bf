import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fscore.aggregators import ClientUpdate, FedAvg, weighted_average


def test_fedavg_matches_a_hand_computed_case():
    updates = [
        ClientUpdate("a", {"w": np.array([1.0, 2.0], np.float32), "b": np.array([0.0], np.float32)}, 1, 0),
        ClientUpdate("b", {"w": np.array([3.0, 6.0], np.float32), "b": np.array([4.0], np.float32)}, 3, 0),
    ]
    # weights 1/4 and 3/4: w = (1*[1,2] + 3*[3,6]) / 4 = [2.5, 5.0]; b = 3.0
    out = FedAvg().aggregate({"w": np.zeros(2, np.float32), "b": np.zeros(1, np.float32)}, updates)
    assert out["w"].tolist() == [2.5, 5.0]
    assert out["b"].tolist() == [3.0]
    assert out["w"].dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6).flatmap(lambda k: st.tuples(
    st.lists(hnp.arrays(np.float32, 200_001 if k == 1 else 37, elements=st.floats(-1e3, 1e3, width=32)),
             min_size=k, max_size=k),
    st.lists(st.integers(1, 1000), min_size=k, max_size=k))))
def test_blocked_average_equals_the_textbook_formula(case):
    arrays, weights = case
    expected = sum(w * a.astype(np.float64) for a, w in zip(arrays, weights, strict=True)) / sum(weights)
    np.testing.assert_allclose(weighted_average(arrays, weights), expected.astype(np.float32), rtol=1e-6, atol=1e-4)


def test_average_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"cannot average shapes \(2,\) and \(3,\)"):
        weighted_average([np.zeros(2), np.zeros(3)], [1, 1])


def test_server_lr_must_be_positive_and_unknown_options_are_named():
    import fscore.config as cfg
    from fscore.course import CourseBuilder

    with pytest.raises(cfg.ConfigError, match=r"aggregator.server_lr: Input should be greater than 0 \(got 0\)"):
        CourseBuilder(cfg.config_from_dict({}, ["aggregator.server_lr=0"]))
    with pytest.raises(cfg.ConfigError, match=r"aggregator.momentum: fedavg has no option 'momentum'"):
        CourseBuilder(cfg.config_from_dict({}, ["aggregator.momentum=0.9"]))
