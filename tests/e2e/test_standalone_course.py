"""Whole courses on the embedded log: real torch training on real data, real Avro on the log."""

import json
import subprocess
import sys

import pytest

from fscore.config import load_config
from fscore.simulation.runner import run_standalone

pytestmark = pytest.mark.slow


def test_default_course_via_the_cli_reaches_090(tmp_path, example_config):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "run", str(example_config), "--output", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_metrics"]["heldout.accuracy"] >= 0.90
    assert summary["rounds"] == 30 and summary["finish_reason"] == "max_rounds_reached"
    assert len(summary["model_sha256"]) == 64 and summary["dead_lettered"] == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == list(range(1, 31))
    assert all(r["num_aggregated"] == 10 for r in rows)
    assert rows[-1]["virtual_time"] > rows[0]["virtual_time"] > 0
    assert "handlers_in_effect" in proc.stderr


def test_same_seed_gives_a_bit_identical_model(example_config):
    config = load_config(example_config, ["rounds=4"])
    first = run_standalone(config, progress=False).summary["model_sha256"]
    assert run_standalone(config, progress=False).summary["model_sha256"] == first
    other = load_config(example_config, ["rounds=4", "seed=1"])
    assert run_standalone(other, progress=False).summary["model_sha256"] != first


def test_alpha_05_with_50_participants_reaches_085_within_50_rounds(example_config):
    config = load_config(example_config, ["participants=50", "rounds=50", "data.alpha=0.5"])
    result = run_standalone(config, progress=False)
    best = max(r["heldout.accuracy"] for r in result.history)
    assert best >= 0.85


@pytest.mark.parametrize("overrides", [
    ["participants=5", "data.alpha=10", "seed=3", "rounds=20"],
    ["participants=200", "data.alpha=0.1", "seed=5", "rounds=30", "data.min_samples_per_participant=2"],
    ["participants=20", "data.split=iid", "model.name=logreg", "rounds=15", "seed=11"],
    ["participants=8", "model.name=convnet2", "rounds=20", "trainer.lr=0.05", "sample_size=4"],
])
def test_variations_of_the_example_train_sensibly(example_config, overrides):
    result = run_standalone(load_config(example_config, overrides), progress=False)
    assert result.summary["final_metrics"]["heldout.accuracy"] >= 0.75, overrides


def test_synthetic_course_learns_beyond_chance(example_config):
    config = load_config(example_config, ["data.dataset=synthetic", "participants=20", "rounds=20",
                                          "model.name=logreg", "trainer.lr=0.05"])
    result = run_standalone(config, progress=False)
    assert result.summary["final_metrics"]["heldout.accuracy"] >= 0.5  # chance is 0.1 over 10 classes


def test_early_stopping_ends_the_course(example_config):
    config = load_config(example_config, ["rounds=200", "evaluation.patience=3", "evaluation.min_delta=0.01"])
    result = run_standalone(config, progress=False)
    assert result.summary["finish_reason"] == "early_stopped"
    assert result.summary["rounds"] < 200
    assert all(p.finished and p.finish_reason == "early_stopped" for p in result.participants)


def test_the_log_holds_every_message_in_virtual_time_order(example_config):
    from fstranslation import WireCodec

    result = run_standalone(load_config(example_config, ["rounds=3"]), progress=False)
    codec = WireCodec()
    inbox = [codec.decode_header(r.value)[0] for r in result.log.read("fscope.digits-fedavg.coordinator")]
    stamps = [h.timestamp for h in inbox]
    assert stamps == sorted(stamps)
    assert sum(h.type == "model_update" for h in inbox) == 3 * 10
