"""Records larger than the broker's message limit travel as chunks and are reassembled intact.

Every chunk of a record carries the same key (so all land in one partition, in order) and a
header ``fscope.chunk`` = ``<group id>:<index>:<count>:<sha256 of the whole value>``; the digest is
checked against the last chunk's header, so only the last chunk needs it and the others leave it
empty. Both sides hash chunk by chunk (the writer as it produces, the reader as chunks arrive), so
hashing a 100 MB model overlaps with the client's network threads instead of adding a pass before
and after them. The reassembler returns the whole record once its last chunk arrives, after checking
the sha256, and reports the offset of the earliest chunk still incomplete, so commits never pass a
partial record.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fscore.transport.base import Record

CHUNK_HEADER = "fscope.chunk"


def split(value: bytes, headers: Sequence[tuple[str, bytes]], max_bytes: int
          ) -> Iterator[tuple[bytes | memoryview, tuple[tuple[str, bytes], ...]]]:
    """The records to produce for ``value``, in order: itself, or its chunks with their headers. Lazily: each
    chunk is hashed as it is asked for, and the last one carries the digest of them all."""
    if len(value) <= max_bytes:
        yield value, tuple(headers)
        return
    hasher = hashlib.sha256()
    group = uuid.uuid4().hex
    view = memoryview(value)
    count = -(-len(value) // max_bytes)
    for i in range(count):
        chunk = view[i * max_bytes:(i + 1) * max_bytes]
        hasher.update(chunk)
        digest = hasher.hexdigest() if i + 1 == count else ""
        yield chunk, (*headers, (CHUNK_HEADER, f"{group}:{i}:{count}:{digest}".encode()))


@dataclass
class _Pending:
    first_offset: int
    parts: list[bytes] = field(default_factory=list)
    hasher: Any = field(default_factory=hashlib.sha256)


class ChunkError(Exception):
    def __init__(self, message: str, record: Record) -> None:
        super().__init__(message)
        self.record = record


class Reassembler:
    def __init__(self) -> None:
        self._pending: dict[tuple[str, int, str], _Pending] = {}

    def add(self, record: Record) -> Record | None:
        """The whole record when ``record`` completes one (or is not a chunk); otherwise None.

        Raises :class:`ChunkError` for a chunk out of order or a checksum mismatch; the partial
        record is dropped so the consumer can dead-letter the last chunk and go on.
        """
        marker = record.header(CHUNK_HEADER)
        if marker is None:
            return record
        group, index_s, count_s, digest = marker.decode().split(":")
        index, count = int(index_s), int(count_s)
        slot = (record.topic, record.partition, group)
        pending = self._pending.get(slot)
        if pending is None:
            if index != 0:
                raise ChunkError(f"chunk {index}/{count} of {group} arrived without its first chunk", record)
            pending = self._pending[slot] = _Pending(record.offset)
        if index != len(pending.parts):
            del self._pending[slot]
            raise ChunkError(f"chunk {index}/{count} of {group} arrived after {len(pending.parts)} chunks", record)
        pending.parts.append(record.value)
        pending.hasher.update(record.value)
        if index + 1 < count:
            return None
        del self._pending[slot]
        if pending.hasher.hexdigest() != digest:
            raise ChunkError(f"reassembled record {group} fails its sha256 check", record)
        headers = tuple(h for h in record.headers if h[0] != CHUNK_HEADER)
        return Record(record.topic, record.partition, record.offset, record.key, b"".join(pending.parts), headers,
                      record.timestamp)

    def safe_commit_offset(self, topic: str, partition: int, offset: int) -> int:
        """The offset it is safe to commit after handling a record at ``offset - 1``."""
        firsts = [p.first_offset for (t, pa, _), p in self._pending.items() if t == topic and pa == partition]
        return min([offset, *firsts])
