"""Personalized courses as processes over a real broker (issue 14): Ditto and FedBN, one coordinator and three
participant services each. Each ends with the standalone run's model, replays with ``fscope replay --verify``,
and no private parameter name is on any topic, read back with plain fastavro."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.avro_reader import AvscReader
from tests.e2e.processes import BIN, raw_records, start, wait_until_all_exit

pytestmark = pytest.mark.slow

BATCHNORM = {"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"}


@pytest.mark.parametrize(("personalization", "private"), [("fedbn", BATCHNORM), ("ditto", set())])
def test_a_personalized_course_runs_as_services_replays_and_keeps_private_parameters_home(
        tmp_path, kafka_bootstrap, personalization, private):
    from tests.conftest import ROOT

    config_path = ROOT / "examples" / "digits_personalized.yaml"
    course = f"e2e-{personalization}-{uuid.uuid4().hex[:8]}"
    sets = [f"course_id={course}", "rounds=4", "participants=3", f"personalization={{name: {personalization}}}",
            'participant_overrides={"0": {lr: 0.05}}']
    kafka = ["transport.kind=kafka", f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    flags = [a for s in (*sets, *kafka) for a in ("--set", s)]
    out = tmp_path / "coordinator"
    processes = [start([str(BIN / "fscope-coordinator"), "serve", str(config_path), *flags, "--output", str(out)],
                       tmp_path / "coordinator.log")]
    processes += [start([str(BIN / "fscope-participant"), "serve", str(config_path), *flags, "--index", str(i)],
                        tmp_path / f"participant-{i}.log") for i in range(3)]
    codes = wait_until_all_exit(processes, "the course to finish")
    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    assert codes == [0] * 4, (codes, {k: v[-3000:] for k, v in logs.items()})

    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config_path, sets), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    assert summary["clientwise"]["accuracy"]["by_participant"] == standalone["clientwise"]["accuracy"]["by_participant"]

    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify", "--output", str(tmp_path / "replay")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification passed" in proc.stdout

    reader, names = AvscReader(), set()
    for kind in ("coordinator", "broadcast", "direct", "meta"):
        for record in raw_records(kafka_bootstrap, f"fscope.{course}.{kind}"):
            payload = reader.decode(record.value()).payload
            names |= {t["name"] for t in payload.get("tensors", [])} | {d["name"] for d in payload.get("layout", [])}
    assert names, "no tensors decoded"
    assert not names & private, names & private
    assert names == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", *(BATCHNORM - private)}
