"""Byzantine-robust rules: hand cases, the textbook definitions, and the checks on their options."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from fscore.aggregators import ClientUpdate, make_aggregator
from fscore.aggregators.robust import bulyan, coordinate_median, krum_scores, squared_distances, trimmed_mean
from fscore.config import config_from_dict
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.worker import Outbox

ZERO = {"w": np.zeros(3, np.float32), "b": np.zeros(1, np.float32)}


def updates(rows: list[list[float]], samples: list[int] | None = None) -> list[ClientUpdate]:
    """Fresh updates from ZERO whose flattened deltas are ``rows`` (w is the first 3 values, b the last)."""
    samples = samples or [1] * len(rows)
    return [ClientUpdate(f"p{i:02d}", {"w": np.array(r[:3], np.float32), "b": np.array(r[3:], np.float32)}, n, 0)
            for i, (r, n) in enumerate(zip(rows, samples, strict=True))]


def honest_and_attackers(honest: int, attackers: int, seed: int = 0) -> list[ClientUpdate]:
    rng = np.random.default_rng(seed)
    rows = [list(1.0 + 0.05 * rng.standard_normal(4)) for _ in range(honest)]
    rows += [[-100.0, 100.0, -100.0, 100.0]] * attackers
    return updates(rows, [1] * honest + [10_000] * attackers)  # the attackers also lie about their data


def flat(params):
    return np.concatenate([params["w"], params["b"]])


@pytest.mark.parametrize(("name", "options"), [
    ("krum", {"byzantine": 2}), ("multi_krum", {"byzantine": 2}), ("median", {}),
    ("trimmed_mean", {"byzantine": 2}), ("bulyan", {"byzantine": 1}),
])
def test_a_minority_of_attackers_cannot_move_the_model_far_from_the_honest_updates(name, options):
    attackers = options.get("byzantine", 2)
    out = flat(make_aggregator(name, **options).aggregate(ZERO, honest_and_attackers(7, attackers)))
    assert np.all(np.abs(out - 1.0) < 0.2), out
    fedavg = flat(make_aggregator("fedavg").aggregate(ZERO, honest_and_attackers(7, attackers)))
    assert np.all(np.abs(fedavg) > 50)  # the lie about sample counts is enough to hijack FedAvg


def test_trimmed_mean_drops_f_from_each_end_per_coordinate():
    column = np.array([[0.0], [1.0], [2.0], [3.0], [100.0]])
    assert trimmed_mean(column, 1).tolist() == [2.0]
    out = make_aggregator("trimmed_mean", byzantine=1).aggregate(ZERO, updates([[v] * 4 for v in column[:, 0]]))
    assert flat(out).tolist() == [2.0] * 4


def test_krum_scores_sum_squared_distances_to_the_nearest_n_minus_f_minus_2():
    rows = np.array([[0.0], [1.0], [3.0], [10.0], [11.0]])
    # n=5, f=1: 2 nearest others. row 0: 1 + 9 = 10; row 1: 1 + 4 = 5; row 2: 4 + 9 = 13; row 3: 1 + 49; row 4: 1 + 64
    assert krum_scores(squared_distances(rows), 1).tolist() == [10.0, 5.0, 13.0, 50.0, 65.0]
    out = make_aggregator("krum", byzantine=1).aggregate(ZERO, updates([[r[0]] * 4 for r in rows]))
    assert flat(out).tolist() == [1.0] * 4


def test_multi_krum_averages_the_best_scores():
    rows = [[0.0] * 4, [1.0] * 4, [3.0] * 4, [10.0] * 4, [11.0] * 4]
    out = make_aggregator("multi_krum", byzantine=1, select=2).aggregate(ZERO, updates(rows))
    assert flat(out).tolist() == [0.5] * 4  # scores 10, 5, 13, ...: rows 1 and 0


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 9), st.just(4)), elements=st.floats(-1e3, 1e3)))
def test_median_and_trimmed_mean_are_numpys_and_scipys(rows):
    np.testing.assert_array_equal(coordinate_median(rows), np.median(rows, axis=0))
    for trim in range(len(rows) // 2):
        np.testing.assert_allclose(trimmed_mean(rows, trim), stats.trim_mean(rows, trim / len(rows), axis=0),
                                   rtol=1e-12, atol=1e-9)
    out = make_aggregator("median").aggregate(ZERO, updates(rows.tolist()))
    np.testing.assert_allclose(flat(out), np.median(rows, axis=0).astype(np.float32), rtol=1e-6, atol=1e-3)


def test_bulyan_with_no_attackers_sized_for_is_the_mean_of_the_closest_to_the_median():
    rows = np.arange(12, dtype=np.float64).reshape(3, 4)
    # f = 0: θ = n = 3, β = 3: every row is chosen and averaged
    np.testing.assert_allclose(bulyan(rows, 0), rows.mean(axis=0))


def test_norm_bounding_clips_each_update_to_max_norm_then_averages():
    rows = [[3.0, 4.0, 0.0, 0.0], [0.3, 0.4, 0.0, 0.0]]  # norms 5 and 0.5
    out = make_aggregator("norm_bounding", max_norm=1.0).aggregate(ZERO, updates(rows))
    np.testing.assert_allclose(flat(out), [0.45, 0.6, 0.0, 0.0], rtol=1e-6)  # ([0.6, 0.8] + [0.3, 0.4]) / 2


def test_stale_updates_are_measured_from_their_own_base():
    old = {"w": np.full(3, -5.0, np.float32), "b": np.full(1, -5.0, np.float32)}
    stale = [ClientUpdate(f"p{i}", {k: v + 1.0 for k, v in old.items()}, 1, 0, staleness=2, base=old)
             for i in range(3)]
    out = make_aggregator("median").aggregate(ZERO, stale)
    assert flat(out).tolist() == [1.0] * 4  # the change (+1) applied to the current model, not a pull back to -4


def test_too_few_updates_for_the_rule_keep_the_model():
    out = make_aggregator("krum", byzantine=2).aggregate(ZERO, honest_and_attackers(4, 2))  # 6 < 2f + 3 = 7
    assert flat(out).tolist() == [0.0] * 4


def test_integer_tensors_stay_integers():
    current = {"count": np.array([4], np.int64)}
    ups = [ClientUpdate(f"p{i}", {"count": np.array([v], np.int64)}, 1, 0) for i, v in enumerate((6, 7, 9))]
    out = make_aggregator("median").aggregate(current, ups)
    assert out["count"].dtype == np.int64 and out["count"].tolist() == [7]


@pytest.mark.parametrize(("overrides", "message"), [
    (["aggregator.name=krum", "aggregator.byzantine=4"],
     "aggregator: krum with these options needs at least 11 updates per aggregation, but the strategy aggregates "
     "10 (sample_size)"),
    (["aggregator.name=bulyan", "aggregator.byzantine=1", "strategy.name=async_goal_aggr_unif",
      "strategy.min_received=5"], "needs at least 7 updates per aggregation, but the strategy aggregates 5 "
                                  "(strategy.min_received)"),
    (["aggregator.name=krum", "aggregator.byzantine=-1"], "aggregator.byzantine: Input should be greater than or "
                                                          "equal to 0 (got -1)"),
    (["aggregator.name=median", "aggregator.byzantine=1"], "aggregator.byzantine: median has no option 'byzantine'"),
    (["aggregator.name=norm_bounding", "aggregator.max_norm=big"], "aggregator.max_norm: Input should be a valid "
                                                                   "number"),
])
def test_robust_options_that_cannot_work_are_refused_before_the_course_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=None) as err:
        CourseBuilder(config_from_dict({}, overrides))  # extensions are checked when the course is built
    assert message in str(err.value)


def test_time_up_courses_are_not_refused_for_a_robust_rule():
    config = config_from_dict({}, ["aggregator.name=krum", "aggregator.byzantine=2",
                                   "strategy.name=async_time_aggr_unif", "strategy.time_budget_s=5"])
    assert CourseBuilder(config).coordinator(Outbox()).aggregator.min_updates == 7
