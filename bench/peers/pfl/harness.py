"""Apple's pfl-research (``pfl``, PyTorch backend) on an exported fscope workload (issue 19).

    python bench/peers/pfl/harness.py WORKLOAD_DIR [--threads N]
    python bench/peers/pfl/harness.py --check

Reads WORKLOAD_DIR/workload.json and workload.npz (bench/peers/export.py) and trains what fscope and
bench/peers/plain_torch.py train, the way pfl's own benchmarks (benchmarks/image_classification/pytorch) do:

  * data: one ``FederatedDataset`` (``FederatedDataset.from_slices``) of the participants' exported train
    splits, as torch tensors; the held-out set is a ``Dataset`` for a central evaluation callback;
  * model: the MLP (``fc1``, ReLU, ``fc2``) with ``loss`` and ``metrics`` methods, loaded with the exported
    ``init.<name>`` arrays and wrapped in ``PyTorchModel``; the local optimizer is ``torch.optim.SGD`` with the
    workload's momentum and weight decay (pfl passes the local learning rate from ``NNTrainHyperParams``, and
    makes a fresh optimizer, momentum buffers included, for every participant it trains); the central optimizer
    is plain SGD with learning rate 1.0, so that the central update, the averaged model difference, lands the
    global model exactly on the FedAvg average;
  * algorithm: ``FederatedAveraging`` with ``NNAlgorithmParams`` (cohort size = ``sample_size``, or every
    participant) and ``NNTrainHyperParams`` (local lr, ``local_epochs``, ``batch_size``), run on a
    ``SimulatedBackend`` whose only postprocessor is ``WeightByDatapoints``: each participant's model difference
    is weighted by its number of training samples (pfl's default, without it, is one weight per participant);
  * sampling: a ``user_sampler`` for the ``FederatedDataset`` that hands out the workload's ``cohorts`` (each
    round's participants as fscope's coordinator draws them, which every side trains); pfl's own ``'random'``
    sampler would draw with replacement (a participant can come twice in one cohort), and its
    ``'minimize_reuse'`` sampler goes round-robin;
  * evaluation: a ``CentralEvaluationCallback`` on the held-out set after every ``evaluation.every`` rounds and
    after the last (pfl's callback also evaluates the initial model, and counts rounds from 0: the subclass below
    keeps the workload's schedule). When ``evaluation.participants`` is true, every participant with a non-empty
    test split evaluates too, as pfl's validation population (a second ``FederatedDataset`` of the test splits,
    the whole population as ``val_cohort_size``); pfl does that at the start of rounds 1, 1 + every, ... on the
    model before that round's update, the same number of times as the workload, one round earlier.

Differences from plain_torch.py that are pfl's own:
a participant's minibatches come in its stored order, the same in every epoch and round (pfl's ``Dataset`` does
not shuffle; the exported splits are already shuffled), and in round 1 pfl evaluates every trained participant
on its own train split before and after local training (it always does in a round whose index is a multiple of
``evaluation_frequency``, and index 0 is; with participants' evaluation off that is the only such round).

Threads and processes: the runner sets OMP_NUM_THREADS and MKL_NUM_THREADS to N and this harness calls
``torch.set_num_threads(N)``. pfl runs in this single process: no Horovod, no ``torchrun``, no worker
addresses (the variables that would make pfl start ``torch.distributed`` are removed from the environment), and
no sorted-cohort sampling subprocess (it only starts for several workers). The device is the CPU
(``PFL_PYTORCH_DEVICE=cpu``), as for every side. pfl's platform printing of all metrics to stdout after every
round is off (``send_metrics_to_platform=False``), as fscope runs with ``--no-progress``.

Wall and CPU seconds count from the start of this process (``T0`` and ``C0`` below); ``round_s`` has the wall
time of every round, stamped with ``time.perf_counter()`` by a pfl callback after each central iteration (the
last callback, after the held-out evaluation). Nothing is downloaded and nothing is written to disk. Prints as
its last stdout line one JSON object: side, pfl version, wall_s, cpu_s, peak_rss_mb, round_s,
heldout_accuracy, threads.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()
C0 = time.process_time()

import argparse  # noqa: E402
import collections  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# pfl picks its torch device and its distributed set-up from the environment at import and model time
os.environ["PFL_PYTORCH_DEVICE"] = "cpu"
for _var in ("PFL_WORKER_ADDRESSES", "PFL_WORKER_RANK", "TORCHELASTIC_RUN_ID"):
    os.environ.pop(_var, None)

import numpy as np  # noqa: E402
import pfl  # noqa: E402
import torch  # noqa: E402
from pfl.aggregate.simulate import SimulatedBackend  # noqa: E402
from pfl.aggregate.weighting import WeightByDatapoints  # noqa: E402
from pfl.algorithm import FederatedAveraging, NNAlgorithmParams  # noqa: E402
from pfl.callback.base import TrainingProcessCallback  # noqa: E402
from pfl.callback.central_evaluation import CentralEvaluationCallback  # noqa: E402
from pfl.data.dataset import Dataset  # noqa: E402
from pfl.data.federated_dataset import FederatedDataset  # noqa: E402
from pfl.data.sampling import get_user_sampler  # noqa: E402
from pfl.hyperparam import NNTrainHyperParams  # noqa: E402
from pfl.metrics import Metrics, Weighted  # noqa: E402
from pfl.model.pytorch import PyTorchModel  # noqa: E402
from torch import nn  # noqa: E402


class MLP(nn.Module):
    """fscope's MLP (models/torch_zoo.py): fc1, ReLU, fc2, under the same parameter names, with the ``loss``
    and ``metrics`` methods that ``PyTorchModel`` calls (as pfl's benchmarks/model/pytorch/metrics.py has them)."""

    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(features, hidden), nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))

    def loss(self, x: torch.Tensor, y: torch.Tensor, eval: bool = False) -> torch.Tensor:
        self.eval() if eval else self.train()
        return nn.functional.cross_entropy(self(x), y)

    @torch.no_grad()
    def metrics(self, x: torch.Tensor, y: torch.Tensor, eval: bool = True) -> dict[str, Weighted]:
        self.eval() if eval else self.train()
        logits = self(x)
        return {"loss": Weighted(nn.functional.cross_entropy(logits, y, reduction="sum").item(), len(y)),
                "accuracy": Weighted((logits.argmax(1) == y).sum().item(), len(y))}


class CohortSampler:
    """A pfl user sampler (``callable() -> user id``) that hands out, one id a call, the workload's cohorts one
    round after the other. pfl's simulated backend asks for exactly the cohort size a round (no overshoot, one
    worker), so every round's calls are that round's cohort; asked for more, it refuses."""

    def __init__(self, cohorts: list[list[int]]) -> None:
        self._ids = collections.deque(i for cohort in cohorts for i in cohort)

    def __call__(self) -> int:
        if not self._ids:
            raise RuntimeError("pfl asked for more participants than the workload's cohorts hold")
        return self._ids.popleft()


class HeldoutEvaluation(CentralEvaluationCallback):
    """pfl's central evaluation on the held-out set, on the workload's schedule: after rounds ``every``,
    ``2 * every``, ... and after the last one, never on the initial model. Keeps the last accuracy."""

    def __init__(self, dataset: Dataset, every: int, rounds: int) -> None:
        super().__init__(dataset, frequency=every)
        self._rounds = rounds
        self.accuracy = float("nan")

    def on_train_begin(self, *, model: PyTorchModel) -> Metrics:
        return Metrics()

    def after_central_iteration(self, aggregate_metrics: Metrics, model: PyTorchModel, *,
                                central_iteration: int) -> tuple[bool, Metrics]:
        done = central_iteration + 1
        if done % self._frequency and done != self._rounds:
            return False, Metrics()
        stop, metrics = self._eval(model)
        self.accuracy = metrics[self._format_fn("accuracy")].overall_value
        return stop, metrics


class RoundTimer(TrainingProcessCallback):
    """Stamps ``time.perf_counter()`` when training begins and after every central iteration."""

    def __init__(self) -> None:
        self.round_s: list[float] = []
        self._last = time.perf_counter()

    def on_train_begin(self, *, model: PyTorchModel) -> Metrics:
        self._last = time.perf_counter()
        return Metrics()

    def after_central_iteration(self, aggregate_metrics: Metrics, model: PyTorchModel, *,
                                central_iteration: int) -> tuple[bool, Metrics]:
        now = time.perf_counter()
        self.round_s.append(now - self._last)
        self._last = now
        return False, Metrics()


def run(workload_dir: Path) -> tuple[list[float], float]:
    w = json.loads((workload_dir / "workload.json").read_text())
    if w["model"]["name"] != "mlp":
        raise SystemExit(f"the pfl harness trains the MLP only, not {w['model']['name']!r}")
    data = np.load(workload_dir / "workload.npz")
    n, t, ev = w["participants"], w["trainer"], w["evaluation"]
    np.random.seed(w["seed"])  # pfl's own random states (algorithm, backend, datasets) derive from numpy's
    torch.manual_seed(w["seed"])

    def tensors(part: str, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(data[f"{part}_x_{i}"]), torch.from_numpy(data[f"{part}_y_{i}"])

    train = [tensors("train", i) for i in range(n)]
    if any(len(y) == 0 for _, y in train):
        raise SystemExit("pfl cannot evaluate an empty user dataset (it evaluates round 1's cohort): "
                         "every participant needs a training sample")
    k = min(w["sample_size"] or n, n)
    if any(len(cohort) != k for cohort in w["cohorts"]):
        raise SystemExit(f"pfl trains cohorts of one size ({k}); the workload's differ")
    training_data = FederatedDataset.from_slices(train, CohortSampler(w["cohorts"]))
    test_ids = [i for i in range(n) if len(data[f"test_y_{i}"])]
    val_data = FederatedDataset.from_slices({i: tensors("test", i) for i in test_ids},
                                            get_user_sampler("minimize_reuse", test_ids))
    heldout = Dataset(raw_data=(torch.from_numpy(data["heldout_x"]), torch.from_numpy(data["heldout_y"])))

    module = MLP(data["heldout_x"].shape[1], w["model"]["hidden"], w["model"]["classes"])
    module.load_state_dict({name: torch.from_numpy(data[f"init.{name}"]) for name in w["tensors"]})
    model = PyTorchModel(model=module,
                         local_optimizer_create=functools.partial(torch.optim.SGD, momentum=t["momentum"],
                                                                  weight_decay=t["weight_decay"]),
                         central_optimizer=torch.optim.SGD(module.parameters(), lr=1.0))
    backend = SimulatedBackend(training_data=training_data, val_data=val_data,
                               postprocessors=[WeightByDatapoints()])
    participants_eval = bool(ev["participants"]) and bool(test_ids)
    algorithm_params = NNAlgorithmParams(
        central_num_iterations=w["rounds"],
        evaluation_frequency=ev["every"] if participants_eval else w["rounds"],
        train_cohort_size=k,
        val_cohort_size=len(test_ids) if participants_eval else None)
    train_params = NNTrainHyperParams(local_learning_rate=t["lr"], local_num_epochs=t["local_epochs"],
                                      local_batch_size=t["batch_size"])
    evaluation, timer = HeldoutEvaluation(heldout, ev["every"], w["rounds"]), RoundTimer()
    FederatedAveraging().run(algorithm_params=algorithm_params, backend=backend, model=model,
                             model_train_params=train_params, callbacks=[evaluation, timer],
                             send_metrics_to_platform=False)
    return timer.round_s, evaluation.accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", type=Path, nargs="?")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--check", action="store_true", help="print the versions of pfl and torch and exit")
    args = parser.parse_args()
    if args.check:
        print(f"pfl {pfl.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
              f"python {sys.version.split()[0]}")
        return
    if args.workload is None:
        parser.error("WORKLOAD_DIR is required (or --check)")
    if args.threads:
        torch.set_num_threads(args.threads)
    round_s, acc = run(args.workload)
    print(json.dumps({"side": "pfl", "version": pfl.__version__, "wall_s": time.perf_counter() - T0,
                      "cpu_s": time.process_time() - C0,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "round_s": round_s, "heldout_accuracy": acc, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
