"""Flower's simulation on an exported workload, for bench/peers/run.py (issue 19).

    python harness.py --check                     # import flwr and torch, print their versions
    python harness.py WORKLOAD_DIR --threads N    # run the course, print one JSON line last

The course is the one bench/peers/plain_torch.py trains, written the way Flower's own simulation is meant to
be used (flwr 1.42, its Message API): a ``ClientApp`` whose ``@train`` and ``@evaluate`` functions run in
Ray actors, a ``ServerApp`` whose ``main`` runs Flower's built-in ``FedAvg`` (``Strategy.start``) with a
server-side ``evaluate_fn``, both launched by ``flwr.simulation.run_simulation`` with the Ray backend and one
virtual SuperNode per participant (SuperNode partition-id i is participant i of the workload).

Training is the workload's: the MLP (``fc1`` Linear(features, hidden), ReLU, ``fc2`` Linear(hidden,
classes)) starting from the ``init.<name>`` arrays; local SGD with the workload's lr, momentum and weight
decay for ``local_epochs`` epochs of ``batch_size`` minibatches, in the order of
``numpy.random.default_rng([seed, participant, round]).permutation`` (round counted from 0, as plain_torch.py
does); CrossEntropyLoss; Flower's FedAvg weighted by ``num-examples`` (the participant's training samples).
``sample_size`` participants train a round: ``fraction_train = sample_size / participants`` with
``min_train_nodes = sample_size`` (all of them when sample_size is empty or >= participants). Flower's own
sampler picks which nodes (Ray actor calls) run the round (``random.sample`` over the node ids); which
participants they train is the workload's ``cohorts`` entry for the round (the participants fscope's
coordinator draws, which every side trains): the strategy's ``configure_train`` tells the j-th sampled node,
in its train config, to train the j-th participant of the cohort. A server cannot choose nodes by partition-id
(node ids are random per run), and every node loads the same workload, so any node can train any partition;
without a ``partition`` in its config a node trains its own ``partition-id``. The held-out
accuracy is computed in ``evaluate_fn`` after every ``evaluation.every`` rounds and after the last; when
``evaluation.participants`` is true, each participant also evaluates its test split on those rounds
(Flower's federated evaluation, all nodes), otherwise ``fraction_evaluate = 0`` and none does.

Round times: ``evaluate_fn`` is called by ``Strategy.start`` once before the first round (round 0, where it
only stamps ``time.perf_counter()``) and at the end of every round after training, aggregation and
federated evaluation; ``round_s[r]`` is the time from the stamp of round r-1 to the end of round r's
``evaluate_fn``. Round 1 therefore includes what Flower does lazily once the server asks for work: starting
Ray's actors (each imports torch and flwr) and their first optimizer; ``setup_s`` (extra) is the time from
the top of this file to the round-0 stamp (imports, reading the workload, ``ray.init``).

Threads: the runner sets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = N, which this process and every Ray
process inherit. Ray is started with ``num_cpus=N`` (``init_args``) and each ClientApp asks for
``client_resources = {"num_cpus": 1, "num_gpus": 0}``, so Flower builds a pool of N actors and at most N
client trainings run at once. ``torch.set_num_threads(N)`` is called in this process (the ServerApp thread
evaluates here) and, once, in every Ray actor process before it first trains or evaluates (N comes in the
messages' ConfigRecord). With N > 1 that is N concurrent clients of N intra-op threads each.

Measurement: ``wall_s`` and ``cpu_s`` are counted from the top of this file (``cpu_s`` is this process's own
``process_time``), ``peak_rss_mb`` is this process's ``ru_maxrss``, as in plain_torch.py. The clients train in
Ray worker processes (grandchildren through the raylet), whose CPU the runner's ``wait4`` may not see, so
psutil samples the whole process tree (this process and all its descendants: GCS, raylet, Ray's agents and
the actors) every 0.5 s and at every ``evaluate_fn`` stamp, the last one at the end of the last round, before
Flower shuts Ray down: ``cpu_s_tree`` is this process's ``cpu_s`` plus, for every descendant ever seen, its
own user+system CPU at its last sample (children those processes reaped themselves, and work after the last
sample, are not counted); ``peak_rss_mb_tree`` is the largest sum of RSS over the tree in one sample (shared
pages, e.g. torch's libraries or Ray's object store, count once per process that maps them).

TensorFlow: the tox env whose site-packages give this venv its torch also holds TensorFlow, which flwr imports
in the driver and every actor when it can (``flwr.simulation.ray_transport.utils``, for GPU memory growth);
loaded next to torch it makes the first ``torch.optim`` construction abort (triton's and TensorFlow's LLVM
in one process), and it added about 0.5 GB of RSS to every process (driver: 1210 MB with it, 672 without).
The stub package in no_tensorflow/ goes first on sys.path here, and so first on the PYTHONPATH Flower gives
the Ray workers, and makes ``import tensorflow`` raise ModuleNotFoundError, as it does where TensorFlow isn't installed.

Failures: Flower's FedAvg averages whatever replies arrive and only logs failed clients; here any failed
training or evaluation reply raises, so the run exits non-zero instead of reporting a partial course.

No network: Flower's telemetry and Ray's usage stats are turned off, Ray's dashboard is off
(``include_dashboard=False``, Flower's default), and all data comes from the workload files.

``run_simulation`` is what flwr 1.42 still offers for running a Flower App from Python; it logs that it is
deprecated in favour of the ``flwr run`` CLI, which needs a packaged app (pyproject.toml) and a SuperLink
and would put the run outside this process and its measurements. Both drive the same Simulation Runtime.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()
C0 = time.process_time()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from pathlib import Path  # noqa: E402

# before flwr and ray are imported: they read these at import time / ray.init
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# the tox env (on sys.path for torch) also has TensorFlow, which flwr imports in every process if it can, and
# which then crashes torch's first optimizer (two LLVMs): hide it, here and, through the PYTHONPATH that
# Flower's Ray backend builds from this sys.path, in every Ray worker (no_tensorflow/tensorflow/__init__.py)
_NO_TF = str(Path(__file__).resolve().parent / "no_tensorflow")
if _NO_TF not in sys.path:
    sys.path.insert(0, _NO_TF)

import flwr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from torch import nn  # noqa: E402

try:
    import psutil
except ImportError:  # the tree measurement is then left out
    psutil = None


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
    if len(y) == 0:
        return 0.0
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# ---------------------------------------------------------------------------------------------------------
# What a process (the driver or a Ray actor) loads once: the workload, its participants' data, one model.
# ---------------------------------------------------------------------------------------------------------

class Workload:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.spec = json.loads((self.path / "workload.json").read_text())
        self.npz = np.load(self.path / "workload.npz")
        self._parts: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.features = int(np.prod(self.spec["model"]["input_shape"]))
        self.model = mlp(self.features, self.spec["model"]["hidden"], self.spec["model"]["classes"])

    def part(self, split: str, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Participant i's ``train`` or ``test`` split, read from the npz the first time it is asked for."""
        key = (split, i)
        if key not in self._parts:
            self._parts[key] = (torch.from_numpy(self.npz[f"{split}_x_{i}"]),
                                torch.from_numpy(self.npz[f"{split}_y_{i}"]))
        return self._parts[key]

    def initial_state(self) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(self.npz[f"init.{name}"]) for name in self.spec["tensors"]}


_WORKLOADS: dict[str, Workload] = {}
_PROCESS: dict[str, int] = {}  # the torch thread count this process was set to


def _process_setup(config: ConfigRecord) -> Workload:
    """This process's workload (loaded once) and its torch thread count (set once)."""
    threads = int(config["threads"])
    if _PROCESS.get("threads") != threads:
        torch.set_num_threads(threads)
        _PROCESS["threads"] = threads
    path = str(config["workload"])
    if path not in _WORKLOADS:
        _WORKLOADS[path] = Workload(path)
    return _WORKLOADS[path]


# ---------------------------------------------------------------------------------------------------------
# ClientApp: runs in Ray actors, one call per sampled node and round.
# ---------------------------------------------------------------------------------------------------------

client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    config = msg.content["config"]
    wl = _process_setup(config)
    w, t = wl.spec, wl.spec["trainer"]
    i = int(config["partition"]) if "partition" in config else int(context.node_config["partition-id"])
    r = int(config["server-round"]) - 1
    model = wl.model
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=t["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"])
    loss_fn = nn.CrossEntropyLoss()
    x, y = wl.part("train", i)
    batch_rng = np.random.default_rng([w["seed"], i, r])
    for _ in range(t["local_epochs"]):
        order = torch.from_numpy(batch_rng.permutation(len(y)))
        for start in range(0, len(y), t["batch_size"]):
            idx = order[start:start + t["batch_size"]]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                          "metrics": MetricRecord({"num-examples": len(y)})})
    return Message(content=content, reply_to=msg)


@client_app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    config = msg.content["config"]
    wl = _process_setup(config)
    i = int(context.node_config["partition-id"])
    wl.model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = wl.part("test", i)
    content = RecordDict({"metrics": MetricRecord({"accuracy": accuracy(wl.model, x, y), "num-examples": len(y)})})
    return Message(content=content, reply_to=msg)


# ---------------------------------------------------------------------------------------------------------
# Process-tree sampling (psutil), for the CPU and memory of Ray's processes.
# ---------------------------------------------------------------------------------------------------------

class TreeSampler:
    """Samples this process and its descendants: last CPU seen per descendant, peak summed RSS."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.me = psutil.Process() if psutil else None
        self.cpu: dict[int, float] = {}
        self.peak_rss = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        if self.me is not None:
            self._thread.start()

    def sample(self) -> None:
        if self.me is None:
            return
        with self._lock:
            rss = self.me.memory_info().rss
            for proc in self.me.children(recursive=True):
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        rss += proc.memory_info().rss
                    self.cpu[proc.pid] = times.user + times.system
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            self.peak_rss = max(self.peak_rss, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def descendants_cpu_s(self) -> float:
        return sum(self.cpu.values())


# ---------------------------------------------------------------------------------------------------------
# ServerApp: runs in a thread of this process.
# ---------------------------------------------------------------------------------------------------------

class WorkloadFedAvg(FedAvg):
    """Flower's FedAvg, with federated evaluation only on the workload's evaluation rounds."""

    def __init__(self, *, every: int, rounds: int, cohorts: list[list[int]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.every, self.rounds, self.cohorts = every, rounds, cohorts

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> list[Message]:
        """Flower's sampled nodes, each told which participant of the round's cohort to train."""
        cohort = self.cohorts[server_round - 1]
        messages = list(super().configure_train(server_round, arrays, config, grid))
        if len(messages) != len(cohort):
            raise RuntimeError(f"round {server_round}: Flower sampled {len(messages)} nodes for a cohort of "
                               f"{len(cohort)}")
        key = self.configrecord_key
        return [Message(content=RecordDict({self.arrayrecord_key: arrays,
                                            key: ConfigRecord({**dict(m.content[key]), "partition": participant})}),
                        message_type=m.metadata.message_type, dst_node_id=m.metadata.dst_node_id)
                for m, participant in zip(messages, cohort, strict=True)]

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        replies = list(replies)
        failed = [m for m in replies if m.has_error()]
        if failed:  # Flower would go on averaging the rest; a benchmark must not
            raise RuntimeError(f"round {server_round}: {len(failed)} of {len(replies)} clients failed: "
                               f"{failed[0].error.reason}")
        return super().aggregate_train(server_round, replies)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        failed = [m for m in replies if m.has_error()]
        if failed:
            raise RuntimeError(f"round {server_round}: {len(failed)} of {len(replies)} evaluations failed: "
                               f"{failed[0].error.reason}")
        return super().aggregate_evaluate(server_round, replies)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> list[Message]:
        if server_round % self.every and server_round != self.rounds:
            return []
        return list(super().configure_evaluate(server_round, arrays, config, grid))


RUN: dict = {}  # what main() hands the ServerApp (same process): workload, threads, sampler; results back

server_app = ServerApp()


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    wl: Workload = RUN["workload"]
    sampler: TreeSampler = RUN["sampler"]
    w = wl.spec
    n, rounds, every = w["participants"], w["rounds"], w["evaluation"]["every"]
    k = w["sample_size"] or n
    k = min(k, n)
    federated = bool(w["evaluation"]["participants"])
    random.seed(w["seed"])  # Flower's sampler draws from the module-level ``random``
    strategy = WorkloadFedAvg(
        every=every, rounds=rounds, cohorts=w["cohorts"],
        fraction_train=k / n, min_train_nodes=k, min_available_nodes=n,
        fraction_evaluate=1.0 if federated else 0.0, min_evaluate_nodes=n if federated else 0)
    heldout_x = torch.from_numpy(wl.npz["heldout_x"])
    heldout_y = torch.from_numpy(wl.npz["heldout_y"])
    model = mlp(wl.features, w["model"]["hidden"], w["model"]["classes"])
    model.load_state_dict(wl.initial_state())
    stamps: list[float] = RUN["stamps"]

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        result = None
        if server_round > 0 and (server_round % every == 0 or server_round == rounds):
            model.load_state_dict(arrays.to_torch_state_dict())
            RUN["accuracy"] = accuracy(model, heldout_x, heldout_y)
            result = MetricRecord({"accuracy": RUN["accuracy"]})
        stamps.append(time.perf_counter())
        sampler.sample()
        return result

    config = ConfigRecord({"workload": str(wl.path), "threads": RUN["threads"]})
    strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=rounds,
                   train_config=config, evaluate_config=ConfigRecord(dict(config)), evaluate_fn=evaluate_fn)


# ---------------------------------------------------------------------------------------------------------

def check() -> None:
    import ray
    print(f"flwr {flwr.__version__}, ray {ray.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
          f"psutil {psutil.__version__ if psutil else 'missing'}")
    print(f"torch works: {float(torch.ones(2, 2).sum())}")


def main(t0: float, c0: float) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", type=Path, nargs="?")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        check()
        return
    if args.workload is None:
        parser.error("WORKLOAD_DIR is required (or --check)")
    torch.set_num_threads(args.threads)
    _PROCESS["threads"] = args.threads
    wl = Workload(str(args.workload.resolve()))
    if wl.spec["model"]["name"] != "mlp":
        raise SystemExit(f"the Flower harness trains the MLP only, not {wl.spec['model']['name']!r}")
    sampler = TreeSampler()
    RUN.update(workload=wl, threads=args.threads, sampler=sampler, stamps=[], accuracy=float("nan"))
    sampler.start()
    from flwr.simulation import run_simulation
    run_simulation(
        server_app=server_app, client_app=client_app, num_supernodes=wl.spec["participants"],
        backend_config={"init_args": {"num_cpus": args.threads, "num_gpus": 0, "include_dashboard": False},
                        "client_resources": {"num_cpus": 1, "num_gpus": 0.0}})
    sampler.stop()
    stamps = RUN["stamps"]
    if len(stamps) != wl.spec["rounds"] + 1:
        raise SystemExit(f"Flower ran {len(stamps) - 1} of {wl.spec['rounds']} rounds")
    cpu = time.process_time() - c0
    out = {"side": "flower", "version": flwr.__version__, "wall_s": time.perf_counter() - t0, "cpu_s": cpu,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "round_s": [b - a for a, b in itertools.pairwise(stamps)], "heldout_accuracy": RUN["accuracy"],
           "threads": args.threads, "setup_s": stamps[0] - t0}
    if psutil is not None:
        out["cpu_s_tree"] = cpu + sampler.descendants_cpu_s()
        out["peak_rss_mb_tree"] = sampler.peak_rss / 2**20
    sys.stdout.flush()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    # Run as the importable module ``harness`` (this file's directory is on the Ray workers' PYTHONPATH), so
    # Ray pickles the ClientApp's functions by reference and each actor keeps one Workload across its calls.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness as _module
    if Path(_module.__file__).resolve() != Path(__file__).resolve():
        raise SystemExit(f"'import harness' found {_module.__file__}, not this file")
    _module.main(T0, C0)
