"""Shared fixtures. Unit tests build workers with a list outbox; course tests run real courses.

The broker fixture gives a real Apache Kafka broker, never a mock. It is chosen in this order:
1. ``KAFKA_BOOTSTRAP_SERVERS`` when it is set;
2. testcontainers (Apache Kafka in KRaft mode) when a Docker engine answers;
3. the local KRaft broker from ``infra/kafka/broker`` (jars from Maven Central).
With ``CI=true`` a missing broker fails the run; elsewhere the Kafka tests are skipped, saying why.
Unit tests never ask for it, so they run without Kafka.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BROKER = ROOT / "infra" / "kafka" / "broker"


@pytest.fixture
def example_config() -> Path:
    return ROOT / "examples" / "digits_fedavg.yaml"


@pytest.fixture
def mylab(monkeypatch: pytest.MonkeyPatch) -> Path:
    """examples/mylab importable, as `PYTHONPATH=examples` makes it for a user; returns the custom-model config."""
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    return ROOT / "examples" / "digits_custom_model.yaml"


def _docker_engine() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"no Kafka broker for integration tests (CI=true makes this an error): {reason}")
    pytest.skip(f"no Kafka broker: {reason}")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield env
        return
    if _docker_engine():
        try:
            from testcontainers.kafka import KafkaContainer
        except ImportError:  # newer testcontainers
            from testcontainers.community.kafka import KafkaContainer  # type: ignore[no-redef]
        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    already_up = subprocess.run([str(BROKER), "status"], capture_output=True).returncode == 0
    proc = subprocess.run([str(BROKER), "start"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        _unavailable(f"infra/kafka/broker start failed: {proc.stderr.strip()[-2000:]}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        if not already_up and os.environ.get("FSCOPE_KEEP_BROKER") != "1":
            subprocess.run([str(BROKER), "stop"], capture_output=True, timeout=120)
