"""Tensors on the wire: ``{name, dtype, shape, data}`` records holding raw little-endian bytes.

Encoding frames each tensor's bytes straight from the numpy buffer (the ``data`` field is the
last field of the record, and Avro encodes ``bytes`` as a length followed by the raw bytes), so a
model is copied once, when the whole message is joined. Decoding gives read-only numpy views
over the decoded bytes: no further copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from fstranslation.errors import EncodeError, TensorError

#: dtypes allowed on the wire; anything else (object, complex, strings) is refused at encode time
WIRE_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8",
                         "float16", "float32", "float64"})

#: the little-endian numpy dtype of each wire dtype name, and back
_NP_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in WIRE_DTYPES}
_WIRE_NAMES = {dt: name for name, dt in _NP_DTYPES.items()}


def avro_long(value: int) -> bytes:
    """Avro's zig-zag varint encoding of a long (spec §Binary Encoding), used for block counts and lengths."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(text: str) -> bytes:
    data = text.encode()
    return avro_long(len(data)) + data


def wire_array(name: str, value: Any) -> tuple[np.ndarray, str]:
    """The C-contiguous little-endian array that goes on the wire for ``value``, and its dtype name."""
    arr = np.asarray(value)
    wire_name = _WIRE_NAMES.get(arr.dtype)
    if wire_name is None:
        if arr.dtype.byteorder == ">" and arr.dtype.newbyteorder("<") in _WIRE_NAMES:
            arr = arr.astype(arr.dtype.newbyteorder("<"))
            wire_name = _WIRE_NAMES[arr.dtype]
        else:
            raise EncodeError(f"tensor {name!r} has dtype {arr.dtype}; the wire carries only {sorted(WIRE_DTYPES)}")
    # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
    return (arr if arr.flags.c_contiguous else arr.copy(order="C")), wire_name


def tensor_parts(tensors: Mapping[str, Any]) -> Iterator[bytes | memoryview]:
    """The Avro binary encoding of ``array<Tensor>``, as pieces to be joined once by the caller."""
    if not tensors:
        yield b"\x00"
        return
    yield avro_long(len(tensors))
    for name, value in tensors.items():
        arr, dtype_name = wire_array(name, value)
        # The Tensor record's fields before `data`: name, dtype, shape (an Avro array: one block, then 0).
        shape = b"".join(avro_long(d) for d in arr.shape)
        yield b"".join((avro_string(name), avro_string(dtype_name),
                        avro_long(arr.ndim) + shape + b"\x00" if arr.ndim else b"\x00", avro_long(arr.nbytes)))
        yield memoryview(arr).cast("B") if arr.nbytes else b""
    yield b"\x00"


def tensor_records(tensors: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Plain Avro records for ``tensors``; used where a schema puts tensors somewhere other than last."""
    records = []
    for name, value in tensors.items():
        arr, dtype_name = wire_array(name, value)
        records.append({"name": name, "dtype": dtype_name, "shape": list(arr.shape), "data": arr.tobytes()})
    return records


def tensors_from_records(records: list[dict[str, Any]], *, where: str) -> dict[str, np.ndarray]:
    """Numpy views over decoded tensor records; checks that dtype, shape and byte count agree."""
    out: dict[str, np.ndarray] = {}
    for rec in records:
        name, dtype, shape, data = rec["name"], rec["dtype"], rec["shape"], rec["data"]
        np_dtype = _NP_DTYPES.get(dtype)
        if np_dtype is None:
            raise TensorError(f"{where}: tensor {name!r} has dtype {dtype!r}, which is not a wire dtype",
                              schema="fscope.wire.Tensor", field="dtype")
        if any(d < 0 for d in shape):
            raise TensorError(f"{where}: tensor {name!r} has a negative dimension in shape {tuple(shape)}",
                              schema="fscope.wire.Tensor", field="shape")
        expected = math.prod(shape) * np_dtype.itemsize
        if len(data) != expected:
            raise TensorError(f"{where}: tensor {name!r} of dtype {dtype} and shape {tuple(shape)} needs "
                              f"{expected} bytes but carries {len(data)}",
                              schema="fscope.wire.Tensor", field="data")
        if name in out:
            raise TensorError(f"{where}: tensor {name!r} appears twice", schema="fscope.wire.Tensor", field="name")
        out[name] = np.frombuffer(data, dtype=np_dtype).reshape(shape)
    return out
