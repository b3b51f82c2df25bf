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
    return run_standalone(config, progress=False)


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
    where = f"record fscope.replayed.broadcast/0/{offset} cannot be decoded"
    assert any(m.startswith(where) for m in report.mismatches)
    assert any("evaluate of round 1 to participant-00000, participant-00001, participant-00002, which the log "
               "does not record" in m for m in report.mismatches)


def test_a_model_sent_twice_after_a_restart_verifies_but_a_different_second_one_fails(course):
    broadcast = course.log._partitions["fscope.replayed.broadcast"][0]
    offset = broadcast_offset(course, "model_parameters", 1)
    original = list(broadcast)
    try:
        course.log.publish("fscope.replayed.broadcast", broadcast[offset].value)  # what a restarted coordinator does
        report = replay_course(course.log, "replayed")
        assert report.verified, report.mismatches
        assert report.resent == [f"fscope.replayed.broadcast/0/{len(original)}"]
        value = broadcast[offset].value
        course.log.publish("fscope.replayed.broadcast", value[:-10] + bytes([value[-10] ^ 1]) + value[-9:])
        report = replay_course(course.log, "replayed")
        assert not report.verified
        assert report.mismatches == [f"record fscope.replayed.broadcast/0/{len(original) + 1}: a second "
                                     f"model_parameters of round 1 to participant-00000, participant-00001, "
                                     f"participant-00002 with another model than the first "
                                     f"(fscope.replayed.broadcast/0/{offset})"]
    finally:
        broadcast[:] = original
