"""A course of extensions as processes over a real broker (issue 13): a third-party package's aggregator, sampler
and coordinator plug-in, found by entry point, and the README's worked plug-in, named by module:attr, with its own
message type. Each process imports them from its own path, the course ends with exactly the standalone model,
and `fscope replay --verify` rebuilds it, plug-in state included."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import BIN, start, wait_until_all_exit

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
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "coordinator"
    processes = [start([str(BIN / "fscope-coordinator"), "serve", str(config_path), *flags, "--output", str(out)],
                       tmp_path / "coordinator.log", env)]
    processes += [start([str(BIN / "fscope-participant"), "serve", str(config_path), *flags, "--index", str(i)],
                        tmp_path / f"participant-{i}.log", env) for i in range(4)]
    codes = wait_until_all_exit(processes, "the course to finish")
    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    assert codes == [0] * 5, (codes, {k: v[-3000:] for k, v in logs.items()})
    assert "NormReport.report" in logs["participant-1.log"]  # each service logs the handlers in effect

    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:8]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["plugins"] == standalone["plugins"]
    assert summary["plugins"]["norm_report"]["reports"] == 5 * 2  # two participants a round
    # round robin, two a round over five rounds: participants 0 and 1 train three times, 2 and 3 twice
    assert summary["plugins"]["update_ledger"]["per_sender"] == {f"participant-0000{i}": 2 + (i < 2) for i in range(4)}

    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify", "--output", str(tmp_path / "replay")], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout
    replayed = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert replayed["plugins"] == summary["plugins"] and replayed["model_sha256"] == summary["model_sha256"]
