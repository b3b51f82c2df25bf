"""(f) Auto-tuning after the paper's Figure 13 (issue 17): RS, SHA, RS+FedEx, SHA+FedEx and Hyperband (and TPE) on
digits with Dirichlet(0.5) and 50 participants, each with the same budget of rounds.

For each method: the configurations tried, the rounds trained (SHA and Hyperband promote by restoring snapshots,
so they try more configurations for the same rounds), the best validation loss seen, the chosen config's test
accuracy (trained again and evaluated on the test split, the only time it is looked at), and the wall time. The
baseline row is fscope's default trainer section (lr 0.1, no momentum, 1 local epoch, batch 16), untuned, trained on
the same training examples. The best-seen curves against rounds consumed go to bench/results/autotune.png.

    python bench/autotune.py [--participants 50] [--rounds 20] [--budget 200] [--min-rounds 2] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from harness import RESULTS, quiet_logs, report

from fscore.simulation.runner import run_standalone
from fscore.tune import SearchSpace, Tuner, TuneSettings

COURSE = """\
course_id: bench-autotune
seed: 0
participants: {participants}
rounds: {rounds}
data: {{dataset: digits, split: dirichlet, alpha: 0.5, min_samples_per_participant: 8}}
model: {{name: mlp, hidden: 64}}
"""
SPACE = {
    "trainer.lr": {"type": "loguniform", "low": 0.003, "high": 0.5},
    "trainer.momentum": {"type": "uniform", "low": 0.0, "high": 0.9},
    "trainer.local_epochs": {"type": "int", "low": 1, "high": 3},
    "trainer.batch_size": {"type": "categorical", "choices": [8, 16, 32]},
}
METHODS = [("rs", "rs", False), ("sha", "sha", False), ("rs+fedex", "rs", True), ("sha+fedex", "sha", True),
           ("hyperband", "hyperband", False), ("bo (tpe)", "bo", False)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--participants", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=20, help="the full fidelity")
    ap.add_argument("--budget", type=int, default=200, help="rounds per method")
    ap.add_argument("--min-rounds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    quiet_logs()
    work = Path(tempfile.mkdtemp(prefix="fscope-bench-autotune-"))
    config = work / "course.yaml"
    config.write_text(COURSE.format(participants=args.participants, rounds=args.rounds))
    space = SearchSpace.parse(SPACE, "bench space")
    rows, curves = [], {}
    baseline = None
    for label, method, fedex in METHODS:
        settings = TuneSettings(method=method, budget=args.budget, jobs=args.jobs, fedex=fedex,
                                min_rounds=args.min_rounds if method in ("sha", "hyperband") else None)
        tuner = Tuner(config, [], space, settings, work / label.replace(" ", "").replace("+", "_"))
        if baseline is None:  # the untuned config, on the same training examples, evaluated on its test split
            started = time.perf_counter()
            result = run_standalone(tuner.trial_config({}, split="test"), progress=False)
            baseline = {"method": "default config (untuned)", "configs": 1, "rounds_trained": args.rounds,
                        "best_val_loss": "-", "test_accuracy": result.summary["final_metrics"]["clients.accuracy"],
                        "wall_s": time.perf_counter() - started}
            rows.append(baseline)
        started = time.perf_counter()
        summary = tuner.run(progress=False)
        wall = time.perf_counter() - started
        lines = [json.loads(line) for line in (tuner.output / "tune.jsonl").read_text().splitlines()]
        curves[label] = [(line["rounds_consumed"], line["best_seen"]) for line in lines
                         if line["best_seen"] is not None]
        test = summary["test"]["metrics"] if summary["test"] else {}
        rows.append({"method": label, "configs": summary["trials"], "rounds_trained": summary["rounds_trained"],
                     "best_val_loss": summary["best"]["value"] if summary["best"] else "-",
                     "test_accuracy": test.get("clients.accuracy", "-"), "wall_s": wall})
    report("autotune", rows, notes=(
        f"digits, Dirichlet(0.5), {args.participants} participants, MLP(64), {args.rounds} rounds at full fidelity, "
        f"budget {args.budget} rounds per method, SHA/Hyperband from {args.min_rounds} rounds with eta 3, "
        f"FedEx with 3 candidates per local key; validation split 0.2 of each participant's training examples; "
        f"test accuracy of the chosen config, trained again; wall time includes that test run"))
    _plot(curves, args)


def _plot(curves: dict[str, list[tuple[int, float]]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in curves.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.step(xs, ys, where="post", label=label)
    ax.set_xlabel("rounds consumed")
    ax.set_ylabel("best-seen validation loss")
    ax.set_title(f"digits, Dir(0.5), {args.participants} participants (after Figure 13)")
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "autotune.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
