"""Oort's time-to-accuracy against uniform sampling, in the setting of bench/table1.py (issue 18).

Oort (Lai et al., OSDI 2021) reports 1.2-14.1x faster time to accuracy than random selection. This bench
runs the same synchronous course (Sync-vanilla, table1's 200 heavy-tailed devices, 20 per round) with
only the sampler changed, for several seeds, in virtual time on the embedded log:

  * uniform: random selection, the baseline, run alongside in the same process;
  * oort-fixed: Oort with the pacer off (T stays the median response time) and no blacklist;
  * oort: Oort with its pacer (every 20 rounds, T's quantile +0.05 when utility stalls);
  * oort+blacklist: as oort, and a participant picked more than 10 times is left out (at most 30 %).

Also reported: how often the pacer widened T in 150 rounds, and how many participants were never
aggregated (Oort trades coverage for speed). Time to target is the virtual time of the first held-out
evaluation at the target accuracy; the gain is uniform's time over the sampler's, per seed, then the median
over seeds.

    python bench/oort.py [--dataset digits|synthetic] [--seeds 0 1 2] [--target ACC] [--runs DIR]

Writes bench/results/oort.json (oort-TARGET.json with --target).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from harness import quiet_logs, report
from table1 import DATASETS, course

from fscore.config import config_from_dict
from fscore.simulation.runner import run_standalone

SAMPLERS = {
    "uniform": ("uniform", {}),
    "oort-fixed": ("oort", {"pacer_step": 0}),
    "oort": ("oort", {}),
    "oort+blacklist": ("oort", {"blacklist_rounds": 10}),
}


def oort_course(dataset: str, sampler: str, seed: int, target: float | None = None) -> dict:
    name, options = SAMPLERS[sampler]
    base = course(dataset, "sync_vanilla")
    if target is not None:
        base["evaluation"] = {**base["evaluation"], "target": target}
    return {**base, "seed": seed, "course_id": f"oort-{dataset}-{sampler.replace('+', '-')}-{seed}",
            "strategy": {**base["strategy"], "sampler": name, "sampler_options": options}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, help="held-out accuracy to reach (default: table1's)")
    parser.add_argument("--runs", type=Path, default=Path("runs/oort"))
    args = parser.parse_args()
    quiet_logs()
    rows = []
    for dataset in args.dataset or list(DATASETS):
        hours: dict[str, list[float | None]] = {s: [] for s in SAMPLERS}
        accuracy: dict[str, list[float]] = {s: [] for s in SAMPLERS}
        moves: dict[str, list[int]] = {s: [] for s in SAMPLERS}
        never: dict[str, list[int]] = {s: [] for s in SAMPLERS}
        started = time.perf_counter()
        for seed in args.seeds:
            for sampler in SAMPLERS:
                run_dir = args.runs / dataset / f"{sampler}-{seed}"
                config = config_from_dict(oort_course(dataset, sampler, seed, args.target))
                result = run_standalone(config, output_dir=run_dir, progress=False)
                summary = result.summary
                moves[sampler].append(len(getattr(result.coordinator.sampler, "pacer_moves", [])))
                never[sampler].append(summary["participants_never_aggregated"])
                hours[sampler].append(summary["time_to_target_h"])
                accuracy[sampler].append(summary["final_metrics"].get("heldout.accuracy", float("nan")))
                print(dataset, seed, sampler, summary["time_to_target_h"], flush=True)
        for sampler in SAMPLERS:
            gains = [b / h for b, h in zip(hours["uniform"], hours[sampler], strict=True) if b and h]
            reached = sum(h is not None for h in hours[sampler])
            rows.append({
                "dataset": f"{dataset} ({args.target or DATASETS[dataset]['target']:.0%})", "sampler": sampler,
                "hours_to_target": [None if h is None else round(h, 4) for h in hours[sampler]],
                "reached": f"{reached}/{len(args.seeds)}",
                "median_gain": f"{statistics.median(gains):.2f}x" if gains else "-",
                "gains": [round(g, 2) for g in gains],
                "final_acc": round(statistics.median(accuracy[sampler]), 3),
                "pacer_moves": moves[sampler], "never_aggregated": never[sampler]})
        print(f"{dataset}: {time.perf_counter() - started:.0f} s", flush=True)
    notes = ("virtual hours to the target held-out accuracy per seed (Sync-vanilla, table1's setting); "
             "gain = uniform / sampler per seed; paper: 1.2-14.1x over random")
    report("oort" if args.target is None else f"oort-{args.target:g}", rows, notes=notes)


if __name__ == "__main__":
    main()
