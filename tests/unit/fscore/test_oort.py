"""Oort: exploration of the unheard, exploitation of high-loss fast participants, and its config checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fscore.config import config_from_dict
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.samplers import OortSampler

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
