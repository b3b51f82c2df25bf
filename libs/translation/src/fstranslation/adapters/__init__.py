"""Backend adapters: a framework's parameters <-> the backend-independent numpy form on the wire.

One module per backend, each exposing the same two functions (``to_wire`` and ``from_wire``), in
the manner of Keras 3's ``backend/`` folders. A backend is chosen once, by name, with
:func:`get_adapter`; nothing else in fscope branches on the backend. Framework imports happen
only inside the chosen backend's module, so the coordinator never imports torch or TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

_BACKENDS = {
    "numpy": "fstranslation.adapters.numpy_backend",
    "torch": "fstranslation.adapters.torch_backend",
    "tensorflow": "fstranslation.adapters.keras_backend",
}


class BackendAdapter(Protocol):
    """What a backend module provides."""

    name: str

    def to_wire(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]: ...

    def from_wire(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]: ...


def register_backend(name: str, module: str) -> None:
    """Make a backend module (exposing ``to_wire`` and ``from_wire``) selectable by ``name``."""
    _BACKENDS[name] = module


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_adapter(name: str) -> BackendAdapter:
    try:
        module = _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(available_backends())}") from None
    return importlib.import_module(module)  # type: ignore[return-value]
