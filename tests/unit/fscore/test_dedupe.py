"""Duplicate suppression: only accepted ids are remembered, under their sender, within a bound."""

from __future__ import annotations

import pytest

from fscore.dedupe import FORGOTTEN, SeenIds
from fscore.errors import RejectedMessage, ReplayedMessage
from fscore.message import Message, MessageCatalog
from tests.unit.fscore.helpers import ListOutbox
from tests.unit.fscore.test_events import Echo


def test_the_memory_is_bounded_and_an_id_older_than_it_is_taken_as_a_replay():
    seen = SeenIds(capacity=100)
    for n in range(1, 10_001):
        seen.add(f"p0/a/{n}", f"t/0/{n}")
    assert len(seen) == 100
    assert seen.lookup("p0/a/10000") == "t/0/10000"
    assert seen.lookup("p0/a/5") == FORGOTTEN  # forgotten, but not mistaken for new
    assert seen.lookup("p0/b/5") is None and seen.lookup("p1/a/5") is None  # other streams are unaffected
    with pytest.raises(ValueError):
        SeenIds(0)


def _join(msg_id: str, sender: str = "p") -> Message:
    return Message("join_in", ("coordinator",), 0, {"address": sender}, sender=sender, id=msg_id, course="c")


def test_a_refused_or_foreign_id_never_shadows_the_real_message():
    worker = Echo("coordinator", "c", MessageCatalog(), ListOutbox())
    with pytest.raises(RejectedMessage, match="the id is not one of 'intruder''s"):
        worker.handle(_join("p/0/1", sender="intruder"))  # squats p's next id under another sender
    assert worker.handle(_join("p/0/1"), "t/0/1")  # the real one is handled
    assert not worker.handle(_join("p/0/1"), "t/0/1")  # the same record again: a harmless duplicate
    with pytest.raises(ReplayedMessage, match=r"is a copy of a message already handled \(read from t/0/1\), "
                                              "replayed at t/0/7"):
        worker.handle(_join("p/0/1"), "t/0/7")
