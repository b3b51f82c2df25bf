"""Course snapshots (issue 17): a course snapshotted and restored ends with the model it would have ended with.

Standalone, for the default course and for courses whose state lives in many places: server-optimizer
moments and Oort's sampler statistics, personal models (Ditto), a privacy accountant and its noise stream,
an asynchronous course with updates in flight. A snapshot is one Avro record plain fastavro reads, and a
corrupt or foreign one is refused in one line, leaving what was written as it was.
"""

from __future__ import annotations

import subprocess

import fastavro
import pytest

from fscore.config import load_config
from fscore.errors import ConfigError, SnapshotError
from fscore.simulation.runner import run_standalone
from fscore.snapshot import SNAPSHOT_VERSION, read
from fscore.snapshot.record import decode, encode
from tests.e2e.processes import BIN

pytestmark = pytest.mark.slow


def _config(name: str, *sets: str):
    from tests.conftest import ROOT

    return load_config(ROOT / "examples" / name, list(sets))


def test_the_default_course_snapshotted_at_round_10_and_restored_ends_bit_exact(tmp_path):
    whole = run_standalone(_config("digits_fedavg.yaml", "rounds=20"), progress=False).summary
    snapped = run_standalone(_config("digits_fedavg.yaml", "rounds=20"), output_dir=tmp_path / "a",
                             snapshot_every=10, progress=False).summary
    assert snapped["model_sha256"] == whole["model_sha256"]  # taking snapshots changes nothing
    path = tmp_path / "a" / "snapshots" / "round-00010.avro"
    assert snapped["snapshots"] == [str(path)]

    with path.open("rb") as f:  # plain fastavro reads it, schema and all
        reader = fastavro.reader(f)
        (record,) = list(reader)
    assert reader.writer_schema["name"] == "fscope.snapshot.CourseSnapshot"
    assert record["schema_version"] == SNAPSHOT_VERSION and record["round"] == 10
    assert {w["address"] for w in record["workers"]} == {"coordinator", *(f"participant-{i:05d}" for i in range(10))}

    restored = run_standalone(_config("digits_fedavg.yaml", "rounds=20"), output_dir=tmp_path / "b",
                              restore=read(path), progress=False).summary
    assert restored["model_sha256"] == whole["model_sha256"]
    assert restored["final_metrics"] == whole["final_metrics"] and restored["restored_from_round"] == 10
    assert (tmp_path / "b" / "metrics.jsonl").read_text().count("\n") == 20
    # a snapshot of a shorter course continues into a longer one
    extended = run_standalone(_config("digits_fedavg.yaml", "rounds=25"), restore=read(path), progress=False).summary
    assert extended["model_sha256"] == run_standalone(_config("digits_fedavg.yaml", "rounds=25"),
                                                      progress=False).summary["model_sha256"]


@pytest.mark.parametrize(("example", "sets"), [
    ("digits_fedavg.yaml", ["aggregator.name=fedadam", "strategy.sampler=oort", "sample_size=5"]),
    ("digits_personalized.yaml", []),
    ("digits_privacy.yaml", []),
    ("digits_async.yaml", []),
], ids=["fedadam-oort", "ditto", "privacy", "async"])
def test_courses_with_state_in_many_places_restore_bit_exact(tmp_path, example, sets):
    sets = ["rounds=6", *sets]
    whole = run_standalone(_config(example, *sets), output_dir=tmp_path / "a", snapshot_every=3,
                           progress=False).summary
    restored = run_standalone(_config(example, *sets), restore=read(tmp_path / "a" / "snapshots" / "round-00003.avro"),
                              progress=False).summary
    for key in ("model_sha256", "final_metrics", "virtual_time_s", "privacy", "plugins"):
        assert restored.get(key) == whole.get(key), key


def test_bad_snapshots_are_refused_in_one_line_and_nothing_written_is_lost(tmp_path):
    from tests.conftest import ROOT

    config = ROOT / "examples" / "digits_fedavg.yaml"
    run = [str(BIN / "fscope"), "run", str(config), "--no-progress", "--log-level", "error"]
    out = tmp_path / "a"
    assert subprocess.run([*run, "--set", "rounds=4", "--snapshot-every", "2", "--output", str(out)],
                          capture_output=True, text=True).returncode == 0
    path = out / "snapshots" / "round-00002.avro"
    original = path.read_bytes()
    corrupt = tmp_path / "corrupt.avro"
    corrupt.write_bytes(original[:200])
    newer = tmp_path / "newer.avro"
    snapshot = decode(original, "x")
    snapshot.schema_version = SNAPSHOT_VERSION + 1
    newer.write_bytes(encode(snapshot))
    cases = [
        (["--restore", str(corrupt)], "not a readable course snapshot"),
        (["--restore", str(newer)], f"schema version {SNAPSHOT_VERSION + 1} is newer"),
        (["--restore", str(path), "--set", "trainer.lr=0.05"], "another course: trainer.lr differs"),
        (["--restore", str(path), "--set", "rounds=2"], "is at round 2, so a restored course needs rounds > 2"),
        (["--restore", str(tmp_path / "missing.avro")], "cannot read the snapshot"),
        (["--snapshot-every", "0"], "--snapshot-every: must be at least 1"),
    ]
    for args, needle in cases:
        proc = subprocess.run([*run, "--set", "rounds=4", *args, "--output", str(out)], capture_output=True,
                              text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, proc.stderr)
    assert path.read_bytes() == original and (out / "metrics.jsonl").read_text().count("\n") == 4


def test_a_plugin_whose_state_a_snapshot_cannot_hold_is_refused_up_front(tmp_path):
    config = _config("digits_fedavg.yaml", "rounds=2", "participants=4",
                     "plugins=[{name: secure_aggregation, role: all}]")
    with pytest.raises(ConfigError, match=r"plugins\[0\]: a course with plug-in secure_aggregation cannot be "):
        run_standalone(config, output_dir=tmp_path, snapshot_every=1, progress=False)
    with pytest.raises(SnapshotError):
        read(tmp_path / "nothing.avro")


def test_a_longer_restore_is_refused_when_noise_was_calibrated_to_the_rounds(tmp_path):
    dp = "plugins=[{name: client_dp, role: participant, options: {clip: 2.0, epsilon: 400}}]"
    run_standalone(_config("digits_fedavg.yaml", "rounds=4", "participants=4", dp), output_dir=tmp_path,
                   snapshot_every=2, progress=False)
    snapshot = read(tmp_path / "snapshots" / "round-00002.avro")
    assert snapshot.planned_rounds == 4
    with pytest.raises(ConfigError, match=r"rounds: plug-in client_dp \(plugins\[0\]\) calibrates its noise .* "
                                          r"keeps rounds=4 \(not 6\)"):
        run_standalone(_config("digits_fedavg.yaml", "rounds=6", "participants=4", dp), restore=snapshot,
                       progress=False)
    same = run_standalone(_config("digits_fedavg.yaml", "rounds=4", "participants=4", dp), restore=snapshot,
                          progress=False).summary
    whole = run_standalone(_config("digits_fedavg.yaml", "rounds=4", "participants=4", dp), progress=False).summary
    assert same["model_sha256"] == whole["model_sha256"] and same["privacy"] == whole["privacy"]
