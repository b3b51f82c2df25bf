"""Oort: exploration of the unheard, exploitation of high-loss fast participants, and its config checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fscore.config import config_from_dict
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.oort import OortSampler

PEOPLE = [f"p{i:02d}" for i in range(20)]
FAST = dict.fromkeys(PEOPLE, 1.0)


def heard_from_all(sampler: OortSampler, loss: dict[str, float]) -> None:
    for p in PEOPLE:
        sampler.feedback(p, num_samples=10, metrics={"loss": loss[p]}, duration=FAST[p])


def test_before_any_feedback_it_explores_faster_participants_more_often():
    times = {p: 1.0 if i < 10 else 10.0 for i, p in enumerate(PEOPLE)}
    rng = np.random.default_rng(0)
    counts = Counter(p for _ in range(500) for p in OortSampler().sample(PEOPLE, 2, rng, response_times=times))
    fast = sum(counts[p] for p in PEOPLE[:10])
    assert fast > 5 * (1000 - fast)  # speed-weighted exploration: 10x faster, ~10x as often


def test_exploitation_prefers_participants_whose_loss_is_still_high():
    sampler = OortSampler(epsilon=0.0, min_epsilon=0.0)
    heard_from_all(sampler, {p: 0.1 if i < 15 else 3.0 for i, p in enumerate(PEOPLE)})
    chosen = sampler.sample(PEOPLE, 5, np.random.default_rng(0), response_times=FAST)
    assert chosen == PEOPLE[15:]


def test_slow_participants_are_penalised_beyond_the_preferred_duration():
    sampler = OortSampler(epsilon=0.0, min_epsilon=0.0, alpha=2.0)
    heard_from_all(sampler, dict.fromkeys(PEOPLE, 1.0))
    times = {p: 1.0 if i < 11 else 5.0 for i, p in enumerate(PEOPLE)} | {"p19": 50.0}
    util = sampler.utilities(PEOPLE, times)  # the preferred duration T is the median time: 1 s
    assert np.all(util[:11] == util[0])
    np.testing.assert_allclose(util[11:19], util[0] * (1.0 / 5.0) ** 2)
    assert util[19] == pytest.approx(util[0] * (1.0 / 50.0) ** 2)


def test_a_single_pick_still_explores_at_rate_epsilon():
    sampler = OortSampler(epsilon=0.3, epsilon_decay=1.0, min_epsilon=0.3)
    for p in PEOPLE[:10]:
        sampler.feedback(p, num_samples=10, metrics={"loss": 1.0}, duration=1.0)
    rng = np.random.default_rng(1)
    picks = [sampler.sample(PEOPLE, 1, rng, response_times=FAST)[0] for _ in range(1000)]
    explored = sum(p in PEOPLE[10:] for p in picks)
    assert 240 < explored < 360


def test_same_seed_same_picks():
    def run() -> list[list[str]]:
        sampler, rng = OortSampler(), np.random.default_rng(3)
        heard_from_all(sampler, {p: float(i) for i, p in enumerate(PEOPLE)})
        return [sampler.sample(PEOPLE, 4, rng, response_times=FAST) for _ in range(20)]
    assert run() == run()


@pytest.mark.parametrize(("overrides", "message"), [
    (["strategy.sampler=oort", "strategy.sampler_options={alpha: -1}"],
     "strategy.sampler_options.alpha: Input should be greater than or equal to 0 (got -1)"),
    (["strategy.sampler=oort", "strategy.sampler_options={beta: 1}"],
     "strategy.sampler_options.beta: oort has no option 'beta'"),
    (["strategy.sampler=uniform", "strategy.sampler_options={alpha: 1}"],
     "strategy.sampler_options: sampler uniform takes no options (got alpha)"),
])
def test_sampler_options_that_do_not_apply_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        CourseBuilder(config_from_dict({}, overrides))
    assert message in str(err.value)


SPREAD = {p: float(i + 1) for i, p in enumerate(PEOPLE)}  # 1 s .. 20 s


def run_rounds(sampler: OortSampler, rounds: int, loss_at) -> list[list[str]]:
    """Sync rounds: pick 4, each picked participant reports ``loss_at(round)`` as its loss square mean."""
    rng, cohorts = np.random.default_rng(0), []
    for r in range(rounds):
        sampler.at(r, float(r))
        cohort = sampler.sample(PEOPLE, 4, rng, response_times=SPREAD)
        for p in cohort:
            sampler.feedback(p, num_samples=10, metrics={"loss": 1.0, "loss_square_mean": loss_at(r)},
                             duration=SPREAD[p])
        cohorts.append(cohort)
    return cohorts


def test_the_pacer_widens_the_preferred_duration_when_utility_stalls():
    stalled = OortSampler(epsilon=0.2, min_epsilon=0.2, pacer_step=5, pacer_delta=0.1)
    run_rounds(stalled, 31, lambda r: 1.0 / (1 + r))  # losses fall: each window's utility is below the last
    assert [r for r, _ in stalled.pacer_moves] == [10, 15, 20, 25, 30]
    assert stalled.preferred_quantile == pytest.approx(1.0)
    assert stalled.preferred_duration == pytest.approx(20.0)  # T grew from the median to the slowest
    growing = OortSampler(epsilon=0.2, min_epsilon=0.2, pacer_step=5, pacer_delta=0.1)
    run_rounds(growing, 31, lambda r: float(4 ** r))  # utility still climbing fast: T stays
    assert growing.pacer_moves == [] and growing.preferred_quantile == 0.5
    assert growing.preferred_duration == pytest.approx(np.quantile(list(SPREAD.values()), 0.5))


def test_a_blacklisted_participant_is_not_selected():
    sampler = OortSampler(epsilon=0.0, min_epsilon=0.0, pacer_step=0, blacklist_rounds=3, blacklist_max_share=0.25)
    heard_from_all(sampler, {p: 5.0 if i < 4 else 0.1 for i, p in enumerate(PEOPLE)})
    cohorts = run_rounds(sampler, 3, lambda r: 25.0)  # the first four keep the highest utility ...
    assert all(cohort == PEOPLE[:4] for cohort in cohorts)
    rng, banned_ever = np.random.default_rng(9), set()
    for r in range(3, 30):
        banned = sampler.blacklist(len(PEOPLE))
        banned_ever |= set(banned)
        sampler.at(r, float(r))
        cohort = sampler.sample(PEOPLE, 4, rng, response_times=SPREAD)
        assert not set(cohort) & set(banned), r  # ... but nobody on the blacklist is picked
        for p in cohort:
            sampler.feedback(p, num_samples=10, metrics={"loss_square_mean": 25.0}, duration=SPREAD[p])
    assert set(PEOPLE[:4]) <= banned_ever
    assert len(sampler.blacklist(len(PEOPLE))) == 5  # at most a quarter of the participants


def test_the_blacklist_never_shrinks_a_cohort():
    sampler = OortSampler(epsilon=0.0, min_epsilon=0.0, blacklist_rounds=1, blacklist_max_share=1.0)
    idle = PEOPLE[:3]
    rng = np.random.default_rng(2)
    for _ in range(5):
        cohort = sampler.sample(idle, 2, rng, response_times=FAST)
        assert len(cohort) == 2
        for p in cohort:
            sampler.feedback(p, num_samples=10, metrics={"loss": 1.0}, duration=1.0)
    assert len(sampler.blacklist(3)) == 3  # everyone is over the limit, and still two are picked


def test_a_round_without_a_selection_does_not_skip_the_pacers_check():
    sampler = OortSampler(epsilon=0.2, min_epsilon=0.2, pacer_step=5, pacer_delta=0.1)
    rng = np.random.default_rng(0)
    for r in range(12):
        if r == 10:
            continue  # nobody idle in round 10: no sample call
        sampler.at(r, float(r))
        for p in sampler.sample(PEOPLE, 4, rng, response_times=SPREAD):
            sampler.feedback(p, num_samples=10, metrics={"loss_square_mean": 1.0 / (1 + r)}, duration=SPREAD[p])
    assert [r for r, _ in sampler.pacer_moves] == [11]


def test_statistical_utility_is_samples_times_root_mean_squared_loss():
    sampler = OortSampler()
    sampler.feedback("a", num_samples=30, metrics={"loss": 2.0, "loss_square_mean": 9.0}, duration=1.0)
    sampler.feedback("b", num_samples=30, metrics={"loss": 2.0}, duration=1.0)  # a trainer that lacks it
    assert sampler.statistical == {"a": 90.0, "b": 60.0}
