"""A course as separate OS processes over a real broker: one coordinator, three participants.

The processes are the installed console scripts, started as an operator would start them. Mid-course
one participant is killed outright and another is stopped with SIGTERM; both are started again. Later
the coordinator is killed outright and started again. The course must still end with exactly the
model the standalone run produces. Afterwards the log is
checked three ways: ``fscope replay --verify``, an independent fastavro reader with the checked-in
schemas, and a recomputation of every round's FedAvg from the recorded updates.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from fstranslation import DecodeError, WireCodec
from tests.e2e.avro_reader import AvscReader
from tests.e2e.processes import BIN, raw_records, start, wait_for

pytestmark = pytest.mark.slow

ROUNDS = 5
TOPIC_KINDS = ("coordinator", "broadcast", "direct", "dlq", "meta")


@pytest.fixture(scope="module")
def finished_course(tmp_path_factory, kafka_bootstrap):
    """Run the course once as processes; the tests below examine what it left behind."""
    from tests.conftest import ROOT

    tmp = tmp_path_factory.mktemp("kafka-course")
    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", f"rounds={ROUNDS}", "participants=3", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp / "coordinator"
    coordinator_cmd = [str(BIN / "fscope-coordinator"), "serve", str(config_path), *flags, "--output", str(out)]
    coordinator = start(coordinator_cmd, tmp / "coordinator.log")
    # Bad input on the coordinator's inbox before anyone joins: garbage, and a record of an unknown schema.
    # (A model update with the wrong tensor shape needs exact timing: tests/integration/test_course_over_kafka.py.)
    wait_for((out / "metrics.jsonl").exists, "the coordinator to create the course's topics",
             watch=((coordinator, tmp / "coordinator.log"),))
    intruder = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    intruder.produce(f"fscope.{course}.coordinator", b"garbage, not Avro", b"intruder")
    intruder.produce(f"fscope.{course}.coordinator", b"\xc3\x01" + bytes(8) + b"\x02", b"intruder")
    assert intruder.flush(30) == 0
    participant_cmd = [str(BIN / "fscope-participant"), "serve", str(config_path), *flags, "--index"]
    participants = [start([*participant_cmd, str(i)], tmp / f"participant-{i}.log") for i in range(3)]

    # Once a round has been evaluated: kill participant 1 outright and stop participant 2 gracefully.
    metrics = out / "metrics.jsonl"
    watch = ((coordinator, tmp / "coordinator.log"),
             *((p, tmp / f"participant-{i}.log") for i, p in enumerate(participants)))
    wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 1, "the first evaluation", watch=watch)
    participants[1].kill()
    participants[2].send_signal(signal.SIGTERM)
    codes_at_stop = (participants[1].wait(60), participants[2].wait(120))
    participants[1] = start([*participant_cmd, "1"], tmp / "participant-1.log")
    participants[2] = start([*participant_cmd, "2"], tmp / "participant-2.log")

    # Two rounds later: kill the coordinator outright; restarted, it rebuilds its state from its inbox.
    wait_for(lambda: metrics.read_text().count("\n") >= 3, "the third evaluation", watch=watch[:1])
    coordinator.kill()
    codes_at_stop += (coordinator.wait(60),)
    coordinator = start(coordinator_cmd, tmp / "coordinator.log")

    everyone = [coordinator, *participants]
    try:
        # Fail fast: a process that dies with an error would leave the others waiting for it.
        wait_for(lambda: all(p.poll() is not None for p in everyone)
                 or any(p.poll() not in (None, 0) for p in everyone), "the course to finish", timeout=600)
        codes = [p.poll() for p in everyone]
    finally:
        for proc in (coordinator, *participants):
            if proc.poll() is None:
                proc.kill()
    logs = {p.name: p.read_text(errors="replace") for p in tmp.glob("*.log")}
    assert codes == [0, 0, 0, 0], (codes, {k: v[-3000:] for k, v in logs.items()})
    standalone = run_standalone(load_config(config_path, sets[:3]), progress=False)
    return {"bootstrap": kafka_bootstrap, "course": course, "tmp": tmp, "out": out, "sets": sets,
            "codes_at_stop": codes_at_stop, "standalone": standalone, "logs": logs}


def test_the_course_finishes_with_the_standalone_model_despite_restarts(finished_course):
    summary = json.loads((finished_course["out"] / "summary.json").read_text())
    standalone = finished_course["standalone"].summary
    # -9: killed; 4: stopped by a signal (SIGTERM), can be started again
    assert finished_course["codes_at_stop"] == (-signal.SIGKILL, 4, -signal.SIGKILL)
    assert summary["rounds"] == ROUNDS and summary["finish_reason"] == "max_rounds_reached"
    assert summary["model_sha256"] == standalone["model_sha256"]
    accuracy = summary["final_metrics"]["heldout.accuracy"]
    assert accuracy >= 0.8 and abs(accuracy - standalone["final_metrics"]["heldout.accuracy"]) < 0.01
    rows = [json.loads(line) for line in (finished_course["out"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["num_aggregated"] for r in rows] == [3] * ROUNDS  # nothing lost, nothing counted twice
    coordinator_log = [json.loads(line) for line in finished_course["logs"]["coordinator.log"].splitlines()
                       if line.startswith("{")]
    assert any(e["event"] == "handlers_in_effect" for e in coordinator_log)
    recovered = [e for e in coordinator_log if e["event"] == "recovered"]
    assert len(recovered) == 1 and recovered[0]["records"] > 0


def test_replay_verifies_and_rebuilds_the_metrics(finished_course, tmp_path):
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", finished_course["bootstrap"],
                           "--course", finished_course["course"], "--verify", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout
    live = [json.loads(line) for line in (finished_course["out"] / "metrics.jsonl").read_text().splitlines()]
    rebuilt = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rebuilt] == [r["round"] for r in live]
    for ours, theirs in zip(rebuilt, live, strict=True):
        assert ours["heldout.accuracy"] == theirs["heldout.accuracy"]
        assert ours["clients.accuracy"] == theirs["clients.accuracy"]
        assert ours["aggregated"] == theirs["aggregated"]


def dead_lettered(finished_course) -> dict[str, str]:
    """``topic/partition/offset`` -> reason, from the dead-letter topic's headers."""
    out = {}
    for msg in raw_records(finished_course["bootstrap"], f"fscope.{finished_course['course']}.dlq"):
        headers = dict(msg.headers())
        out[headers["fscope.source"].decode()] = headers["fscope.reason"].decode()
    return out


def accepted(finished_course, kind: str) -> list:
    """The records of a topic that were not dead-lettered."""
    dead = dead_lettered(finished_course)
    return [m for m in raw_records(finished_course["bootstrap"], f"fscope.{finished_course['course']}.{kind}")
            if f"{m.topic()}/{m.partition()}/{m.offset()}" not in dead]


def test_bad_input_went_to_the_dead_letter_topic_and_the_course_carried_on(finished_course):
    inbox = f"fscope.{finished_course['course']}.coordinator"
    reasons = dead_lettered(finished_course)
    bad = [reasons.get(f"{inbox}/0/{offset}", "") for offset in (0, 1)]
    assert "single-object marker" in bad[0] and "envelope schema" in bad[1], reasons
    summary = json.loads((finished_course["out"] / "summary.json").read_text())
    assert summary["finish_reason"] == "max_rounds_reached"
    assert all(source.startswith(inbox) for source in reasons)  # only the coordinator rejects anything here


def test_topics_decode_with_fastavro_and_the_checked_in_schemas(finished_course):
    reader = AvscReader()
    course = finished_course["course"]
    types = defaultdict(int)
    for kind in ("coordinator", "broadcast", "direct", "meta"):
        for msg in accepted(finished_course, kind):
            assert not any(k == "fscope.chunk" for k, _ in (msg.headers() or []))
            decoded = reader.decode(msg.value())
            assert decoded.envelope["course"] == course
            types[decoded.envelope["type"]] += 1
    assert types["join_in"] >= 3 + 2  # two participants joined again after their restart
    # A coordinator killed between sending and committing sends again on restart: hence >=.
    assert types["model_update"] >= 3 * ROUNDS and types["model_parameters"] >= ROUNDS
    assert types["finish"] == 1 and types["course_manifest"] == 1 and types["course_finished"] == 1


def test_each_round_is_the_sample_weighted_average_of_its_recorded_updates(finished_course):
    reader = AvscReader()
    course = finished_course["course"]
    updates: dict[int, dict[str, tuple[int, dict]]] = defaultdict(dict)
    for msg in accepted(finished_course, "coordinator"):
        d = reader.decode(msg.value())
        if d.envelope["type"] == "model_update":
            key = (d.envelope["round"], d.envelope["sender"])
            assert key[1] not in updates[key[0]], f"two accepted updates for {key}"  # the second is dead-lettered
            updates[key[0]][key[1]] = (d.payload["num_samples"], d.tensors())
    models: dict[int, dict] = {}
    for msg in raw_records(finished_course["bootstrap"], f"fscope.{course}.broadcast"):
        d = reader.decode(msg.value())
        if d.envelope["type"] in ("model_parameters", "finish"):
            models[d.envelope["round"]] = d.tensors()
    assert sorted(updates) == list(range(ROUNDS)) and sorted(models) == list(range(ROUNDS + 1))
    for round_, by_sender in updates.items():
        assert len(by_sender) == 3
        total = sum(n for n, _ in by_sender.values())
        for name, got in models[round_ + 1].items():
            expected = sum(n * t[name].astype(np.float64) for n, t in by_sender.values()) / total
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"round {round_}, {name}")


def test_a_tampered_record_fails_verification_and_is_named(finished_course):
    """Copy the course's topics to a new course, changing one byte of one broadcast model, and replay that.

    A course's records name it, and a worker refuses records of another course, so the copy is renamed
    record by record (envelope and manifest) before the byte is changed."""
    bootstrap, course = finished_course["bootstrap"], finished_course["course"]
    tampered = f"{course}-tampered"
    codec = WireCodec()

    def renamed(value: bytes) -> bytes:
        try:
            header, payload = codec.decode(value)
        except DecodeError:
            return value  # the garbage the course was given: copied as it is
        if header.type == "course_manifest":
            config = json.loads(payload["config_json"])
            payload = {**payload, "config_json": json.dumps({**config, "course_id": tampered}, sort_keys=True)}
        return codec.encode(dataclasses.replace(header, course=tampered), payload)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    victim = None
    for kind in TOPIC_KINDS:
        records = raw_records(bootstrap, f"fscope.{course}.{kind}") if kind != "dlq" else []
        partitions = 16 if kind == "direct" else 1
        for future in admin.create_topics([NewTopic(f"fscope.{tampered}.{kind}", partitions, 1)]).values():
            future.result()
        for msg in records:
            value = renamed(msg.value())
            if kind == "broadcast" and victim is None and msg.offset() >= 4:
                victim = f"fscope.{tampered}.broadcast/0/{msg.offset()}"
                value = value[:-10] + bytes([value[-10] ^ 0x01]) + value[-9:]  # inside the last tensor's data
            producer.produce(f"fscope.{tampered}.{kind}", value, msg.key(), partition=msg.partition(),
                             headers=msg.headers())
    assert producer.flush(60) == 0
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", bootstrap, "--course", tampered,
                           "--verify"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"MISMATCH: record {victim}" in proc.stderr, proc.stderr
    assert "verification FAILED" in proc.stderr


def test_restarts_after_the_finish_recover_and_exit_and_a_changed_config_is_refused(finished_course, tmp_path):
    flags = [a for s in finished_course["sets"] for a in ("--set", s)]
    config = str(Path(__file__).parents[2] / "examples" / "digits_fedavg.yaml")
    same = subprocess.run([str(BIN / "fscope-coordinator"), "serve", config, *flags, "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert same.returncode == 0, same.stdout + same.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model_sha256"] == finished_course["standalone"].summary["model_sha256"]
    late = subprocess.run([str(BIN / "fscope-participant"), "serve", config, *flags, "--index", "0"],
                          capture_output=True, text=True, timeout=300)
    assert late.returncode == 0 and "course_already_finished" in late.stdout + late.stderr
    other = subprocess.run([str(BIN / "fscope-coordinator"), "serve", config, *flags, "--set", "rounds=50"],
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "config_differs" in other.stdout + other.stderr


def test_the_plain_avro_example_dumps_every_topic_as_json_lines(finished_course):
    """examples/dump_topics.py: confluent-kafka, fastavro and the .avsc files, none of fscope's code."""
    from tests.conftest import ROOT

    script = ROOT / "examples" / "dump_topics.py"
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(script.read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert imported <= {"argparse", "io", "json", "sys", "pathlib", "fastavro", "confluent_kafka"}, imported
    proc = subprocess.run([sys.executable, "-I", str(script), finished_course["bootstrap"],
                           finished_course["course"]], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    decoded = [line["message"] for line in lines if "message" in line]
    types = defaultdict(int)
    for message in decoded:
        assert message["course"] == finished_course["course"]
        types[message["type"]] += 1
    assert types["model_update"] >= 3 * ROUNDS and types["finish"] == 1 and types["course_manifest"] == 1
    update = next(m for m in decoded if m["type"] == "model_update")
    assert {t["name"] for t in update["payload"]["tensors"]} and update["payload"]["tensors"][0]["shape"]
    # The intruder's garbage, dead-lettered, is reported as undecodable instead of stopping the dump.
    assert any("undecodable" in line and line["topic"].endswith(".dlq") for line in lines)
    dumped = {(line["topic"], line["partition"], line["offset"]) for line in lines}
    assert len(dumped) == len(lines)
