"""An adapter for a model whose layers are named differently from the agreed layout.

Wraps a backend's adapter: encoding renames the model's layers to the agreed names, then lets the
backend adapter transpose; decoding is the exact inverse. A participant with a model of its own
(Keras' ``dense``/``dense_1``, a torch ``nn.Sequential``'s ``0``/``2``) maps its names once and
exchanges the agreed layout like everyone else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fstranslation.adapters import BackendAdapter


def _rename(params: Mapping[str, Any], layers: Mapping[str, str]) -> dict[str, Any]:
    """Rename ``<layer>.<variable>`` keys whose layer is in ``layers``; others keep their names."""
    out = {}
    for key, value in params.items():
        layer, dot, var = key.rpartition(".")
        out[f"{layers[layer]}{dot}{var}" if layer in layers else key] = value
    return out


class Renamed:
    """``base`` with layer names mapped: ``layers`` is the model's layer name -> the agreed layer name."""

    def __init__(self, base: BackendAdapter, layers: Mapping[str, str]) -> None:
        if len(set(layers.values())) != len(layers):
            raise ValueError(f"two layers map to the same agreed name: {dict(layers)}")
        self.base = base
        self.name = f"{base.name}+renamed"
        self.layers = dict(layers)
        self.back = {agreed: own for own, agreed in layers.items()}

    def to_wire(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return self.base.to_wire(_rename(params, self.layers))

    def from_wire(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return _rename(self.base.from_wire(arrays), self.back)
