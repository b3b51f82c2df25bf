"""Tensors on the wire: ``{name, dtype, shape, data}`` records holding raw little-endian bytes.

Encoding frames each tensor's bytes straight from the numpy buffer (the ``data`` field is the
last field of the record, and Avro encodes ``bytes`` as a length followed by the raw bytes), so a
model is copied once, when the whole message is joined. Decoding gives read-only numpy views
over the decoded bytes: no further copy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fstranslation.errors import EncodeError, TensorError

#: dtypes allowed on the wire; anything else (object, complex, strings) is refused at encode time
WIRE_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8",
                         "float16", "float32", "float64"})

#: the little-endian numpy dtype of each wire dtype name, and back
_NP_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in WIRE_DTYPES}
_WIRE_NAMES = {dt: name for name, dt in _NP_DTYPES.items()}


@dataclass(frozen=True, slots=True)
class TensorLimits:
    """Bounds on what a tensor record may declare, checked before anything is allocated.

    Bytes off the wire are untrusted: a record may declare 70 dimensions or a shape of
    [0, 2**40, 2**40] with no data, and numpy refuses those with a ValueError rather than a
    :class:`TensorError`. Everything is checked here first, so a bad record is a decode error
    (dead-lettered, committed past) and never a crash.
    """

    max_rank: int = 8
    #: the largest tensor a record may carry, in bytes (and so in elements); 2 GiB by default
    max_bytes: int = 2**31


DEFAULT_LIMITS = TensorLimits()


def spec_problem(name: str, dtype: str, shape: Sequence[int], limits: TensorLimits = DEFAULT_LIMITS) -> str | None:
    """What is wrong with a declared tensor (a wire tensor or a layout entry), or None; allocates nothing."""
    np_dtype = _NP_DTYPES.get(dtype)
    if np_dtype is None:
        return f"tensor {name!r} has dtype {dtype!r}, which is not a wire dtype ({', '.join(sorted(WIRE_DTYPES))})"
    if len(shape) > limits.max_rank:
        return f"tensor {name!r} has {len(shape)} dimensions; at most {limits.max_rank} are allowed"
    if any(d < 0 for d in shape):
        return f"tensor {name!r} has a negative dimension in shape {tuple(shape)}"
    # Zero dimensions hide the others from the element count, so bound the product of all of them.
    span = math.prod(max(d, 1) for d in shape)
    if span * np_dtype.itemsize > limits.max_bytes:
        return (f"tensor {name!r} of dtype {dtype} and shape {tuple(shape)} would need {span * np_dtype.itemsize} "
                f"bytes; the limit is {limits.max_bytes}")
    return None


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
        yield _tensor_head(name, dtype_name, arr.shape, arr.nbytes)
        yield memoryview(arr).cast("B") if arr.nbytes else b""
    yield b"\x00"


@functools.lru_cache(maxsize=4096)
def _tensor_head(name: str, dtype_name: str, shape: tuple[int, ...], nbytes: int) -> bytes:
    """The Tensor record's fields before ``data``: name, dtype, shape (an Avro array: one block, then 0) and the
    length of ``data``. A model's tensors keep these from message to message, so each is encoded once."""
    dims = b"".join(avro_long(d) for d in shape)
    return b"".join((avro_string(name), avro_string(dtype_name),
                     avro_long(len(shape)) + dims + b"\x00" if shape else b"\x00", avro_long(nbytes)))


def tensor_records(tensors: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Plain Avro records for ``tensors``; used where a schema puts tensors somewhere other than last."""
    records = []
    for name, value in tensors.items():
        arr, dtype_name = wire_array(name, value)
        records.append({"name": name, "dtype": dtype_name, "shape": list(arr.shape), "data": arr.tobytes()})
    return records


def tensors_from_records(records: list[dict[str, Any]], *, where: str,
                         limits: TensorLimits = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """Numpy views over decoded tensor records; checks dtype, rank, size and byte count before any allocation."""
    out: dict[str, np.ndarray] = {}
    for rec in records:
        name, dtype, shape, data = rec["name"], rec["dtype"], rec["shape"], rec["data"]
        problem = spec_problem(name, dtype, shape, limits)
        if problem is not None:
            raise TensorError(f"{where}: {problem}", schema="fscope.wire.Tensor",
                              field="dtype" if dtype not in _NP_DTYPES else "shape")
        np_dtype = _NP_DTYPES[dtype]
        expected = math.prod(shape) * np_dtype.itemsize
        if len(data) != expected:
            raise TensorError(f"{where}: tensor {name!r} of dtype {dtype} and shape {tuple(shape)} needs "
                              f"{expected} bytes but carries {len(data)}",
                              schema="fscope.wire.Tensor", field="data")
        if name in out:
            raise TensorError(f"{where}: tensor {name!r} appears twice", schema="fscope.wire.Tensor", field="name")
        out[name] = np.frombuffer(data, dtype=np_dtype).reshape(shape)
    return out
