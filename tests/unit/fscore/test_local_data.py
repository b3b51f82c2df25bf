"""A participant with its own data file loads that file and nothing else of the course's data."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.worker import Outbox


def write_shard(path, n: int, features: int = 64, classes: int = 10) -> None:
    rng = np.random.default_rng(n)
    np.savez(path, x=rng.random((n, features), dtype=np.float32), y=rng.integers(0, classes, n))


def test_local_path_is_read_for_the_participants_own_index(tmp_path, example_config):
    write_shard(tmp_path / "shard-3.npz", 50)
    config = load_config(example_config, [f"data.local_path={tmp_path}/shard-{{index}}.npz"])
    builder = CourseBuilder(config)
    participant = builder.participant(3, Outbox())
    assert (len(participant.data.train), len(participant.data.test)) == (40, 10)
    assert "federation" not in builder.__dict__  # the course's dataset was never split, nor loaded
    assert participant.data.train.x.dtype == np.float32 and participant.data.train.x.shape[1] == 64


def test_a_missing_or_misshapen_local_file_is_a_config_error_naming_it(tmp_path, example_config):
    config = load_config(example_config, [f"data.local_path={tmp_path}/shard-{{index}}.npz"])
    with pytest.raises(ConfigError, match=r"data.local_path: participant 0's file .*shard-0.npz' not found"):
        CourseBuilder(config).participant_data(0)
    write_shard(tmp_path / "shard-1.npz", 20, features=30)
    with pytest.raises(ConfigError, match=r"holds x\(20, 30\).*expects 64 features per example"):
        CourseBuilder(config).participant_data(1)
    write_shard(tmp_path / "shard-2.npz", 20, classes=40)
    with pytest.raises(ConfigError, match=r"labels in \[0, 9\]"):
        CourseBuilder(config).participant_data(2)


def test_a_participant_built_alone_keeps_only_its_shard_of_the_split(example_config):
    config = load_config(example_config)
    alone = CourseBuilder(config)
    data = alone.participant(3, Outbox(), alone=True).data
    assert "federation" not in alone.__dict__  # nothing holds the other participants' examples
    everyone = CourseBuilder(config).federation.clients[3]
    np.testing.assert_array_equal(data.train.x, everyone.train.x)
    np.testing.assert_array_equal(data.test.y, everyone.test.y)


def test_the_digits_read_from_scikit_learns_file_are_what_load_digits_returns():
    from sklearn.datasets import load_digits

    from fscore.data.sources import _bundled_digits

    data, target = _bundled_digits()
    bunch = load_digits()
    assert data.tobytes() == bunch.data.tobytes() and data.dtype == bunch.data.dtype
    assert np.array_equal(target, bunch.target)
