"""Privacy and a backdoor as separate processes over a real broker (issue 15): client-side DP on every
participant and one BadNets participant with boosting. The course ends with exactly the standalone model and
privacy figures, and `fscope replay --verify` rebuilds it from the log, the attack's measurements included."""

from __future__ import annotations

import json
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import replay_verified, run_course

pytestmark = pytest.mark.slow


def test_client_dp_and_a_backdoor_participant_run_as_services_and_replay(tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-privacy-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=4", "participants=4", "data.split=iid",
            "plugins=[{name: client_dp, options: {clip: 2.0, noise_multiplier: 0.05}}, "
            "{name: backdoor, role: all, participants: [2], options: {target_label: 0, fraction: 0.5, boost: 2.0}}]",
            "transport.kind=kafka", f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    out, logs = run_course(config_path, sets, tmp_path, 4)
    assert "backdoor_participant" in logs["participant-2.log"] and "backdoor_participant" not in \
        logs["participant-1.log"]

    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:5]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["privacy"] == standalone["privacy"]
    spent = summary["privacy"]["participants"]["by_participant"]["participant-00000"]
    assert spent["releases"] == 4 and spent["epsilon"] > 0
    assert summary["plugins"]["backdoor"] == standalone["plugins"]["backdoor"]
    assert len(summary["plugins"]["backdoor"]["rounds"]) == 5

    replay_verified(kafka_bootstrap, course, tmp_path / "replay")
    replayed = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert replayed["plugins"] == summary["plugins"] and replayed["model_sha256"] == summary["model_sha256"]
    assert replayed["privacy"] == summary["privacy"]  # the releases are counted from the log alike
