"""Hostile records for a course's topics: what a careless or malicious producer can put there.

A :class:`Forger` makes one record at a time from a :class:`Draw`, so hypothesis drives it in the
unit tests (:class:`HypothesisDraw`) and a seeded numpy generator drives thousands of them into a
course over a real broker (:class:`RngDraw`). Its raw material is the course's own records
(``templates``): it truncates them, flips their bits, copies them, and forges messages of their
types with broken content.

Every record it makes is a content forgery: it may claim any sender, but each one is broken in a
way the receiver must notice whatever its state (undecodable bytes, impossible tensors, NaN, a
wrong course, an impossible time or sample count, receivers that are someone else), or it is an
exact copy of a real record. A well-formed record with a real participant's identity and valid
content is an identity forgery: telling it apart needs authentication, which is the trust issue's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import fastavro
import numpy as np

from fstranslation import DecodeError, Header, WireCodec
from fstranslation.tensors import avro_long

T = TypeVar("T")

#: kinds the receiver must not decode
UNDECODABLE = ("random_bytes", "truncated", "unknown_fingerprint", "huge_shape", "many_dims", "inconsistent_bytes",
               "bad_dtype")
#: well-formed, but broken content the receiver must refuse
REFUSED = ("non_finite", "wrong_shape", "wrong_course", "wrong_round", "unknown_sender", "bad_timestamp",
           "huge_samples", "finish_without_tensors", "join_huge_layout", "join_bad_dtype", "join_bad_numbers")
SKIPPED = ("not_addressed",)
COPIES = ("duplicate", "bit_flip")  # dead-lettered as replayed copies (a flipped copy keeps its id) or undecodable
KINDS = (*UNDECODABLE, *REFUSED, *SKIPPED, *COPIES)


class Draw(Protocol):
    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""

    def raw(self, n: int) -> bytes: ...


class RngDraw:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def raw(self, n: int) -> bytes:
        return self.rng.bytes(n)


class HypothesisDraw:
    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self._data, self._st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return self._data.draw(self._st.integers(lo, hi))

    def raw(self, n: int) -> bytes:
        return self._data.draw(self._st.binary(min_size=n, max_size=n))


def choice(draw: Draw, options: Sequence[T]) -> T:
    return options[draw.integer(0, len(options) - 1)]


@dataclasses.dataclass
class Forger:
    codec: WireCodec
    course: str
    #: real records of the course, addressed to the worker under attack
    templates: list[bytes]
    #: the receivers a forged record names (the worker under attack)
    receivers: tuple[str, ...]
    counter: int = 0

    def record(self, draw: Draw, kind: str | None = None) -> tuple[str, bytes]:
        kind = kind or choice(draw, KINDS)
        self.counter += 1
        template = choice(draw, self.templates)
        make = getattr(self, f"_{kind}")
        return kind, make(draw, template)

    # -- bytes ----------------------------------------------------------------------------

    def _random_bytes(self, draw: Draw, _: bytes) -> bytes:
        prefix = b"\xc3\x01" if draw.integer(0, 1) else b""
        return prefix + draw.raw(draw.integer(0, 64))

    def _truncated(self, draw: Draw, template: bytes) -> bytes:
        return template[:draw.integer(0, len(template) - 1)]

    def _unknown_fingerprint(self, draw: Draw, template: bytes) -> bytes:
        return template[:2] + draw.raw(8) + template[10:]

    def _duplicate(self, _: Draw, template: bytes) -> bytes:
        return template

    def _bit_flip(self, draw: Draw, template: bytes) -> bytes:
        """A copy with one bit flipped that either does not decode or keeps every envelope field (so it is
        still a copy of a message already handled, by id)."""
        original = self.codec.decode_header(template)[0]
        for _ in range(20):
            at = draw.integer(0, len(template) - 1)
            flipped = template[:at] + bytes([template[at] ^ (1 << draw.integer(0, 7))]) + template[at + 1:]
            try:
                header = self.codec.decode(flipped)[0]
            except DecodeError:
                return flipped
            if header == original:
                return flipped
        return template[:-1]  # nothing safe found: a truncated copy instead

    # -- forged messages ------------------------------------------------------------------

    def _forge(self, template: bytes, *, payload_change: Any = None, tensors: list[dict] | None = None,
               **header_changes: Any) -> bytes:
        """A new message shaped like ``template`` (fresh id), with its header and payload changed; tensors are
        written as raw records, so they may be anything at all."""
        header, payload = self.codec.decode(template)
        header = dataclasses.replace(header, **header_changes)
        header = dataclasses.replace(header, id=f"{header.sender}/forged/{self.counter}")  # an id of its sender
        schema = self.codec.store.current(header.type)
        if schema.tensor_field is not None:
            payload = dict(payload)
            payload[schema.tensor_field] = tensors if tensors is not None else _records(payload[schema.tensor_field])
        if payload_change is not None:
            payload_change(payload)
        return _encode_raw(self.codec, header, payload)

    def _tensor_template(self, draw: Draw) -> bytes:
        with_tensors = [t for t in self.templates if self.codec.store.current(
            self.codec.decode_header(t)[0].type).tensor_field is not None]
        return choice(draw, with_tensors or self.templates)

    def _huge_shape(self, draw: Draw, _: bytes) -> bytes:
        return self._forge(self._tensor_template(draw), tensors=[_raw_tensor("w", "float32", [0, 2**40, 2**40], b"")])

    def _many_dims(self, draw: Draw, _: bytes) -> bytes:
        return self._forge(self._tensor_template(draw), tensors=[_raw_tensor("w", "float32", [1] * 70, bytes(4))])

    def _inconsistent_bytes(self, draw: Draw, _: bytes) -> bytes:
        return self._forge(self._tensor_template(draw), tensors=[_raw_tensor("w", "float32", [3], bytes(5))])

    def _bad_dtype(self, draw: Draw, _: bytes) -> bytes:
        return self._forge(self._tensor_template(draw), tensors=[_raw_tensor("w", "nosuch", [2], bytes(8))])

    def _non_finite(self, draw: Draw, _: bytes) -> bytes:
        template = self._tensor_template(draw)
        header, payload = self.codec.decode(template)
        field = self.codec.store.current(header.type).tensor_field
        if field is None:
            return self._wrong_course(draw, template)
        bad = choice(draw, (math.nan, math.inf, -math.inf))
        poisoned = {}
        for i, (name, t) in enumerate(payload[field].items()):
            t = np.array(t)
            if i == 0 and t.dtype.kind == "f" and t.size:
                t.flat[draw.integer(0, t.size - 1)] = bad
            poisoned[name] = t
        return self._forge(template, tensors=_records(poisoned))

    def _wrong_shape(self, draw: Draw, _: bytes) -> bytes:
        template = self._tensor_template(draw)
        header, payload = self.codec.decode(template)
        field = self.codec.store.current(header.type).tensor_field
        if field is None:
            return self._wrong_course(draw, template)
        first = next(iter(payload[field]), "w")
        return self._forge(template, tensors=[_raw_tensor(first, "float32", [3, 3], bytes(36))])

    def _finish_without_tensors(self, draw: Draw, template: bytes) -> bytes:
        header = self.codec.decode_header(template)[0]
        finish = Header(f"coordinator/forged/{self.counter}", self.course, "finish", "coordinator",
                        self.receivers, header.round, header.timestamp)
        return _encode_raw(self.codec, finish, {"reason": "forged", "tensors": []})

    def _wrong_course(self, draw: Draw, template: bytes) -> bytes:
        return self._forge(template, course=f"another-course-{draw.integer(0, 9)}")

    def _wrong_round(self, draw: Draw, template: bytes) -> bytes:
        """A message for a round nobody is at (for the coordinator's inbox: participants cannot tell a model of
        another round from the coordinator's without authentication)."""
        header = self.codec.decode_header(template)[0]
        return self._forge(template, round=choice(draw, (-1, header.round + 1000, 2**62)))

    def _unknown_sender(self, draw: Draw, template: bytes) -> bytes:
        return self._forge(template, sender=f"intruder-{draw.integer(0, 99)}")

    def _not_addressed(self, draw: Draw, template: bytes) -> bytes:
        return self._forge(template, receivers=(choice(draw, ("nobody", "participant-99999", "coordinator-2")),))

    def _bad_timestamp(self, draw: Draw, template: bytes) -> bytes:
        return self._forge(template, timestamp=choice(draw, (math.nan, math.inf, -math.inf)))

    def _huge_samples(self, draw: Draw, template: bytes) -> bytes:
        if self.codec.decode_header(template)[0].type not in ("model_update", "metrics"):
            return self._bad_timestamp(draw, template)
        return self._forge(template, payload_change=lambda p: p.update(num_samples=2**40))

    def _join(self, draw: Draw, layout: list[dict[str, Any]], **numbers: Any) -> bytes:
        sender = f"participant-{draw.integer(0, 99999):05d}"
        header = Header(f"{sender}/forged/{self.counter}", self.course, "join_in", sender, ("coordinator",), 0, 0.0)
        payload = {"address": sender, "num_train_samples": 10, "num_test_samples": 10, "backend": "torch",
                   "compute_s_per_sample": 0.0, "bandwidth_bytes_per_s": 0.0, "layout": layout, **numbers}
        return _encode_raw(self.codec, header, payload)

    def _join_huge_layout(self, draw: Draw, _: bytes) -> bytes:
        return self._join(draw, [{"name": "fc.weight", "shape": [2**40, 2**40], "dtype": "float32"}])

    def _join_bad_dtype(self, draw: Draw, _: bytes) -> bytes:
        return self._join(draw, [{"name": "fc.weight", "shape": [10, 64], "dtype": "nosuch"}])

    def _join_bad_numbers(self, draw: Draw, _: bytes) -> bytes:
        bad = choice(draw, ({"num_train_samples": -5}, {"compute_s_per_sample": math.nan},
                            {"bandwidth_bytes_per_s": -math.inf}))
        return self._join(draw, [{"name": "fc.weight", "shape": [70] * 9, "dtype": "float32"}], **bad)


def _raw_tensor(name: str, dtype: str, shape: list[int], data: bytes) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": shape, "data": data}


def _records(tensors: Any) -> list[dict[str, Any]]:
    if isinstance(tensors, list):
        return tensors
    return [_raw_tensor(k, str(np.asarray(v).dtype), list(np.shape(v)), np.ascontiguousarray(v).tobytes())
            for k, v in tensors.items()]


def _encode_raw(codec: WireCodec, header: Header, payload: dict[str, Any]) -> bytes:
    """Encode without the codec's checks on tensors (the point is to send what it would refuse)."""
    import io

    schema = codec.store.current(header.type)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, payload)
    head = io.BytesIO()
    head.write(b"\xc3\x01" + codec.envelope_fingerprint)
    fastavro.schemaless_writer(head, codec._header_schema, {
        "id": header.id, "course": header.course, "type": header.type, "sender": header.sender,
        "receivers": list(header.receivers), "round": header.round, "timestamp": float(header.timestamp),
        "payload_fingerprint": schema.fingerprint})
    return head.getvalue() + avro_long(len(body.getvalue())) + body.getvalue()
