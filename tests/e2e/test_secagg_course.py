"""Secure aggregation in a standalone course: the model equals plain FedAvg's within the fixed-point error with
0, 1 and t participants dropping after their masked input; the coordinator's log holds only zero placeholders,
masked inputs and the sum; replay verifies; bad configs are refused naming the key."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.config import config_from_dict, load_config
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone

BASE = ["participants=5", "rounds=3", "trainer.local_epochs=1", "course_id=secagg"]


def secagg(options: str) -> str:
    return f"plugins=[{{name: secure_aggregation, role: all, options: {{{options}}}}}]"


@pytest.fixture(scope="module")
def plain():
    from tests.conftest import ROOT

    return run_standalone(load_config(ROOT / "examples" / "digits_fedavg.yaml", BASE), progress=False)


@pytest.mark.parametrize(("dropouts", "crashed"), [(0, {}), (1, {3: 2}), (2, {1: 2, 4: 2})])
def test_the_unmasked_fedavg_equals_plain_fedavg_with_0_1_and_t_dropouts(example_config, plain, dropouts, crashed):
    crash = ", ".join(f"{i}: {r}" for i, r in crashed.items())
    result = run_standalone(load_config(example_config, [*BASE, secagg(f"dropouts: {dropouts}, crash_after_input: "
                                                                       f"{{{crash}}}")]), progress=False)
    for name, value in plain.coordinator.params.items():
        assert np.max(np.abs(result.coordinator.params[name] - value)) < 1e-5, name
    rounds = result.summary["plugins"]["secure_aggregation"]["rounds"]
    assert [r["threshold"] for r in rounds] == [5 - dropouts] * 3
    last = rounds[-1]["unmasked_without"]
    assert set(f"participant-{i:05d}" for i in crashed) <= set(last) and len(last) == dropouts
    assert result.summary["dead_lettered"] == 0
    report = replay_course(result.log, "secagg")
    assert report.verified and report.final_sha256 == result.summary["model_sha256"]


def test_the_coordinator_sees_zero_placeholders_and_masked_inputs_that_change_from_run_to_run(example_config):
    config = load_config(example_config, [*BASE, secagg("dropouts: 1")])
    first, second = run_standalone(config, progress=False), run_standalone(config, progress=False)
    assert first.summary["model_sha256"] == second.summary["model_sha256"]  # masks cancel exactly
    codec = first.coordinator.catalog.codec
    masked = []
    for run in (first, second):
        inbox = [codec.decode(r.value) for r in run.log.read("fscope.secagg.coordinator")]
        updates = [p for h, p in inbox if h.type == "model_update"]
        assert updates and all(not np.any(t) for p in updates for t in p["tensors"].values())
        masked.append([p["values"] for h, p in inbox if h.type == "secagg_masked"])
    assert len(masked[0]) == 15 and all(a != b for a, b in zip(*masked, strict=True))


def _course(**changes):
    base = {"participants": 4, "rounds": 3, "data": {"dataset": "digits", "split": "iid"}, "model": {"name": "mlp"},
            "plugins": [{"name": "secure_aggregation", "role": "all", "options": changes.pop("options", {})}]}
    return config_from_dict({**base, **changes})


@pytest.mark.parametrize(("changes", "key"), [
    ({"options": {"dropouts": 4}}, "plugins[0].options.dropouts"),
    ({"aggregator": {"name": "median"}}, "aggregator.name"),
    ({"strategy": {"name": "async_goal_aggr_unif", "min_received": 2}, "sample_size": 3}, "strategy.name"),
    ({"options": {"bound": 1e9, "precision": 40}}, "plugins[0].options.precision"),
])
def test_a_course_secure_aggregation_cannot_serve_is_refused_naming_the_key(changes, key):
    with pytest.raises(ConfigError) as err:
        CourseBuilder(_course(**changes))
    message = str(err.value)
    assert message.startswith(f"{key}:") and "\n" not in message, message
