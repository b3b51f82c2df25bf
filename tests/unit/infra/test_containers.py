"""The container files, tested as far as this machine allows (it has no Docker engine).

The compose file parses and wires a course together; each image's entrypoint command, run outside
Docker with the environment compose gives it, loads the course and describes its worker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[3]
INFRA = ROOT / "infra"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


def dockerfile_command(name: str) -> tuple[list[str], list[str], dict[str, str]]:
    text = (INFRA / "docker" / f"{name}.Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
    env = dict(re.findall(r"^ENV (FSCOPE_\w+)=(\S+)$", text, re.M))
    return entrypoint, cmd, env


def test_compose_runs_kafka_in_kraft_mode_a_coordinator_and_distinct_participants(compose):
    services = compose["services"]
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller" and kafka["KAFKA_LOG_RETENTION_MS"] == "-1"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    participants = {name: s for name, s in services.items() if name.startswith("participant-")}
    indices = sorted(int(s["environment"]["FSCOPE_PARTICIPANT_INDEX"]) for s in participants.values())
    assert indices == list(range(len(participants))) and len(participants) >= 3
    sets = dict(item.split("=", 1) for item in services["coordinator"]["environment"]["FSCOPE_SET"].split(";"))
    assert int(sets["participants"]) == len(participants) and sets["transport.kind"] == "kafka"
    for name in ["coordinator", *participants]:
        service = services[name]
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        dockerfile = ROOT / "infra" / service["build"]["context"] / service["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile


def test_images_copy_only_what_exists_and_the_coordinator_image_has_no_torch():
    for name in ("coordinator", "participant"):
        text = (INFRA / "docker" / f"{name}.Dockerfile").read_text()
        for source in re.findall(r"^COPY (\S+) ", text, re.M):
            assert (ROOT / source).exists(), f"{name}.Dockerfile copies missing {source}"
    installs = re.findall(r"^RUN pip install (.+)$", (INFRA / "docker" / "coordinator.Dockerfile").read_text(), re.M)
    assert installs and not any("torch" in line or "tensorflow" in line for line in installs)


@pytest.mark.parametrize("name", ["coordinator", "participant"])
def test_each_entrypoint_works_outside_docker_with_the_compose_environment(compose, name):
    entrypoint, cmd, image_env = dockerfile_command(name)
    service = compose["services"][name if name == "coordinator" else "participant-1"]
    env = {**os.environ, **image_env, **service["environment"]}
    env["FSCOPE_CONFIG"] = str(ROOT / "examples" / Path(env["FSCOPE_CONFIG"]).name)  # /course is examples/
    assert cmd[0] == "serve"
    proc = subprocess.run([str(BIN / entrypoint[0]), "describe"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    if name == "participant":
        assert proc.stdout.startswith("participant-00001: ")
    assert "message:" in proc.stdout


def test_a_bad_environment_is_a_config_error_with_exit_code_2(example_config):
    env = {**os.environ, "FSCOPE_CONFIG": str(example_config), "FSCOPE_PARTICIPANT_INDEX": "99"}
    proc = subprocess.run([str(BIN / "fscope-participant"), "describe"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "fscope-participant: config error: participant index 99 is outside 0..9"


def test_the_compose_course_is_mixed_and_the_tensorflow_participant_gets_tensorflow(compose):
    tf = compose["services"]["participant-2"]
    assert tf["build"]["args"]["WITH_TENSORFLOW"] == "1"
    assert "trainer.backend=tensorflow" in tf["environment"]["FSCOPE_SET"].split(";")
    same = {k: v for k, v in tf["environment"].items() if k not in ("FSCOPE_SET", "FSCOPE_PARTICIPANT_INDEX")}
    assert same == {k: v for k, v in compose["services"]["participant-0"]["environment"].items()
                    if k not in ("FSCOPE_SET", "FSCOPE_PARTICIPANT_INDEX")}
    text = (INFRA / "docker" / "participant.Dockerfile").read_text()
    assert 'if [ "$WITH_TENSORFLOW" = "1" ]; then pip install "tensorflow-cpu' in text
