"""Scale (issue 19): a standalone course of 10,000 participants, 1,000 sampled a round, 5 rounds of the MLP on digits.

Each side is a fresh ``fscope run`` process; its peak RSS and CPU come from ``os.wait4``. The baseline is the
same command with 10 participants (what importing torch and fscore and one course cost anyway), so the
ratio is what 10,000 participants add. Participants draw 10 examples each from the pool
(``data.split: sampled``), so there are more participants than digits; they share one torch module
(nothing of theirs lives in it), and data is dealt once. Target: peak RSS under 2 GB.

    python bench/scale.py [--participants 10000] [--per-round 1000] [--rounds 5] [--batched]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import report

ROOT = Path(__file__).resolve().parents[1]


def course(participants: int, per_round: int, rounds: int) -> list[str]:
    return [f"participants={participants}", f"sample_size={min(per_round, participants)}", f"rounds={rounds}",
            "course_id=scale", "data.split=sampled", "data.samples_per_participant=10", "trainer.local_epochs=1",
            "evaluation.participants=false", "simulation.progress=false", "simulation.threads=1"]


def run(overrides: list[str], out: Path) -> dict:
    sets = [a for o in overrides for a in ("--set", o)]
    cmd = [sys.executable, "-m", "fscore.cli", "run", str(ROOT / "examples" / "digits_fedavg.yaml"),
           "--output", str(out), "--no-progress", *sets]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
    summary = json.loads((out / "summary.json").read_text())
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "course_s": summary["wall_time_s"],
            "rounds": summary["rounds"], "heldout_acc": round(summary["final_metrics"]["heldout.accuracy"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--per-round", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batched", action="store_true", help="also run it with simulation.batched=true")
    args = parser.parse_args()
    sides = [("10 participants (baseline)", course(10, 10, args.rounds)),
             (f"{args.participants} participants, {args.per_round} a round",
              course(args.participants, args.per_round, args.rounds))]
    if args.batched:
        sides.append((f"{args.participants} participants, batched", [*sides[1][1], "simulation.batched=true"]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, overrides) in enumerate(sides):
            rows.append({"run": name, **run(overrides, Path(tmp) / str(i))})
    base = rows[0]["peak_rss_mb"]
    for row in rows:
        row["rss_vs_baseline"] = round(row["peak_rss_mb"] / base, 2)
        row["under_2GB"] = row["peak_rss_mb"] < 2048
    report("scale", rows, "peak RSS of the whole fscope run process (os.wait4); target: under 2 GB at 10,000")


if __name__ == "__main__":
    main()
