"""(e) Robust aggregation: accuracy under model poisoning, and what each rule costs.

Part 1, accuracy. The same digits course (20 participants, all training every round, MLP(64),
Dirichlet(1.0) label skew, 30 rounds, seed 0) runs with each aggregator, first with every
participant honest, then with 4 of the 20 (20 %) poisoning their updates:
  * sign_flip: they send the received model minus 4 x what training changed;
  * gaussian: they send the received model plus N(0, 5²) noise on every parameter.
The robust rules are sized for f = 4 attackers (Bulyan needs 4f + 3 = 19 <= 20 updates). The
figure is the held-out accuracy after the last round; baseline: FedAvg with nobody attacking.

Part 2, cost. Aggregating 20 updates of 1 M float32 parameters, median of 5 runs, against plain
numpy averaging the same 20 arrays (np.mean over the stacked updates) in the same run.

    python bench/robust.py [--part accuracy|cost|both]

Writes bench/results/robust_accuracy.json and bench/results/robust_cost.json.
"""

from __future__ import annotations

import argparse

import numpy as np
from harness import median_seconds, quiet_logs, report

from fscore.aggregators import ClientUpdate, make_aggregator
from fscore.config import config_from_dict
from fscore.simulation.runner import run_standalone

ATTACKERS = [1, 5, 9, 13]
F = 4
RULES = {
    "fedavg": {}, "norm_bounding": {"max_norm": 1.0}, "median": {}, "trimmed_mean": {"byzantine": F},
    "krum": {"byzantine": F}, "multi_krum": {"byzantine": F}, "bulyan": {"byzantine": F},
}
ATTACKS = {"none": {}, "sign_flip": {"kind": "sign_flip", "scale": 4.0}, "gaussian": {"kind": "gaussian", "scale": 5.0}}


def course(rule: str, attack: str) -> dict:
    return {
        "seed": 0, "participants": 20, "rounds": 30,
        "data": {"dataset": "digits", "split": "dirichlet", "alpha": 1.0, "test_fraction": 0.2,
                 "heldout_fraction": 0.2},
        "model": {"name": "mlp", "hidden": 64},
        "trainer": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.5, "local_epochs": 2, "batch_size": 16},
        "aggregator": {"name": rule, **RULES[rule]},
        "attack": {**ATTACKS[attack], "participants": ATTACKERS} if attack != "none" else {},
        "simulation": {"progress": False},
    }


def accuracy() -> None:
    rows, baseline = [], None
    for rule in RULES:
        row: dict = {"aggregator": rule}
        for attack in ATTACKS:
            result = run_standalone(config_from_dict(course(rule, attack)), progress=False)
            acc = result.summary["final_metrics"]["heldout.accuracy"]
            if attack == "none":
                baseline = acc if baseline is None else baseline
                clean = acc
            row[f"acc_{attack}"] = round(acc, 3)
        row["clean_vs_fedavg"] = round(clean / baseline, 3)
        rows.append(row)
        print(row, flush=True)
    report("robust_accuracy", rows, notes=f"digits, 20 participants, {F} attackers (ids {ATTACKERS}), 30 rounds, "
                                          "held-out accuracy after the last round")


def cost() -> None:
    rng = np.random.default_rng(0)
    size, n = 1_000_000, 20
    current = {"w": np.zeros(size, np.float32)}
    ups = [ClientUpdate(f"p{i:02d}", {"w": rng.standard_normal(size).astype(np.float32)}, 10, 0) for i in range(n)]
    stacked = np.stack([u.params["w"] for u in ups])
    numpy_mean = median_seconds(lambda: np.mean(stacked, axis=0))
    rows = [{"aggregator": "numpy mean (baseline)", "ms": round(numpy_mean * 1e3, 1), "x_numpy": 1.0}]
    for rule, options in RULES.items():
        agg = make_aggregator(rule, **options)
        t = median_seconds(lambda agg=agg: agg.aggregate(current, ups))
        rows.append({"aggregator": rule, "ms": round(t * 1e3, 1), "x_numpy": round(t / numpy_mean, 1)})
    report("robust_cost", rows, notes=f"{n} updates of {size:,} float32 parameters; median of 5")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["accuracy", "cost", "both"], default="both")
    args = parser.parse_args()
    quiet_logs()
    if args.part in ("cost", "both"):
        cost()
    if args.part in ("accuracy", "both"):
        accuracy()


if __name__ == "__main__":
    main()
