"""Samplers: uniform, responsiveness-related and group sampling over idle participants."""

from __future__ import annotations

from collections import Counter

import numpy as np

from fscore.samplers import GroupSampler, ResponsivenessSampler, UniformSampler, make_sampler

PEOPLE = [f"p{i:02d}" for i in range(20)]
TIMES = {p: float(i + 1) for i, p in enumerate(PEOPLE)}  # p00 answers in 1 s, p19 in 20 s


def test_uniform_returns_k_distinct_candidates_in_candidate_order_and_all_when_k_is_large():
    chosen = UniformSampler().sample(PEOPLE, 5, np.random.default_rng(0))
    assert len(set(chosen)) == 5 and chosen == sorted(chosen)
    assert UniformSampler().sample(PEOPLE[:3], 5, np.random.default_rng(0)) == PEOPLE[:3]


def test_responsiveness_picks_fast_participants_more_often_but_not_only():
    rng = np.random.default_rng(0)
    counts = Counter(p for _ in range(2000) for p in ResponsivenessSampler().sample(PEOPLE, 1, rng,
                                                                                   response_times=TIMES))
    # probability ~ 1/sqrt(t): p00 should come about sqrt(20) ~ 4.5x as often as p19
    assert 3.0 < counts["p00"] / counts["p19"] < 6.5
    assert set(counts) == set(PEOPLE)


def test_group_sampler_takes_each_call_from_the_next_responsiveness_bin():
    sampler = GroupSampler(groups=4)  # bins of 5 by speed: p00-p04, p05-p09, ...
    rng = np.random.default_rng(0)
    picks = [sampler.sample(PEOPLE, 3, rng, response_times=TIMES) for _ in range(5)]
    bins = [{int(p[1:]) // 5 for p in pick} for pick in picks]
    assert bins == [{0}, {1}, {2}, {3}, {0}]


def test_group_sampler_tops_up_from_the_next_bin_when_its_bin_is_busy():
    sampler = GroupSampler(groups=4)
    idle = [p for p in PEOPLE if p not in ("p00", "p01", "p02", "p03")]  # bin 0 has one idle member
    chosen = sampler.sample(idle, 3, np.random.default_rng(0), response_times=TIMES)
    assert "p04" in chosen and len(chosen) == 3 and all(int(p[1:]) < 10 for p in chosen)


def test_samplers_are_deterministic_for_a_seed():
    for name in ("uniform", "responsiveness", "group"):
        a = [make_sampler(name, groups=3).sample(PEOPLE, 4, np.random.default_rng(7), response_times=TIMES)]
        b = [make_sampler(name, groups=3).sample(PEOPLE, 4, np.random.default_rng(7), response_times=TIMES)]
        assert a == b
