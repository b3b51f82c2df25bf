"""A signed standalone course: same model as an unsigned one, replay verifies the signatures it recorded,
and a record altered after the run is named."""

from __future__ import annotations

import dataclasses

import pytest

from fscore.config import load_config
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone
from fscore.trust import SIGNATURE_HEADER
from tests.conftest import ROOT

SETS = ["participants=3", "rounds=2", "trainer.local_epochs=1", "course_id=signed"]


@pytest.fixture(scope="module")
def signed():
    return run_standalone(load_config(ROOT / "examples" / "digits_fedavg.yaml", [*SETS, "trust.signing=true"]),
                          progress=False)


def test_signing_changes_no_model_and_every_record_verifies(signed):
    plain = run_standalone(load_config(ROOT / "examples" / "digits_fedavg.yaml", SETS), progress=False)
    assert signed.summary["model_sha256"] == plain.summary["model_sha256"]
    assert signed.summary["dead_lettered"] == 0
    inbox = list(signed.log.read("fscope.signed.coordinator"))
    assert inbox and all(r.header(SIGNATURE_HEADER) for r in inbox)
    assert all(r.header(SIGNATURE_HEADER) for r in signed.log.read("fscope.signed.broadcast"))
    report = replay_course(signed.log, "signed")
    assert report.verified and report.refused == [], (report.mismatches, report.refused)
    assert report.final_sha256 == signed.summary["model_sha256"]


def test_replay_names_a_record_altered_after_the_run(signed):
    inbox = signed.log._partitions["fscope.signed.coordinator"][0]
    codec = signed.coordinator.catalog.codec
    offset = next(r.offset for r in inbox if codec.decode_header(r.value)[0].type == "model_update")
    original = inbox[offset]
    value = original.value
    inbox[offset] = dataclasses.replace(original, value=value[:-4] + bytes([value[-4] ^ 0x10]) + value[-3:])
    try:
        report = replay_course(signed.log, "signed")
    finally:
        inbox[offset] = original
    assert not report.verified
    assert report.refused[0].startswith(f"fscope.signed.coordinator/0/{offset} (unauthenticated): model_update from")
    assert "its signature does not verify" in report.refused[0]


def test_replay_names_a_model_record_altered_on_the_broadcast_topic(signed):
    records = signed.log._partitions["fscope.signed.broadcast"][0]
    original = records[0]
    records[0] = dataclasses.replace(original, headers=((SIGNATURE_HEADER, b"\x00" * 64),
                                                        *original.headers[1:]))
    try:
        report = replay_course(signed.log, "signed")
    finally:
        records[0] = original
    assert any(m.startswith("record fscope.signed.broadcast/0/0: model_parameters from 'coordinator'")
               and "does not verify" in m for m in report.mismatches), report.mismatches
