"""Both services check a course the way `fscope run` does before they touch Kafka: extensions are imported and
validated, and the message flow is checked over every participant configuration. A broken course is refused
with exit 2 and one line that names the problem (here nothing listens on the broker address at all)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

SERVICES = {"coordinator": ["-m", "fscope_coordinator.main", "serve"],
            "participant": ["-m", "fscope_participant.main", "serve"]}
NOWHERE = ["--set", "transport.kafka.bootstrap_servers=127.0.0.1:9", "--set", "transport.kafka.connect_timeout_s=1"]


def _serve(service: str, config, *extra: str) -> subprocess.CompletedProcess:
    index = ["--index", "0"] if service == "participant" else []
    return subprocess.run([sys.executable, *SERVICES[service], str(config), *index, *NOWHERE, *extra],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "examples")})


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_refuses_a_course_whose_flow_graph_is_broken(service, tmp_path):
    raw = yaml.safe_load((ROOT / "examples" / "digits_norm_report.yaml").read_text())
    raw["plugins"][0]["role"] = "participant"  # participants send update_norm; the coordinator has no handler
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = _serve(service, path)
    assert proc.returncode == 2, proc.stderr
    assert (f"fscope-{service}: the course is incomplete: participant handler Participant.train_and_report + "
            "NormReport.report emits 'update_norm' but the coordinator has no handler for 'update_norm'") in proc.stderr
    assert "kafka_unreachable" not in proc.stderr + proc.stdout  # refused before connecting


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_refuses_an_unknown_plugin_in_one_line(service, example_config):
    proc = _serve(service, example_config, "--set", "plugins=[{name: no_such_plugin}]")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"fscope-{service}: config error: plugins[0].name: unknown "
                                                   "plugin 'no_such_plugin'")


def test_the_coordinators_checks_import_no_ml_framework(example_config):
    check = ("import sys\nfrom fscore.config import load_config\nfrom fscore.course import checked_builder\n"
             "b = checked_builder(load_config(sys.argv[1], ['attack.kind=sign_flip', 'attack.participants=[1]']))\n"
             "assert len(b.check_workers()[1]) == 2\n"
             "loaded = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]\n"
             "print(loaded)\nsys.exit(1 if loaded else 0)\n")
    proc = subprocess.run([sys.executable, "-c", check, str(example_config)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fscope_is_one_command_tree_with_the_services_found_by_entry_point(example_config):
    from fscore.cli import main

    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "coordinator", "describe", str(example_config)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "condition:all_received -> Coordinator.aggregate" in proc.stdout
    lazy = ("import sys, click\nfrom fscore.cli import cli\ncli.get_command(click.Context(cli), 'run')\n"
            "sys.exit('fscope_coordinator.main' in sys.modules)\n")  # fscope run does not load the services
    assert subprocess.run([sys.executable, "-c", lazy], timeout=60).returncode == 0
    helped = subprocess.run([sys.executable, "-m", "fscore.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "coordinator" in helped.stdout and "participant" in helped.stdout
    assert main(["run"]) == 2  # a usage error: exit 2, as before


def test_a_bad_participant_index_in_the_environment_is_one_line(example_config):
    env = {**os.environ, "FSCOPE_PARTICIPANT_INDEX": "seven"}
    proc = subprocess.run([sys.executable, "-m", "fscope_participant.main", "describe", str(example_config)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "fscope-participant: config error: environment variable FSCOPE_PARTICIPANT_INDEX: Input should be a valid "
        "integer, unable to parse string as an integer (got 'seven')"]
