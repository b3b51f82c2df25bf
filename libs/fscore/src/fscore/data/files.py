"""Datasets researchers bring on local disk (issue 18): LEAF JSON, CIFAR-10 binary batches, ``.npz`` and CSV tables.

Nothing is downloaded: ``data.path`` names the file or directory. Each format may name who each example
belongs to (LEAF's users, an ``.npz`` array ``data.client_key``, a table column ``data.client_key``), and
``data.split: natural`` keeps that partition: one participant per writer (:func:`natural_federation`). Any
of them can also be split like a central dataset (iid, dirichlet, classes).

A file is untrusted input: every error is one line naming the file and the field (a missing key, lengths
that disagree, a value that is not a number, an array of the wrong shape), raised as
:class:`~fscore.errors.ConfigError` under ``data.path``. CIFAR-10 is read in its binary version (the
``cifar-10-batches-bin`` its authors ship beside the python one): fixed records of one label byte and 3072
pixel bytes, taken as raw bytes by numpy. Nothing is unpickled, so a crafted batch cannot run code.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fscore.config import DataConfig
from fscore.data.dataset import Dataset, Federation
from fscore.data.sources import CentralDataset, client_split
from fscore.data.splitters import SplitError, train_test_split
from fscore.errors import ConfigError


@dataclass(frozen=True)
class Labelled:
    """Every example of a file, and whom each belongs to (None when the file does not say)."""

    data: Dataset
    input_shape: tuple[int, ...]
    owners: np.ndarray | None = None  # one writer id (a string) per example


def _error(path: Path | str, message: str) -> ConfigError:
    return ConfigError(f"data.path: {path}: {message}")


def _path(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise ConfigError(f"data.path: dataset {cfg.dataset!r} reads a file; give data.path")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise ConfigError(f"data.path: {path} does not exist")
    return path


def _square(features: int) -> tuple[int, ...]:
    """A flat image of s*s pixels is (1, s, s), so convolutional models apply; anything else stays flat."""
    side = math.isqrt(features)
    return (1, side, side) if side > 1 and side * side == features else (features,)


def _numeric(values: object, where: str, path: Path, dtype: type = np.float32) -> np.ndarray:
    try:
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise _error(path, f"{where} is not numeric ({str(exc).splitlines()[0][:120]})") from None


# -- LEAF ----------------------------------------------------------------------------------------------------------
def read_leaf(path: Path) -> Labelled:
    """LEAF's JSON (Caldas et al. 2018): ``users``, ``num_samples`` and ``user_data`` {user: {x, y}}, in one file or
    every ``*.json`` of a directory (LEAF writes ``train/`` and ``test/``; give either, or a file)."""
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    if not files:
        raise _error(path, "no *.json file (a LEAF directory holds users, num_samples and user_data)")
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    owners: list[str] = []
    for file in files:
        try:
            doc = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _error(file, f"not LEAF JSON ({type(exc).__name__}: {str(exc)[:120]})") from None
        if not isinstance(doc, dict):
            raise _error(file, "not LEAF JSON (expected an object with users, num_samples and user_data)")
        for field in ("users", "num_samples", "user_data"):
            if field not in doc:
                raise _error(file, f"no field {field!r} (LEAF JSON has users, num_samples and user_data)")
        users, counts, data = doc["users"], doc["num_samples"], doc["user_data"]
        if not isinstance(users, list) or not isinstance(counts, list) or len(users) != len(counts):
            raise _error(file, f"users and num_samples differ in length ({_len(users)} and {_len(counts)})")
        if not isinstance(data, dict):
            raise _error(file, "user_data is not an object of users")
        for user, count in zip(users, counts, strict=True):
            record = data.get(user)
            if not isinstance(record, dict) or "x" not in record or "y" not in record:
                raise _error(file, f"user_data[{user!r}] has no x and y")
            x = _numeric(record["x"], f"user_data[{user!r}].x", file)
            y = _numeric(record["y"], f"user_data[{user!r}].y", file, np.int64)
            if x.ndim < 2 or len(x) != len(y) or len(y) != count:
                raise _error(file, f"user_data[{user!r}] holds x of shape {list(x.shape)} and {len(y)} labels, "
                                   f"but num_samples says {count}")
            xs.append(x.reshape(len(x), -1))
            ys.append(y)
            owners += [str(user)] * len(y)
    widths = {x.shape[1] for x in xs}
    if len(widths) > 1:
        raise _error(path, f"users' examples differ in size ({sorted(widths)[:4]} features)")
    x = np.concatenate(xs)
    return Labelled(Dataset(x, np.concatenate(ys)), _square(x.shape[1]), np.asarray(owners))


def _len(value: object) -> str:
    return str(len(value)) if isinstance(value, list) else type(value).__name__


# -- CIFAR-10 ------------------------------------------------------------------------------------------------------
_CIFAR_PIXELS = 3 * 32 * 32  # 1024 red, 1024 green, 1024 blue, each row-major 32x32
_CIFAR_RECORD = 1 + _CIFAR_PIXELS  # a label byte, then the pixels
_CIFAR_CLASSES = 10
_PICKLE_PROTOCOL = 0x80  # the first byte of a pickle of protocol 2 or later


def read_cifar10(path: Path) -> Labelled:
    """CIFAR-10's binary batches (``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin`` in a
    directory such as ``cifar-10-batches-bin``, or one batch file): records of 3073 bytes, a label (0..9) and
    3072 pixels, channels first. ``x`` is float32 (n, 3072) in [0, 1], ``y`` int64."""
    files = sorted(f for f in path.iterdir() if f.name.startswith(("data_batch", "test_batch"))
                   and f.suffix == ".bin") if path.is_dir() else [path]
    if not files:
        raise _error(path, "no data_batch_*.bin or test_batch.bin file (CIFAR-10's binary version, "
                           "cifar-10-batches-bin; the python version's pickles are not read)")
    xs, ys = [], []
    for file in files:
        try:
            raw = np.frombuffer(file.read_bytes(), dtype=np.uint8)
        except OSError as exc:
            raise _error(file, f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})") from None
        if not raw.size:
            raise _error(file, f"empty, not a CIFAR-10 binary batch (records of {_CIFAR_RECORD} bytes: 1 label "
                               f"byte, {_CIFAR_PIXELS} pixel bytes)")
        if raw[0] == _PICKLE_PROTOCOL:  # no record starts so: its label byte would be 128
            raise _error(file, "a pickle (CIFAR-10's python version), which is not read; give the binary "
                               "version, cifar-10-batches-bin")
        if raw.size % _CIFAR_RECORD:
            raise _error(file, f"{raw.size} bytes is not a whole number of {_CIFAR_RECORD}-byte records (1 label "
                               f"byte, {_CIFAR_PIXELS} pixel bytes): truncated, or not a CIFAR-10 binary batch")
        records = raw.reshape(-1, _CIFAR_RECORD)
        labels = records[:, 0].astype(np.int64)
        bad = np.flatnonzero(labels >= _CIFAR_CLASSES)
        if len(bad):
            raise _error(file, f"record {int(bad[0])} has label {int(labels[bad[0]])}; CIFAR-10's labels are "
                               f"0..{_CIFAR_CLASSES - 1} ({len(bad)} records out of range)")
        xs.append(records[:, 1:].astype(np.float32) / 255.0)
        ys.append(labels)
    return Labelled(Dataset(np.concatenate(xs), np.concatenate(ys)), (3, 32, 32))


# -- .npz ----------------------------------------------------------------------------------------------------------
def read_npz(path: Path, client_key: str) -> Labelled:
    """Arrays ``x`` (n, ...) and ``y`` (n,), and optionally ``client_key`` (n,) naming each example's owner."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise _error(path, f"not an .npz archive ({type(exc).__name__}: {str(exc)[:120]})") from None
    for field in ("x", "y"):
        if field not in arrays:
            raise _error(path, f"no array {field!r} (it holds {', '.join(sorted(arrays)) or 'nothing'})")
    x = _numeric(arrays["x"], "x", path)
    y = _numeric(arrays["y"], "y", path, np.int64)
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise _error(path, f"x has shape {list(x.shape)} and y {list(y.shape)}: expected (n, ...) and (n,)")
    owners = arrays.get(client_key)
    if owners is not None and (owners.ndim != 1 or len(owners) != len(y)):
        raise _error(path, f"{client_key} has shape {list(owners.shape)}, not ({len(y)},)")
    shape = tuple(int(d) for d in x.shape[1:])
    return Labelled(Dataset(x.reshape(len(x), -1), y), shape if len(shape) > 1 else _square(shape[0]),
                    None if owners is None else owners.astype(str))


# -- tables --------------------------------------------------------------------------------------------------------
def read_table(path: Path, client_key: str, label_key: str) -> Labelled:
    """A CSV with a header: the label column ``label_key``, the owner column ``client_key`` (if present), and
    every other column a numeric feature."""
    try:
        rows = list(csv.reader(io.StringIO(path.read_text())))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _error(path, f"not a CSV table ({type(exc).__name__}: {str(exc)[:120]})") from None
    if len(rows) < 2:
        raise _error(path, "a header and at least one row are needed")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if label_key not in header:
        raise _error(path, f"no column {label_key!r} (data.label_key; the header has {', '.join(header[:8])})")
    features = [i for i, h in enumerate(header) if h not in (label_key, client_key)]
    if not features:
        raise _error(path, "no feature column besides the label and client columns")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise _error(path, f"line {line} has {len(row)} fields, the header {len(header)}")
    x = np.empty((len(body), len(features)), np.float32)
    for line, row in enumerate(body, start=2):
        try:
            x[line - 2] = [float(row[i]) for i in features]
        except ValueError:
            bad = next(i for i in features if not _is_float(row[i]))
            raise _error(path, f"line {line}, column {header[bad]!r}: {row[bad][:40]!r} is not a number") from None
    label = header.index(label_key)
    y = _numeric([row[label] for row in body], f"column {label_key!r}", path, np.int64)
    owners = np.asarray([row[header.index(client_key)] for row in body]) if client_key in header else None
    return Labelled(Dataset(x, y), _square(len(features)), owners)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- as datasets ---------------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _read(kind: str, path: str, changed: tuple[int, int], client_key: str, label_key: str) -> Labelled:
    """One read per file and version (``changed``: its mtime and size), however often the course asks."""
    p = Path(path)
    if kind == "leaf":
        return read_leaf(p)
    if kind == "cifar10":
        return read_cifar10(p)
    if kind == "npz":
        return read_npz(p, client_key)
    return read_table(p, client_key, label_key)


class FileDataset(CentralDataset):
    """A dataset read from ``data.path``; ``data.split: natural`` keeps the file's own partition."""

    kind = ""

    def labelled(self, cfg: DataConfig) -> Labelled:
        path = _path(cfg)
        stat = path.stat()
        found = _read(self.kind, str(path.resolve()), (stat.st_mtime_ns, stat.st_size), cfg.client_key,
                      cfg.label_key)
        y = found.data.y
        if len(y) and y.min() < 0:
            raise _error(cfg.path or "", f"labels must be 0, 1, ...; found {int(y.min())}")
        return found

    def shape(self, cfg: DataConfig) -> tuple[tuple[int, ...], int]:
        found = self.labelled(cfg)
        return found.input_shape, int(found.data.y.max()) + 1 if len(found.data.y) else 0

    def load(self, cfg: DataConfig) -> Dataset:
        return self.labelled(cfg).data

    def federation(self, cfg: DataConfig, participants: int, rng: np.random.Generator) -> Federation:
        if cfg.split != "natural":
            return super().federation(cfg, participants, rng)
        found = self.labelled(cfg)
        if found.owners is None:
            raise SplitError("data.split", f"natural: {cfg.path} does not say whom its examples belong to (LEAF "
                                           f"users, an .npz array or a table column named data.client_key="
                                           f"{cfg.client_key!r})")
        return natural_federation(found, cfg, participants, self.shape(cfg), rng)


def natural_federation(found: Labelled, cfg: DataConfig, participants: int,
                       shape: tuple[tuple[int, ...], int], rng: np.random.Generator) -> Federation:
    """One participant per writer: writers with fewer than ``data.min_samples_per_participant`` examples are
    left out, and of the rest a seeded sample of ``participants`` is taken (all of them, in writer order, when
    there are just as many). Each keeps ``data.heldout_fraction`` of its examples back for the coordinator."""
    assert found.owners is not None
    writers, inverse = np.unique(found.owners, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(writers))
    eligible = np.flatnonzero(counts >= cfg.min_samples_per_participant)
    if len(eligible) < participants:
        raise SplitError("participants", f"{participants} participants, but {cfg.path} has {len(eligible)} writers "
                                         f"with at least data.min_samples_per_participant="
                                         f"{cfg.min_samples_per_participant} examples (of {len(writers)})")
    chosen = eligible if len(eligible) == participants else np.sort(rng.choice(eligible, participants,
                                                                               replace=False))
    clients, held = [], []
    for writer in chosen:
        mine = np.flatnonzero(inverse == writer)
        keep, back = train_test_split(len(mine), cfg.heldout_fraction, rng)
        held.append(mine[back])
        clients.append(client_split(found.data.subset(mine[keep]), cfg.test_fraction, rng))
    input_shape, classes = shape
    return Federation(clients, found.data.subset(np.concatenate(held)), found.data.x.shape[1], classes,
                      input_shape)


class Leaf(FileDataset):
    """LEAF JSON (FEMNIST and other numeric LEAF sets); its users are its natural partition."""

    kind = "leaf"


class Cifar10(FileDataset):
    """CIFAR-10's binary batches: 32x32 colour images, 10 classes (no natural partition)."""

    kind = "cifar10"


class Npz(FileDataset):
    """An .npz with x and y, and optionally an owner per example (``data.client_key``)."""

    kind = "npz"


class Table(FileDataset):
    """A CSV table: a label column, optionally an owner column, numeric features."""

    kind = "table"
