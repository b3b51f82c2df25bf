"""A poisoned course as processes over a real broker: one of four participant processes sign-flips its updates,
and a trimmed mean sized for one attacker aggregates. The attack and the rule run where they would in deployment
(a participant process and the coordinator service), and the course must end with exactly the standalone model."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import BIN, start, wait_until_all_exit

pytestmark = pytest.mark.slow


def test_a_sign_flipping_participant_process_is_outvoted_and_the_course_replays(tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-robust-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=8", "participants=4", "aggregator.name=trimmed_mean",
            "aggregator.byzantine=1", "attack.kind=sign_flip", "attack.scale=4", "attack.participants=[2]",
            "transport.kind=kafka", f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "coordinator"
    processes = [start([str(BIN / "fscope-coordinator"), "serve", str(config_path), *flags, "--output", str(out)],
                       tmp_path / "coordinator.log")]
    processes += [start([str(BIN / "fscope-participant"), "serve", str(config_path), *flags, "--index", str(i)],
                        tmp_path / f"participant-{i}.log") for i in range(4)]
    codes = wait_until_all_exit(processes, "the course to finish")
    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    assert codes == [0] * 5, (codes, {k: v[-3000:] for k, v in logs.items()})
    assert "malicious_participant" in logs["participant-2.log"]
    assert "malicious_participant" not in logs["participant-1.log"]

    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:8]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["final_metrics"]["heldout.accuracy"] >= 0.4  # 0.50; FedAvg with this attacker: 0.09

    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout
