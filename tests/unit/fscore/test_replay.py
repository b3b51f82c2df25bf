"""Replay on the embedded log: a standalone course is verifiable exactly like a deployed one."""

from __future__ import annotations

import dataclasses

import pytest

from fscore.config import load_config
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone


@pytest.fixture(scope="module")
def course():
    from tests.conftest import ROOT

    config = load_config(ROOT / "examples" / "digits_fedavg.yaml",
                         ["participants=3", "rounds=3", "trainer.local_epochs=1", "course_id=replayed"])
    result = run_standalone(config, progress=False)
    result.config = config
    return result


def tamper(log, topic: str, offset: int, change) -> None:
    records = log._partitions[topic][0]
    records[offset] = dataclasses.replace(records[offset], value=change(records[offset].value))


def broadcast_offset(course, type_: str, round_: int) -> int:
    codec = course.coordinator.catalog.codec
    for record in course.log.read("fscope.replayed.broadcast"):
        header = codec.decode_header(record.value)[0]
        if (header.type, header.round) == (type_, round_):
            return record.offset
    raise AssertionError(f"no {type_} of round {round_}")


def test_a_standalone_course_replays_verifies_and_rebuilds_its_metrics(course, tmp_path):
    report = replay_course(course.log, "replayed", output_dir=tmp_path)
    assert report.verified, report.mismatches
    assert report.checked == 3 + 3 + 1  # model_parameters and evaluate per round, and finish
    assert report.final_sha256 == course.summary["model_sha256"]
    assert [row["round"] for row in report.history] == [row["round"] for row in course.history]
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 3


def test_a_tampered_model_fails_verification_naming_the_record(course):
    offset = broadcast_offset(course, "model_parameters", 2)
    original = course.log._partitions["fscope.replayed.broadcast"][0][offset].value
    tamper(course.log, "fscope.replayed.broadcast", offset, lambda v: v[:-10] + bytes([v[-10] ^ 1]) + v[-9:])
    try:
        report = replay_course(course.log, "replayed")
    finally:
        tamper(course.log, "fscope.replayed.broadcast", offset, lambda _: original)
    assert not report.verified
    assert len(report.mismatches) == 1
    assert report.mismatches[0].startswith(f"record fscope.replayed.broadcast/0/{offset} (model_parameters, round 2)")


def test_an_undecodable_recorded_model_fails_verification_naming_the_record(course):
    offset = broadcast_offset(course, "evaluate", 1)
    original = course.log._partitions["fscope.replayed.broadcast"][0][offset].value
    tamper(course.log, "fscope.replayed.broadcast", offset, lambda v: v[:40])
    try:
        report = replay_course(course.log, "replayed")
    finally:
        tamper(course.log, "fscope.replayed.broadcast", offset, lambda _: original)
    assert not report.verified
    where = f"record fscope.replayed.broadcast/0/{offset} is not an fscope record"
    assert any(m.startswith(where) for m in report.ignored)
    assert any("evaluate of round 1 to participant-00000, participant-00001, participant-00002, which the log "
               "does not record" in m for m in report.mismatches)


def resend(course, value: bytes, incarnation: str, seq: int) -> bytes:
    """``value`` as a restarted coordinator sends it again: the same message under its own incarnation's id."""
    codec = course.coordinator.catalog.codec
    header, payload = codec.decode(value)
    return codec.encode(dataclasses.replace(header, id=f"coordinator/{incarnation}/{seq}"), payload)


def test_a_model_sent_twice_after_a_restart_verifies_but_a_different_second_one_fails(course):
    from fscore.courselog import publish_started
    from fscore.topics import CourseTopics

    broadcast = course.log._partitions["fscope.replayed.broadcast"][0]
    meta = course.log._partitions["fscope.replayed.meta"][0]
    offset = broadcast_offset(course, "model_parameters", 1)
    original, original_meta = list(broadcast), list(meta)
    try:
        publish_started(course.log, CourseTopics("fscope", "replayed"), course.coordinator.catalog,
                        course.config, "restarted")
        course.log.publish("fscope.replayed.broadcast", resend(course, broadcast[offset].value, "restarted", 1))
        course.log.publish("fscope.replayed.broadcast", broadcast[offset].value)  # an exact copy: not a re-send
        report = replay_course(course.log, "replayed")
        assert report.verified, report.mismatches
        assert report.resent == [f"fscope.replayed.broadcast/0/{len(original)}"]
        copied = course.coordinator.catalog.codec.decode_header(broadcast[offset].value)[0].id
        assert report.ignored == [f"record fscope.replayed.broadcast/0/{len(original) + 1}: a copy of {copied}, "
                                  "already read"]
        value = resend(course, broadcast[offset].value, "restarted", 2)
        course.log.publish("fscope.replayed.broadcast", value[:-10] + bytes([value[-10] ^ 1]) + value[-9:])
        report = replay_course(course.log, "replayed")
        assert not report.verified
        assert report.mismatches == [f"record fscope.replayed.broadcast/0/{len(original) + 2}: a second "
                                     f"model_parameters of round 1 to participant-00000, participant-00001, "
                                     f"participant-00002 with another model than the first "
                                     f"(fscope.replayed.broadcast/0/{offset})"]
        forged = resend(course, broadcast[offset].value, "an-unknown-incarnation", 3)
        broadcast[len(original) + 2:] = []
        course.log.publish("fscope.replayed.broadcast", forged[:-10] + bytes([forged[-10] ^ 1]) + forged[-9:])
        report = replay_course(course.log, "replayed")
        assert report.verified, report.mismatches  # not a send of any incarnation of the course's coordinator
        assert "no incarnation of this course's coordinator sent" in report.ignored[-1]
    finally:
        broadcast[:] = original
        meta[:] = original_meta
