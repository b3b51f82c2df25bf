"""The floor for every simulator: FedAvg written out in plain torch on an exported workload (issue 19).

No framework: one process, one model object, the participants' data as tensors, FedAvg as a weighted sum
of state dicts. It trains what fscope trains (the partitions, initial weights and settings that
bench/peers/export.py wrote; local SGD with the same lr, momentum, epochs and batch size; each round's cohort
as the workload's ``cohorts`` list it, drawn as fscope's coordinator draws them), with its own seeded batch
order, and evaluates the held-out set (and every participant's test split, when the workload does) as often as
fscope does. It needs only torch and numpy.

    python bench/peers/plain_torch.py WORKLOAD_DIR [--threads N]

Prints one JSON line: wall and CPU seconds, peak RSS, the wall time of every round, final held-out accuracy.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

T0 = time.perf_counter()
C0 = time.process_time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def mlp(features: int, hidden: int, classes: int) -> nn.Module:
    """fscope's MLP (models/torch_zoo.py): fc1, ReLU, fc2, under the same parameter names."""
    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(features, hidden), nn.Linear(hidden, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x)))
    return MLP()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w = json.loads((args.workload / "workload.json").read_text())
    if w["model"]["name"] != "mlp":
        raise SystemExit(f"plain_torch.py trains the MLP only, not {w['model']['name']!r}")
    data = np.load(args.workload / "workload.npz")
    n, t = w["participants"], w["trainer"]
    train = [(torch.from_numpy(data[f"train_x_{i}"]), torch.from_numpy(data[f"train_y_{i}"])) for i in range(n)]
    test = [(torch.from_numpy(data[f"test_x_{i}"]), torch.from_numpy(data[f"test_y_{i}"])) for i in range(n)]
    heldout = torch.from_numpy(data["heldout_x"]), torch.from_numpy(data["heldout_y"])
    global_state = {name: torch.from_numpy(data[f"init.{name}"]) for name in w["tensors"]}
    features = heldout[0].shape[1]
    model = mlp(features, w["model"]["hidden"], w["model"]["classes"])
    loss_fn = nn.CrossEntropyLoss()
    round_s, acc = [], float("nan")
    for r in range(w["rounds"]):
        started = time.perf_counter()
        cohort = w["cohorts"][r]
        total = sum(len(train[i][1]) for i in cohort)
        summed = {name: torch.zeros_like(v) for name, v in global_state.items()}
        for i in cohort:
            model.load_state_dict(global_state)
            opt = torch.optim.SGD(model.parameters(), lr=t["lr"], momentum=t["momentum"],
                                  weight_decay=t["weight_decay"])
            x, y = train[i]
            batch_rng = np.random.default_rng([w["seed"], i, r])
            for _ in range(t["local_epochs"]):
                order = torch.from_numpy(batch_rng.permutation(len(y)))
                for start in range(0, len(y), t["batch_size"]):
                    idx = order[start:start + t["batch_size"]]
                    opt.zero_grad()
                    loss_fn(model(x[idx]), y[idx]).backward()
                    opt.step()
            weight = len(y) / total
            for name, value in model.state_dict().items():
                summed[name] += weight * value
        global_state = summed
        if (r + 1) % w["evaluation"]["every"] == 0 or r + 1 == w["rounds"]:
            model.load_state_dict(global_state)
            acc = accuracy(model, *heldout)
            if w["evaluation"]["participants"]:
                for x, y in test:
                    accuracy(model, x, y)
        round_s.append(time.perf_counter() - started)
    print(json.dumps({"side": "plain torch", "wall_s": time.perf_counter() - T0, "cpu_s": time.process_time() - C0,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "round_s": round_s, "heldout_accuracy": acc, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
