"""Small in-memory stand-ins for unit tests: an outbox that records what a worker sends."""

from __future__ import annotations

from fscore.courselog import Capture
from fscore.message import Message


class ListOutbox(Capture):
    def of_type(self, type_name: str) -> list[Message]:
        return [m for m in self.sent if m.type == type_name]
