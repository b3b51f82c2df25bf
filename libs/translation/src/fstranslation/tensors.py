"""Tensors on the wire: ``{name, dtype, shape, data}`` records holding raw little-endian bytes.

Encoding frames each tensor's bytes straight from the numpy buffer (the ``data`` field is the
last field of the record, and Avro encodes ``bytes`` as a length followed by the raw bytes), so a
model is copied once, when the whole message is joined. Decoding gives read-only numpy views
over the decoded bytes: no further copy.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from typing import Any

import fastavro
import numpy as np

from fstranslation.errors import EncodeError, TensorError

#: dtypes allowed on the wire; anything else (object, complex, strings) is refused at encode time
WIRE_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8",
                         "float16", "float32", "float64"})

_TENSOR_HEADER = fastavro.parse_schema({
    "type": "record", "name": "TensorHeader", "namespace": "fscope.wire.framing",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "dtype", "type": "string"},
        {"name": "shape", "type": {"type": "array", "items": "long"}},
    ],
})


def avro_long(value: int) -> bytes:
    """Avro's zig-zag varint encoding of a long (spec §Binary Encoding), used for block counts and lengths."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def wire_array(name: str, value: Any) -> np.ndarray:
    """The C-contiguous little-endian array that goes on the wire for ``value``."""
    arr = np.asarray(value)
    if arr.dtype.name not in WIRE_DTYPES:
        raise EncodeError(f"tensor {name!r} has dtype {arr.dtype}; the wire carries only {sorted(WIRE_DTYPES)}")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def tensor_parts(tensors: Mapping[str, Any]) -> Iterator[bytes | memoryview]:
    """The Avro binary encoding of ``array<Tensor>``, as pieces to be joined once by the caller."""
    if not tensors:
        yield b"\x00"
        return
    yield avro_long(len(tensors))
    header = io.BytesIO()
    for name, value in tensors.items():
        arr = wire_array(name, value)
        header.seek(0)
        header.truncate()
        fastavro.schemaless_writer(header, _TENSOR_HEADER, {
            "name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)})
        yield header.getvalue()
        yield avro_long(arr.nbytes)
        yield memoryview(arr).cast("B") if arr.nbytes else b""
    yield b"\x00"


def tensor_records(tensors: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Plain Avro records for ``tensors``; used where a schema puts tensors somewhere other than last."""
    records = []
    for name, value in tensors.items():
        arr = wire_array(name, value)
        records.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape), "data": arr.tobytes()})
    return records


def tensors_from_records(records: list[dict[str, Any]], *, where: str) -> dict[str, np.ndarray]:
    """Numpy views over decoded tensor records; checks that dtype, shape and byte count agree."""
    out: dict[str, np.ndarray] = {}
    for rec in records:
        name, dtype, shape, data = rec["name"], rec["dtype"], rec["shape"], rec["data"]
        if dtype not in WIRE_DTYPES:
            raise TensorError(f"{where}: tensor {name!r} has dtype {dtype!r}, which is not a wire dtype",
                              schema="fscope.wire.Tensor", field="dtype")
        if any(d < 0 for d in shape):
            raise TensorError(f"{where}: tensor {name!r} has a negative dimension in shape {tuple(shape)}",
                              schema="fscope.wire.Tensor", field="shape")
        np_dtype = np.dtype(dtype).newbyteorder("<")
        expected = math.prod(shape) * np_dtype.itemsize
        if len(data) != expected:
            raise TensorError(f"{where}: tensor {name!r} of dtype {dtype} and shape {tuple(shape)} needs "
                              f"{expected} bytes but carries {len(data)}",
                              schema="fscope.wire.Tensor", field="data")
        if name in out:
            raise TensorError(f"{where}: tensor {name!r} appears twice", schema="fscope.wire.Tensor", field="name")
        out[name] = np.frombuffer(data, dtype=np_dtype).reshape(shape)
    return out
