"""A FedScale-style client manager (issue 18), written only against fscore.client_manager.ClientManager, runs a
course as processes over a real broker: the same model as standalone, and `fscope replay --verify` rebuilds it."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import replay_verified, run_course

pytestmark = pytest.mark.slow


def test_a_fedscale_client_manager_selects_over_kafka_and_replays(tmp_path, kafka_bootstrap, monkeypatch):
    from tests.conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-manager-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=4", "participants=4", "sample_size=2", "trainer.local_epochs=1",
            "strategy.sampler=mylab.fedscale_manager:RewardManager", "strategy.sampler_options={explore: 0.5}",
            "transport.kind=kafka", f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    out, _ = run_course(config_path, sets, tmp_path, 4, env)
    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:7]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["aggregation_counts"] == standalone["aggregation_counts"]  # the same picks, round by round
    replay_verified(kafka_bootstrap, course, tmp_path / "replay", env)
    assert json.loads((tmp_path / "replay" / "summary.json").read_text())["model_sha256"] == summary["model_sha256"]
