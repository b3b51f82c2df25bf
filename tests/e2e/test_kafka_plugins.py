"""A course of extensions as processes over a real broker (issue 13): a third-party package's aggregator, sampler
and coordinator plug-in, found by entry point, and the README's worked plug-in, named by module:attr, with its own
message type. Each process imports them from its own path, the course ends with exactly the standalone model,
and `fscope replay --verify` rebuilds it, plug-in state included."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import replay_verified, run_course

pytestmark = pytest.mark.slow


def test_extensions_by_entry_point_and_path_run_as_services_and_replay(tmp_path, kafka_bootstrap, monkeypatch):
    from tests.conftest import ROOT

    paths = [str(ROOT / "tests" / "extension"), str(ROOT / "examples")]
    for path in paths:
        monkeypatch.syspath_prepend(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    config_path = ROOT / "examples" / "digits_norm_report.yaml"
    course = f"e2e-plugins-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=5", "participants=4", "sample_size=2",
            "aggregator.name=unweighted_mean", "aggregator.server_lr=0.8", "strategy.sampler=round_robin",
            "plugins=[{name: 'mylab.norm_report:NormReport', role: all, options: {max_norm: 1.0}}, "
            "{name: update_ledger, role: coordinator}]",
            "transport.kind=kafka", f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    out, logs = run_course(config_path, sets, tmp_path, 4, env)
    assert "NormReport.report" in logs["participant-1.log"]  # each service logs the handlers in effect

    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:8]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["plugins"] == standalone["plugins"]
    assert summary["plugins"]["norm_report"]["reports"] == 5 * 2  # two participants a round
    # round robin, two a round over five rounds: participants 0 and 1 train three times, 2 and 3 twice
    assert summary["plugins"]["update_ledger"]["per_sender"] == {f"participant-0000{i}": 2 + (i < 2) for i in range(4)}

    replay_verified(kafka_bootstrap, course, tmp_path / "replay", env)
    replayed = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert replayed["plugins"] == summary["plugins"] and replayed["model_sha256"] == summary["model_sha256"]
