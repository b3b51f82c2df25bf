"""(d) The paper's Table 1: virtual time to a target accuracy, sync against async strategies.

Every strategy runs the same course (same seed, data split, device profiles and trainer) on the
embedded log in virtual time; only the strategy differs. Time to target is the virtual time of
the first evaluation whose held-out accuracy reaches the target; the speedup is Sync-vanilla's
time divided by the strategy's. Baseline: Sync-vanilla, run in the same process.

Setup (also in the README):
  * 200 participants, 20 training at once (the sample size), heavy-tailed devices: compute
    seconds per sample and bandwidth log-normal (sigma 1) around 0.05 s and 100 kB/s;
  * digits: Dirichlet(0.5) label skew, MLP(64), 2 local epochs, target 85 %;
  * Synthetic(1,1) (FedProx): logistic regression, 1 local epoch, target 50 %;
  * async strategies wait for 10 updates (goal_achieved) or a budget of 2 s (digits) / 10 s
    (synthetic) (time_up), tolerate staleness up to 50 with weight (1+s)^-0.5;
  * evaluation on the coordinator's held-out set after every second aggregation, at no
    virtual cost, for every strategy.

    python bench/table1.py [--dataset digits|synthetic] [--runs DIR]

Writes bench/results/table1.json, one run directory per course under --runs, and the course
report (Figures 8-10 as PNG and HTML) per dataset under bench/results/table1/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness import RESULTS, quiet_logs, report

from fscore.config import config_from_dict
from fscore.report import write_report
from fscore.simulation.runner import run_standalone

COMMON = {
    "seed": 0, "participants": 200, "sample_size": 20,
    "evaluation": {"every": 2, "participants": False},
    "simulation": {"devices": "heavy_tailed", "compute_s_per_sample": 0.05, "bandwidth_bytes_per_s": 1.0e5,
                   "compute_sigma": 1.0, "bandwidth_sigma": 1.0, "progress": False},
}
DATASETS = {
    "digits": {
        "rounds": 150, "target": 0.85, "time_budget_s": 1.0,
        "data": {"dataset": "digits", "split": "dirichlet", "alpha": 0.5, "test_fraction": 0.1,
                 "min_samples_per_participant": 3},
        "model": {"name": "mlp", "hidden": 64},
        "trainer": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.5, "local_epochs": 2, "batch_size": 16},
    },
    "synthetic": {
        "rounds": 150, "target": 0.5, "time_budget_s": 5.0,
        "data": {"dataset": "synthetic", "synthetic_alpha": 1.0, "synthetic_beta": 1.0, "test_fraction": 0.1},
        "model": {"name": "logreg"},
        "trainer": {"optimizer": "sgd", "lr": 0.05, "local_epochs": 1, "batch_size": 10},
    },
}
ASYNC = {"min_received": 10, "staleness_toleration": 50}
STRATEGIES = ["sync_vanilla", "sync_os", "async_goal_aggr_unif", "async_goal_rece_unif", "async_time_aggr_unif",
              "async_goal_aggr_group"]
#: Table 1 of the paper (virtual hours to the target accuracy; speedup over Sync-vanilla), for comparison.
PAPER = {
    "FEMNIST (85%)": [61.46, 27.34, 11.29, 11.36, 11.70, 10.42],
    "CIFAR-10 (70%)": [66.99, 26.42, 7.73, 7.98, 8.87, 7.54],
    "Twitter (69%)": [9.41, 3.84, 0.78, 0.64, 0.50, 0.65],
}


def course(dataset: str, strategy: str) -> dict:
    spec = DATASETS[dataset]
    settings = {"name": strategy}
    if strategy.startswith("async"):
        settings.update(ASYNC)
    if strategy == "async_time_aggr_unif":
        settings = {"name": strategy, "time_budget_s": spec["time_budget_s"],
                    "staleness_toleration": ASYNC["staleness_toleration"]}
    return {**COMMON, "course_id": f"table1-{dataset}-{strategy}", "rounds": spec["rounds"],
            "data": spec["data"], "model": spec["model"], "trainer": spec["trainer"], "strategy": settings,
            "evaluation": {**COMMON["evaluation"], "target": spec["target"]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append")
    parser.add_argument("--runs", type=Path, default=Path("runs/table1"))
    args = parser.parse_args()
    quiet_logs()
    rows = []
    for dataset in args.dataset or list(DATASETS):
        baseline = None
        run_dirs = []
        for strategy in STRATEGIES:
            run_dir = args.runs / dataset / strategy
            started = time.perf_counter()
            result = run_standalone(config_from_dict(course(dataset, strategy)), output_dir=run_dir, progress=False)
            s = result.summary
            hours = s["time_to_target_h"]
            if strategy == "sync_vanilla":
                baseline = hours
            staleness = [int(k) for k, n in s["staleness_histogram"].items() for _ in range(n)]
            rows.append({
                "dataset": f"{dataset} ({DATASETS[dataset]['target']:.0%})", "strategy": strategy,
                "hours_to_target": "not reached" if hours is None else round(hours, 4),
                "speedup": "-" if hours is None or baseline is None else f"{baseline / hours:.2f}x",
                "final_acc": round(s["final_metrics"].get("heldout.accuracy", float("nan")), 3),
                "never_aggregated": s["participants_never_aggregated"], "dropped_stale": s["dropped_stale"],
                "max_staleness": max(staleness, default=0), "wall_s": round(time.perf_counter() - started, 1)})
            print(rows[-1], flush=True)
            run_dirs.append(run_dir)
        write_report(run_dirs, RESULTS / "table1" / dataset)
    paper = "; ".join(f"{k}: " + ", ".join(f"{v:.2f}h" for v in vs) for k, vs in PAPER.items())
    report("table1", rows, notes="virtual hours to the target held-out accuracy; speedup = Sync-vanilla / strategy. "
                                 f"Paper (same strategy order): {paper}")


if __name__ == "__main__":
    main()
