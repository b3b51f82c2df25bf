"""Chunking without a broker: the chunks a record is cut into reassemble intact, the last chunk carries the digest
of the whole value (each side hashes chunk by chunk), and a corrupted or reordered chunk is refused."""

from __future__ import annotations

import hashlib
import os

import pytest

from fscore.transport.base import Record
from fscore.transport.chunking import CHUNK_HEADER, ChunkError, Reassembler, split


def _records(value: bytes, max_bytes: int) -> list[Record]:
    return [Record("t", 0, offset, b"k", bytes(chunk), headers)
            for offset, (chunk, headers) in enumerate(split(value, [("kind", b"model")], max_bytes))]


def test_a_chunked_record_reassembles_intact_and_only_its_last_chunk_carries_the_digest():
    value = os.urandom(10 * 1000 + 7)
    records = _records(value, 1000)
    assert len(records) == 11
    markers = [r.header(CHUNK_HEADER).decode().split(":") for r in records]
    assert [m[3] for m in markers[:-1]] == [""] * 10 and markers[-1][3] == hashlib.sha256(value).hexdigest()
    reassembler = Reassembler()
    out = [reassembler.add(r) for r in records]
    assert out[:-1] == [None] * 10
    assert out[-1].value == value and out[-1].offset == 10 and out[-1].headers == (("kind", b"model"),)


def test_a_small_record_is_not_chunked():
    assert list(split(b"abc", [], 1000)) == [(b"abc", ())]


def test_a_corrupted_chunk_fails_the_digest_and_a_missing_first_chunk_is_refused():
    value = os.urandom(3000)
    records = _records(value, 1000)
    bad = Record("t", 0, 1, b"k", b"x" * 1000, records[1].headers)
    reassembler = Reassembler()
    reassembler.add(records[0])
    reassembler.add(bad)
    with pytest.raises(ChunkError, match="sha256"):
        reassembler.add(records[2])
    with pytest.raises(ChunkError, match="without its first chunk"):
        Reassembler().add(records[1])
