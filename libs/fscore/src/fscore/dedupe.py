"""Duplicate suppression that a forger cannot poison and a long course cannot grow without end.

A worker remembers a message id only once it has *accepted* the message, and only under the sender
that the id belongs to (ids are ``<sender>/<incarnation>/<n>``, checked against the envelope's
sender, which a signed course has verified). So a rejected or forged record never shadows the real
message that later carries the same id.

Where the accepted copy was read from is remembered with it. The same record read again (a
redelivery after a rebalance, or a re-fed log) is a harmless duplicate; a copy of the message at
another place in the log was written again by someone, since both producers are idempotent: it is
a replay, dead-lettered with the place of the original.

The memory is bounded: past ``capacity`` ids, the oldest are forgotten, and for each sender
incarnation the highest forgotten counter is kept. An id at or below it is taken as a replay too:
a message that old cannot be told from a copy, and a real one is never that late.
"""

from __future__ import annotations

from collections import OrderedDict

#: ids remembered per worker; a course's senders would need this many messages in flight to be affected
DEFAULT_CAPACITY = 100_000


class SeenIds:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._where: OrderedDict[str, str] = OrderedDict()  # id -> where it was read from ("" when unknown)
        self._floors: dict[str, int] = {}  # "<sender>/<incarnation>" -> the highest counter forgotten

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._where

    def ids(self) -> set[str]:
        return set(self._where)

    def lookup(self, message_id: str) -> str | None:
        """Where the accepted message with ``message_id`` was read from ("" if unknown); None if never accepted.

        An id older than what is remembered returns ``"forgotten"``.
        """
        where = self._where.get(message_id)
        if where is not None:
            return where
        stream, counter = _split(message_id)
        if counter is not None and counter <= self._floors.get(stream, -1):
            return FORGOTTEN
        return None

    def add(self, message_id: str, where: str = "") -> None:
        self._where[message_id] = where
        while len(self._where) > self.capacity:
            old, _ = self._where.popitem(last=False)
            stream, counter = _split(old)
            if counter is not None and counter > self._floors.get(stream, -1):
                self._floors[stream] = counter


FORGOTTEN = "forgotten"


def _split(message_id: str) -> tuple[str, int | None]:
    stream, _, counter = message_id.rpartition("/")
    return stream, int(counter) if counter.isdigit() else None
