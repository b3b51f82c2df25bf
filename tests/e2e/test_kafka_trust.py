"""Impersonation over a real broker: an attacker with write access to a signed course's inbox.

The coordinator and three participants run as service processes that sign every message. The
test writes, as the attacker: forged join-deadline and reply-deadline alarms, joins from a key
that is not admitted and from an outsider claiming an admitted address, updates that claim a
participant's address (unsigned, or signed with another key) and squat its next message id, a
record validly signed by a participant but for another course, an old signed update replayed in a
later round, and a copy with flipped signature bytes. Every one must land on the dead-letter
topic with its reason, the course must end with the model of a course without the attacker,
and replay must verify.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from fscore.config import load_config
from fscore.coordinator.alarms import AlarmKind, alarm_payload
from fscore.simulation.runner import run_standalone
from fscore.trust import Signer, derived_key, load_private
from fstranslation import Header, WireCodec
from tests.e2e.processes import BIN, raw_records, start, wait_for, wait_until_all_exit

PARTICIPANTS = 3
ROUNDS = 6


class Attacker:
    """Writes raw records to the course's inbox and remembers where each landed."""

    def __init__(self, bootstrap: str, course: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        self.course = course
        self.inbox = f"fscope.{course}.coordinator"
        self.codec = WireCodec()
        self.key = derived_key(7, "attacker")  # admitted nowhere
        self.landed: dict[str, str] = {}  # topic/partition/offset -> what it was

    def write(self, what: str, value: bytes, headers: tuple = (), key: bytes = b"attacker") -> None:
        def delivered(err, msg) -> None:
            assert err is None, err
            self.landed[f"{msg.topic()}/{msg.partition()}/{msg.offset()}"] = what

        self.producer.produce(self.inbox, value, key, headers=list(headers), on_delivery=delivered)
        assert self.producer.flush(30) == 0

    def forge(self, what: str, type_: str, sender: str, msg_id: str, round_: int, payload: dict, *,
              signer: Signer | None, course: str | None = None) -> None:
        header = Header(msg_id, course or self.course, type_, sender, ("coordinator",), round_, 0.0)
        value = self.codec.encode(header, payload)
        self.write(what, value, signer.headers(value) if signer is not None else (), sender.encode())


def _headers(record) -> dict[str, bytes]:
    return dict(record.headers() or [])


def _inbox(bootstrap: str, codec: WireCodec, topic: str) -> list[tuple[Header, object]]:
    out = []
    for r in raw_records(bootstrap, topic):
        try:
            out.append((codec.decode_header(r.value())[0], r))
        except Exception:  # noqa: BLE001 - the attacker's own garbage is skipped
            continue
    return out


def test_every_impersonation_over_kafka_is_dead_lettered_and_none_changes_the_model(tmp_path, kafka_bootstrap,
                                                                                   course_keys):
    from tests.conftest import ROOT

    config_path = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-trust-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", f"rounds={ROUNDS}", f"participants={PARTICIPANTS}", "trainer.local_epochs=1",
            "joining.timeout_s=600", "strategy.reply_timeout_s=600", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp_path / "coordinator"
    logs = tmp_path / "logs"
    logs.mkdir()
    coordinator = start([str(BIN / "fscope-coordinator"), "serve", str(config_path), *flags, "--output", str(out)],
                        logs / "coordinator.log")
    watch = [(coordinator, logs / "coordinator.log")]
    attacker = Attacker(kafka_bootstrap, course)
    codec = attacker.codec
    meta = f"fscope.{course}.meta"
    wait_for(lambda: _meta_ready(kafka_bootstrap, meta), "the course manifest", watch=watch)
    (started,) = [h for h, _ in _inbox(kafka_bootstrap, codec, meta) if h.type == "coordinator_started"]
    live = started.id.split("/")[1]
    keys = Path(course_keys)
    p1 = Signer(load_private(keys / "participant-00001.key"))
    outsider = Signer(attacker.key)

    # Before anyone joined: forged join deadlines would start the course with whoever joined first.
    join_deadline = alarm_payload(AlarmKind.JOIN, 0, 0.0)
    attacker.forge("unsigned join alarm", "alarm", "coordinator", f"coordinator/{live}/900", 0, join_deadline,
                   signer=None)
    attacker.forge("outsider's join alarm", "alarm", "coordinator", f"coordinator/{live}/901", 0, join_deadline,
                   signer=outsider)
    join = {"address": "intruder", "num_train_samples": 100, "num_test_samples": 10, "backend": "torch", "layout": []}
    attacker.forge("join from a key not admitted", "join_in", "intruder", "intruder/x/1", 0, join, signer=outsider)
    attacker.forge("join claiming participant-00002", "join_in", "participant-00002", "participant-00002/x/1", 0,
                   {**join, "address": "participant-00002"}, signer=outsider)

    participants = [start([str(BIN / "fscope-participant"), "serve", str(config_path), *flags, "--index", str(i)],
                          logs / f"participant-{i}.log") for i in range(PARTICIPANTS)]
    watch += [(p, logs / f"participant-{i}.log") for i, p in enumerate(participants)]
    inbox = f"fscope.{course}.coordinator"

    # Squat each participant's next message id with updates that claim its address.
    wait_for(lambda: len(_joins(kafka_bootstrap, codec, inbox)) == PARTICIPANTS, "three joins", watch=watch)
    broadcast = f"fscope.{course}.broadcast"
    wait_for(lambda: any(h.type == "model_parameters" for h, _ in _inbox(kafka_bootstrap, codec, broadcast)),
             "the first broadcast", watch=watch)
    model = next(codec.decode(r.value())[1] for h, r in _inbox(kafka_bootstrap, codec, broadcast)
                 if h.type == "model_parameters")
    poisoned = {"num_samples": 10_000, "base_round": 0, "train_metrics": {},
                "tensors": {k: np.full_like(v, 50.0) for k, v in model["tensors"].items()}}
    for h in _joins(kafka_bootstrap, codec, inbox):
        stream, n = h.id.rsplit("/", 1)
        squat = f"{stream}/{int(n) + 1}"
        attacker.forge(f"unsigned update squatting {squat}", "model_update", h.sender, squat, 0, poisoned, signer=None)
        attacker.forge(f"outsider's update squatting {squat}", "model_update", h.sender, squat, 0, poisoned,
                       signer=outsider)
    attacker.forge("update claiming participant-00000, signed with participant-00001's key", "model_update",
                   "participant-00000", "participant-00000/x/7", 0, poisoned, signer=p1)

    # Later: old signed messages replayed, flipped signatures, another course, a forged reply deadline.
    metrics = out / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 3, "three evaluations", watch=watch)
    (old,) = [r for h, r in _inbox(kafka_bootstrap, codec, inbox)  # the real one: not written by the attacker
              if (h.type, h.round, h.sender) == ("model_update", 0, "participant-00001")
              and f"{r.topic()}/{r.partition()}/{r.offset()}" not in attacker.landed]
    attacker.write("round-0 update of participant-00001 replayed", old.value(), tuple(old.headers()), old.key())
    sig = _headers(old)["fscope.sig"]
    flipped = tuple((k, bytes([sig[0] ^ 0x80]) + sig[1:] if k == "fscope.sig" else v) for k, v in old.headers())
    attacker.write("flipped signature bytes", old.value(), flipped, old.key())
    attacker.forge("signed by participant-00001, for another course", "model_update", "participant-00001",
                   "participant-00001/x/9", 3, poisoned, signer=p1, course="another-course")
    attacker.forge("outsider's reply deadline", "alarm", "coordinator", f"coordinator/{live}/902", 3,
                   alarm_payload(AlarmKind.REPLY, 3, 0.0), signer=outsider)

    codes = wait_until_all_exit([coordinator, *participants], "the course to finish")
    texts = {p.name: p.read_text(errors="replace")[-3000:] for p in logs.glob("*.log")}
    assert codes == [0] * (PARTICIPANTS + 1), (codes, texts)

    # 100 % dead-lettered, each with its reason; nothing else was.
    dlq = raw_records(kafka_bootstrap, f"fscope.{course}.dlq")
    by_source = {_headers(m)["fscope.source"].decode(): _headers(m)["fscope.reason"].decode() for m in dlq}
    assert set(by_source) == set(attacker.landed), (sorted(by_source), attacker.landed)
    reasons = {attacker.landed[s]: r for s, r in by_source.items()}
    for what, needle in [("unsigned join alarm", "is unsigned"),
                         ("outsider's join alarm", "signature does not verify under 'coordinator''s key"),
                         ("join from a key not admitted", "'intruder' is not admitted to this course"),
                         ("join claiming participant-00002", "signature does not verify under 'participant-00002'"),
                         ("update claiming participant-00000, signed with participant-00001's key",
                          "signed with the key admitted for 'participant-00001'"),
                         ("round-0 update of participant-00001 replayed", "is a copy of a message already handled"),
                         ("flipped signature bytes", "signature does not verify"),
                         ("signed by participant-00001, for another course", "is for course 'another-course'"),
                         ("outsider's reply deadline", "signature does not verify under 'coordinator''s key")]:
        assert needle in reasons[what], (what, reasons[what])
    assert sum("squatting" in w for w in reasons) == 2 * PARTICIPANTS
    summary = json.loads((out / "summary.json").read_text())
    assert summary["intake"]["unauthenticated"] == len(attacker.landed) - 2
    assert summary["intake"]["replayed"] == 1 and summary["intake"]["rejected"] == 1

    # None changed the model: it is the model of the same course without the attacker.
    standalone = run_standalone(load_config(config_path, sets[:6]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["rounds"] == ROUNDS

    replayed = tmp_path / "replayed"
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify", "--output", str(replayed)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    replay = json.loads((replayed / "summary.json").read_text())
    assert replay["model_sha256"] == standalone["model_sha256"]
    assert replay["intake"] == summary["intake"]
    assert len(replay["refused"]) == len(attacker.landed)
    print(f"\ntrust course: {len(attacker.landed)} impersonations written, all dead-lettered "
          f"({summary['intake']}); model sha256 {summary['model_sha256'][:16]} as without the attacker")


def _meta_ready(bootstrap: str, topic: str) -> bool:
    try:
        return len(raw_records(bootstrap, topic)) >= 2  # the manifest and the incarnation's start record
    except Exception:  # noqa: BLE001 - the topic does not exist yet
        return False


def _joins(bootstrap: str, codec: WireCodec, topic: str) -> list[Header]:
    return [h for h, r in _inbox(bootstrap, codec, topic)
            if h.type == "join_in" and h.sender.startswith("participant-") and "/x/" not in h.id
            and _headers(r).get("fscope.sig")]

