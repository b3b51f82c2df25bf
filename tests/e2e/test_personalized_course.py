"""Personalized courses standalone (issue 14): every algorithm finishes, beats nothing by luck, replays with
``--verify``, and leaves no private parameter on the log; participants with different heads learn their own task."""

from __future__ import annotations

import pytest

from fscore.config import load_config
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone
from tests.e2e.avro_reader import AvscReader

pytestmark = pytest.mark.slow

SKEWED = ["rounds=6", "model.name=mlp_bn",
          "data.feature_skew={rotation_deg: 40, intensity: [0.5, 1.5], noise_std: 0.1}"]
PRIVATE_BN = ("bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var")


def logged_names(result) -> set[str]:
    """Every tensor and declared-layout name on every topic of the course's log, read with plain fastavro."""
    reader, names = AvscReader(), set()
    for topic in result.log.topics():
        if topic.endswith(".dlq"):
            continue
        for partition in result.log.end_offsets(topic):
            for record in result.log.read(topic, partition):
                payload = reader.decode(record.value).payload
                names |= {t["name"] for t in payload.get("tensors", [])}
                names |= {d["name"] for d in payload.get("layout", [])}
    return names


@pytest.mark.parametrize("name", ["fedbn", "ditto", "pfedme", "fedem"])
def test_each_algorithm_finishes_and_replays_bit_for_bit(example_config, name):
    course = f"pers-{name}"
    config = load_config(example_config, [*SKEWED, f"personalization.name={name}", f"course_id={course}"])
    result = run_standalone(config, progress=False)
    summary = result.summary
    assert summary["finish_reason"] == "max_rounds_reached"
    accuracy = summary["clientwise"]["accuracy"]
    assert len(accuracy["by_participant"]) == config.participants
    assert accuracy["mean"] > 0.3 and accuracy["p10"] <= accuracy["mean"]  # chance is 0.1
    report = replay_course(result.log, course)
    assert report.verified, report.mismatches
    assert report.final_sha256 == summary["model_sha256"]
    again = run_standalone(config, progress=False)
    assert again.summary["model_sha256"] == summary["model_sha256"]
    assert again.summary["clientwise"] == summary["clientwise"]  # the personal models are seeded too


def test_fedbn_sends_no_batchnorm_and_fewer_bytes_than_fedavg(example_config):
    fedavg = run_standalone(load_config(example_config, SKEWED), progress=False)
    fedbn = run_standalone(load_config(example_config, [*SKEWED, "personalization.name=fedbn"]), progress=False)
    assert set(PRIVATE_BN) <= logged_names(fedavg)
    assert not set(PRIVATE_BN) & logged_names(fedbn)
    assert fedbn.summary["traffic"]["bytes_per_round"] < fedavg.summary["traffic"]["bytes_per_round"]


def test_participants_with_different_heads_share_the_body_and_learn_their_own_task(example_config):
    config = load_config(example_config, ["rounds=8", 'participant_overrides={"5-9": {task: parity}}',
                                          "model.share=[fc1.*]", "course_id=heads"])
    result = run_standalone(config, progress=False)
    by = result.summary["clientwise"]["accuracy"]["by_participant"]
    digits = [v for a, v in by.items() if int(a[-5:]) < 5]
    parity = [v for a, v in by.items() if int(a[-5:]) >= 5]
    assert min(parity) > 0.6 and sum(digits) / len(digits) > 0.5  # chance: 0.5 and 0.1
    assert logged_names(result) == {"fc1.weight", "fc1.bias"}  # the heads stay home
    assert replay_course(result.log, "heads").verified


def test_report_draws_figure_11_from_personalized_runs(example_config, tmp_path):
    from fscore.report import write_report

    dirs = []
    for name in ("none", "ditto"):
        out = tmp_path / name
        run_standalone(load_config(example_config, ["rounds=3", f"personalization.name={name}"]), output_dir=out,
                       progress=False)
        dirs.append(out)
    page = write_report(dirs, tmp_path / "report")
    figure = tmp_path / "report" / "clientwise_accuracy.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 5000
    assert "clientwise accuracy" in page.read_text()
