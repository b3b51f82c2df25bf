"""(f) Personalization, after the paper's Figure 11: client-wise accuracy of FedAvg, FedBN, Ditto, pFedMe and FedEM.

Three federations, 50 participants each, every participant training every round, seed 0:
  * digits_feature_skew: scikit-learn's digits, IID labels, each participant's images rotated by up to
    40 degrees, scaled in intensity by 0.5-1.5 and noised (std 0.1), its own draw;
  * digits_label_skew: digits split by Dirichlet(0.1);
  * synthetic_1_1: FedProx Synthetic(1, 1), 60 features, 10 classes.
Model: MLP(64) with BatchNorm after the hidden layer (mlp_bn, what FedBN needs), SGD lr 0.05, 2 local epochs,
batch 16, 30 rounds; FedAvg also runs on the plain MLP (fedavg_mlp). Each participant reports accuracy on its
own test split after the last round: the global model for FedAvg, its personalized model otherwise.
Figures: mean, standard deviation and 10th percentile over participants (unweighted: every participant
counts once), tensor bytes per round (up and down) and wall time. The baseline is the better of the two
FedAvg runs on the same federation, in the same run.

    python bench/personalization.py [--rounds 30] [--participants 50]

Writes bench/results/personalization.json and bench/results/personalization/<dataset>.png.
"""

from __future__ import annotations

import argparse
import time

from harness import RESULTS, quiet_logs, report

from fscore.config import config_from_dict
from fscore.report import clientwise_figure
from fscore.simulation.runner import run_standalone

#: name -> (personalization section, model); fedavg_mlp is FedAvg on the same MLP without BatchNorm, a second
#: baseline, since averaging BatchNorm statistics across skewed participants can hurt FedAvg by itself
ALGORITHMS = {
    "fedavg": ({"name": "none"}, "mlp_bn"), "fedavg_mlp": ({"name": "none"}, "mlp"),
    "fedbn": ({"name": "fedbn"}, "mlp_bn"),
    "ditto": ({"name": "ditto", "options": {"lam": 0.1, "personal_epochs": 2}}, "mlp_bn"),
    "pfedme": ({"name": "pfedme", "options": {"lam": 15.0, "inner_steps": 5, "personal_lr": 0.01}}, "mlp_bn"),
    "fedem": ({"name": "fedem", "options": {"components": 3}}, "mlp_bn"),
}
DATASETS = {
    "digits_feature_skew": {"dataset": "digits", "split": "iid",
                            "feature_skew": {"rotation_deg": 40, "intensity": [0.5, 1.5], "noise_std": 0.1}},
    "digits_label_skew": {"dataset": "digits", "split": "dirichlet", "alpha": 0.1, "min_samples_per_participant": 8},
    "synthetic_1_1": {"dataset": "synthetic", "synthetic_alpha": 1.0, "synthetic_beta": 1.0},
}


def course(dataset: str, algorithm: str, rounds: int, participants: int) -> dict:
    return {"seed": 0, "participants": participants, "rounds": rounds, "course_id": f"{dataset}-{algorithm}",
            "data": {**DATASETS[dataset], "test_fraction": 0.25, "heldout_fraction": 0.1},
            "model": {"name": ALGORITHMS[algorithm][1], "hidden": 64},
            "trainer": {"optimizer": "sgd", "lr": 0.05, "local_epochs": 2, "batch_size": 16},
            "personalization": ALGORITHMS[algorithm][0], "evaluation": {"every": rounds},
            "simulation": {"progress": False}}


def plot(dataset: str, points: dict[str, list[float]]) -> None:
    out = RESULTS / "personalization"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{dataset}.png").write_bytes(clientwise_figure(points, f"Client-wise accuracy: {dataset}"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--participants", type=int, default=50)
    args = parser.parse_args()
    quiet_logs()
    rows = []
    for dataset in DATASETS:
        points, results = {}, {}
        for algorithm in ALGORITHMS:
            started = time.perf_counter()
            result = run_standalone(config_from_dict(course(dataset, algorithm, args.rounds, args.participants)),
                                    progress=False)
            wall = time.perf_counter() - started
            acc = result.summary["clientwise"]["accuracy"]
            points[algorithm] = list(acc["by_participant"].values())
            results[algorithm] = (acc, result.summary["traffic"]["bytes_per_round"] / 1e3, wall)
            print(dataset, algorithm, round(acc["mean"], 3), round(acc["p10"], 3), round(wall, 1), flush=True)
        best = max(("fedavg", "fedavg_mlp"), key=lambda a: results[a][0]["mean"])
        base = results[best][0]
        for algorithm, (acc, kb, wall) in results.items():
            rows.append({"dataset": dataset, "algorithm": algorithm, "mean": acc["mean"], "std": acc["std"],
                         "p10": acc["p10"], "mean_vs_fedavg": acc["mean"] - base["mean"],
                         "p10_vs_fedavg": acc["p10"] - base["p10"], "kB_per_round": kb, "wall_s": wall})
        plot(dataset, points)
    report("personalization", rows, notes=(
        f"{args.participants} participants, {args.rounds} rounds, mlp_bn, client-wise accuracy on each "
        "participant's own test split after the last round; *_vs_fedavg: difference to the better FedAvg "
        "(mlp_bn or mlp) on the same data"))


if __name__ == "__main__":
    main()
