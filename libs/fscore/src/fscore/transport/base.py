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


class Transport(ABC):
    @abstractmethod
    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""

    @abstractmethod
    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Append one record; a keyed record goes to ``partition_for(key, partitions)``."""

    @abstractmethod
    def consumer(self, topics: Sequence[str], *, group: str, key: bytes | None = None) -> Consumer:
        """A consumer resuming from ``group``'s committed offsets.

        With ``key``, multi-partition topics are read only in that key's partition, and only
        records with that key are returned from them.
        """

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> the offset the next record will get; readers of a finished course stop there."""

    @abstractmethod
    def committed(self, group: str, topic: str, partition: int) -> int:
        """The offset ``group`` resumes ``topic``/``partition`` from: 0 when it never committed."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Block until published records are durable; the embedded log always is."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; the default has none."""
