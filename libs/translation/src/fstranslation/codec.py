"""The envelope codec: ``Header`` + payload dict <-> Avro single-object encoded bytes.

Like confluent-kafka's serializers, the codec makes bytes and knows nothing of transports.
Layout of one message (all Avro binary)::

    C3 01 | envelope fingerprint (8 bytes, CRC-64-AVRO, little-endian) | Envelope record

The Envelope's last field, ``payload``, holds the Avro body of the payload schema whose
fingerprint is in ``payload_fingerprint``. Because it is last, the codec writes the header fields
with fastavro and appends the payload without an intermediate copy, and the reader decodes the
payload in place.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.schema import expand_schema

from fstranslation.errors import DecodeError, EncodeError, WireError
from fstranslation.schema_store import PayloadSchema, SchemaStore, default_store, load_schema_file, schema_fingerprint
from fstranslation.tensors import DEFAULT_LIMITS, TensorLimits, avro_long, tensor_parts, tensors_from_records

MAGIC = b"\xc3\x01"
_HEADER_LEN = 10  # magic + fingerprint


@dataclass(frozen=True, slots=True)
class Header:
    """Everything in the envelope except the payload."""

    id: str
    course: str
    type: str
    sender: str
    receivers: tuple[str, ...]
    round: int
    timestamp: float


def _envelope_schemas() -> tuple[Any, Any, bytes]:
    envelope = load_schema_file("envelope.avsc")
    parsed = fastavro.parse_schema(envelope)
    header = dict(envelope, name="EnvelopeHeader", fields=envelope["fields"][:-1])
    return parsed, fastavro.parse_schema(header), schema_fingerprint(parsed)


class WireCodec:
    """Encodes and decodes fscope messages against a :class:`SchemaStore`."""

    def __init__(self, store: SchemaStore | None = None, limits: TensorLimits = DEFAULT_LIMITS) -> None:
        self.store = store or default_store()
        self.limits = limits
        self.envelope_schema, self._header_schema, self.envelope_fingerprint = _envelope_schemas()
        self._magic_and_fp = MAGIC + self.envelope_fingerprint

    # -- encoding -------------------------------------------------------------------------

    def encode(self, header: Header, payload: Mapping[str, Any]) -> bytes:
        schema = self.store.current(header.type)
        parts = self._payload_parts(schema, payload)
        size = sum(len(p) if isinstance(p, bytes) else p.nbytes for p in parts)
        head = io.BytesIO()
        head.write(self._magic_and_fp)
        try:
            fastavro.schemaless_writer(head, self._header_schema, {
                "id": header.id, "course": header.course, "type": header.type, "sender": header.sender,
                "receivers": list(header.receivers), "round": header.round, "timestamp": float(header.timestamp),
                "payload_fingerprint": schema.fingerprint,
            }, strict=True)
        except (ValueError, TypeError) as exc:
            raise EncodeError(f"envelope of a {header.type!r} message from {header.sender!r}: {exc}") from exc
        head.write(avro_long(size))
        return b"".join([head.getvalue(), *parts])

    def encode_payload(self, type_name: str, payload: Mapping[str, Any]) -> bytes:
        """The payload body alone, e.g. to fingerprint a model deterministically."""
        return b"".join(self._payload_parts(self.store.current(type_name), payload))

    def _payload_parts(self, schema: PayloadSchema, payload: Mapping[str, Any]) -> list[bytes | memoryview]:
        where = f"payload of a {schema.type_name!r} message ({schema.full_name})"
        try:
            if schema.tensor_field is None:
                buf = io.BytesIO()
                fastavro.schemaless_writer(buf, schema.parsed, dict(payload), strict_allow_default=True)
                return [buf.getvalue()]
            tensors = payload.get(schema.tensor_field)
            if not isinstance(tensors, Mapping):
                raise EncodeError(f"{where}: field {schema.tensor_field!r} must map tensor names to arrays")
            rest = {k: v for k, v in payload.items() if k != schema.tensor_field}
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema.prefix, rest, strict_allow_default=True)
            return [buf.getvalue(), *tensor_parts(tensors)]
        except WireError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodeError(f"{where}: {exc}") from exc

    # -- decoding -------------------------------------------------------------------------

    def decode_header(self, data: bytes) -> tuple[Header, PayloadSchema, io.BytesIO, int]:
        """Decode the envelope up to the payload; cheap, so routing need not touch the payload."""
        if not isinstance(data, bytes):
            data = bytes(data)
        if data[:2] != MAGIC:
            raise DecodeError(f"not an fscope record: expected the Avro single-object marker C3 01, "
                              f"found {data[:2].hex() or 'nothing'}", raw=data, schema="fscope.wire.Envelope")
        if data[2:_HEADER_LEN] != self.envelope_fingerprint:
            raise DecodeError(f"record was written with envelope schema {data[2:_HEADER_LEN].hex()}, "
                              f"this reader knows {self.envelope_fingerprint.hex()}",
                              raw=data, schema="fscope.wire.Envelope")
        bio = io.BytesIO(data)
        bio.seek(_HEADER_LEN)
        try:
            rec = fastavro.schemaless_reader(bio, self._header_schema)
            length = fastavro.schemaless_reader(bio, "long")
        except Exception as exc:
            field = _failing_field(data, _HEADER_LEN, self._header_schema)
            raise DecodeError(f"corrupt envelope (schema fscope.wire.Envelope, field {field!r}): "
                              f"{type(exc).__name__}: {exc}", raw=data, schema="fscope.wire.Envelope",
                              field=field) from exc
        start = bio.tell()
        if length < 0 or start + length != len(data):
            raise DecodeError(f"envelope declares a payload of {length} bytes but {len(data) - start} follow "
                              "(truncated or padded record)", raw=data, schema="fscope.wire.Envelope",
                              field="payload")
        try:
            payload_schema = self.store.by_fingerprint(rec["payload_fingerprint"])
        except DecodeError as exc:
            exc.raw = data
            raise
        header = Header(rec["id"], rec["course"], rec["type"], rec["sender"], tuple(rec["receivers"]),
                        rec["round"], rec["timestamp"])
        if payload_schema.type_name != header.type:
            raise DecodeError(f"envelope says type {header.type!r} but its payload schema is that of "
                              f"{payload_schema.type_name!r}", raw=data, schema="fscope.wire.Envelope", field="type")
        return header, payload_schema, bio, start

    def decode(self, data: bytes) -> tuple[Header, dict[str, Any]]:
        header, writer, bio, start = self.decode_header(data)
        return header, self.decode_body(writer, bio, start, data)

    def decode_payload(self, type_name: str, body: bytes) -> dict[str, Any]:
        return self.decode_body(self.store.current(type_name), io.BytesIO(body), 0, body)

    def decode_body(self, writer: PayloadSchema, bio: io.BytesIO, start: int, data: bytes) -> dict[str, Any]:
        reader = self.store.current(writer.type_name)
        where = f"{writer.type_name} payload ({writer.full_name})"
        try:
            if reader is writer:
                rec = fastavro.schemaless_reader(bio, writer.parsed)
            else:
                rec = fastavro.schemaless_reader(bio, writer.parsed, reader.parsed)
        except Exception as exc:
            field = _failing_field(data, start, writer.parsed)
            raise DecodeError(f"corrupt {where}, field {field!r}: {type(exc).__name__}: {exc}",
                              raw=data, schema=writer.full_name, field=field) from exc
        if bio.tell() != len(data):
            raise DecodeError(f"{where}: {len(data) - bio.tell()} bytes left over after the record",
                              raw=data, schema=writer.full_name)
        if reader.tensor_field is not None:
            try:
                rec[reader.tensor_field] = tensors_from_records(rec[reader.tensor_field], where=where,
                                                                 limits=self.limits)
            except DecodeError as exc:
                exc.raw = data
                raise
        return rec


def _failing_field(data: bytes, start: int, parsed: Any) -> str:
    """Re-read a corrupt record one field at a time to name the field where decoding breaks."""
    bio = io.BytesIO(data)
    bio.seek(start)
    expanded = expand_schema(parsed)
    for f in expanded.get("fields", []):
        try:
            fastavro.schemaless_reader(bio, fastavro.parse_schema(f["type"]))
        except Exception:  # noqa: BLE001
            return f["name"]
    return "<after last field>"


__all__: Sequence[str] = ["Header", "WireCodec", "MAGIC"]
