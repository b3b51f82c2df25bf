"""Helpers for tests that run fscope's services as OS processes against a real broker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

BIN = Path(sys.executable).parent


def raw_records(bootstrap: str, topic: str) -> list:
    """Every record of ``topic`` with plain confluent-kafka, up to the end offsets read at the start."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"audit-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out, remaining = [], {p for p, end in ends.items() if end > 0}
    deadline = time.monotonic() + 60
    while remaining and time.monotonic() < deadline:
        for msg in consumer.consume(500, 0.5):
            if msg.error():
                continue
            out.append(msg)
            if msg.offset() + 1 >= ends[msg.partition()]:
                remaining.discard(msg.partition())
    consumer.close()
    assert not remaining, f"{topic}: partitions {remaining} not read to the end"
    return sorted(out, key=lambda m: (m.partition(), m.offset()))


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def wait_for(predicate, what: str, timeout: float = 300, watch: tuple = ()) -> None:
    """Wait until ``predicate()``; fail at once if a process in ``watch`` (process, log) dies with an error."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        for proc, log in watch:
            assert proc.poll() in (None, 0), f"{log.name} exited {proc.poll()}: {log.read_text()[-3000:]}"
        time.sleep(0.2)


def wait_until_all_exit(processes: list[subprocess.Popen], what: str, timeout: float = 600,
                        may_fail: tuple[subprocess.Popen, ...] = ()) -> list[int | None]:
    """Wait until every process has exited, or one fails (it would leave the others waiting); kill the rest.

    ``may_fail``: processes expected to exit non-zero while the others carry on.
    """
    try:
        wait_for(lambda: all(p.poll() is not None for p in processes)
                 or any(p.poll() not in (None, 0) for p in processes if p not in may_fail), what, timeout=timeout)
        return [p.poll() for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


def run_course(config: Path, sets: list[str], tmp: Path, participants: int,
               env: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    """Run a course as a coordinator and ``participants`` participant processes until all exit 0.

    Returns the coordinator's output directory (summary.json, metrics.jsonl) and each process's log by file name.
    """
    flags = [a for s in sets for a in ("--set", s)]
    out = tmp / "coordinator"
    processes = [start([str(BIN / "fscope-coordinator"), "serve", str(config), *flags, "--output", str(out)],
                       tmp / "coordinator.log", env)]
    processes += [start([str(BIN / "fscope-participant"), "serve", str(config), *flags, "--index", str(i)],
                        tmp / f"participant-{i}.log", env) for i in range(participants)]
    codes = wait_until_all_exit(processes, "the course to finish")
    logs = {p.name: p.read_text(errors="replace") for p in tmp.glob("*.log")}
    assert codes == [0] * (participants + 1), (codes, {k: v[-3000:] for k, v in logs.items()})
    return out, logs


def replay_verified(bootstrap: str, course: str, output: Path | None = None,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``fscope replay --verify`` of a finished course; it must pass."""
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", bootstrap, "--course", course,
                           "--verify", *(["--output", str(output)] if output is not None else [])],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout
    return proc
