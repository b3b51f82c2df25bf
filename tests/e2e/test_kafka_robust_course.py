"""A poisoned course as processes over a real broker: one of four participant processes sign-flips its updates,
and a trimmed mean sized for one attacker aggregates. The attack and the rule run where they would in deployment
(a participant process and the coordinator service), and the course must end with exactly the standalone model."""

from __future__ import annotations

import json
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import replay_verified, run_course

pytestmark = pytest.mark.slow


def test_a_sign_flipping_participant_process_is_outvoted_and_the_course_replays(tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-robust-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=8", "participants=4", "aggregator.name=trimmed_mean",
            "aggregator.byzantine=1", "attack.kind=sign_flip", "attack.scale=4", "attack.participants=[2]",
            "transport.kind=kafka", f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    out, logs = run_course(config_path, sets, tmp_path, 4)
    assert "malicious_participant" in logs["participant-2.log"]
    assert "malicious_participant" not in logs["participant-1.log"]

    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:8]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["final_metrics"]["heldout.accuracy"] >= 0.4  # 0.50; FedAvg with this attacker: 0.09

    replay_verified(kafka_bootstrap, course)
