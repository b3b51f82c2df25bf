"""Tuning (issue 17, part 2): ``fscope tune`` with Optuna's samplers and pruners on real courses.

A trial trains rung by rung: it pauses at a rung with a snapshot, and a promoted trial restores it and trains
only the rounds it lacks, ending bit for bit as the same course run straight through. The objective is the
participants' validation split; the chosen config alone is evaluated on the test split. ``--jobs 2`` trains the
same rungs as ``--jobs 1`` and picks the same config.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fscore.cli import main
from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from fscore.snapshot import read
from tests.e2e.processes import BIN

pytestmark = pytest.mark.slow

COURSE = """\
course_id: tune-small
participants: 5
rounds: 9
data: {dataset: digits, split: dirichlet, alpha: 0.5}
model: {name: mlp, hidden: 32}
trainer: {lr: 0.1, momentum: 0.5, local_epochs: 1, batch_size: 16}
"""
SPACE = """\
trainer.lr: {type: loguniform, low: 0.005, high: 0.5}
trainer.local_epochs: {type: int, low: 1, high: 3}
trainer.batch_size: {type: categorical, choices: [16, 32]}
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "course.yaml").write_text(COURSE)
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _tune(files, out, *args):
    code = main(["tune", str(files / "course.yaml"), "--space", str(files / "space.yaml"), "--output", str(out),
                 "--no-progress", *args])
    assert code == 0
    return json.loads((out / "tune.json").read_text()), _lines(out / "tune.jsonl")


def test_a_course_paused_at_rungs_and_restored_ends_bit_exact_on_its_validation_split(files, tmp_path):
    config = load_config(files / "course.yaml", ["data.validation_fraction=0.2", "evaluation.split=validation"])
    straight = run_standalone(config, progress=False)
    first = run_standalone(config, output_dir=tmp_path / "a", pause_at=2, progress=False)
    assert first.summary["finish_reason"] == "paused" and first.summary["rounds"] == 2
    second = run_standalone(config, output_dir=tmp_path / "b", pause_at=5, progress=False,
                            restore=read(Path(first.summary["paused_at"])))
    last = run_standalone(config, output_dir=tmp_path / "c", progress=False,
                          restore=read(Path(second.summary["paused_at"])))
    assert last.summary["model_sha256"] == straight.summary["model_sha256"]
    assert [r["round"] for r in last.history] == list(range(1, 10))
    assert last.history == [{**r, "wall_time": r2["wall_time"]}
                            for r, r2 in zip(straight.history, last.history, strict=True)]
    assert set(straight.summary["final_metrics"]) == {"validation.accuracy", "validation.loss", "heldout.accuracy",
                                                      "heldout.loss"}
    # the validation split is carved from each participant's training examples; the test split is unchanged
    from fscore.course import CourseBuilder

    plain, kept = CourseBuilder(load_config(files / "course.yaml")), CourseBuilder(config)
    tested = CourseBuilder(load_config(files / "course.yaml", ["data.validation_fraction=0.2"]))
    for i in range(5):
        whole, val, test = plain.participant_data(i), kept.participant_data(i), tested.participant_data(i)
        assert len(val.train) + len(val.test) == len(whole.train)
        assert len(test.train) == len(val.train) and (test.test.y == whole.test.y).all()


def test_sha_promotes_by_restoring_and_trains_fewer_rounds_than_rs_with_as_many_configs(files, tmp_path):
    sha, sha_lines = _tune(files, tmp_path / "sha", "--method", "sha", "--budget", "200", "--trials", "6",
                           "--min-rounds", "1")
    rs, rs_lines = _tune(files, tmp_path / "rs", "--method", "rs", "--budget", "200", "--trials", "6")
    assert sha["trials"] == rs["trials"] == 6
    assert rs["rounds_trained"] == 6 * 9 and sha["rounds_trained"] < rs["rounds_trained"]
    assert sha["states"]["pruned"] >= 1 and sha["states"]["complete"] >= 1
    for line in sha_lines:  # a later rung starts where the last one stopped: restored, not retrained
        assert line["rounds_trained"] == line["rounds"] - line["from_round"]
        if line["rung"]:
            assert line["from_round"] > 0
            previous = tmp_path / "sha" / "trials" / f"{line['trial']:05d}" / f"rung-{line['rung'] - 1}"
            assert (previous / "snapshots" / f"round-{line['from_round']:05d}.avro").is_file()
    assert sum(line["rounds_trained"] for line in sha_lines) == sha["rounds_trained"]
    # a fully promoted trial is the same course as its rs twin (same seed, same first configs)
    done = {line["trial"]: line for line in sha_lines if line["state"] == "complete"}
    twins = {line["trial"]: line for line in rs_lines}
    for n, line in done.items():
        assert line["params"] == twins[n]["params"] and line["model_sha256"] == twins[n]["model_sha256"]
    assert all(line["metric"] == "validation.loss" for line in sha_lines)
    # only the chosen config meets the test split, trained again to full fidelity: the trial's own model
    test = sha["test"]
    assert test["trial"] == sha["best"]["trial"] and test["same_model_as_trial"]
    assert set(test["metrics"]) == {"clients.accuracy", "clients.loss"}  # the participants' test splits only
    best = load_config(tmp_path / "sha" / "best.yaml")
    assert best.trainer.lr == sha["best"]["params"]["trainer.lr"] and best.rounds == 9
    assert best.evaluation.split == "test" and best.data.validation_fraction == 0.2
    assert run_standalone(best, progress=False).summary["model_sha256"] == test["model_sha256"]
    assert (tmp_path / "sha" / "best_seen.png").stat().st_size > 0
    assert rs["best"]["value"] >= sha["best"]["value"] or sha["best"]["trial"] in twins


def test_two_jobs_train_the_same_rungs_and_pick_the_same_config_as_one(files, tmp_path):
    one, one_lines = _tune(files, tmp_path / "one", "--method", "hyperband", "--budget", "30")
    out = tmp_path / "two"
    subprocess.run([str(BIN / "fscope"), "tune", str(files / "course.yaml"), "--space", str(files / "space.yaml"),
                    "--method", "hyperband", "--budget", "30", "--jobs", "2", "--output", str(out),
                    "--no-progress", "--no-test"], check=True, capture_output=True, timeout=300)
    two = json.loads((out / "tune.json").read_text())
    strip = lambda lines: [{k: v for k, v in line.items() if k != "wall_s"} for line in lines]  # noqa: E731
    assert strip(_lines(out / "tune.jsonl")) == strip(one_lines)
    assert two["best"] == one["best"] and two["jobs"] == 2 and two["rounds_trained"] <= 30
    assert yaml.safe_load((tmp_path / "one" / "best.yaml").read_text())["trainer"]["lr"] == \
        one["best"]["params"]["trainer.lr"]


@pytest.mark.parametrize(("args", "space", "expected"), [
    (["--budget", "20"], "trainer.lrr: {type: uniform, low: 0.1, high: 0.2}\n",
     "fscope: config error: {space}: trainer.lrr: not a config key"),
    (["--budget", "20"], "trainer.lr: {type: uniform, low: 0.2, high: 0.1}\n",
     "fscope: config error: {space}: trainer.lr: empty range: low 0.2 is not below high 0.1"),
    (["--budget", "5"], SPACE, "fscope: config error: --budget: 5 rounds cannot train one trial to the lowest "
                               "fidelity of 9 rounds"),
    (["--budget", "20", "--method", "sha", "--min-rounds", "2", "--eta", "1"], SPACE,
     "fscope: config error: --eta: Input should be greater than or equal to 2"),
])
def test_bad_tuning_input_is_one_line_and_writes_nothing(files, tmp_path, capsys, args, space, expected):
    (files / "space.yaml").write_text(space)
    out = tmp_path / "out"
    code = main(["tune", str(files / "course.yaml"), "--space", str(files / "space.yaml"), "--output", str(out),
                 *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(expected.format(space=files / "space.yaml"))
    assert not out.exists()


def test_a_finished_tuning_run_is_not_overwritten(files, tmp_path, capsys):
    out = tmp_path / "out"
    _tune(files, out, "--budget", "9", "--no-test")
    before = (out / "tune.jsonl").read_text()
    code = main(["tune", str(files / "course.yaml"), "--space", str(files / "space.yaml"), "--output", str(out),
                 "--budget", "9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"fscope: config error: --output: {out} already holds a tuning run (tune.jsonl); "
                                 "give another directory"]
    assert (out / "tune.jsonl").read_text() == before


FEDEX = """\
plugins:
  - name: fedex
    role: all
    options: {arms: {lr: [0.005, 0.05, 0.3], local_epochs: [1, 2]}}
"""


def test_fedex_draws_each_participants_config_learns_its_policy_and_snapshots_it(files, tmp_path):
    sets = ["rounds=8", "data.validation_fraction=0.2", "evaluation.split=validation"]
    (files / "fedex.yaml").write_text(COURSE + FEDEX)
    config = load_config(files / "fedex.yaml", sets)
    straight = run_standalone(config, progress=False)
    policy = straight.summary["plugins"]["fedex"]
    assert policy["steps"] == 7 and len(policy["weighted_validation_loss"]) == 7
    assert policy["policy"]["lr"]["0.005"] < 1 / 3 < policy["policy"]["lr"]["0.3"]  # the tiny rate loses
    # the participants trained with the configurations they were sent: not the course's trainer section
    plain = run_standalone(load_config(files / "course.yaml", sets), progress=False)
    assert plain.summary["model_sha256"] != straight.summary["model_sha256"]
    snapped = run_standalone(config, output_dir=tmp_path / "a", snapshot_every=4, progress=False)
    restored = run_standalone(config, progress=False, restore=read(Path(snapped.summary["snapshots"][0])))
    assert restored.summary["model_sha256"] == straight.summary["model_sha256"]
    assert restored.summary["plugins"] == straight.summary["plugins"]  # the policy was in the snapshot


def test_sha_wrapped_around_fedex_tunes_the_candidates_and_best_yaml_rebuilds_the_model(files, tmp_path):
    summary, lines = _tune(files, tmp_path / "fx", "--method", "sha", "--fedex", "--budget", "30",
                           "--min-rounds", "1")
    first = lines[0]["params"]
    assert {k for k in first} == {"trainer.lr#0", "trainer.lr#1", "trainer.lr#2", "trainer.local_epochs#0",
                                  "trainer.local_epochs#1", "trainer.local_epochs#2", "trainer.batch_size#0",
                                  "trainer.batch_size#1"}
    assert summary["rounds_trained"] <= 30 and summary["test"]["same_model_as_trial"]
    best = load_config(tmp_path / "fx" / "best.yaml")
    fedex, = best.plugins
    assert fedex.name == "fedex" and sorted(fedex.options["arms"]) == ["batch_size", "local_epochs", "lr"]
    assert run_standalone(best, progress=False).summary["model_sha256"] == summary["test"]["model_sha256"]
