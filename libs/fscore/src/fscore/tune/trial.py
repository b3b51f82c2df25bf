"""One rung of one trial: a course trained from round ``start`` to round ``stop`` and snapshotted there.

Fidelity is rounds (§4.3). A trial's first rung starts the course; each later rung restores the snapshot the
previous one ended with, so a promoted trial trains only the rounds it has not trained yet, and ends bit for bit
as the same course run straight through (``run_standalone(pause_at=)``). A rung is a plain-data job, so it runs
the same in this process or in a worker process (``--jobs``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Rung:
    trial: int
    rung: int
    config: dict[str, Any]  # the trial's validated course config; rounds is the full fidelity
    start: int  # rounds already aggregated (0, or the restored snapshot's round)
    stop: int  # pause once this round is aggregated and evaluated (= config rounds: run to the end)
    restore: str | None
    output: str


@dataclass
class RungResult:
    trial: int
    rung: int
    start: int
    reached: int  # the last aggregated round
    finished: bool  # the course ended (all its rounds, or early stopping)
    rows: list[dict[str, Any]] = field(default_factory=list)  # evaluations after ``start``
    snapshot: str | None = None
    model_sha256: str = ""
    wall_s: float = 0.0
    error: str | None = None  # the course failed: the trial fails, the study goes on

    @property
    def rounds_trained(self) -> int:
        return self.reached - self.start


def worker_init() -> None:
    """A worker process of ``--jobs``: only warnings logged (the tuner shows progress)."""
    from fscore.log_setup import configure_logging

    configure_logging(level="warning")


def run_rung(job: Rung) -> RungResult:
    """Train one rung (in whatever process calls it)."""
    from fscore.config import config_from_dict
    from fscore.simulation.runner import run_standalone
    from fscore.snapshot import read

    started = time.perf_counter()
    config = config_from_dict(job.config, source=f"trial {job.trial}")
    restore = read(Path(job.restore)) if job.restore else None
    pause = job.stop if job.stop < config.rounds else None
    result = run_standalone(config, output_dir=Path(job.output), progress=False, restore=restore, pause_at=pause)
    s = result.summary
    return RungResult(job.trial, job.rung, job.start, int(s["rounds"]), s["finish_reason"] != "paused",
                      [dict(r) for r in result.history if r["round"] > job.start], s.get("paused_at"),
                      s["model_sha256"], time.perf_counter() - started)
