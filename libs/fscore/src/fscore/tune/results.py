"""What a tuning run leaves behind: ``tune.jsonl`` (a line per trial and rung, written as each is judged),
``best.yaml`` (the chosen config, ready for ``fscope run``), ``tune.json`` (the summary) and ``best_seen.png``
(the best-seen validation metric against rounds consumed: the paper's Figure 13)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fscore.config import CourseConfig
from fscore.tune.settings import TuneSettings
from fscore.tune.trial import RungResult


class TuneLog:
    """Appends one JSON line per judged rung and keeps the running totals (rounds consumed, best seen)."""

    def __init__(self, path: Path, settings: TuneSettings) -> None:
        self.path, self.settings = path, settings
        self.lines: list[dict[str, Any]] = []
        self.consumed = 0
        self.best: float | None = None
        self.counts: dict[str, int] = {}

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.settings.direction == "minimize" else value > self.best

    def _append(self, line: dict[str, Any]) -> None:
        self.lines.append(line)
        with self.path.open("a") as f:
            f.write(json.dumps(line, default=str) + "\n")

    def rung(self, trial: int, rung: int, params: dict[str, Any], result: RungResult, value: float | None,
             state: str, reason: str | None = None) -> None:
        self.consumed += result.rounds_trained
        if value is not None and self._better(value):
            self.best = value
        if state != "promoted":
            self.counts[state] = self.counts.get(state, 0) + 1
        self._append({"trial": trial, "rung": rung, "params": params, "from_round": result.start,
                      "rounds": result.reached, "rounds_trained": result.rounds_trained, "metric": self.settings.metric,
                      "value": value, "state": state, "rounds_consumed": self.consumed, "best_seen": self.best,
                      "model_sha256": result.model_sha256, "wall_s": round(result.wall_s, 3),
                      **({"reason": reason} if reason else {})})

    def stopped(self, trial: int, params: dict[str, Any], reached: int, reason: str) -> None:
        self.counts["stopped"] = self.counts.get("stopped", 0) + 1
        self._append({"trial": trial, "rung": None, "params": params, "from_round": reached, "rounds": reached,
                      "rounds_trained": 0, "metric": self.settings.metric, "value": None, "state": "stopped",
                      "rounds_consumed": self.consumed, "best_seen": self.best, "wall_s": 0.0, "reason": reason})

    def postfix(self) -> str:
        trials = len({line["trial"] for line in self.lines})
        best = "-" if self.best is None else f"{self.best:.4f}"
        return f"trials={trials} pruned={self.counts.get('pruned', 0)} best {self.settings.metric}={best}"

    def summary(self, best: Any, test: dict[str, Any] | None, rungs: list[int], wall_s: float,
                study_name: str) -> dict[str, Any]:
        s = self.settings
        return {
            "method": s.method, "study": study_name, "objective": s.metric, "direction": s.direction,
            "budget": s.budget, "rounds_trained": self.consumed, "rungs": rungs, "eta": s.eta, "seed": s.seed,
            "batch": s.batch, "jobs": s.jobs,
            "trials": len({line["trial"] for line in self.lines}),
            "states": dict(sorted(self.counts.items())),
            "best": None if best is None else {"trial": best.number, "params": best.params, "value": best.value},
            "test": test, "wall_time_s": round(wall_s, 3)}


def write_best(path: Path, config: CourseConfig, summary: dict[str, Any]) -> None:
    """The chosen config as a course config (only what differs from the defaults; paths as resolved)."""
    best = summary["best"]
    header = (f"# fscope tune ({summary['method']}, {summary['trials']} trials, {summary['rounds_trained']} rounds): "
              f"trial {best['trial']}, {summary['objective']} {best['value']:.6g}\n")
    raw = config.model_dump(mode="json", exclude_defaults=True)
    raw.get("simulation", {}).pop("progress", None)  # the tuner's, not the course's
    if raw.get("simulation") == {}:
        del raw["simulation"]
    body = yaml.safe_dump(raw, sort_keys=False)
    path.write_text(header + body)


def write_plot(path: Path, lines: list[dict[str, Any]], settings: TuneSettings) -> None:
    """Best-seen validation metric against rounds consumed (Figure 13 of the paper)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(line["rounds_consumed"], line["best_seen"]) for line in lines if line["best_seen"] is not None]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if points:
        xs, ys = zip(*points, strict=True)
        ax.step(xs, ys, where="post", label=settings.method)
    ax.set_xlabel("rounds consumed")
    ax.set_ylabel(f"best-seen {settings.metric}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
