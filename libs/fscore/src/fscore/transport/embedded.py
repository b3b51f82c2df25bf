"""The embedded log: Kafka's semantics (topics, partitions, offsets, committed positions) in-process.

It is the default transport of standalone simulation. Records hold the real Avro bytes, so a
simulated course exercises the wire format, and the whole log can be read again for replay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

from fscore.errors import TransportError
from fscore.transport.base import Consumer, Record, TopicSpec, Transport, partition_for


class EmbeddedLog(Transport):
    def __init__(self) -> None:
        self._partitions: dict[str, list[list[Record]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        for spec in specs:
            if spec.partitions < 1:
                raise TransportError(f"topic {spec.name!r} needs at least one partition")
            self._partitions.setdefault(spec.name, [[] for _ in range(spec.partitions)])

    def topics(self) -> list[str]:
        return sorted(self._partitions)

    def _topic(self, topic: str) -> list[list[Record]]:
        try:
            return self._partitions[topic]
        except KeyError:
            raise TransportError(f"topic {topic!r} does not exist; known topics: {self.topics()}") from None

    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        parts = self._topic(topic)
        p = partition_for(key, len(parts)) if key is not None else 0
        log = parts[p]
        log.append(Record(topic, p, len(log), key, bytes(value), tuple(headers), time.time()))

    def consumer(self, topics: Sequence[str], *, group: str, key: bytes | None = None,
                 start: Mapping[tuple[str, int], int] | None = None) -> EmbeddedConsumer:
        return EmbeddedConsumer(self, list(topics), group, key, start or {})

    def read(self, topic: str, partition: int = 0, start: int = 0) -> Iterator[Record]:
        """Every record of one partition from ``start``: what replay reads."""
        yield from self._topic(topic)[partition][start:]

    def end_offset(self, topic: str, partition: int = 0) -> int:
        return len(self._topic(topic)[partition])

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: len(records) for p, records in enumerate(self._topic(topic))}

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self._committed.get((group, topic, partition), 0)

    def _commit(self, group: str, record: Record) -> None:
        slot = (group, record.topic, record.partition)
        self._committed[slot] = max(self._committed.get(slot, 0), record.offset + 1)


class EmbeddedConsumer(Consumer):
    def __init__(self, log: EmbeddedLog, topics: list[str], group: str, key: bytes | None,
                 start: Mapping[tuple[str, int], int]) -> None:
        self._log = log
        self._group = group
        self._key = key
        self._positions: dict[tuple[str, int], int] = {}
        for topic in topics:
            parts = log._topic(topic)
            chosen = [partition_for(key, len(parts))] if key is not None and len(parts) > 1 else range(len(parts))
            for p in chosen:
                self._positions[(topic, p)] = start.get((topic, p), log.committed(group, topic, p))

    def poll(self, max_records: int = 500, timeout: float = 0.0) -> list[Record]:
        out: list[Record] = []
        for (topic, p), pos in self._positions.items():
            parts = self._log._partitions[topic]
            log = parts[p]
            if pos >= len(log):
                continue
            take = log[pos:pos + max_records - len(out)]
            self._positions[(topic, p)] = pos + len(take)
            if self._key is not None and len(parts) > 1:
                take = [r for r in take if r.key == self._key]
            out.extend(take)
            if len(out) >= max_records:
                break
        return out

    def commit(self, record: Record) -> None:
        self._log._commit(self._group, record)
