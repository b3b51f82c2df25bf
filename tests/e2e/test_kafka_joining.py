"""A join deadline over Kafka: the course starts without a participant that is late, admits it when it
comes, and replays with --verify (the deadline is an alarm in the coordinator's inbox)."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.e2e.processes import BIN, start, wait_for, wait_until_all_exit

pytestmark = pytest.mark.slow


def test_the_course_starts_at_the_join_deadline_and_admits_a_latecomer(tmp_path, kafka_bootstrap, example_config):
    course = f"e2e-join-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=8", "participants=3", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={kafka_bootstrap}", "joining.timeout_s=5",
            "simulation.pace=4"]  # a round takes a couple of wall seconds, so the latecomer arrives mid-course
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "coordinator"
    coordinator = start([str(BIN / "fscope-coordinator"), "serve", str(example_config), *flags, "--output", str(out)],
                        tmp_path / "coordinator.log")

    def participant(index: int) -> subprocess.Popen:
        return start([str(BIN / "fscope-participant"), "serve", str(example_config), *flags, "--index", str(index)],
                     tmp_path / f"participant-{index}.log")

    early = [participant(0), participant(1)]
    metrics = out / "metrics.jsonl"
    watch = tuple((p, tmp_path / f"{name}.log") for p, name in
                  ((coordinator, "coordinator"), (early[0], "participant-0"), (early[1], "participant-1")))
    wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 1, "the first round", watch=watch)
    late = participant(2)
    codes = wait_until_all_exit([coordinator, *early, late], "the course to finish")
    logs = {p.name: p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0, 0, 0], (codes, logs)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert rows[0]["aggregated"] == ["participant-00000", "participant-00001"]
    assert any("participant-00002" in r["aggregated"] for r in rows), rows  # admitted, sampled, aggregated
    deadline = [json.loads(line) for line in (tmp_path / "coordinator.log").read_text().splitlines()
                if line.startswith("{") and '"join_deadline"' in line]
    assert deadline[0]["joined"] == 2 and deadline[0]["expected"] == 3
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout
