"""Errors raised by the wire format.

Hierarchy::

    WireError                      root: anything that went wrong turning bytes into messages or back
    ├── SchemaError                a schema file or registration is invalid
    ├── EncodeError                a value does not fit its schema
    └── DecodeError                bytes could not be decoded; carries the raw record for dead-lettering
        ├── UnknownSchemaError     the fingerprint names no schema this reader knows
        └── TensorError            a tensor record is inconsistent (dtype, shape, byte count)
    LayoutError                    parameters do not match the agreed layout (name, shape or dtype)
"""

from __future__ import annotations


class WireError(Exception):
    """Root of every error raised by fstranslation."""


class SchemaError(WireError):
    pass


class EncodeError(WireError):
    pass


class DecodeError(WireError):
    """Raised for bytes that cannot be decoded.

    ``raw`` keeps the offending record so that a consumer can dead-letter it unchanged.
    """

    def __init__(self, message: str, *, raw: bytes | None = None, schema: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.schema = schema
        self.field = field


class UnknownSchemaError(DecodeError):
    pass


class TensorError(DecodeError):
    pass


class LayoutError(WireError):
    """Parameters do not match the agreed layout; the message names the parameter and both shapes."""
