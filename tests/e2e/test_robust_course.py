"""Whole standalone courses with other aggregators: server optimizers learn and replay bit for bit, and
robust rules hold where FedAvg breaks under model poisoning."""

import pytest

from fscore.config import load_config
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone

pytestmark = pytest.mark.slow

POISONED = ["participants=20", "rounds=15", "data.alpha=1.0", "attack.kind=sign_flip", "attack.scale=4",
            "attack.participants=[1, 5, 9, 13]"]


@pytest.mark.parametrize("aggregator", [
    ["aggregator.name=fedadam", "aggregator.server_lr=0.01"],
    ["aggregator.name=fedyogi", "aggregator.server_lr=0.01"],
    ["aggregator.name=fedavgm", "aggregator.server_lr=1.0", "aggregator.momentum=0.5"],
    ["aggregator.name=fednova"],
])
def test_server_optimizers_learn_and_their_state_replays_bit_for_bit(example_config, aggregator):
    config = load_config(example_config, ["rounds=12", "course_id=opt", *aggregator])
    result = run_standalone(config, progress=False)
    assert result.summary["final_metrics"]["heldout.accuracy"] >= 0.8, aggregator
    report = replay_course(result.log, "opt")  # a fresh aggregator, fed the same updates, rebuilds the moments
    assert report.verified, report.mismatches
    assert report.final_sha256 == result.summary["model_sha256"]


def test_four_sign_flipping_participants_in_twenty_break_fedavg(example_config):
    result = run_standalone(load_config(example_config, POISONED), progress=False)
    assert result.summary["final_metrics"]["heldout.accuracy"] < 0.3


@pytest.mark.parametrize("aggregator", [
    ["aggregator.name=median"],
    ["aggregator.name=trimmed_mean", "aggregator.byzantine=4"],
    ["aggregator.name=multi_krum", "aggregator.byzantine=4"],
    ["aggregator.name=bulyan", "aggregator.byzantine=4"],
])
def test_robust_rules_still_learn_with_four_sign_flipping_participants(example_config, aggregator):
    result = run_standalone(load_config(example_config, [*POISONED, *aggregator]), progress=False)
    assert result.summary["final_metrics"]["heldout.accuracy"] >= 0.7, aggregator  # FedAvg: < 0.3
