"""Privacy and a backdoor as separate processes over a real broker (issue 15): client-side DP on every
participant and one BadNets participant with boosting. The course ends with exactly the standalone model and
privacy figures, and `fscope replay --verify` rebuilds it from the log, the attack's measurements included."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import BIN, start, wait_until_all_exit

pytestmark = pytest.mark.slow


def test_client_dp_and_a_backdoor_participant_run_as_services_and_replay(tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-privacy-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=4", "participants=4", "data.split=iid",
            "plugins=[{name: client_dp, options: {clip: 2.0, noise_multiplier: 0.05}}, "
            "{name: backdoor, role: all, participants: [2], options: {target_label: 0, fraction: 0.5, boost: 2.0}}]",
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

    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify", "--output", str(tmp_path / "replay")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout
    replayed = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert replayed["plugins"] == summary["plugins"] and replayed["model_sha256"] == summary["model_sha256"]
    assert replayed["privacy"] == summary["privacy"]  # the releases are counted from the log alike
