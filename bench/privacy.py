"""(g) Privacy, after the paper's Figure 12 (§5.3.3): what client-side DP costs in accuracy, and what it buys
against gradient inversion and membership inference, with the ε each setting spends.

Four parts, seed 0, digits, MLP(64), every participant training every round:
  * accuracy: 20 participants, Dirichlet(0.5), SGD lr 0.1 momentum 0.5, 2 local epochs, batch 16, 30 rounds;
    0, 5, 10, 15 and 20 participants add client-side Gaussian noise (clip 2, noise multiplier 0.2) to their
    updates. Baseline: the course nobody noises, in the same run.
  * inversion: 10 participants training one SGD step on one example (lr 0.1); the coordinator runs iDLG and
    DLG on the first 20 updates, without noise and with the accuracy part's noise. MSE and SSIM against the
    real examples, label accuracy.
  * membership: 4 participants (IID), 80 % of the digits held out (so each trains on few), MLP(256), 10
    local epochs with momentum 0.9, 30 rounds, so the model overfits a little; loss-threshold and
    shadow-model AUC on members and as many non-members, without DP, with client-side DP and with DP-SGD.
  * ε: for every noised setting, the largest ε a participant spent, at δ = 1e-5 (dp-accounting, RDP).

    python bench/privacy.py [--rounds 30]

Writes bench/results/privacy.json, bench/results/privacy/accuracy_vs_privacy.png and inversion.png.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from harness import RESULTS, quiet_logs, report

from fscore.config import config_from_dict
from fscore.report import write_report
from fscore.simulation.runner import run_standalone

CLIP, SIGMA = 2.0, 0.2
TRAINER = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.5, "local_epochs": 2, "batch_size": 16}


def client_dp(participants: list[int] | None = None) -> dict:
    return {"name": "client_dp", "participants": participants, "options": {"clip": CLIP, "noise_multiplier": SIGMA}}


def course(name: str, **changes) -> dict:
    base = {"seed": 0, "course_id": name, "participants": 20, "rounds": 30,
            "data": {"dataset": "digits", "split": "dirichlet", "alpha": 0.5, "test_fraction": 0.2,
                     "heldout_fraction": 0.2},
            "model": {"name": "mlp", "hidden": 64}, "trainer": TRAINER, "evaluation": {"every": 30},
            "simulation": {"progress": False}}
    return {**base, **changes}


def run(config: dict, runs: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    result = run_standalone(config_from_dict(config), output_dir=runs / config["course_id"], progress=False)
    return result.summary, time.perf_counter() - started


def epsilon(summary: dict) -> float | None:
    privacy = summary.get("privacy", {})
    unit = privacy.get("participants") or privacy.get("examples") or {}
    return unit.get("epsilon_max")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    quiet_logs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        curve, clean = [], None
        for noised in (0, 5, 10, 15, 20):
            plugins = [client_dp(list(range(noised)))] if noised else []
            summary, wall = run(course(f"noise-{noised * 5}pct", rounds=args.rounds, plugins=plugins), runs)
            accuracy = summary["final_metrics"]["heldout.accuracy"]
            clean = accuracy if clean is None else clean
            curve.append(runs / f"noise-{noised * 5}pct")
            rows.append({"part": "accuracy", "setting": f"{noised * 5}% of participants noise", "accuracy": accuracy,
                         "vs_clean": accuracy - clean, "epsilon": epsilon(summary), "ssim": None, "mse": None,
                         "label_accuracy": None, "auc_loss": None, "auc_shadow": None, "wall_s": wall})
            print(rows[-1], flush=True)
        single = {"participants": 10, "rounds": 2, "data": {"dataset": "digits", "split": "iid"},
                  "trainer": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 1, "local_steps": 1}}
        grids = []
        for method in ("idlg", "dlg"):
            for noised in (False, True):
                name = f"{method}-{'dp' if noised else 'plain'}"
                attack = {"name": "gradient_inversion", "role": "coordinator",
                          "options": {"method": method, "max_samples": 20}}
                summary, wall = run(course(name, **single, plugins=[attack, *([client_dp()] if noised else [])]),
                                    runs)
                found = summary["plugins"]["gradient_inversion"]
                grids.append(runs / name)
                rows.append({"part": "inversion", "setting": f"{method}, {'client DP' if noised else 'no noise'}",
                             "accuracy": None, "vs_clean": None, "epsilon": epsilon(summary),
                             "ssim": found["mean_ssim"], "mse": found["mean_mse"],
                             "label_accuracy": found["label_accuracy"], "auc_loss": None, "auc_shadow": None,
                             "wall_s": wall})
                print(rows[-1], flush=True)
        overfit = {"participants": 4, "data": {"dataset": "digits", "split": "iid", "heldout_fraction": 0.8},
                   "model": {"name": "mlp", "hidden": 256},
                   "trainer": {**TRAINER, "momentum": 0.9, "local_epochs": 10}}
        membership = {"name": "membership_inference", "role": "coordinator"}
        for name, extra in (("mia-plain", []), ("mia-client-dp", [client_dp()]),
                            ("mia-dp-sgd", [{"name": "dp_sgd", "options": {"max_grad_norm": 1.0,
                                                                           "noise_multiplier": 1.0}}])):
            summary, wall = run(course(name, rounds=args.rounds, **overfit, plugins=[membership, *extra]), runs)
            found = summary["plugins"]["membership_inference"]
            rows.append({"part": "membership", "setting": name.removeprefix("mia-"),
                         "accuracy": summary["final_metrics"]["heldout.accuracy"], "vs_clean": None,
                         "epsilon": epsilon(summary), "ssim": None, "mse": None, "label_accuracy": None,
                         "auc_loss": found["loss_auc"], "auc_shadow": found["shadow_auc"], "wall_s": wall})
            print(rows[-1], flush=True)
        out = RESULTS / "privacy"
        out.mkdir(parents=True, exist_ok=True)
        drawn = runs / "report"
        write_report(curve, drawn / "curve")
        write_report(grids, drawn / "grids")
        shutil.copy(drawn / "curve" / "accuracy_vs_privacy.png", out / "accuracy_vs_privacy.png")
        shutil.copy(drawn / "grids" / "inversion.png", out / "inversion.png")
    report("privacy", rows, notes=(
        f"client-side DP: clip {CLIP}, noise multiplier {SIGMA}; epsilon at delta 1e-5 is the largest any "
        "participant spent; vs_clean: accuracy minus the course nobody noises, in the same run"))


if __name__ == "__main__":
    main()
