"""The Transport interface: moves bytes between topics, knows nothing of federated learning.

As with httpx's transports, the interface is small. The embedded in-process log and the Kafka
clients implement it and pass one conformance suite. Topics are append-only logs split into
partitions; a keyed record goes to the partition :func:`partition_for` picks, the same function
for every implementation, so a participant can read just its own partition of the direct topic.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    #: when the record was written, in seconds since the epoch (Kafka's record timestamp; 0.0 if unknown).
    #: A restarted coordinator resumes its wall-clock countdowns from it.
    timestamp: float = 0.0

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int = 1
    #: extra topic configs; course topics keep every record (replay needs them) and never compact
    config: Mapping[str, str] = field(default_factory=lambda: {"retention.ms": "-1", "cleanup.policy": "delete"})


def partition_for(key: bytes, partitions: int) -> int:
    """Deterministic partition of a key; both producers and readers use it."""
    return zlib.crc32(key) % partitions


class Consumer(ABC):
    """Reads records from a set of topics and remembers how far it has handled them."""

    @abstractmethod
    def poll(self, max_records: int = 500, timeout: float = 0.0) -> list[Record]:
        """Up to ``max_records`` records not yet returned, in log order per partition."""

    @abstractmethod
    def commit(self, record: Record) -> None:
        """Mark ``record`` and everything before it in its partition as fully handled."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; the default has none."""


class Lease(ABC):
    """Exclusive, liveness-tracked membership: at most one live holder per name (a course's coordinator).

    On Kafka it is a consumer group with one partition and a sticky assignor: the broker tracks its members'
    heartbeats, a live holder keeps the partition when another member joins, and a dead one loses it after
    the session timeout. So a second coordinator is refused while the first lives, and a restart after a
    crash takes over once the dead incarnation's session has expired.
    """

    @abstractmethod
    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds to hold the lease; False if another live member holds it."""

    @abstractmethod
    def held(self) -> bool:
        """Whether this member holds it now; call between polls, it also keeps the membership alive."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Leave at once, so a successor need not wait for the session to expire."""


class Transport(ABC):
    @abstractmethod
    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""

    @abstractmethod
    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Append one record; a keyed record goes to ``partition_for(key, partitions)``."""

    @abstractmethod
    def consumer(self, topics: Sequence[str], *, group: str, key: bytes | None = None,
                 start: Mapping[tuple[str, int], int] | None = None) -> Consumer:
        """A consumer resuming from ``group``'s committed offsets, or from ``start`` (topic, partition) -> offset.

        With ``key``, multi-partition topics are read only in that key's partition, and only
        records with that key are returned from them. ``start`` lets a reader begin mid-log: a restarted
        coordinator reads its inbox from its latest snapshot on, never the records before it.
        """

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> the offset the next record will get; readers of a finished course stop there."""

    def start_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> the offset of its earliest record still kept (after retention or DeleteRecords removed the
        ones before); a log that never deletes starts at 0."""
        return dict.fromkeys(self.end_offsets(topic), 0)

    @abstractmethod
    def committed(self, group: str, topic: str, partition: int) -> int:
        """The offset ``group`` resumes ``topic``/``partition`` from: 0 when it never committed."""

    def lease(self, group: str, topic: str) -> Lease:
        """The lease ``group`` over the one-partition ``topic``; transports without liveness tracking have none."""
        raise NotImplementedError(f"{type(self).__name__} has no leases")

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Block until published records are durable; the embedded log always is."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; the default has none."""
