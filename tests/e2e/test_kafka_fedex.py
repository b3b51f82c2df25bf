"""FedEx over a real broker (issue 17, part 3): the coordinator's per-participant configurations travel in their
own message type, the course ends with exactly the standalone model and policy, and ``fscope replay --verify``
rebuilds both from the log."""

from __future__ import annotations

import json
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import replay_verified, run_course

pytestmark = pytest.mark.slow


def test_a_fedex_course_over_kafka_matches_standalone_and_replays(tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    config_path = ROOT / "examples" / "digits_fedex.yaml"
    course = f"e2e-fedex-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=4", "participants=3",
            "transport.kind=kafka", f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    out, _ = run_course(config_path, sets, tmp_path, 3)
    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:3]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["plugins"]["fedex"] == standalone["plugins"]["fedex"]
    assert summary["plugins"]["fedex"]["steps"] == 3

    replay_verified(kafka_bootstrap, course, tmp_path / "replay")
    replayed = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert replayed["plugins"]["fedex"] == summary["plugins"]["fedex"]
