import numpy as np
import pytest

from fscore.data.federation import build_federation, load_digits_dataset
from fscore.data.splitters import dirichlet_split, iid_split
from fscore.data.synthetic import synthetic_devices


def _label_concentration(labels, parts):
    """Mean share of each participant's most common label: 0.1 for perfect IID over 10 classes, 1.0 for one class."""
    return float(np.mean([np.bincount(labels[p], minlength=10).max() / len(p) for p in parts]))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    labels = load_digits_dataset().y
    skew = {a: _label_concentration(labels, dirichlet_split(labels, 20, a, np.random.default_rng(0)))
            for a in (0.1, 1.0, 100.0)}
    assert skew[0.1] > 0.6 > skew[1.0] > skew[100.0]
    iid = _label_concentration(labels, iid_split(len(labels), 20, np.random.default_rng(0)))
    assert iid < 0.25


@pytest.mark.parametrize("alpha", [0.1, 0.5, 10.0])
def test_dirichlet_split_is_a_partition_with_minimum_size(alpha):
    labels = load_digits_dataset().y
    parts = dirichlet_split(labels, 50, alpha, np.random.default_rng(1), min_size=4)
    joined = np.concatenate(parts)
    assert len(joined) == len(labels) == len(np.unique(joined))
    assert min(len(p) for p in parts) >= 4


def test_split_is_a_function_of_the_seed():
    labels = load_digits_dataset().y
    a = dirichlet_split(labels, 10, 0.5, np.random.default_rng(7))
    b = dirichlet_split(labels, 10, 0.5, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_synthetic_devices_differ_in_distribution():
    devices = synthetic_devices(30, 1.0, 1.0, np.random.default_rng(0))
    assert all(x.shape[1] == 60 and len(x) == len(y) >= 10 for x, y in devices)
    means = np.array([x.mean(0) for x, _ in devices])
    assert means.std(0).mean() > 0.3  # beta=1: device inputs are centred differently


def test_federation_keeps_a_coordinator_heldout_set():
    from fscore.config import DataConfig

    fed = build_federation(DataConfig(), 10, seed=0)
    total = sum(len(c.train) + len(c.test) for c in fed.clients) + len(fed.heldout)
    assert total == 1797
    assert 0.15 < len(fed.heldout) / total < 0.25


def test_extreme_skew_over_many_participants_still_gives_everyone_data():
    labels = load_digits_dataset().y
    parts = dirichlet_split(labels, 200, 0.1, np.random.default_rng(5), min_size=2)
    assert min(len(p) for p in parts) >= 2
    assert len(np.unique(np.concatenate(parts))) == len(labels)
    assert _label_concentration(labels, parts) > 0.6  # still label-skewed after topping up


def test_impossible_split_is_a_config_error_naming_the_data_section(example_config):
    from fscore.config import load_config
    from fscore.course import CourseBuilder
    from fscore.errors import ConfigError

    builder = CourseBuilder(load_config(example_config, ["participants=1000"]))
    with pytest.raises(ConfigError, match=r"participants: 1000 participants with data\.min_samples_per_participant=4"):
        _ = builder.federation


def test_sampled_split_lets_more_participants_than_examples_each_draw_distinct_ones():
    from fscore.config import DataConfig
    from fscore.data.splitters import SplitError, sampled_split

    parts = sampled_split(50, 200, 8, np.random.default_rng(0))
    assert len(parts) == 200 and all(len(p) == 8 and len(set(p.tolist())) == 8 for p in parts)
    assert all(p.min() >= 0 and p.max() < 50 for p in parts)
    again = sampled_split(50, 200, 8, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    with pytest.raises(SplitError, match="8 examples per participant") as info:
        sampled_split(5, 3, 8, np.random.default_rng(0))
    assert info.value.key == "data.samples_per_participant"
    # 10,000 participants on the 1,797 digits (issue 19), every one with its examples
    federation = build_federation(DataConfig(split="sampled", samples_per_participant=10), 10_000, seed=0)
    assert len(federation.clients) == 10_000
    assert all(len(c.train) + len(c.test) == 10 for c in federation.clients[:100])
