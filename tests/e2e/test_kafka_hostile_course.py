"""A course over a real broker under a flood of hostile records, with its coordinator killed mid-course.

Once the first round is evaluated the participants are paused, so the course cannot end before the
coordinator is killed, however fast the machine trains. Thousands of records made by
:class:`tests.hostile.Forger` (garbage, truncations, bit flips, impossible tensors, NaN, wrong course, round,
sender and receivers, copies of real records) then go to the coordinator's inbox and to the participants'
topics, together with the seven records that used to crash a worker. Then the coordinator is killed outright,
the participants resume, and the coordinator is started again: it rebuilds itself from an inbox full of them.
No process may exit with an error; every record must be accounted for; the course must end with the clean
standalone run's model; and replay must verify it.

``FSCOPE_HOSTILE_RECORDS`` sets how many (3000 by default; the acceptance run uses 10000).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections import Counter

import pytest
from confluent_kafka import Producer

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from fstranslation import DecodeError, WireCodec
from tests.e2e.processes import BIN, raw_records, start, wait_for, wait_until_all_exit
from tests.hostile import KINDS, Forger, RngDraw

pytestmark = pytest.mark.slow

PARTICIPANTS = 3
ROUNDS = 8
#: participants cannot tell a model of another round from the coordinator's without authentication
PARTICIPANT_KINDS = tuple(k for k in KINDS if k != "wrong_round")
CRASHED_COORDINATOR = ("huge_shape", "many_dims", "join_huge_layout", "join_bad_dtype")
CRASHED_PARTICIPANT = ("wrong_shape", "finish_without_tensors", "many_dims")


def _decodes(codec: WireCodec, value: bytes) -> bool:
    try:
        codec.decode(value)
    except DecodeError:
        return False
    return True


def _decodable(codec: WireCodec, records: list) -> list[bytes]:
    return [m.value() for m in records if _decodes(codec, m.value())]


def test_a_course_flooded_with_hostile_records_ends_with_the_clean_model_and_replays(tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    total = int(os.environ.get("FSCOPE_HOSTILE_RECORDS", "3000"))
    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-hostile-{uuid.uuid4().hex[:8]}"
    # Content forgeries, unsigned: each must be refused for what it holds (identity forgeries, which
    # signatures stop before the payload is read, are test_kafka_trust's).
    sets = [f"course_id={course}", f"rounds={ROUNDS}", f"participants={PARTICIPANTS}", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={kafka_bootstrap}", "trust.signing=false"]
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "coordinator"
    coordinator_cmd = [str(BIN / "fscope-coordinator"), "serve", str(config_path), *flags, "--output", str(out)]
    coordinator = start(coordinator_cmd, tmp_path / "coordinator.log")
    participants = [start([str(BIN / "fscope-participant"), "serve", str(config_path), *flags, "--index", str(i)],
                          tmp_path / f"participant-{i}.log") for i in range(PARTICIPANTS)]
    watch = ((coordinator, tmp_path / "coordinator.log"),
             *((p, tmp_path / f"participant-{i}.log") for i, p in enumerate(participants)))
    metrics = out / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 1, "the first evaluation", watch=watch)
    for p in participants:  # paused, they send no update: the course waits for them and cannot finish
        p.send_signal(signal.SIGSTOP)
    evaluated = metrics.read_text().count("\n")
    assert evaluated < ROUNDS, f"the course ended ({evaluated} evaluations) before its participants were paused"

    # The flood: made from the course's own records, as an attacker reading the topics would.
    codec = WireCodec()
    topic = {kind: f"fscope.{course}.{kind}" for kind in ("coordinator", "broadcast", "direct", "dlq", "meta")}
    addresses = tuple(f"participant-{i:05d}" for i in range(PARTICIPANTS))
    inbox_forger = Forger(codec, course, _decodable(codec, raw_records(kafka_bootstrap, topic["coordinator"])),
                          ("coordinator",))
    broadcast_forger = Forger(codec, course, _decodable(codec, raw_records(kafka_bootstrap, topic["broadcast"])),
                              addresses)
    direct = {a: Forger(codec, course, [m.value() for m in raw_records(kafka_bootstrap, topic["direct"])
                                        if m.key() == a.encode()], (a,)) for a in addresses}
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "linger.ms": 5})
    draw = RngDraw(2026)
    injected: Counter[str] = Counter()
    inbox_undecodable = inbox_not_addressed = 0
    plan = ([("coordinator", k) for k in CRASHED_COORDINATOR] + [("broadcast", k) for k in CRASHED_PARTICIPANT]
            + [(None, None)] * (total - len(CRASHED_COORDINATOR) - len(CRASHED_PARTICIPANT)))
    for where, kind in plan:
        where = where or ("coordinator" if draw.integer(0, 9) < 6 else "broadcast" if draw.integer(0, 3) else "direct")
        if where == "coordinator":
            kind, value = inbox_forger.record(draw, kind)
            producer.produce(topic["coordinator"], value, b"intruder")
            inbox_undecodable += not _decodes(codec, value)
            inbox_not_addressed += kind == "not_addressed"
        elif where == "broadcast":
            kind, value = broadcast_forger.record(draw, kind or _participant_kind(draw))
            producer.produce(topic["broadcast"], value)
        else:
            address = addresses[draw.integer(0, PARTICIPANTS - 1)]
            kind, value = direct[address].record(draw, _participant_kind(draw))
            producer.produce(topic["direct"], value, address.encode())
        injected[f"{where}:{kind}"] += 1
        producer.poll(0)
    assert producer.flush(60) == 0
    assert sum(injected.values()) == total

    # Kill the coordinator outright with the flood in its inbox; restarted, it rebuilds itself from it.
    coordinator.send_signal(signal.SIGKILL)
    assert coordinator.wait(60) == -signal.SIGKILL
    assert metrics.read_text().count("\n") == evaluated, "the course went on without its paused participants"
    for p in participants:
        p.send_signal(signal.SIGCONT)
    coordinator = start(coordinator_cmd, tmp_path / "coordinator.log")
    codes = wait_until_all_exit([coordinator, *participants], "the course to finish")
    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    assert codes == [0] * (PARTICIPANTS + 1), (codes, {k: v[-3000:] for k, v in logs.items()})

    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets[:3]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]

    # Every record accounted for: the restarted coordinator re-handled the inbox up to its commit, then the rest.
    inbox_end = len(raw_records(kafka_bootstrap, topic["coordinator"]))
    intake = summary["intake"]
    assert summary["recovered_records"] + sum(intake.values()) == inbox_end
    assert intake["poison"] == 0
    dlq = raw_records(kafka_bootstrap, topic["dlq"])
    assert all(dict(m.headers()).get("fscope.reason") for m in dlq)
    by_worker = Counter(dict(m.headers())["fscope.worker"].decode() for m in dlq)
    reasons = " ".join(dict(m.headers())["fscope.reason"].decode() for m in dlq)
    for needle in ("would need", "70 dimensions", "malformed layout", "not a wire dtype", "does not fit",
                   "missing parameter", "non-finite", "another-course", "only 'coordinator' sends"):
        assert needle in reasons, needle
    for i, address in enumerate(addresses):
        (exit_line,) = [json.loads(line) for line in logs[f"participant-{i}.log"].splitlines()
                        if line.startswith("{") and '"event": "exiting"' in line]
        seen = exit_line["intake"]
        assert seen["poison"] == 0 and seen["undecodable"] > 0 and seen["rejected"] > 0
        assert seen["not_addressed"] > 0 and seen["replayed"] > 0
        assert by_worker[address] == exit_line["dead_lettered"] == (seen["undecodable"] + seen["rejected"]
                                                                    + seen["replayed"])

    replayed = tmp_path / "replayed"
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify", "--output", str(replayed)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout and "were not the coordinator's sends" in proc.stdout
    replay = json.loads((replayed / "summary.json").read_text())
    assert replay["model_sha256"] == standalone["model_sha256"]
    assert sum(replay["intake"].values()) == inbox_end and replay["intake"]["poison"] == 0
    assert replay["intake"]["undecodable"] == inbox_undecodable
    assert replay["intake"]["not_addressed"] == inbox_not_addressed
    to_inbox = sum(v for k, v in injected.items() if k.startswith("coordinator:"))
    print(f"\nhostile course: {total} records injected ({to_inbox} to the inbox); coordinator after restart "
          f"{intake} (+{summary['recovered_records']} recovered); replay {replay['intake']}; dead-letter records by "
          f"worker {dict(by_worker)}; model {summary['model_sha256']}")


def _participant_kind(draw: RngDraw) -> str:
    return PARTICIPANT_KINDS[draw.integer(0, len(PARTICIPANT_KINDS) - 1)]
