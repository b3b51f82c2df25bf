"""Kafka over TLS with SASL (SCRAM-SHA-512): a signed course on the local broker's SASL_SSL listener, with
both clients, and a wrong password or a client without the CA refused at once with exit 3 and one clear line.

The local broker (``infra/kafka/broker``) serves SASL_SSL on its port + 2 with a self-signed CA made at its
first start and two SCRAM users; ``infra/kafka/broker sasl`` says how to reach it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.conftest import BROKER, ROOT, _unavailable
from tests.e2e.processes import BIN, start, wait_until_all_exit

pytestmark = pytest.mark.slow
CONFIG = ROOT / "examples" / "digits_fedavg.yaml"


@pytest.fixture(scope="module")
def sasl(kafka_bootstrap) -> dict:
    proc = subprocess.run([str(BROKER), "sasl"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        _unavailable(f"the local broker's SASL_SSL listener is not available: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def _env(sasl: dict, user: str, password: str | None = None) -> dict[str, str]:
    return {**os.environ, "FSCOPE_KAFKA_SASL_USERNAME": user,
            "FSCOPE_KAFKA_SASL_PASSWORD": sasl["users"][user] if password is None else password}


def _sets(sasl: dict, course: str, client: str, *, cafile: bool = True) -> list[str]:
    return [f"course_id={course}", "rounds=2", "participants=2", "trainer.local_epochs=1", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={sasl['bootstrap']}", f"transport.kafka.client={client}",
            "transport.kafka.security_protocol=SASL_SSL", "transport.kafka.sasl_mechanism=SCRAM-SHA-512",
            *([f"transport.kafka.ssl_cafile={sasl['cafile']}"] if cafile else [])]


def _grant(course: str) -> None:
    proc = subprocess.run([str(BROKER), "acl", course], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_signed_course_runs_over_sasl_ssl_and_ends_with_the_standalone_model(tmp_path, sasl, client):
    course = f"e2e-sasl-{client}-{uuid.uuid4().hex[:6]}"
    sets = _sets(sasl, course, client)
    flags = [a for s in sets for a in ("--set", s)]
    _grant(course)  # the participants' user may do only what a participant does (the coordinator's, anything)
    out = tmp_path / "coordinator"
    coordinator = start([str(BIN / "fscope-coordinator"), "serve", str(CONFIG), *flags, "--output", str(out)],
                        tmp_path / "coordinator.log", env=_env(sasl, "fscope-coordinator"))
    participants = [start([str(BIN / "fscope-participant"), "serve", str(CONFIG), *flags, "--index", str(i)],
                          tmp_path / f"participant-{i}.log", env=_env(sasl, "fscope-participant")) for i in range(2)]
    codes = wait_until_all_exit([coordinator, *participants], "the course over SASL_SSL")
    logs = {p.name: p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0, 0], (codes, logs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_sha256"] == run_standalone(load_config(CONFIG, sets[:4]), progress=False).summary[
        "model_sha256"]
    assert summary["dead_lettered"] == 0
    _assert_participants_may_not_write_models(sasl, course)


def _assert_participants_may_not_write_models(sasl: dict, course: str) -> None:
    """With the course's ACLs, the participants' user may write to the inbox but not to the model topics."""
    from confluent_kafka import KafkaException, Producer

    def produce(topic: str) -> str | None:
        errors: list[str] = []
        producer = Producer({"bootstrap.servers": sasl["bootstrap"], "security.protocol": "SASL_SSL",
                             "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "fscope-participant",
                             "sasl.password": sasl["users"]["fscope-participant"], "ssl.ca.location": sasl["cafile"],
                             "enable.idempotence": False, "message.timeout.ms": 10_000})
        try:
            producer.produce(topic, b"x", on_delivery=lambda err, _: errors.append(str(err)) if err else None)
            producer.flush(15)
        except KafkaException as exc:
            errors.append(str(exc))
        return errors[0] if errors else None

    assert produce(f"fscope.{course}.coordinator") is None
    refused = produce(f"fscope.{course}.broadcast")
    assert refused is not None and "TOPIC_AUTHORIZATION_FAILED" in refused, refused


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
@pytest.mark.parametrize("fault", ["wrong password", "no CA"])
def test_bad_credentials_or_a_client_without_the_ca_are_refused_with_exit_3_at_once(sasl, client, fault):
    sets = _sets(sasl, f"e2e-refused-{uuid.uuid4().hex[:6]}", client, cafile=fault != "no CA")
    env = _env(sasl, "fscope-coordinator", "not-the-password" if fault == "wrong password" else None)
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "fscope-coordinator"), "serve", str(CONFIG),
                           *(a for s in sets for a in ("--set", s))], env=env, capture_output=True, text=True,
                          timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert took < 30, took
    (line,) = [json.loads(x) for x in proc.stderr.splitlines() if '"kafka_unreachable"' in x]
    needle = {"wrong password": ("authentication", "Authentication"), "no CA": ("certificate", "SSL", "ssl")}[fault]
    assert any(n in line["error"] for n in needle), line["error"]
    assert "not-the-password" not in proc.stderr
