"""Cross-backend courses: TensorFlow/Keras participants next to torch ones (paper §3.5).

Standalone with a single config, and over Kafka with each participant process choosing its
backend. The coordinator stays numpy-only; participants agree only on the message layout.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import BIN, start, wait_for, wait_until_all_exit

pytestmark = pytest.mark.slow

HALF = "trainer.participant_backends={1: tensorflow, 3: tensorflow, 5: tensorflow, 7: tensorflow, 9: tensorflow}"


def test_a_mixed_standalone_course_converges_like_an_all_torch_one(example_config):
    torch_only = run_standalone(load_config(example_config, ["rounds=15"]), progress=False)
    mixed = run_standalone(load_config(example_config, ["rounds=15", HALF]), progress=False)
    backends = sorted({p.trainer.backend for p in mixed.participants})
    assert backends == ["tensorflow", "torch"]
    a = torch_only.summary["final_metrics"]["heldout.accuracy"]
    b = mixed.summary["final_metrics"]["heldout.accuracy"]
    assert a > 0.85 and abs(a - b) <= 0.02, (a, b)
    # the same seed gives the same mixed model
    again = run_standalone(load_config(example_config, ["rounds=15", HALF]), progress=False)
    assert again.summary["model_sha256"] == mixed.summary["model_sha256"]


def test_a_custom_model_runs_in_a_mixed_course_from_one_config_and_a_participant_without_its_codec_is_refused(
        mylab):
    torch_only = run_standalone(load_config(mylab, ["rounds=10", "trainer.participant_backends={}"]), progress=False)
    mixed = run_standalone(load_config(mylab, ["rounds=10"]), progress=False)
    a = torch_only.summary["final_metrics"]["heldout.accuracy"]
    b = mixed.summary["final_metrics"]["heldout.accuracy"]
    assert a > 0.8 and abs(a - b) <= 0.02, (a, b)
    # without their codec the Keras participants' names do not fit: refused, and the course goes on without them
    refused = run_standalone(load_config(mylab, ["rounds=3", "trainer.adapters={}"]), progress=False)
    assert [p.refused for p in refused.participants] == [i % 2 == 1 for i in range(10)]
    assert "missing parameter `hidden1.weight`" in refused.participants[1].finish_reason
    assert "extra parameter `dense_a.weight` with shape (32, 64)" in refused.participants[1].finish_reason
    assert refused.summary["rounds"] == 3


def test_a_mixed_course_over_kafka_goes_on_without_a_refused_participant_and_replays(tmp_path, kafka_bootstrap,
                                                                                    example_config):
    course = f"e2e-mixed-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=5", "participants=4", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "coordinator"
    coordinator = start([str(BIN / "fscope-coordinator"), "serve", str(example_config), *flags, "--output", str(out)],
                        tmp_path / "coordinator.log")
    wait_for((out / "metrics.jsonl").exists, "the coordinator", watch=((coordinator, tmp_path / "coordinator.log"),))

    def participant(index: int, *extra: str) -> subprocess.Popen:
        more = [a for s in extra for a in ("--set", s)]
        return start([str(BIN / "fscope-participant"), "serve", str(example_config), *flags, *more, "--index",
                      str(index)], tmp_path / f"participant-{index}.log")

    # Participant 3 runs TensorFlow with another hidden size: its model does not fit the agreed layout.
    workers = [participant(0), participant(1, "trainer.backend=tensorflow"), participant(2),
               participant(3, "trainer.backend=tensorflow", "model.hidden=32")]
    codes = wait_until_all_exit([coordinator, *workers], "the mixed course to finish", may_fail=(workers[3],))
    logs = {p.name: p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0, 0, 0, 2], (codes, logs)  # the refused participant exits 2 (a config problem)
    refusal = [json.loads(line) for line in (tmp_path / "participant-3.log").read_text().splitlines()
               if line.startswith("{") and '"refused"' in line]
    assert "parameter `fc1.weight` has shape (32, 64); the agreed layout says (64, 64)" in refusal[0]["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 5 and summary["final_metrics"]["heldout.accuracy"] > 0.7
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["aggregated"] == ["participant-00000", "participant-00001", "participant-00002"] for r in rows)
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout
