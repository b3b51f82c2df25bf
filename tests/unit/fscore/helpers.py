"""Small in-memory stand-ins for unit tests: an outbox that records what a worker sends."""

from __future__ import annotations

from fscore.message import Message
from fscore.worker import Outbox


class ListOutbox(Outbox):
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, message: Message) -> int:
        self.sent.append(message)
        return 0

    def of_type(self, type_name: str) -> list[Message]:
        return [m for m in self.sent if m.type == type_name]
