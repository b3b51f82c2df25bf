"""A broker for the Kafka benchmarks: ``KAFKA_BOOTSTRAP_SERVERS``, or the local one from infra/ (started and
stopped around the run if it was not already up)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

BROKER = Path(__file__).parents[1] / "infra" / "kafka" / "broker"


@contextlib.contextmanager
def kafka_bootstrap() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    already_up = subprocess.run([str(BROKER), "status"], capture_output=True).returncode == 0
    started = subprocess.run([str(BROKER), "start"], capture_output=True, text=True, check=True)
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        if not already_up:
            subprocess.run([str(BROKER), "stop"], capture_output=True)
