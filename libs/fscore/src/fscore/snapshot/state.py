"""A worker's state as plain data: a JSON tree and the tensors it refers to (issue 17, course snapshots).

A snapshot never pickles. What it keeps is a tree of plain values: numbers, strings, lists, tuples, dicts,
sets, numpy arrays (by index into a tensor list, written as typed tensors), numpy random generators (their
bit generator's state) and dataclasses. An object of the course (a worker, its plug-ins, aggregator,
sampler, trainer) is captured attribute by attribute and restored *into the fresh object the course's
config builds*, so restoring creates no object of a class the snapshot names, except dataclasses of
``fscore`` (or of a class :func:`allow` was given), filled field by field without running their code.

What the config rebuilds is never captured: pydantic models (config sections, options), callables,
classes, modules, and the parts of a course wired together at start (workers' references to one another,
transports, catalogs, datasets, handler registries). A class names more such attributes in
``snapshot_exclude``. Anything else that cannot be kept is refused, naming where it is, rather than
silently left out: a restored course is bit-exact or it is not restored. A class whose state is not in its
attributes defines ``snapshot_state()`` returning a plain-data tree and ``restore_state(tree)``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import importlib
import types
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel

from fscore.errors import SnapshotError

#: numpy dtypes a snapshot stores (the wire format's, and the integer and boolean state of samplers)
TENSOR_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
                           "uint32", "uint64", "bool"})
_BIT_GENERATORS = frozenset({"PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"})
_DEFAULT_FACTORIES: dict[str, Callable[[], Any]] = {"int": int, "float": float, "list": list, "dict": dict,
                                                    "set": set}
_ALLOWED: set[type] = set()
_PRIMITIVES = (bool, int, float, str)
_OURS = ("fscore", "fscope_coordinator", "fscope_participant")
_REBUILT: list[type] = [BaseModel, type, types.ModuleType, types.FunctionType, types.MethodType,
                        types.BuiltinFunctionType, functools.partial]


def allow(cls: type) -> type:
    """Let snapshots of this (non-``fscore``) dataclass or mapping be rebuilt from their fields; a decorator."""
    _ALLOWED.add(cls)
    return cls


def rebuilt(cls: type) -> type:
    """Instances of ``cls`` come from the config and are never captured; a decorator."""
    _REBUILT.append(cls)
    return cls


@dataclasses.dataclass
class State:
    """One object's captured state: the tree (JSON-able) and the arrays it refers to by index."""

    tree: Any
    tensors: list[np.ndarray]


def capture(obj: object, where: str) -> State:
    """The state of ``obj`` (captured attribute by attribute); ``where`` names it in errors."""
    tensors: list[np.ndarray] = []
    return State(_Encoder(tensors).obj(obj, where, set()), tensors)


def restore(obj: object, state: State, where: str) -> None:
    """Put ``state`` back into ``obj``, an object built from the same config as the one captured.

    A tree that is not one :func:`capture` could have written is refused with :class:`SnapshotError`.
    """
    try:
        _Decoder(state.tensors).into(obj, state.tree, where)
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, RecursionError) as exc:
        raise SnapshotError(f"{where}: malformed snapshot state ({type(exc).__name__}: {exc})") from None


def _qualname(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _excluded(cls: type) -> set[str]:
    names: set[str] = set()
    for base in cls.__mro__:
        names.update(getattr(base, "snapshot_exclude", ()))
    return names


def _plain_class(cls: type) -> bool:
    """Whether every state of ``cls``'s instances is in their attributes: a Python class all the way to object
    (an extension type such as random.Random or torch.Tensor keeps state no attribute shows)."""
    return cls.__basicsize__ <= _PlainInstance.__basicsize__ and not any("__slots__" in vars(c) for c in cls.__mro__)


class _PlainInstance:
    """The size of an instance of a Python class: a class with C fields (state outside ``__dict__``) is larger."""


def _is_rebuilt(value: object) -> bool:
    return isinstance(value, tuple(_REBUILT)) or (callable(value) and not hasattr(value, "__dict__"))


class _Encoder:
    def __init__(self, tensors: list[np.ndarray]) -> None:
        self.tensors = tensors

    def tensor(self, value: np.ndarray, where: str) -> int:
        if value.dtype.name not in TENSOR_DTYPES:
            raise SnapshotError(f"{where}: an array of dtype {value.dtype} cannot be kept in a snapshot")
        self.tensors.append(np.array(value, copy=True))
        return len(self.tensors) - 1

    def value(self, value: Any, where: str, path: set[int]) -> Any:
        if value is None or type(value) in _PRIMITIVES:
            return value
        if isinstance(value, np.ndarray):
            return {"t": "tensor", "i": self.tensor(value, where)}
        if isinstance(value, np.generic):
            return {"t": "scalar", "i": self.tensor(np.asarray(value), where)}
        if isinstance(value, np.random.Generator):
            state = value.bit_generator.state
            return {"t": "rng", "v": self.value(state, f"{where}.bit_generator", path)}
        if isinstance(value, enum.Enum):
            return {"t": "enum", "cls": self._allowed(type(value), where), "v": self.value(value.value, where, path)}
        for plain in _PRIMITIVES:  # a subclass of a primitive (not an enum) is kept as the primitive
            if isinstance(value, plain):
                return plain(value)
        if isinstance(value, bytes):
            return {"t": "bytes", "v": base64.b64encode(value).decode()}
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return {"t": "tuple", "v": [self.value(v, f"{where}[{i}]", path) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]", path) for i, v in enumerate(value)]
        if isinstance(value, (set, frozenset)):
            items = sorted(value, key=repr)
            return {"t": "frozenset" if isinstance(value, frozenset) else "set",
                    "v": [self.value(v, where, path) for v in items]}
        if isinstance(value, dict):
            return self.mapping(value, where, path)
        return self.obj(value, where, path)

    def mapping(self, value: dict, where: str, path: set[int]) -> dict[str, Any]:
        pairs = [[self.value(k, f"{where} key", path), self.value(v, f"{where}[{k!r}]", path)]
                 for k, v in value.items()]
        node: dict[str, Any] = {"t": "map", "v": pairs}
        cls = type(value)
        if isinstance(value, defaultdict):
            factory = value.default_factory
            if factory is not None and _DEFAULT_FACTORIES.get(getattr(factory, "__name__", "")) is not factory:
                raise SnapshotError(f"{where}: a defaultdict of {factory!r} cannot be kept in a snapshot")
            node["default"] = factory.__name__ if factory is not None else None
        elif cls not in (dict, OrderedDict, Counter):
            node["cls"] = self._allowed(cls, where)
        elif cls is not dict:
            node["cls"] = cls.__name__
        return node

    def _allowed(self, cls: type, where: str) -> str:
        if not _may_rebuild(_qualname(cls)):
            raise SnapshotError(f"{where}: a {_qualname(cls)} cannot be rebuilt from a snapshot (fscore.snapshot.allow "
                                "lets a plain-data class be)")
        return _qualname(cls)

    def obj(self, value: object, where: str, path: set[int]) -> dict[str, Any]:
        """An object attribute by attribute (or by its own ``snapshot_state``), minus what the config rebuilds."""
        custom = getattr(value, "snapshot_state", None)
        if callable(custom):
            return {"t": "custom", "cls": _qualname(type(value)), "v": self.value(custom(), where, path)}
        if not _plain_class(type(value)):
            names = None
        elif dataclasses.is_dataclass(value):
            names = [f.name for f in dataclasses.fields(value)]
        else:
            names = list(vars(value))
        if names is None:
            raise SnapshotError(f"{where}: a {_qualname(type(value))} cannot be kept in a snapshot (give its class "
                                "snapshot_state() and restore_state())")
        excluded = _excluded(type(value))
        attrs: dict[str, Any] = {}
        skipped: list[str] = []
        for name in names:
            attr = getattr(value, name)
            if name in excluded or _is_rebuilt(attr) or id(attr) in path or _wired(attr):
                skipped.append(name)  # rebuilt from the config, or a reference back up the tree
                continue
            attrs[name] = self.value(attr, f"{where}.{name}", path | {id(value)})
        return {"t": "obj", "cls": _qualname(type(value)), "v": attrs, "skipped": skipped}


def _wired(value: object) -> bool:
    """Parts of a running course that the course builds and wires together, never its state."""
    from fscore.communicator import Communicator
    from fscore.data.dataset import ClientData, Dataset, Federation
    from fscore.events import HandlerRegistry
    from fscore.message import MessageCatalog
    from fscore.transport.base import Transport
    from fscore.worker import BaseWorker, Outbox

    return isinstance(value, (BaseWorker, Outbox, Communicator, Transport, MessageCatalog, HandlerRegistry,
                              Dataset, ClientData, Federation))


def _may_rebuild(name: str) -> bool:
    """Whether a snapshot may name the class ``module:qualname``: fscore's own, or one given to :func:`allow`."""
    return name.partition(":")[0].split(".")[0] in _OURS or any(_qualname(c) == name for c in _ALLOWED)


def _resolve(name: Any, where: str) -> type:
    """The class a snapshot names, if snapshots may name it: nothing is imported or looked up otherwise."""
    if not isinstance(name, str) or ":" not in name:
        raise SnapshotError(f"{where}: malformed class name in the snapshot ({str(name)[:60]})")
    module, _, qualname = name.partition(":")
    if not _may_rebuild(name):
        raise SnapshotError(f"{where}: the snapshot names {name}, which snapshots may not rebuild")
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        raise SnapshotError(f"{where}: the snapshot holds a {name}, which this installation does not have") from None
    if not isinstance(found, type):
        raise SnapshotError(f"{where}: the snapshot names {name}, which is not a class")
    return found


class _Decoder:
    def __init__(self, tensors: list[np.ndarray]) -> None:
        self.tensors = tensors

    def tensor(self, node: dict[str, Any], where: str) -> np.ndarray:
        i = node.get("i")
        if type(i) is not int or not 0 <= i < len(self.tensors):
            raise SnapshotError(f"{where}: refers to tensor {i!r}, which the snapshot does not have")
        return self.tensors[i]

    def value(self, node: Any, current: Any, where: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            same = isinstance(current, list) and len(current) == len(node)
            return [self.value(v, current[i] if same else None, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict) or "t" not in node:
            raise SnapshotError(f"{where}: malformed snapshot state ({str(node)[:60]})")
        kind = node["t"]
        if kind == "tensor":
            return self.tensor(node, where).copy()
        if kind == "scalar":
            scalar = self.tensor(node, where)
            if scalar.ndim != 0:
                raise SnapshotError(f"{where}: a scalar of shape {list(scalar.shape)}")
            return scalar[()].copy()
        if kind == "rng":
            state = self.value(node["v"], None, where)
            name = state.get("bit_generator") if isinstance(state, dict) else None
            if name not in _BIT_GENERATORS:
                raise SnapshotError(f"{where}: unknown bit generator {name!r}")
            rng = current if isinstance(current, np.random.Generator) and \
                type(current.bit_generator).__name__ == name else np.random.Generator(getattr(np.random, name)())
            rng.bit_generator.state = state
            return rng
        if kind == "enum":
            cls = _resolve(node["cls"], where)
            if not issubclass(cls, enum.Enum):
                raise SnapshotError(f"{where}: {node['cls']} is not an enum")
            return cls(self.value(node["v"], None, where))
        if kind == "bytes":
            return base64.b64decode(node["v"], validate=True)
        if kind == "tuple":
            same = isinstance(current, tuple) and len(current) == len(node["v"])
            return tuple(self.value(v, current[i] if same else None, f"{where}[{i}]") for i, v in enumerate(node["v"]))
        if kind in ("set", "frozenset"):
            items = [self.value(v, None, where) for v in node["v"]]
            return frozenset(items) if kind == "frozenset" else set(items)
        if kind == "map":
            return self.mapping(node, current, where)
        if kind in ("obj", "custom"):
            return self.obj(node, current, where)
        raise SnapshotError(f"{where}: unknown kind of snapshot state {kind!r}")

    def mapping(self, node: dict[str, Any], current: Any, where: str) -> dict:
        if "default" in node:
            factory = node["default"]
            out: dict = defaultdict(_DEFAULT_FACTORIES[factory] if factory else None)
        else:
            name = node.get("cls")
            builtin = {None: dict, "OrderedDict": OrderedDict, "Counter": Counter}
            if name in builtin:
                out = builtin[name]()
            else:
                cls = _resolve(name, where)
                if not issubclass(cls, dict):
                    raise SnapshotError(f"{where}: {name} is not a mapping")
                out = cls()
        for key_node, value_node in node["v"]:
            key = self.value(key_node, None, f"{where} key")
            out[key] = self.value(value_node, current.get(key) if isinstance(current, dict) else None,
                                  f"{where}[{key!r}]")
        return out

    def obj(self, node: dict[str, Any], current: Any, where: str) -> Any:
        cls_name = node.get("cls", "")
        if current is not None and _qualname(type(current)) == cls_name:
            self.into(current, node, where)
            return current
        cls = _resolve(cls_name, where)
        if node["t"] != "obj" or not dataclasses.is_dataclass(cls) or node.get("skipped"):
            found = "nothing" if current is None else f"a {_qualname(type(current))}"
            raise SnapshotError(f"{where}: the snapshot holds a {cls_name} where this course has {found}")
        made = object.__new__(cls)
        self.into(made, node, where)
        unset = [f.name for f in dataclasses.fields(made) if not hasattr(made, f.name)]
        if unset:
            raise SnapshotError(f"{where}: the snapshot's {cls_name} lacks {unset}")
        return made

    def into(self, obj: object, node: Any, where: str) -> None:
        """Restore ``node`` into ``obj`` in place: its attributes, or through its ``restore_state``."""
        if not isinstance(node, dict) or node.get("cls") != _qualname(type(obj)):
            found = node.get("cls") if isinstance(node, dict) else type(node).__name__
            raise SnapshotError(f"{where}: the snapshot holds a {found} where this course has a "
                                f"{_qualname(type(obj))}")
        custom = callable(getattr(obj, "restore_state", None))
        if node["t"] != ("custom" if custom else "obj"):
            raise SnapshotError(f"{where}: the snapshot holds a {node['t']} state for {node['cls']}, which this "
                                "course keeps the other way")
        if custom:
            obj.restore_state(self.value(node["v"], None, where))  # type: ignore[attr-defined]
            return
        fields = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set(vars(obj))
        excluded = _excluded(type(obj))
        for name, attr_node in node["v"].items():
            if name not in fields or name in excluded or name.startswith("__"):
                raise SnapshotError(f"{where}: the snapshot sets {name!r}, which is not state of a "
                                    f"{_qualname(type(obj))}")
            current = getattr(obj, name, None)
            if current is not None and (_wired(current) or _is_rebuilt(current)):
                raise SnapshotError(f"{where}: the snapshot sets {name!r}, which the course wires, not state")
            object.__setattr__(obj, name, self.value(attr_node, current, f"{where}.{name}"))
