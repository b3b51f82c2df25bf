"""What a course leaves behind: ``metrics.jsonl`` (one line per evaluation), ``aggregations.jsonl`` (one line
per aggregation: who contributed, at which staleness, what was dropped) and ``summary.json``.

The standalone runner, the coordinator service and replay all write these, so ``fscope report``
reads a simulated run, a deployed one and one rebuilt from a Kafka log alike.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fscore.config import CourseConfig
from fscore.coordinator import Aggregation, Coordinator, Evaluation
from fscore.message import MODEL_PARAMETERS
from fstranslation import WireCodec


def model_sha256(params: Mapping[str, np.ndarray], codec: WireCodec) -> str:
    """sha256 of the model's Avro encoding: the same bytes replay verification compares."""
    return hashlib.sha256(codec.encode_payload(MODEL_PARAMETERS, {"tensors": params})).hexdigest()


def evaluation_row(evaluation: Evaluation, wall_time: float) -> dict[str, Any]:
    return {"round": evaluation.round, "virtual_time": evaluation.virtual_time, "wall_time": round(wall_time, 4),
            **evaluation.metrics, "num_aggregated": len(evaluation.aggregated),
            "aggregated": list(evaluation.aggregated),
            **({"clientwise": evaluation.clients} if evaluation.clients else {})}


def aggregation_row(aggregation: Aggregation) -> dict[str, Any]:
    return {"round": aggregation.round, "virtual_time": aggregation.virtual_time,
            "senders": list(aggregation.senders), "staleness": list(aggregation.staleness),
            "dropped": [{"sender": s, "staleness": st} for s, st in aggregation.dropped],
            "update_bytes": aggregation.update_bytes, "model_bytes": aggregation.model_bytes}


#: the summary keys worth a log line (the per-participant tables are for summary.json and the report)
SUMMARY_LOG_KEYS = ("course_id", "strategy", "rounds", "finish_reason", "final_metrics", "virtual_time_s",
                    "time_to_target_h", "wall_time_s", "model_sha256", "dropped_stale", "timed_out", "dead_lettered")


def time_to_target(history: list[Evaluation], metric: str, target: float | None) -> float | None:
    """Virtual seconds until the global model first reached ``target`` (held-out if measured, else clients')."""
    if target is None:
        return None
    for evaluation in history:
        value = evaluation.metrics.get(f"heldout.{metric}", evaluation.metrics.get(f"clients.{metric}"))
        if value is not None and (value >= target if metric == "accuracy" else value <= target):
            return evaluation.virtual_time
    return None


def clientwise(history: list[Evaluation]) -> dict[str, Any]:
    """Client-wise metrics of the last evaluation the participants answered (paper Figure 11): per metric the
    mean over participants, their standard deviation and 10th percentile, and each participant's value."""
    last = next((e for e in reversed(history) if e.clients), None)
    if last is None:
        return {}
    out: dict[str, Any] = {"round": last.round}
    for metric in sorted({k for values in last.clients.values() for k in values}):
        by = {a: v[metric] for a, v in last.clients.items() if metric in v}
        values = np.array(list(by.values()), dtype=np.float64)
        out[metric] = {"mean": float(values.mean()), "std": float(values.std()),
                       "p10": float(np.percentile(values, 10)), "by_participant": by}
    return out


def traffic(aggregations: list[Aggregation]) -> dict[str, float]:
    """Tensor bytes per aggregation: what participants sent up, and the model sent down to the same number."""
    if not aggregations:
        return {}
    up = [a.update_bytes for a in aggregations]
    down = [a.model_bytes * len(a.senders) for a in aggregations]
    return {"update_bytes_per_round": float(np.mean(up)), "model_bytes_per_round": float(np.mean(down)),
            "bytes_per_round": float(np.mean(up) + np.mean(down))}


def course_statistics(coordinator: Coordinator) -> dict[str, Any]:
    """What the strategy did: effective aggregations per participant (zeros included), staleness, drops,
    and the requests given up on at their reply deadline."""
    s = coordinator.state
    counts = dict.fromkeys(sorted(s.membership.participants), 0)
    dropped = dict.fromkeys(sorted(s.membership.participants), 0)
    histogram: dict[int, int] = {}
    for aggregation in s.aggregations:
        for sender, staleness in zip(aggregation.senders, aggregation.staleness, strict=True):
            counts[sender] = counts.get(sender, 0) + 1
            histogram[staleness] = histogram.get(staleness, 0) + 1
        for sender, _ in aggregation.dropped:
            dropped[sender] = dropped.get(sender, 0) + 1
    for sender, _ in s.buffer.dropped:  # dropped after the last aggregation
        dropped[sender] = dropped.get(sender, 0) + 1
    return {"aggregations": len(s.aggregations), "aggregation_counts": counts,
            "participants_never_aggregated": sum(1 for n in counts.values() if n == 0),
            "staleness_histogram": {str(k): histogram[k] for k in sorted(histogram)},
            "dropped_stale": sum(dropped.values()), "dropped_stale_by_participant": dropped,
            "timed_out": sum(s.membership.timeouts.values()),
            "timed_out_by_participant": dict(sorted(s.membership.timeouts.items())),
            "unresponsive_at_finish": sorted(s.membership.unresponsive)}


def course_summary(config: CourseConfig, coordinator: Coordinator, codec: WireCodec, started: float
                   ) -> dict[str, Any]:
    s = coordinator.state
    e = config.evaluation
    reached = time_to_target(s.history, e.metric, e.target)
    return {
        "course_id": config.course_id, "config_hash": config.config_hash(), "seed": config.seed,
        "strategy": config.strategy.name, "personalization": config.personalization.name, "rounds": s.round,
        "finish_reason": s.finish_reason,
        "participants": config.participants, "final_metrics": s.history[-1].metrics if s.history else {},
        "virtual_time_s": coordinator.now, "target": e.target, "time_to_target_s": reached,
        "time_to_target_h": None if reached is None else reached / 3600.0,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "model_sha256": model_sha256(coordinator.params, codec), **course_statistics(coordinator),
        "clientwise": clientwise(s.history), "traffic": traffic(s.aggregations),
        **({"plugins": {p.label: p.summary() for p in coordinator.plugins}} if coordinator.plugins else {}),
        **({"privacy": privacy} if (privacy := course_privacy(config, coordinator)) else {})}


def course_privacy(config: CourseConfig, coordinator: Coordinator) -> dict[str, Any] | None:
    """ε spent by the course's DP plug-ins (fscore.privacy.report); None when it has none."""
    from fscore.privacy.report import privacy_summary

    s = coordinator.state
    samples = {a: p.num_train_samples for a, p in s.membership.participants.items()}
    return privacy_summary(config, s.requests.trained, samples, len(s.aggregations))


@dataclass
class RunWriter:
    directory: Path | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / "metrics.jsonl").write_text("")
            (self.directory / "aggregations.jsonl").write_text("")

    def evaluation(self, evaluation: Evaluation, wall_time: float) -> None:
        row = evaluation_row(evaluation, wall_time)
        self.rows.append(row)
        if self.directory is not None:
            with (self.directory / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")

    def aggregation(self, aggregation: Aggregation) -> None:
        if self.directory is not None:
            with (self.directory / "aggregations.jsonl").open("a") as f:
                f.write(json.dumps(aggregation_row(aggregation)) + "\n")

    def resume(self, rows: list[dict[str, Any]], aggregations: list[Aggregation]) -> None:
        """Start from a restored course's evaluation rows and aggregations (fscore.snapshot)."""
        self.rows = list(rows)
        if self.directory is not None:
            (self.directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (self.directory / "aggregations.jsonl").write_text(
                "".join(json.dumps(aggregation_row(a)) + "\n" for a in aggregations))

    def summary(self, summary: dict[str, Any]) -> None:
        if self.directory is not None:
            (self.directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def partition_summary(federation: Any) -> dict[str, Any]:
    """Who holds what (issue 18): per participant, its training and test examples and its label histogram over
    both, in participant order; and the coordinator's held-out examples. ``fscope report`` plots it."""
    classes = federation.num_classes

    def histogram(*parts: Any) -> list[int]:
        counts = np.zeros(classes, dtype=np.int64)
        for part in parts:
            counts += np.bincount(part.y, minlength=classes)[:classes]
        return [int(c) for c in counts]

    return {"heldout": len(federation.heldout), "classes": classes,
            "participants": [{"train": len(c.train), "test": len(c.test), "labels": histogram(c.train, c.test)}
                             for c in federation.clients]}
