"""(h) Backdoors against defences (paper §4.2; Sun et al. 2019): clean accuracy and attack success rate for each
attack x defence, with 10 % malicious participants.

Digits, 20 participants (IID), MLP(64), SGD lr 0.1 momentum 0.5, 2 local epochs, batch 16, 30 rounds, seed 0.
Participants 3 and 11 are malicious: they poison half their examples for target label 0, with
  * badnets: a 2x2 white square in the bottom-right corner;
  * badnets_boosted: the same, and the update scaled by 3 (model replacement / scaled boosting);
  * blended_boosted: the image blended with a fixed random pattern (alpha 0.2), the update scaled by 3.
Defences: FedAvg, norm bounding (max norm 1), the coordinate-wise median, the trimmed mean and Multi-Krum
(each sized for 2 attackers), and central DP with weak noise (DP-FedAvg, clip 1, noise multiplier 0.05).
The attack success rate is the share of triggered held-out examples (true label not 0) classified 0; the
baseline is each defence's clean course, in the same run.

    python bench/backdoor.py [--rounds 30]

Writes bench/results/backdoor.json and bench/results/backdoor/attack_success_rate.png (FedAvg's runs).
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

MALICIOUS = [3, 11]
ATTACKS = {
    "badnets": {"kind": "badnets", "target_label": 0, "fraction": 0.5},
    "badnets_boosted": {"kind": "badnets", "target_label": 0, "fraction": 0.5, "boost": 3.0},
    "blended_boosted": {"kind": "blended", "target_label": 0, "fraction": 0.5, "alpha": 0.2, "boost": 3.0},
}
DEFENCES = {
    "fedavg": ({"name": "fedavg"}, []),
    "norm_bounding": ({"name": "norm_bounding", "max_norm": 1.0}, []),
    "median": ({"name": "median"}, []),
    "trimmed_mean": ({"name": "trimmed_mean", "byzantine": 2}, []),
    "multi_krum": ({"name": "multi_krum", "byzantine": 2}, []),
    "central_dp_weak": ({"name": "fedavg"}, [{"name": "central_dp", "role": "coordinator",
                                              "options": {"clip": 1.0, "noise_multiplier": 0.05}}]),
}


def course(name: str, rounds: int, defence: str, attack: str | None) -> dict:
    aggregator, plugins = DEFENCES[defence]
    if attack is not None:
        plugins = [*plugins, {"name": "backdoor", "role": "all", "participants": MALICIOUS,
                              "options": ATTACKS[attack]}]
    return {"seed": 0, "course_id": name, "participants": 20, "rounds": rounds,
            "data": {"dataset": "digits", "split": "iid", "test_fraction": 0.2, "heldout_fraction": 0.2},
            "model": {"name": "mlp", "hidden": 64},
            "trainer": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.5, "local_epochs": 2, "batch_size": 16},
            "aggregator": aggregator, "plugins": plugins, "evaluation": {"every": rounds},
            "simulation": {"progress": False}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    quiet_logs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for defence in DEFENCES:
            clean = run_standalone(config_from_dict(course(f"{defence}-clean", args.rounds, defence, None)),
                                   progress=False).summary["final_metrics"]["heldout.accuracy"]
            for attack in ATTACKS:
                name = f"{defence}-{attack}"
                started = time.perf_counter()
                summary = run_standalone(config_from_dict(course(name, args.rounds, defence, attack)),
                                         output_dir=runs / name, progress=False).summary
                measured = summary["plugins"]["backdoor"]
                rows.append({"defence": defence, "attack": attack, "clean_course_accuracy": clean,
                             "clean_accuracy": measured["final_clean_accuracy"],
                             "vs_clean_course": measured["final_clean_accuracy"] - clean,
                             "attack_success_rate": measured["final_attack_success_rate"],
                             "wall_s": time.perf_counter() - started})
                print(rows[-1], flush=True)
        write_report([runs / f"fedavg-{a}" for a in ATTACKS], runs / "report")
        out = RESULTS / "backdoor"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(runs / "report" / "attack_success_rate.png", out / "attack_success_rate.png")
    report("backdoor", rows, notes=(
        f"20 participants, {MALICIOUS} malicious, target label 0, {args.rounds} rounds; clean_accuracy and "
        "attack_success_rate of the final global model on the held-out set; vs_clean_course: against the same "
        "defence without attackers, in the same run"))


if __name__ == "__main__":
    main()
