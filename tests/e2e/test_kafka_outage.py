"""Liveness over a real broker: an unreachable broker is told in seconds, a broker outage mid-course is ridden
out, and a second coordinator for a course, or a restart with another config, is refused before it sends
anything."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.e2e.processes import BIN, raw_records, start, wait_for, wait_until_all_exit

pytestmark = pytest.mark.slow

#: how long the broker is down mid-course; the acceptance figure is two minutes
OUTAGE_S = float(os.environ.get("FSCOPE_OUTAGE_S", "120"))


def _course_flags(kafka_bootstrap: str, course: str, *extra: str) -> tuple[list[str], list[str]]:
    sets = [f"course_id={course}", "rounds=6", "participants=3", "transport.kind=kafka",
            f"transport.kafka.bootstrap_servers={kafka_bootstrap}", *extra]
    return sets, [a for s in sets for a in ("--set", s)]


@pytest.mark.parametrize("service", ["coordinator", "participant"])
def test_an_unreachable_broker_is_reported_as_such_with_exit_3_within_seconds(tmp_path, service):
    from tests.conftest import ROOT

    started = time.monotonic()
    proc = subprocess.run([str(BIN / f"fscope-{service}"), "serve", str(ROOT / "examples" / "digits_fedavg.yaml"),
                           "--set", "transport.kind=kafka", "--set", "transport.kafka.bootstrap_servers=127.0.0.1:1",
                           *(["--index", "0"] if service == "participant" else [])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert time.monotonic() - started < 15
    (line,) = [json.loads(x) for x in proc.stderr.splitlines() if '"kafka_unreachable"' in x]
    assert "unreachable at 127.0.0.1:1" in line["error"]


def test_replay_against_an_unreachable_broker_says_so_in_one_line():
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", "127.0.0.1:1", "--course", "x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    lines = [x for x in proc.stderr.splitlines() if x.startswith("fscope:")]
    assert lines == [lines[0]] and "Kafka broker unreachable at 127.0.0.1:1" in lines[0]
    assert "Traceback" not in proc.stderr


def test_a_second_coordinator_and_a_restart_with_another_config_are_refused_before_they_send(
        tmp_path, kafka_bootstrap):
    from tests.conftest import ROOT

    config = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-fence-{uuid.uuid4().hex[:8]}"
    _, flags = _course_flags(kafka_bootstrap, course)
    first = start([str(BIN / "fscope-coordinator"), "serve", str(config), *flags, "--output", str(tmp_path / "a")],
                  tmp_path / "first.log")
    try:
        wait_for(lambda: '"serving"' in (tmp_path / "first.log").read_text(), "the first coordinator to serve",
                 watch=((first, tmp_path / "first.log"),), timeout=120)
        meta_before = len(raw_records(kafka_bootstrap, f"fscope.{course}.meta"))
        second = subprocess.run([str(BIN / "fscope-coordinator"), "serve", str(config), *flags],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        assert '"another_coordinator"' in second.stderr
        assert len(raw_records(kafka_bootstrap, f"fscope.{course}.meta")) == meta_before  # it wrote nothing
        assert first.poll() is None  # the first one serves on
    finally:
        first.terminate()
        assert first.wait(60) == 4  # stopped by a signal before the course finished
    # Nothing was committed (nobody joined); a restart with another config is refused all the same.
    other = subprocess.run([str(BIN / "fscope-coordinator"), "serve", str(config), *flags, "--set", "rounds=9"],
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and '"config_differs"' in other.stderr, other.stderr[-2000:]
    manifests = [m for m in raw_records(kafka_bootstrap, f"fscope.{course}.meta") if b"course_manifest" in m.value()]
    assert len(manifests) == 1


def test_every_process_rides_out_a_broker_outage_and_the_course_ends_with_the_standalone_model(
        tmp_path, kafka_bootstrap):
    from tests.conftest import BROKER, ROOT

    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the broker is external: this test stops and restarts the local one")
    config = ROOT / "examples" / "digits_fedavg.yaml"
    course = f"e2e-outage-{uuid.uuid4().hex[:8]}"
    sets, flags = _course_flags(kafka_bootstrap, course)
    out = tmp_path / "coordinator"
    processes = [start([str(BIN / "fscope-coordinator"), "serve", str(config), *flags, "--output", str(out)],
                       tmp_path / "coordinator.log")]
    processes += [start([str(BIN / "fscope-participant"), "serve", str(config), *flags, "--index", str(i)],
                        tmp_path / f"participant-{i}.log") for i in range(3)]
    watch = tuple((p, tmp_path / f"{n}.log") for p, n in
                  zip(processes, ["coordinator", "participant-0", "participant-1", "participant-2"], strict=True))
    metrics = out / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 2, "two evaluations", watch=watch)
    subprocess.run([str(BROKER), "stop"], check=True, capture_output=True, timeout=120)
    try:
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes), [p.poll() for p in processes]
            time.sleep(1)
    finally:
        subprocess.run([str(BROKER), "start"], check=True, capture_output=True, timeout=300)
    codes = wait_until_all_exit(processes, "the course to finish after the outage")
    logs = {p.name: p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0, 0, 0], (codes, logs)
    summary = json.loads((out / "summary.json").read_text())
    standalone = run_standalone(load_config(config, sets[:3]), progress=False).summary
    assert summary["model_sha256"] == standalone["model_sha256"]
    proc = subprocess.run([str(BIN / "fscope"), "replay", "--bootstrap-servers", kafka_bootstrap, "--course", course,
                           "--verify"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
