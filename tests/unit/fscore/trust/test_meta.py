"""The meta topic's keys: only the first manifest counts, a signed course takes only records its coordinator
signed, and malformed keys are skipped rather than crashed on; a record cannot name its own dead-letter reason."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.communicator import Communicator
from fscore.config import load_config
from fscore.courselog import coordinator_keys, course_finished, publish_finished, publish_manifest, publish_started
from fscore.message import COORDINATOR, COORDINATOR_STARTED, MessageCatalog
from fscore.secagg import FixedPoint
from fscore.topics import CourseTopics
from fscore.transport import EmbeddedLog
from fscore.transport.base import Record
from fscore.trust import derived_key
from fscore.trust.keys import raw_public
from fscore.trust.setup import coordinator_trust
from fstranslation import Header
from tests.conftest import ROOT


def _course(signing: bool):
    config = load_config(ROOT / "examples" / "digits_fedavg.yaml",
                         ["participants=2", "course_id=meta", f"trust.signing={str(signing).lower()}"])
    log, topics, catalog = EmbeddedLog(), CourseTopics("fscope", "meta"), MessageCatalog()
    log.ensure_topics(topics.specs())
    trust = coordinator_trust(config, ["participant-00000", "participant-00001"], "real", service=False)
    publish_manifest(log, topics, catalog, config, "real", trust)
    return config, log, topics, catalog, trust


def _forge_started(log, topics, catalog, incarnation: str, public_key: bytes | None) -> None:
    header = Header(f"{COORDINATOR}/{incarnation}/started", "meta", COORDINATOR_STARTED, COORDINATOR, (), 0, 0.0)
    log.publish(topics.meta, catalog.codec.encode(header, {"incarnation": incarnation, "config_hash": "x",
                                                           "public_key": public_key}))


@pytest.mark.parametrize("signing", [True, False])
def test_only_the_first_manifest_counts_and_a_later_one_adds_no_keys(signing):
    config, log, topics, catalog, trust = _course(signing)
    other = coordinator_trust(config.model_copy(update={"seed": 99}), [], "forged", service=False)
    publish_manifest(log, topics, catalog, config, "forged", other)  # a second manifest, another coordinator's keys
    keys, admitted = coordinator_keys(log, topics, catalog)
    assert set(keys) == {"real"} and raw_public(keys["real"]) == raw_public(trust.public_key)
    assert admitted == (trust.ring.lines() if signing else [])


def test_a_signed_course_takes_no_start_record_its_coordinator_did_not_sign_and_skips_bad_keys():
    _, log, topics, catalog, _ = _course(True)
    _forge_started(log, topics, catalog, "keyless", None)
    _forge_started(log, topics, catalog, "outsider", raw_public(derived_key(5, "x").public_key()))
    _forge_started(log, topics, catalog, "short", b"\x01" * 7)
    keys, _ = coordinator_keys(log, topics, catalog)
    assert set(keys) == {"real"}


def test_an_unsigned_course_skips_a_malformed_key_instead_of_crashing():
    _, log, topics, catalog, _ = _course(False)
    _forge_started(log, topics, catalog, "short", b"\x01" * 7)
    assert set(coordinator_keys(log, topics, catalog)[0]) == {"real"}


def test_a_signed_course_takes_only_the_finish_record_its_coordinator_signed():
    config, log, topics, catalog, trust = _course(True)
    publish_finished(log, topics, catalog, "meta", "forged", 1, "0" * 64)  # unsigned
    assert course_finished(log, topics, catalog, trust.verifier) is None
    publish_finished(log, topics, catalog, "meta", "max_rounds_reached", 30, "1" * 64, trust)
    assert course_finished(log, topics, catalog, trust.verifier)["reason"] == "max_rounds_reached"
    publish_started(log, topics, catalog, config, "second", trust)
    assert set(coordinator_keys(log, topics, catalog)[0]) == {"real", "second"}


def test_a_dead_lettered_record_cannot_name_its_own_reason():
    log, topics, catalog = EmbeddedLog(), CourseTopics("fscope", "c"), MessageCatalog()
    log.ensure_topics(topics.specs())
    comm = Communicator(log, topics, catalog, COORDINATOR)
    comm.dead_letter(Record("t", 0, 3, None, b"x", (("fscope.reason", b"all fine"), ("fscope.sig", b"s"))), "real")
    (dead,) = log.read(topics.dlq)
    assert dead.header("fscope.reason") == b"real" and dead.header("fscope.sig") == b"s"


def test_secure_aggregation_refuses_a_value_that_is_not_finite():
    with pytest.raises(ValueError, match="NaN or infinite"):
        FixedPoint(1.0, 16, 2).encode(np.array([0.5, np.nan]))
