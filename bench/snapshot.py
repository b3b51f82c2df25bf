"""(e) Course snapshots (issue 17): what a snapshot costs, and what restoring one saves.

The fidelity of multi-fidelity tuning (SHA, Hyperband) is rounds: promoting a trial from R to 2R rounds
either retrains it from scratch or restores its round-R snapshot and trains R more. Side by side, alternated
(A B A B ...) in the same run, on digits with Dirichlet(0.5):

- *promote*: 2R rounds from scratch (the baseline) against restore at R + R rounds (ratio < 1 is saved time);
- *overhead*: a 2R-round course without snapshots (the baseline) against one snapshotting every round;
- the size of one snapshot, and the time to write and to read it.

Every restored course ends with the from-scratch model's sha256 (checked here too).

    python bench/snapshot.py [--participants 50] [--rounds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness import quiet_logs, report

from fscore.config import config_from_dict
from fscore.simulation.runner import run_standalone
from fscore.snapshot import read
from fscore.snapshot.record import encode


def course(participants: int, rounds: int):
    return config_from_dict({
        "course_id": "bench-snapshot", "participants": participants, "rounds": rounds,
        "data": {"dataset": "digits", "split": "dirichlet", "alpha": 0.5},
        "model": {"name": "mlp", "hidden": 64}, "simulation": {"progress": False},
        "trainer": {"lr": 0.1, "momentum": 0.5, "local_epochs": 1, "batch_size": 16}})


def timed(fn) -> tuple[float, dict]:
    t = time.perf_counter()
    summary = fn()
    return time.perf_counter() - t, summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--participants", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10, help="R: the snapshot's round; courses run 2R")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    quiet_logs()
    n, r = args.participants, args.rounds
    work = Path(tempfile.mkdtemp(prefix="fscope-bench-snapshot-"))
    first = run_standalone(course(n, 2 * r), output_dir=work / "first", snapshot_every=r)
    path = work / "first" / "snapshots" / f"round-{r:05d}.avro"
    snapshot = read(path)
    times: dict[str, list[float]] = {"scratch": [], "restore": [], "plain": [], "every": [], "write": [], "read": []}
    for i in range(args.repeat):
        t, s = timed(lambda: run_standalone(course(n, 2 * r)).summary)
        times["scratch"].append(t)
        assert s["model_sha256"] == first.summary["model_sha256"]
        t, s = timed(lambda: run_standalone(course(n, 2 * r), restore=read(path)).summary)
        times["restore"].append(t)
        assert s["model_sha256"] == first.summary["model_sha256"], "a restored course must end bit-exact"
        t, _ = timed(lambda i=i: run_standalone(course(n, 2 * r), output_dir=work / f"plain{i}").summary)
        times["plain"].append(t)
        t, _ = timed(lambda i=i: run_standalone(course(n, 2 * r), output_dir=work / f"every{i}",
                                                snapshot_every=1).summary)
        times["every"].append(t)
        t0 = time.perf_counter()
        (work / "copy.avro").write_bytes(encode(snapshot))
        times["write"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        read(path)
        times["read"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        {"what": f"promote {r} -> {2 * r} rounds", "baseline": f"{2 * r} rounds from scratch",
         "baseline_s": med["scratch"], "measured_s": med["restore"], "ratio": med["restore"] / med["scratch"]},
        {"what": f"snapshot every round of {2 * r}", "baseline": "no snapshots", "baseline_s": med["plain"],
         "measured_s": med["every"], "ratio": med["every"] / med["plain"]},
        {"what": "write one snapshot", "baseline": "-", "baseline_s": 0.0, "measured_s": med["write"], "ratio": "-"},
        {"what": "read one snapshot", "baseline": "-", "baseline_s": 0.0, "measured_s": med["read"], "ratio": "-"},
    ]
    report("snapshot", rows, notes=f"digits, Dirichlet(0.5), {n} participants, MLP(64), median of {args.repeat}; "
                                   f"one snapshot is {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
