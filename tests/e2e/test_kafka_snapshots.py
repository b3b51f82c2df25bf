"""A deployed coordinator recovers from its latest snapshot on the meta topic, not from the whole inbox (issue 17).

The course runs as processes over a real broker, the coordinator with ``--snapshot-every 3``. Once it has
written a snapshot and evaluated a round after it, the participants are paused and the coordinator is killed
outright. The test then
deletes every inbox record before the latest snapshot's offset from the broker (Kafka's DeleteRecords, as
retention would), so a coordinator that read them could not. Restarted, the coordinator restores the
snapshot, re-feeds only the inbox after it, and the course ends with exactly the standalone model, with
every round's metrics. Re-fed are the records after the snapshot: those of the round it had gone on with.
"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import uuid

import fastavro
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from fscore.config import load_config
from fscore.message import COORDINATOR_SNAPSHOT, MessageCatalog
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import BIN, raw_records, start, wait_for, wait_until_all_exit

pytestmark = pytest.mark.slow

ROUNDS = 10
EVERY = 3


def _events(log_path, name: str) -> list[dict]:
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    return [e for e in (json.loads(line) for line in lines if line.startswith("{")) if e.get("event") == name]


def _latest_snapshot(bootstrap: str, meta: str) -> dict:
    codec = MessageCatalog().codec
    found = []
    for msg in raw_records(bootstrap, meta):
        header, payload = codec.decode(msg.value())
        if header.type == COORDINATOR_SNAPSHOT:
            found.append(payload)
    assert found, f"no snapshot on {meta}"
    return found[-1]


def _low_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"audit-{uuid.uuid4().hex[:8]}"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[0]
    finally:
        consumer.close()


def test_a_killed_coordinator_recovers_from_its_snapshot_without_the_records_before_it(tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"snap-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", f"rounds={ROUNDS}", "participants=3", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "coordinator"
    coordinator_log = tmp_path / "coordinator.log"
    coordinator_cmd = [str(BIN / "fscope-coordinator"), "serve", str(config_path), *flags, "--output", str(out),
                       "--snapshot-every", str(EVERY)]
    coordinator = start(coordinator_cmd, coordinator_log)
    participants = [start([str(BIN / "fscope-participant"), "serve", str(config_path), *flags, "--index", str(i)],
                          tmp_path / f"participant-{i}.log") for i in range(3)]
    everyone = [coordinator, *participants]
    try:
        watch = [(coordinator, coordinator_log), *((p, tmp_path / f"participant-{i}.log")
                                                   for i, p in enumerate(participants))]
        metrics = out / "metrics.jsonl"
        wait_for(lambda: _events(coordinator_log, "snapshot_written") and metrics.read_text().count("\n") > EVERY,
                 "a snapshot, and an evaluation after it", watch=watch)
        for p in participants:
            p.send_signal(signal.SIGSTOP)  # the course cannot move on, however fast the machine trains
        coordinator.kill()
        assert coordinator.wait(60) == -signal.SIGKILL
        evaluated = (out / "metrics.jsonl").read_text().count("\n")
        assert evaluated < ROUNDS, "the course finished before the coordinator was killed"

        inbox, meta = f"fscope.{course}.coordinator", f"fscope.{course}.meta"
        latest = _latest_snapshot(kafka_bootstrap, meta)
        offset = latest["inbox_offset"]
        assert latest["round"] >= EVERY and offset > 0
        (body,) = [m.value() for m in raw_records(kafka_bootstrap, f"fscope.{course}.snapshots")
                   if m.offset() == latest["snapshot_offset"]]
        assert hashlib.sha256(body).hexdigest() == latest["snapshot_sha256"]  # the signed pointer vouches for it
        assert [r["inbox"] for r in fastavro.reader(io.BytesIO(body))] == [{"0": offset}]  # plain Avro
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.delete_records([TopicPartition(inbox, 0, offset)]).values():
            future.result(30)
        assert _low_watermark(kafka_bootstrap, inbox) == offset  # the records before the snapshot are gone

        for p in participants:
            p.send_signal(signal.SIGCONT)
        coordinator = start(coordinator_cmd, coordinator_log)
        everyone = [coordinator, *participants]
        codes = wait_until_all_exit(everyone, "the course to finish")
    finally:
        for p in everyone:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
    logs = {p.name: p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0, 0, 0], (codes, logs)

    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:3]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]  # bit for bit
    assert summary["rounds"] == ROUNDS and summary["finish_reason"] == "max_rounds_reached"
    assert summary["recovered_from_snapshot"]["inbox_offset"] == offset
    assert summary["recovered_from_snapshot"]["round"] == latest["round"]
    (recovered,) = _events(coordinator_log, "recovered")
    assert recovered["read_from"] == offset and recovered["records"] == recovered["resumes_at"] - offset > 0
    assert summary["recovered_records"] == recovered["records"]
    assert _events(coordinator_log, "snapshot_skipped") == []
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == list(range(1, ROUNDS + 1))  # the rows before the snapshot came with it
    assert [r["num_aggregated"] for r in rows] == [3] * ROUNDS
    assert summary["snapshots_written"] >= 1  # the restarted coordinator goes on writing them

    # the log is no longer whole: replay says so in one line rather than verify part of it
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify"], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stdout + proc.stderr
    assert f"partition 0 now starts at offset {offset}, the records before it were deleted" in lines[0]
