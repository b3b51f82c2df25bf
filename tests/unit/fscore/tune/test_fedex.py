"""FedEx's policy (issue 17, part 3): exponentiated-gradient steps on the validation reports, against a baseline,
and the options it refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fscore.config import load_config
from fscore.errors import ConfigError
from fscore.plugins import PluginContext
from fscore.tune.fedex import FedEx


def _fedex(**options):
    return FedEx(PluginContext("c", 0, "coordinator"), **{"arms": {"lr": [0.01, 0.1, 1.0]}, **options})


def _report(fedex, arm, loss, samples=10.0):
    fedex.pending.append({"sender": f"p{len(fedex.pending)}", "arms": [arm], "loss": loss, "samples": samples})


def test_the_policy_starts_uniform_and_moves_towards_the_arm_with_the_lower_validation_loss():
    fedex = _fedex()
    assert np.allclose(fedex.theta[0], 1 / 3) and fedex.entropy == [pytest.approx(math.log(3))]
    _report(fedex, 0, 2.0)
    _report(fedex, 1, 1.0)
    _report(fedex, 2, 3.0)
    fedex._step()
    theta = fedex.theta[0]
    assert theta.sum() == pytest.approx(1.0) and theta[1] > theta[0] > theta[2]
    # the first step has no baseline: grad = w * loss / theta, eta = sqrt(2 ln 3)
    z = np.full(3, -math.log(3)) - math.sqrt(2 * math.log(3)) * np.array([2.0, 1.0, 3.0]) / 3 / (1 / 3)
    assert np.allclose(theta, np.exp(z - np.logaddexp.reduce(z)))
    assert fedex.trace == [pytest.approx(2.0)] and fedex.pending == [] and fedex.steps == 1


def test_the_baseline_is_the_discounted_mean_of_earlier_steps_so_only_worse_than_usual_is_punished():
    fedex = _fedex(gamma=0.5)
    fedex.trace = [4.0, 2.0]  # baseline (0.5 * 4 + 1 * 2) / 1.5 = 2.667
    fedex.steps = 2
    _report(fedex, 0, 2.0)  # better than the baseline: its arm gains
    fedex._step()
    assert fedex.theta[0][0] > 1 / 3
    fedex2 = _fedex(gamma=0.5)
    fedex2.trace, fedex2.steps = [4.0, 2.0], 2
    _report(fedex2, 0, 3.0)  # worse than the baseline: its arm loses
    fedex2._step()
    assert fedex2.theta[0][0] < 1 / 3


def test_below_the_entropy_cutoff_it_stops_exploring_and_sends_each_policys_mode():
    fedex = _fedex(cutoff=1.05)
    for _ in range(4):
        _report(fedex, 1, 0.1)
        _report(fedex, 0, 5.0)
        _report(fedex, 2, 5.0)
        fedex._step()
    assert not fedex.exploring
    assert fedex.summary()["most_likely"] == {"lr": 0.1}


@pytest.mark.parametrize(("options", "expected"), [
    ({"arms": {"lrr": [0.1]}}, "arms.lrr: not a key of the trainer section"),
    ({"arms": {"lr": []}}, "arms.lr: no candidate values"),
    ({"arms": {"local_epochs": [0, 1]}}, "arms.local_epochs: 0.0 is not a valid trainer.local_epochs"),
    ({"arms": {}}, "arms: give at least one trainer key"),
])
def test_bad_options_are_refused_naming_the_key(options, expected):
    with pytest.raises(ValueError, match=expected):
        FedEx(PluginContext("c", 0, "coordinator"), **options)


def test_a_course_without_validation_splits_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("participants: 3\nrounds: 2\nplugins: [{name: fedex, role: all, options: {arms: {lr: [0.1]}}}]\n")
    from fscore.course import CourseBuilder

    with pytest.raises(ConfigError, match=r"data\.validation_fraction: fedex judges configurations"):
        CourseBuilder(load_config(path)).check_workers()


def test_a_participant_refuses_a_configuration_that_is_not_one_of_the_candidates():
    from fscore.errors import RejectedMessage
    from fscore.message import Message

    fedex = FedEx(PluginContext("c", 0, "participant", index=0), arms={"lr": [0.01, 0.1], "local_epochs": [1, 2]})
    fedex._me = "participant-00000"

    def config(values):
        return Message("fedex_config", ("participant-00000",), 3, {"configs": {"participant-00000": values},
                                                                   "arms": {}}, sender="coordinator", id="c/0/9")

    fedex.take(config({"lr": 0.1, "local_epochs": 2.0}))
    assert fedex.given == {"round": 3, "config": {"lr": 0.1, "local_epochs": 2.0}}
    for bad in ({"lr": 5.0}, {"momentum": 0.9}, {"local_epochs": 1e9}):
        with pytest.raises(RejectedMessage, match="not one of fedex's candidates"):
            fedex.take(config(bad))
    assert fedex.given["config"] == {"lr": 0.1, "local_epochs": 2.0}


def test_a_report_weighs_at_most_what_its_sender_declared_and_a_non_positive_one_is_ignored():
    from types import SimpleNamespace

    from fscore.message import Message

    fedex = _fedex()
    member = SimpleNamespace(num_train_samples=30, num_test_samples=8)
    fedex._coordinator = SimpleNamespace(state=SimpleNamespace(membership=SimpleNamespace(
        participants={"p1": member, "p2": member})))

    def update(sender, loss, samples):
        fedex.assigned[f"2/{sender}"] = [0]
        return Message("model_update", ("coordinator",), 2, {"base_round": 2, "train_metrics": {
            "fedex.loss": loss, "fedex.samples": samples}}, sender=sender)

    fedex.collect(update("p1", 1e300, 1e12))
    fedex.collect(update("p2", 0.5, -3.0))
    assert fedex.pending == [{"sender": "p1", "arms": [0], "loss": 100.0, "samples": 38.0}]  # loss_bound
    fedex._step()
    assert np.isfinite(fedex.z[0]).all() and fedex.theta[0].min() > 0
    # a loss after training is never negative: one below 0 is clipped to 0, so it cannot grab the policy
    fedex.collect(update("p1", -1e6, 30))
    assert fedex.pending[-1]["loss"] == 0.0
    for honest in ("p2", "p3", "p4"):
        fedex._coordinator.state.membership.participants[honest] = member
        fedex.assigned[f"2/{honest}"] = [1]
        fedex.collect(Message("model_update", ("coordinator",), 2, {"base_round": 2, "train_metrics": {
            "fedex.loss": 2.0, "fedex.samples": 30}}, sender=honest))
    fedex._step()
    theta = fedex.theta[0]
    assert np.isfinite(fedex.z[0]).all() and theta[0] < theta[1] and theta.min() >= 0.99e-6  # the honest arm leads
