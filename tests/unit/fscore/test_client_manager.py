"""FedScale's client-manager interface (issue 18): a selector written against it alone runs a course, replays
bit for bit, and cannot pick someone who may not be picked."""

from __future__ import annotations

import numpy as np
import pytest
import structlog

from fscore.client_manager import ClientManager, ManagedSampler, statistical_utility
from fscore.config import load_config
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone

SETS = ["course_id=managed", "participants=6", "sample_size=3", "rounds=4", "trainer.local_epochs=1",
        "strategy.sampler=mylab.fedscale_manager:RewardManager", "strategy.sampler_options={explore: 0.3}"]


@pytest.fixture
def examples_on_path(monkeypatch):
    from tests.conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    return ROOT


def test_a_fedscale_style_manager_runs_a_course_and_replays_bit_for_bit(examples_on_path):
    config = load_config(examples_on_path / "examples" / "digits_fedavg.yaml", SETS)
    result = run_standalone(config, progress=False)
    sampler = result.coordinator.sampler
    assert isinstance(sampler, ManagedSampler)
    manager = sampler.manager
    assert sorted(manager.size) == [f"participant-{i:05d}" for i in range(6)]  # register_client at each join
    assert manager.reward and set(manager.last_round.values()) <= {0, 1, 2, 3}  # register_feedback, by round
    assert result.summary["rounds"] == 4
    again = run_standalone(config, progress=False)
    assert again.summary["model_sha256"] == result.summary["model_sha256"]
    report = replay_course(result.log, "managed")
    assert report.verified, report.mismatches
    assert report.final_sha256 == result.summary["model_sha256"]


class Faulty(ClientManager):
    def register_client(self, client_id, size, duration):
        pass

    def register_feedback(self, client_id, reward, auxi=1.0, time_stamp=0, duration=1.0, success=True):
        pass

    def select_clients(self, num, cur_time=0.0):
        return ["nobody", self.feasible[2], self.feasible[2], *self.feasible]


def test_what_a_manager_returns_is_kept_to_feasible_unique_ids_and_num_of_them():
    sampler = ManagedSampler(Faulty())
    with structlog.testing.capture_logs() as logs:
        chosen = sampler.sample(["a", "b", "c", "d"], 2, np.random.default_rng(0))
    assert chosen == ["a", "c"]  # in candidate order
    assert [e["event"] for e in logs] == ["client_manager_choice_trimmed"]


def test_the_reward_is_oorts_statistical_utility():
    assert statistical_utility(40, {"loss_square_mean": 0.25, "loss": 9.0}) == 20.0
    assert statistical_utility(40, {"loss": 0.5}) == 20.0


def test_fedscale_fedyogi_ported_as_an_aggregator_computes_what_fedyogi_does(examples_on_path):
    """The seed's FedYoGi snippet, ported (examples/mylab/fedscale_yogi.py), against the built-in rule."""
    from mylab.fedscale_yogi import FedScaleServerOptimizer

    from fscore.aggregators.base import ClientUpdate, make_aggregator

    rng = np.random.default_rng(4)
    params = {"w": rng.normal(size=(5, 3)).astype(np.float32), "b": np.zeros(3, np.float32),
              "count": np.array(2, np.int64)}
    ported, builtin = FedScaleServerOptimizer(yogi_eta=0.05), make_aggregator("fedyogi", server_lr=0.05)
    a = b = params
    for _ in range(5):
        updates = [ClientUpdate(f"p{i}", {k: (v + rng.normal(scale=0.1, size=v.shape)).astype(v.dtype)
                                          if v.dtype != np.int64 else v + 1 for k, v in a.items()},
                                int(rng.integers(5, 50)), 0) for i in range(3)]
        a = ported.aggregate(a, updates)
        b = builtin.aggregate(b, [ClientUpdate(u.sender, dict(u.params), u.num_samples, 0) for u in updates])
        for name, value in params.items():
            assert a[name].dtype == value.dtype
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)
        assert not np.allclose(a["w"], params["w"])


def test_the_ported_fedyogi_runs_a_course_named_by_path_and_replays(examples_on_path):
    port = "aggregator.name=mylab.fedscale_yogi:FedScaleServerOptimizer"
    config = load_config(examples_on_path / "examples" / "digits_fedavg.yaml",
                         ["course_id=yogi-port", "rounds=3", "trainer.local_epochs=1", port, "aggregator.yogi_eta=.1"])
    result = run_standalone(config, progress=False)
    report = replay_course(result.log, "yogi-port")
    assert report.verified and report.final_sha256 == result.summary["model_sha256"]
    assert result.summary["final_metrics"]["heldout.accuracy"] > 0.3


def test_the_ported_fedyogi_refuses_a_bad_option_naming_the_key(examples_on_path):
    from fscore.course import CourseBuilder
    from fscore.errors import ConfigError

    sets = ["aggregator.name=mylab.fedscale_yogi:FedScaleServerOptimizer", "aggregator.yogi_eta=-1"]
    with pytest.raises(ConfigError, match=r"aggregator\.yogi_eta: Input should be greater than 0"):
        CourseBuilder(load_config(examples_on_path / "examples" / "digits_fedavg.yaml", sets))
