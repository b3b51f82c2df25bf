"""Secure aggregation as separate signed processes over Kafka: one participant is killed right after it sent its
masked update (SIGKILL, by the plug-in's fault injection), the round still unmasks from the others' shares, the
course goes on without it after its reply deadline, finishes, and replays with ``--verify``."""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from tests.e2e.processes import BIN, replay_verified, start, wait_until_all_exit

pytestmark = pytest.mark.slow


def test_a_participant_killed_after_its_masked_update_does_not_stop_the_round(tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    config = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-secagg-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=4", "participants=4", "trainer.local_epochs=1",
            "strategy.reply_timeout_s=20", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={kafka_bootstrap}",
            "plugins=[{name: secure_aggregation, role: all, options: {dropouts: 1, crash_after_input: {2: 1}}}]"]
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "coordinator"
    coordinator = start([str(BIN / "fscope-coordinator"), "serve", str(config), *flags, "--output", str(out)],
                        tmp_path / "coordinator.log")
    participants = [start([str(BIN / "fscope-participant"), "serve", str(config), *flags, "--index", str(i)],
                          tmp_path / f"participant-{i}.log") for i in range(4)]
    codes = wait_until_all_exit([coordinator, *participants], "the course to finish", may_fail=(participants[2],))
    logs = {p.name: p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0, 0, -signal.SIGKILL, 0], (codes, logs)
    assert "secagg_crash_injected" in logs["participant-2.log"]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 4 and summary["dead_lettered"] == 0
    rounds = summary["plugins"]["secure_aggregation"]["rounds"]
    assert [r["roster"] for r in rounds] == [4, 4, 3, 3]  # after its reply deadline the course goes on without it
    assert "participant-00002" in rounds[1]["unmasked_without"]  # round 1 unmasked without its reveal
    assert summary["final_metrics"]["heldout.accuracy"] > 0.5
    replay_verified(kafka_bootstrap, course, tmp_path / "replay")
    replay = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert replay["model_sha256"] == summary["model_sha256"]
    assert replay["plugins"]["secure_aggregation"] == summary["plugins"]["secure_aggregation"]
