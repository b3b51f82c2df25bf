"""Avro schemas of fscope messages, addressed by CRC-64-AVRO fingerprint.

A message type may have several schema versions over time. The newest registered version is
the reader schema; every version stays known so that old records still decode (Avro schema
resolution fills added fields from their defaults).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, expand_schema, fingerprint, to_parsing_canonical_form

from fstranslation.errors import SchemaError, UnknownSchemaError

TENSOR_SCHEMA_NAME = "fscope.wire.Tensor"

#: Each built-in type's schema files, newest last: the last is the reader schema, and the earlier ones stay
#: registered so that records written with them still decode.
BUILTIN_PAYLOADS: dict[str, str | tuple[str, ...]] = {
    "join_in": "join_in.avsc",
    "assign_id": "assign_id.avsc",
    "model_parameters": "model_parameters.avsc",
    "model_update": "model_update.avsc",
    "evaluate": "evaluate.avsc",
    "metrics": "metrics.avsc",
    "finish": "finish.avsc",
    "alarm": ("alarm.v1.avsc", "alarm.avsc"),
    "refuse": "refuse.avsc",
    "course_manifest": ("course_manifest.v1.avsc", "course_manifest.avsc"),
    "course_finished": "course_finished.avsc",
    "coordinator_started": ("coordinator_started.v1.avsc", "coordinator_started.avsc"),
    "coordinator_snapshot": "coordinator_snapshot.avsc",
}


def load_schema_file(name: str) -> dict[str, Any]:
    """Read one of the checked-in ``.avsc`` files shipped with this package."""
    text = resources.files("fstranslation.schemas").joinpath(name).read_text()
    return json.loads(text)


def schema_fingerprint(parsed: Any) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, as the 8 little-endian bytes the spec puts on the wire.

    Named types are expanded first, so a change to the Tensor record changes every payload's fingerprint.
    """
    canonical = to_parsing_canonical_form(expand_schema(parsed))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def _tensor_field(schema: dict[str, Any]) -> str | None:
    """Name of a trailing ``array<Tensor>`` field, which the codec frames without copying tensor bytes."""
    fields = schema.get("fields", [])
    if not fields:
        return None
    last = fields[-1]
    ftype = last["type"]
    if isinstance(ftype, dict) and ftype.get("type") == "array":
        items = ftype.get("items")
        items_name = items.get("name") if isinstance(items, dict) else items
        if items_name in (TENSOR_SCHEMA_NAME, "Tensor"):
            return last["name"]
    return None


@dataclass(frozen=True)
class PayloadSchema:
    """One version of one message type's payload schema."""

    type_name: str
    full_name: str
    parsed: Any
    fingerprint: bytes
    tensor_field: str | None
    #: parsed schema of every field before ``tensor_field``: encodes the record's prefix on the fast path
    prefix: Any = None


@dataclass
class SchemaStore:
    """Registry of message types -> payload schemas; knows every version by fingerprint."""

    named: dict[str, Any] = field(default_factory=dict)
    _current: dict[str, PayloadSchema] = field(default_factory=dict)
    _by_fingerprint: dict[bytes, PayloadSchema] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tensor = self._parse(load_schema_file("tensor.avsc"), "tensor.avsc")

    def _parse(self, schema: dict[str, Any], where: str) -> Any:
        try:
            return fastavro.parse_schema(schema, named_schemas=self.named)
        except (SchemaParseException, ValueError, KeyError, TypeError) as exc:
            raise SchemaError(f"invalid Avro schema in {where}: {exc}") from exc

    def register(self, type_name: str, schema: dict[str, Any]) -> PayloadSchema:
        """Register ``schema`` as the newest (reader) version of ``type_name``.

        Registering an unchanged schema again is a no-op, so modules may register on import.
        """
        if not type_name or not type_name.replace("_", "").isalnum():
            raise SchemaError(f"message type name {type_name!r} must be a non-empty identifier")
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise SchemaError(f"payload schema of {type_name!r} must be an Avro record")
        full_name = (schema.get("namespace", "") + "." + schema["name"]).lstrip(".")
        # Versions share a full name; parse each with its own namespace view so they don't clash.
        named = dict(self.named)
        named.pop(full_name, None)
        try:
            parsed = fastavro.parse_schema(schema, named_schemas=named)
        except (SchemaParseException, ValueError, KeyError, TypeError) as exc:
            raise SchemaError(f"invalid payload schema for {type_name!r}: {exc}") from exc
        fp = schema_fingerprint(parsed)
        existing = self._by_fingerprint.get(fp)
        if existing is not None and existing.type_name != type_name:
            raise SchemaError(f"schema of {type_name!r} is identical to that of {existing.type_name!r}; "
                              "give it its own record name")
        tensor_field = _tensor_field(schema)
        prefix = None
        if tensor_field is not None:
            prefix_schema = {**schema, "fields": schema["fields"][:-1], "name": schema["name"] + "Prefix"}
            prefix = fastavro.parse_schema(prefix_schema, named_schemas=dict(named))
        payload = PayloadSchema(type_name, full_name, parsed, fp, tensor_field, prefix)
        self._by_fingerprint[fp] = payload
        self._current[type_name] = payload
        return payload

    def current(self, type_name: str) -> PayloadSchema:
        try:
            return self._current[type_name]
        except KeyError:
            known = ", ".join(sorted(self._current))
            raise SchemaError(f"unknown message type {type_name!r}; registered types: {known}") from None

    def by_fingerprint(self, fp: bytes) -> PayloadSchema:
        try:
            return self._by_fingerprint[bytes(fp)]
        except KeyError:
            raise UnknownSchemaError(f"no payload schema with fingerprint {bytes(fp).hex()} is registered",
                                     schema=bytes(fp).hex()) from None

    def types(self) -> list[str]:
        return sorted(self._current)


def default_store() -> SchemaStore:
    """A store holding the built-in message types of a FedAvg course."""
    store = SchemaStore()
    for type_name, files in BUILTIN_PAYLOADS.items():
        for filename in (files,) if isinstance(files, str) else files:
            store.register(type_name, load_schema_file(filename))
    return store
