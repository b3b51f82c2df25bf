"""Async strategies end to end on the embedded log: virtual time, staleness, fairness, replay and the report.

A small version of bench/table1.py: 40 participants on heavy-tailed devices, 8 training at once.
Real torch training on digits; every assertion is about what the course did, read back from
its log and its output files.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from fscore.config import config_from_dict
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone

pytestmark = pytest.mark.slow

STRATEGIES = {
    "sync_vanilla": {},
    "sync_os": {},
    "async_goal_aggr_unif": {"min_received": 4, "staleness_toleration": 50},
    "async_goal_rece_unif": {"min_received": 4, "staleness_toleration": 50},
    "async_time_aggr_unif": {"time_budget_s": 1.0, "staleness_toleration": 50},
    "async_goal_aggr_group": {"min_received": 4, "staleness_toleration": 50},
}


def course(strategy: str, **extra) -> dict:
    return {"course_id": f"async-{strategy}", "seed": 3, "participants": 40, "sample_size": 8, "rounds": 60,
            "data": {"dataset": "digits", "alpha": 0.5, "test_fraction": 0.1, "min_samples_per_participant": 3},
            "model": {"name": "mlp", "hidden": 32},
            "trainer": {"lr": 0.1, "momentum": 0.5, "local_epochs": 1, "batch_size": 16},
            "evaluation": {"every": 2, "participants": False, "target": 0.8},
            "simulation": {"devices": "heavy_tailed", "compute_s_per_sample": 0.05, "bandwidth_bytes_per_s": 1e5,
                           "progress": False},
            "strategy": {"name": strategy, **STRATEGIES[strategy]}, **extra}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name in STRATEGIES:
        directory = tmp_path_factory.mktemp(name)
        out[name] = (run_standalone(config_from_dict(course(name)), output_dir=directory, progress=False), directory)
    return out


def test_every_strategy_finishes_and_the_coordinator_handled_its_inbox_in_timestamp_order(runs):
    for name, (result, _) in runs.items():
        assert result.summary["finish_reason"] == "max_rounds_reached", name
        codec = result.coordinator.catalog.codec
        stamps = [codec.decode_header(r.value)[0].timestamp
                  for r in result.log.read(f"fscope.async-{name}.coordinator")]
        assert stamps == sorted(stamps), name
    alarms = [codec.decode_header(r.value)[0].type for r in runs["async_time_aggr_unif"][0].log.read(
        "fscope.async-async_time_aggr_unif.coordinator")]
    assert alarms.count("alarm") >= 60  # the time_up timer is an event in the log


def test_async_strategies_reach_the_target_sooner_in_virtual_time(runs):
    sync = runs["sync_vanilla"][0].summary["time_to_target_s"]
    assert sync is not None
    for name in ("async_goal_aggr_unif", "async_goal_rece_unif", "async_time_aggr_unif", "async_goal_aggr_group"):
        t = runs[name][0].summary["time_to_target_s"]
        assert t is not None and t < sync / 1.5, (name, t, sync)


def test_sync_os_starves_slow_participants_and_async_strategies_do_not(runs):
    assert runs["sync_os"][0].summary["participants_never_aggregated"] > 0
    assert runs["sync_os"][0].summary["dropped_stale"] > 0
    for name in ("async_goal_aggr_unif", "async_goal_rece_unif", "async_time_aggr_unif", "async_goal_aggr_group"):
        counts = runs[name][0].summary["aggregation_counts"]
        assert len(counts) == 40 and min(counts.values()) > 0, (name, sorted(counts.values())[:5])


def test_recorded_staleness_matches_the_summary_and_the_toleration_drops(runs, tmp_path):
    result, directory = runs["async_goal_rece_unif"]
    rows = [json.loads(line) for line in (directory / "aggregations.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(len(r["senders"]) == 4 for r in rows)
    recorded = [s for r in rows for s in r["staleness"]]
    histogram = {int(k): n for k, n in result.summary["staleness_histogram"].items()}
    assert {s: recorded.count(s) for s in set(recorded)} == histogram
    assert max(recorded) > 0
    # The same course with a toleration of 1 drops what is staler, counts it, and aggregates nothing staler.
    strict = run_standalone(config_from_dict(course("async_goal_rece_unif", rounds=30) | {
        "strategy": {"name": "async_goal_rece_unif", "min_received": 4, "staleness_toleration": 1}}),
        output_dir=tmp_path / "strict", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "strict" / "aggregations.jsonl").read_text().splitlines()]
    dropped = [d["staleness"] for r in rows for d in r["dropped"]]
    assert dropped and min(dropped) > 1 and max(s for r in rows for s in r["staleness"]) <= 1
    assert strict.summary["dropped_stale"] >= len(dropped)


def test_the_same_seed_gives_the_same_async_model_and_another_seed_another(runs):
    again = run_standalone(config_from_dict(course("async_goal_rece_unif")), progress=False)
    assert again.summary["model_sha256"] == runs["async_goal_rece_unif"][0].summary["model_sha256"]
    other = run_standalone(config_from_dict(course("async_goal_rece_unif", seed=4)), progress=False)
    assert other.summary["model_sha256"] != again.summary["model_sha256"]


def test_async_runs_replay_and_verify_and_the_replay_rebuilds_the_aggregations(runs, tmp_path):
    for name in ("async_goal_rece_unif", "async_time_aggr_unif", "sync_os"):
        result, directory = runs[name]
        report = replay_course(result.log, f"async-{name}", output_dir=tmp_path / name)
        assert report.verified, (name, report.mismatches[:3])
        assert report.final_sha256 == result.summary["model_sha256"]
        assert (tmp_path / name / "aggregations.jsonl").read_text() == (directory / "aggregations.jsonl").read_text()


def test_report_draws_the_three_figures_for_several_runs(runs, tmp_path):
    dirs = [str(runs[name][1]) for name in ("sync_os", "async_goal_rece_unif", "async_goal_aggr_group")]
    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "report", *dirs, "--output", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # and who holds what (standalone runs list each participant's examples in summary.json)
    for png in ("accuracy_vs_time.png", "aggregation_counts.png", "staleness.png", "data_partition.png"):
        assert (tmp_path / "r" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "async_goal_rece_unif" in page and "sync_os" in page
    from fscore.report import load_run

    counts = load_run(runs["sync_os"][1]).aggregation_counts  # what Figure 9 plots: zeros included
    assert len(counts) == 40 and counts.count(0) == runs["sync_os"][0].summary["participants_never_aggregated"] > 0


def test_a_reply_deadline_bounds_every_sync_round_and_dead_letters_the_late_replies(runs, tmp_path):
    deadline = 4.0
    config = config_from_dict(course("sync_vanilla") | {
        "strategy": {"name": "sync_vanilla", "reply_timeout_s": deadline}})
    result = run_standalone(config, output_dir=tmp_path, progress=False)
    summary = result.summary
    assert summary["finish_reason"] == "max_rounds_reached" and summary["timed_out"] > 0
    rows = [json.loads(line) for line in (tmp_path / "aggregations.jsonl").read_text().splitlines()]
    times = [0.0] + [r["virtual_time"] for r in rows]
    # the next cohort is sent at the aggregation, so no round lasts longer than the deadline
    assert max(b - a for a, b in itertools.pairwise(times)) <= deadline + 1e-9
    assert summary["virtual_time_s"] < runs["sync_vanilla"][0].summary["virtual_time_s"]
    late = [dict(r.headers)["fscope.reason"].decode() for r in result.log.read("fscope.async-sync_vanilla.dlq")]
    assert late and all("came after its reply deadline" in reason for reason in late)
    assert len(late) <= summary["timed_out"]  # a late reply still on its way at the finish is never sent
    again = run_standalone(config, progress=False)
    assert again.summary["model_sha256"] == summary["model_sha256"]
    report = replay_course(result.log, "async-sync_vanilla")
    assert report.verified and report.final_sha256 == summary["model_sha256"]


def test_oort_makes_sync_rounds_shorter_without_starving_anyone_and_replays(runs):
    config = config_from_dict(course("sync_vanilla", course_id="async-oort"),
                              ["strategy.sampler=oort"])
    result = run_standalone(config, progress=False)
    uniform = runs["sync_vanilla"][0].summary
    assert result.summary["virtual_time_s"] < uniform["virtual_time_s"] / 1.3  # it avoids the stragglers...
    assert result.summary["participants_never_aggregated"] == 0  # ...yet keeps exploring
    report = replay_course(result.log, "async-oort")  # its feedback state is rebuilt from the same updates
    assert report.verified, report.mismatches
