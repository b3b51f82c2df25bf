"""fstranslation: fscope's wire format.

Avro schemas (checked-in ``.avsc`` files), the envelope codec with single-object encoding, tensor
records with raw little-endian bytes, and backend adapters. Imports neither fscore nor any ML
framework at module level.
"""

from fstranslation.codec import MAGIC, Header, WireCodec
from fstranslation.errors import (
    DecodeError,
    EncodeError,
    LayoutError,
    SchemaError,
    TensorError,
    UnknownSchemaError,
    WireError,
)
from fstranslation.schema_store import PayloadSchema, SchemaStore, default_store, load_schema_file, schema_fingerprint
from fstranslation.tensors import DEFAULT_LIMITS, TensorLimits, spec_problem

__all__ = [
    "DEFAULT_LIMITS", "MAGIC", "DecodeError", "EncodeError", "Header", "LayoutError", "PayloadSchema", "SchemaError",
    "SchemaStore",
    "TensorError", "TensorLimits", "UnknownSchemaError", "WireCodec", "WireError", "default_store", "load_schema_file",
    "schema_fingerprint", "spec_problem",
]
