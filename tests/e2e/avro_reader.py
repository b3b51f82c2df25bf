"""An independent reader of fscope topics: plain fastavro and the checked-in .avsc files, nothing of fscope.

If this reader decodes a course's topics, the log is self-describing: anyone with the schemas can
audit a course without running fscope's code.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
from fastavro.schema import expand_schema, fingerprint, to_parsing_canonical_form

SCHEMAS = Path(__file__).parents[2] / "libs" / "translation" / "src" / "fstranslation" / "schemas"
MAGIC = b"\xc3\x01"


def _fingerprint(parsed: Any) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(expand_schema(parsed)), "CRC-64-AVRO"))


@dataclass
class Decoded:
    envelope: dict[str, Any]
    payload: dict[str, Any]

    def tensors(self) -> dict[str, np.ndarray]:
        return {t["name"]: np.frombuffer(t["data"], dtype=np.dtype(t["dtype"]).newbyteorder("<"))
                .reshape(t["shape"]) for t in self.payload["tensors"]}


class AvscReader:
    def __init__(self, schema_dir: Path = SCHEMAS) -> None:
        named: dict[str, Any] = {}
        fastavro.parse_schema(json.loads((schema_dir / "tensor.avsc").read_text()), named_schemas=named)
        self.envelope = fastavro.parse_schema(json.loads((schema_dir / "envelope.avsc").read_text()))
        self.envelope_fp = _fingerprint(self.envelope)
        self.payloads: dict[bytes, Any] = {}
        for path in sorted(schema_dir.glob("*.avsc")):
            if path.name in ("tensor.avsc", "envelope.avsc"):
                continue
            parsed = fastavro.parse_schema(json.loads(path.read_text()), named_schemas=dict(named))
            self.payloads[_fingerprint(parsed)] = parsed

    def decode(self, value: bytes) -> Decoded:
        assert value[:2] == MAGIC, f"not single-object encoded: {value[:2].hex()}"
        assert value[2:10] == self.envelope_fp, "record is not an fscope envelope"
        envelope = fastavro.schemaless_reader(io.BytesIO(value[10:]), self.envelope)
        schema = self.payloads[envelope["payload_fingerprint"]]
        return Decoded(envelope, fastavro.schemaless_reader(io.BytesIO(envelope["payload"]), schema))
