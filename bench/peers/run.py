"""fscope against other simulators on one exported workload, the commands alternated in one run (issue 19).

    python bench/peers/run.py CONFIG [--set key=value ...] [--peer plain_torch] [--repeat 3] [--threads 1]
        [--batched] [--workers 2]

For each repeat, in turn (A B A B): ``fscope run CONFIG`` and each peer's harness on the workload that
bench/peers/export.py wrote from the same CONFIG. Every side runs as a fresh process with the same thread
count (``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``, from which torch sizes its intra-op pool); reported per side: wall
and CPU seconds, peak RSS, the median round time after the first (steady state), final held-out
accuracy, and the ratio peer / fscope for wall time and for steady-state round time. ``--batched`` and ``--workers N``
add fscope with ``simulation.batched`` or N trainer processes (``simulation.workers``) as sides of their own, with
ratios against them too; a workers side uses N processes of ``--threads`` threads each, more than the peers use.
Every side trains the same participants each round: export.py's ``cohorts``, drawn as fscope's coordinator draws
them, which each harness is given and which this script checks fscope's runs aggregated.

Peers: ``plain_torch`` (FedAvg in plain torch, bench/peers/plain_torch.py: the floor, in the tox env), and
``flower``, ``pfl`` and ``federatedscope`` (bench/peers/<peer>/harness.py), each in its own environment made by
bench/peers/setup.sh; by default every peer with an environment runs. None of this is part of tox.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from harness import report  # noqa: E402

VENVS = Path(os.environ.get("FSCOPE_PEERS_HOME", HERE / ".venvs"))
#: each peer's command: plain torch in this interpreter, the simulators in the venvs bench/peers/setup.sh made
PEERS = {"plain_torch": [sys.executable, str(HERE / "plain_torch.py")],
         **{p: [str(VENVS / p / "bin" / "python"), str(HERE / p / "harness.py")]
            for p in ("flower", "pfl", "federatedscope")}}


def installed(peer: str) -> bool:
    return peer == "plain_torch" or (VENVS / peer / "bin" / "python").exists()


def _env(threads: int) -> dict[str, str]:
    """torch sizes its intra-op pool from OMP_NUM_THREADS, in fscope's processes and in the peers'."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float, float]:
    """(stdout, wall s, CPU s, peak RSS MB) of one child process alone (``os.wait4`` gives its own rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.read()[-2000:]}")
        return out.read(), wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run_fscope(config: Path, overrides: list[str], out: Path, threads: int, cohorts: list[list[int]]) -> dict:
    sets = [a for o in overrides for a in ("--set", o)]
    _, wall, cpu, rss = _timed([sys.executable, "-m", "fscore.cli", "run", str(config), "--output", str(out),
                                "--no-progress", *sets], _env(threads))
    summary = json.loads((out / "summary.json").read_text())
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    aggregations = [json.loads(line) for line in (out / "aggregations.jsonl").read_text().splitlines()]
    trained = [sorted(int(a.rsplit("-", 1)[1]) for a in row["senders"]) for row in aggregations]
    if trained != cohorts:  # the peers are given export.py's cohorts: fscope must have drawn the same ones
        differs = [r + 1 for r, (a, b) in enumerate(itertools.zip_longest(trained, cohorts)) if a != b]
        raise SystemExit(f"fscope ({' '.join(overrides) or 'default'}) aggregated other participants than the "
                         f"exported cohorts, first in round {differs[0]}")
    if len(lines) != len(aggregations):  # round times are the evaluations' stamps: one a round
        raise SystemExit("run.py times rounds by their evaluations: the workload must evaluate every round")
    stamps = [line["wall_time"] for line in lines]
    rounds = [b - a for a, b in itertools.pairwise(stamps)]
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, "round_s": rounds,
            "heldout_accuracy": summary["final_metrics"].get("heldout.accuracy")}


def run_peer(peer: str, workload: Path, threads: int) -> dict:
    stdout, wall, cpu, rss = _timed([*PEERS[peer], str(workload), "--threads", str(threads)], _env(threads))
    result = json.loads(stdout.strip().splitlines()[-1])
    # A peer that trains in worker processes it does not reap (Flower's Ray actors) reports its whole process
    # tree itself; wait4 sees only the processes it waited for.
    return {"wall_s": wall, "cpu_s": max(cpu, result.get("cpu_s_tree", 0.0)),
            "peak_rss_mb": max(rss, result.get("peak_rss_mb_tree", 0.0)), "round_s": result["round_s"][1:],
            "heldout_accuracy": result["heldout_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--peer", action="append", choices=sorted(PEERS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batched", action="store_true", help="also run fscope with simulation.batched=true")
    parser.add_argument("--workers", type=int, default=0, help="also run fscope with simulation.workers=N")
    args = parser.parse_args()
    peers = args.peer or [p for p in sorted(PEERS) if installed(p)]
    missing = [p for p in peers if not installed(p)]
    if missing:
        raise SystemExit(f"no environment for {', '.join(missing)}: run bash bench/peers/setup.sh {' '.join(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        workload = Path(tmp) / "workload"
        subprocess.run([sys.executable, str(HERE / "export.py"), str(args.config), str(workload),
                        *[a for o in args.overrides for a in ("--set", o)]], check=True, capture_output=True)
        cohorts = json.loads((workload / "workload.json").read_text())["cohorts"]
        # fscope's sides: the default path, and each opt-in one asked for
        ours = {"fscope": [], **({"batched": ["simulation.batched=true"]} if args.batched else {}),
                **({"workers": [f"simulation.workers={args.workers}"]} if args.workers > 1 else {})}
        results: dict[str, list[dict]] = {("fscope" if side == "fscope" else f"fscope_{side}"): [] for side in ours}
        results.update({p: [] for p in peers})
        for r in range(args.repeat):
            for side, extra in ours.items():
                results["fscope" if side == "fscope" else f"fscope_{side}"].append(
                    run_fscope(args.config, [*args.overrides, *extra], Path(tmp) / f"{side}{r}", args.threads,
                               cohorts))
            for peer in peers:
                results[peer].append(run_peer(peer, workload, args.threads))

    def medians(runs: list[dict]) -> tuple[float, float]:
        return statistics.median(x["wall_s"] for x in runs), statistics.median(s for x in runs for s in x["round_s"])

    bases = {side: medians(runs) for side, runs in results.items() if side.startswith("fscope")}
    rows = []
    for side, runs in results.items():
        wall, steady = medians(runs)
        cpu = statistics.median(x["cpu_s"] for x in runs)
        ratios = {}
        for base, (base_wall, base_round) in bases.items():
            name = "fscope" if base == "fscope" else base.removeprefix("fscope_")
            ratios[f"wall_vs_{name}"] = f"{wall / base_wall:.2f}x"
            ratios[f"round_vs_{name}"] = f"{steady / base_round:.2f}x"
        rows.append({"side": side, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                     "peak_rss_mb": round(max(x["peak_rss_mb"] for x in runs)), "round_s": round(steady, 4),
                     "heldout_acc": round(statistics.median(x["heldout_accuracy"] for x in runs), 3), **ratios})
    report(f"peers-{args.config.stem}", rows,
           notes=f"{args.config} {' '.join(args.overrides)}; {args.repeat} alternated runs per side, "
                 f"{args.threads} thread(s) each"
                 + (f" (fscope_workers: {args.workers} trainer processes)" if args.workers > 1 else "")
                 + "; ratios > 1: the side is slower")


if __name__ == "__main__":
    main()
