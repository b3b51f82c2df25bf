"""The TensorFlow/Keras backend: Keras variables <-> the agreed (torch-convention) layout.

A Keras model's parameters are named ``<layer>.<variable>`` (``fc1.kernel``, ``conv1.bias``,
``bn1.moving_mean``). Encoding renames and transposes them into the agreed layout; decoding is
the exact inverse, so a round trip is bit-exact (transposes copy bytes, they never compute):

* Dense ``kernel`` [in, out]            <-> ``weight`` [out, in]
* Conv2D ``kernel`` HWIO                <-> ``weight`` OIHW
* BatchNormalization ``gamma``/``beta`` <-> ``weight``/``bias``,
  ``moving_mean``/``moving_variance``   <-> ``running_mean``/``running_var``
* ``bias``                              <-> ``bias``

Keras itself is not imported here: the adapter works on the arrays a trainer reads from and
writes to its model, so it can be tested and used without TensorFlow installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

name = "tensorflow"

_RENAME = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_BACK = {v: k for k, v in _RENAME.items()}


_TILE = 256  # rows/columns per tile of a blocked transpose: both tiles fit in L2 (256 KiB each for float32)


def _transposed(a: np.ndarray) -> np.ndarray:
    """``a.T``, C-contiguous. A large matrix is copied tile by tile: a plain strided copy of the transpose
    misses the cache on every element of one side, and tiles make it 1.5-3x faster (bench/translation.py)."""
    rows, cols = a.shape
    if rows * cols < 1 << 16:
        return np.ascontiguousarray(a.T)
    out = np.empty((cols, rows), a.dtype)
    for i in range(0, rows, _TILE):
        for j in range(0, cols, _TILE):
            out[j:j + _TILE, i:i + _TILE] = a[i:i + _TILE, j:j + _TILE].T
    return out


def _split(key: str) -> tuple[str, str]:
    layer, _, var = key.rpartition(".")
    if not layer:
        raise ValueError(f"Keras parameter {key!r} is not named <layer>.<variable>")
    return layer, var


def to_wire(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in params.items():
        layer, var = _split(key)
        a = np.asarray(value)
        if var == "kernel" and a.ndim == 2:
            out[f"{layer}.weight"] = _transposed(a)
        elif var == "kernel" and a.ndim == 4:
            out[f"{layer}.weight"] = np.ascontiguousarray(a.transpose(3, 2, 0, 1))
        elif var in _RENAME:
            out[f"{layer}.{_RENAME[var]}"] = np.ascontiguousarray(a)
        elif var == "bias":
            out[key] = np.ascontiguousarray(a)
        else:
            raise ValueError(f"Keras parameter {key!r}: no agreed-layout mapping for variable {var!r}")
    return out


def from_wire(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    batchnorm = {_split(k)[0] for k in arrays if k.endswith(".running_mean")}
    out: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        layer, var = _split(key)
        if layer in batchnorm and var in _BACK:
            out[f"{layer}.{_BACK[var]}"] = np.array(value, copy=True)
        elif var == "weight" and value.ndim == 2:
            out[f"{layer}.kernel"] = _transposed(np.asarray(value))
        elif var == "weight" and value.ndim == 4:
            out[f"{layer}.kernel"] = np.ascontiguousarray(value.transpose(2, 3, 1, 0))
        elif var == "bias":
            out[key] = np.array(value, copy=True)
        elif var == "num_batches_tracked":
            continue  # a torch counter with no Keras twin; it does not take part in the model's function
        else:
            raise ValueError(f"agreed-layout parameter {key!r} has no Keras mapping")
    return out
