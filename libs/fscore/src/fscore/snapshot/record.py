"""The course snapshot as a versioned Avro record (issue 17), readable with plain fastavro.

A snapshot file is an Avro object container holding one ``fscope.snapshot.CourseSnapshot`` record: its schema
version, the course it belongs to (id, the fingerprint of its config, the config itself), where the course
stood (round, virtual time), every worker's state (:mod:`fscore.snapshot.state`: a JSON tree and its typed
tensors), the messages in flight between workers (a standalone course's virtual network), and the evaluation
rows so far. ``fastavro.reader(open(path, "rb"))`` reads it without fscope.

A snapshot restores only into the course it was taken from: the same config except ``rounds`` (a restored
course may run longer) and where the process finds things (``transport``, ``trust.private_key``,
``simulation.progress``). Anything else is refused, naming the keys that differ.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import numpy as np

from fscore.config import CourseConfig
from fscore.snapshot.state import TENSOR_DTYPES, SnapshotError, State

#: the version this fscope writes; it reads every version up to it
SNAPSHOT_VERSION = 1

_TENSOR = {"type": "record", "name": "SnapshotTensor", "fields": [
    {"name": "dtype", "type": "string"},
    {"name": "shape", "type": {"type": "array", "items": "long"}},
    {"name": "data", "type": "bytes", "doc": "little-endian, C order"}]}
_WORKER = {"type": "record", "name": "WorkerSnapshot", "fields": [
    {"name": "address", "type": "string"},
    {"name": "state", "type": "string", "doc": "JSON tree; {'t': 'tensor', 'i': n} refers to tensors[n]"},
    {"name": "tensors", "type": {"type": "array", "items": _TENSOR}},
    {"name": "intake", "type": {"type": "map", "values": "long"}},
    {"name": "dead_lettered", "type": "long"}]}
_HELD = {"type": "record", "name": "HeldRecord", "fields": [
    {"name": "timestamp", "type": "double"},
    {"name": "sender", "type": "string"},
    {"name": "sequence", "type": "long"},
    {"name": "value", "type": "bytes", "doc": "the wire record, as published"},
    {"name": "key", "type": ["null", "bytes"]},
    {"name": "headers", "type": {"type": "array", "items": {"type": "record", "name": "RecordHeader", "fields": [
        {"name": "key", "type": "string"}, {"name": "value", "type": "bytes"}]}}}]}
SCHEMA: dict[str, Any] = {
    "type": "record", "name": "CourseSnapshot", "namespace": "fscope.snapshot",
    "doc": "A course's whole state at one point: restoring it continues the course bit for bit.",
    "fields": [
        {"name": "schema_version", "type": "int"},
        {"name": "course_id", "type": "string"},
        {"name": "fingerprint", "type": "string", "doc": "sha256 of the config, less what a restore may change"},
        {"name": "config", "type": "string", "doc": "the course config (JSON)"},
        {"name": "round", "type": "int"},
        {"name": "planned_rounds", "type": "int", "doc": "the course's rounds when it was taken"},
        {"name": "virtual_time", "type": "double"},
        {"name": "metrics", "type": "string", "doc": "the evaluation rows so far (JSON list)"},
        {"name": "workers", "type": {"type": "array", "items": _WORKER}},
        {"name": "in_flight", "type": {"type": "array", "items": _HELD}},
        {"name": "sent", "type": "long", "doc": "messages the virtual network has held so far"},
        {"name": "inbox", "type": {"type": "map", "values": "long"}, "default": {},
         "doc": "partition -> the coordinator inbox offset this state has handled up to (a service's snapshot)"},
    ]}
_PARSED = fastavro.parse_schema(SCHEMA)
#: config keys a restore may change: how long the course runs, and where the process finds things
_MAY_DIFFER: dict[str, Any] = {"rounds": True, "transport": True, "trust": {"private_key"},
                               "simulation": {"progress"}}


@dataclass
class Held:
    """A message in flight on the virtual network."""

    timestamp: float
    sender: str
    sequence: int
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass
class WorkerSnapshot:
    address: str
    state: State
    intake: dict[str, int]
    dead_lettered: int


@dataclass
class CourseSnapshot:
    course_id: str
    fingerprint: str
    config: dict[str, Any]
    round: int
    virtual_time: float
    workers: list[WorkerSnapshot]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    in_flight: list[Held] = field(default_factory=list)
    sent: int = 0
    inbox: dict[int, int] = field(default_factory=dict)
    planned_rounds: int = 0
    schema_version: int = SNAPSHOT_VERSION

    def worker(self, address: str) -> WorkerSnapshot:
        for w in self.workers:
            if w.address == address:
                return w
        raise SnapshotError(f"the snapshot has no state for {address} (it holds {len(self.workers)} workers)")


def course_config(config: CourseConfig) -> dict[str, Any]:
    """What a snapshot's course is: the config less what a restore may change."""
    return config.model_dump(mode="json", exclude=_MAY_DIFFER)


def fingerprint(config: CourseConfig) -> str:
    canonical = json.dumps(course_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_fits(snapshot: CourseSnapshot, config: CourseConfig, where: str) -> None:
    """Refuse a snapshot of another course, or one the course has already run past."""
    if snapshot.fingerprint != fingerprint(config):
        keys = _differences(snapshot.config, course_config(config))
        what = f"{', '.join(keys[:5])} differ{'s' if len(keys) == 1 else ''}" if keys else "its fingerprint differs"
        raise SnapshotError(f"{where}: a snapshot of another course: {what} (a restore may change only rounds, "
                            "transport, trust.private_key and simulation.progress)")
    if config.rounds <= snapshot.round:
        raise SnapshotError(f"rounds: {where} is at round {snapshot.round}, so a restored course needs "
                            f"rounds > {snapshot.round} (not {config.rounds})")


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if a == b else [prefix or "the config"]


def write(path: Path, snapshot: CourseSnapshot) -> None:
    """Write ``snapshot`` to ``path`` atomically: a crash mid-write leaves the previous file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(encode(snapshot))
    os.replace(tmp, path)


def encode(snapshot: CourseSnapshot) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, _PARSED, [_record(snapshot)], codec="deflate")
    return buffer.getvalue()


def read(path: Path) -> CourseSnapshot:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read the snapshot ({exc.strerror})") from None
    return decode(data, str(path))


def decode(data: bytes, where: str) -> CourseSnapshot:
    try:  # one pass with this version's schema; the file's own schema only when that fails (a newer file, maybe)
        records = list(fastavro.reader(io.BytesIO(data), reader_schema=_PARSED))
        version = records[0]["schema_version"] if len(records) == 1 else _version(data)
    except Exception:  # noqa: BLE001 - fastavro raises many kinds on corrupt input
        records = []
        try:
            version = _version(data)
        except Exception as exc:  # noqa: BLE001
            raise SnapshotError(f"{where}: not a readable course snapshot ({type(exc).__name__}: {exc})") from None
    if version > SNAPSHOT_VERSION:
        raise SnapshotError(f"{where}: snapshot schema version {version} is newer than this fscope reads (up to "
                            f"{SNAPSHOT_VERSION}); upgrade fscope to restore it")
    if version < 1:
        raise SnapshotError(f"{where}: snapshot schema version {version} is not one fscope ever wrote")
    try:  # read as this version's schema: a file whose own schema types its fields otherwise is refused
        if len(records) != 1:
            raise ValueError(f"{len(records)} records, not one")
        snapshot = _snapshot(records[0], where)
    except SnapshotError:
        raise
    except Exception as exc:  # noqa: BLE001 - fastavro, json and the checks raise many kinds on a bad file
        raise SnapshotError(f"{where}: malformed course snapshot ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(snapshot.metrics, list) or not all(isinstance(r, dict) for r in snapshot.metrics):
        raise SnapshotError(f"{where}: malformed course snapshot (its metrics are not a list of rows)")
    return snapshot


def _version(data: bytes) -> int:
    """The schema version of the one record in ``data``, read with the file's own schema (a newer one, maybe)."""
    records = list(fastavro.reader(io.BytesIO(data)))
    if len(records) != 1 or not isinstance(records[0], dict) or type(records[0].get("schema_version")) is not int:
        raise ValueError("expected one fscope.snapshot.CourseSnapshot record with an int schema_version")
    return records[0]["schema_version"]


def _record(s: CourseSnapshot) -> dict[str, Any]:
    return {
        "schema_version": s.schema_version, "course_id": s.course_id, "fingerprint": s.fingerprint,
        "config": json.dumps(s.config, sort_keys=True), "round": s.round,
        "planned_rounds": s.planned_rounds, "virtual_time": s.virtual_time,
        "metrics": json.dumps(s.metrics),
        "workers": [{"address": w.address, "state": json.dumps(w.state.tree),
                     "tensors": [_tensor(t) for t in w.state.tensors], "intake": w.intake,
                     "dead_lettered": w.dead_lettered} for w in s.workers],
        "in_flight": [{"timestamp": h.timestamp, "sender": h.sender, "sequence": h.sequence, "value": h.value,
                       "key": h.key, "headers": [{"key": k, "value": v} for k, v in h.headers]} for h in s.in_flight],
        "sent": s.sent, "inbox": {str(p): o for p, o in s.inbox.items()}}


def _snapshot(r: dict[str, Any], where: str) -> CourseSnapshot:
    workers = [WorkerSnapshot(w["address"], State(json.loads(w["state"]),
                                                  [_array(t, f"{where}: {w['address']}") for t in w["tensors"]]),
                              dict(w["intake"]), w["dead_lettered"]) for w in r["workers"]]
    held = [Held(h["timestamp"], h["sender"], h["sequence"], h["value"], h["key"],
                 tuple((x["key"], x["value"]) for x in h["headers"])) for h in r["in_flight"]]
    return CourseSnapshot(r["course_id"], r["fingerprint"], json.loads(r["config"]), r["round"], r["virtual_time"],
                          workers, json.loads(r["metrics"]), held, r["sent"],
                          {int(p): o for p, o in r.get("inbox", {}).items()}, r["planned_rounds"], r["schema_version"])


def _tensor(a: np.ndarray) -> dict[str, Any]:
    little = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": np.ascontiguousarray(little).tobytes()}


def _array(t: dict[str, Any], where: str) -> np.ndarray:
    if t["dtype"] not in TENSOR_DTYPES:
        raise SnapshotError(f"{where}: tensor dtype {t['dtype']!r} is not one a snapshot holds")
    dtype = np.dtype(t["dtype"]).newbyteorder("<")
    shape = tuple(t["shape"])
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(t["data"]):
        raise SnapshotError(f"{where}: a {t['dtype']} tensor of shape {list(shape)} does not hold "
                            f"{len(t['data'])} bytes")
    return np.frombuffer(t["data"], dtype).reshape(shape).astype(dtype.newbyteorder("="))
