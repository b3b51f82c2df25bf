"""FederatedScope (alibaba/FederatedScope v0.3.0) in standalone mode on an exported workload (issue 19).

    python bench/peers/federatedscope/harness.py WORKLOAD_DIR [--threads N]
    python bench/peers/federatedscope/harness.py --check

Runs, in the venv bench/peers/setup.sh made, what bench/peers/plain_torch.py trains, through FederatedScope's
own standalone path as its ``federatedscope/main.py`` does it: ``global_cfg.clone()``, ``update_logger``,
``get_data``, ``get_server_cls``/``get_client_cls`` and ``get_runner`` (a ``StandaloneRunner``), ``run()``.
Nothing of FederatedScope is changed; what the workload brings comes in through its registers:

  * data (``register_data``, ``data.type='fscope_workload'``): a ``StandaloneDataDict`` of ``ClientData``, key
    i+1 = participant i's exported train and test split, key 0 = the server's, whose test split is the
    exported held-out set. Each split is a ``TensorDataset`` that FederatedScope wraps in its own
    ``DataLoader`` (``dataloader.batch_size``, shuffled for training, ``drop_last=False``);
  * model (``register_model``, ``model.type='fscope_mlp'``): fscope's MLP, ``fc1`` = Linear(features, hidden),
    ReLU, ``fc2`` = Linear(hidden, classes), under the same names, every instance loaded with the exported
    ``init.<name>`` arrays (the server's is the initial global model);
  * workers (``register_worker`` for ``federate.method='FedAvg'``): FederatedScope's own ``Client`` and a
    ``Server`` subclass that only adds the timing stamps below and, when the workload asks participants to
    evaluate, their evaluation next to the server's (see below). The aggregator stays FederatedScope's
    ``ClientsAvgAggregator``.

Training: ``trainer.type='general'`` (``GeneralTorchTrainer``), ``criterion.type='CrossEntropyLoss'``, a new
``torch.optim.SGD`` (lr, momentum, weight_decay) each local routine, ``train.batch_or_epoch='epoch'`` and
``train.local_update_steps=local_epochs``; FedAvg weighted by the sample counts the clients report (samples
seen in the routine = epochs x train size, so the weights are proportional to train sizes);
``federate.sample_client_num`` = sample size (all participants when it is 0 or >= participants); which clients
train a round is the workload's ``cohorts`` entry (the participants fscope's coordinator draws, which every side
trains), handed out by a FederatedScope ``Sampler`` subclass that the server uses in place of its
``UniformSampler``. Batch order comes from torch's global RNG, seeded with the workload's seed, so batches
differ from plain_torch's.

Evaluation: ``federate.make_global_eval=True`` -- the server evaluates the global model on its own test split
(the held-out set) after every ``eval.freq`` = ``evaluation.every`` rounds and after the last one, and in this
mode FederatedScope sends no ``evaluate`` request to the clients. When ``evaluation.participants`` is true the
server subclass also broadcasts FederatedScope's ``evaluate`` message to every client at each evaluation, as
FederatedScope does with ``make_global_eval=False``; the clients run their own ``callback_funcs_for_evaluate``
on their test split and answer with ``metrics``, which the server merges with
``merge_eval_results_from_all_clients`` (logged, not used for the course: no early stopping,
``early_stop.patience=0``). As in FederatedScope, that evaluation is not waited for: the next round's training
messages are already queued behind it. ``eval.metrics=['acc']``, ``eval.split=['test']``,
``eval.count_flops=False`` (fvcore not installed). The reported accuracy is the server's last ``test_acc``.

Threads: bench/peers/run.py sets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = N; this harness also calls
``torch.set_num_threads(N)`` at start and again after the runner is built, since ``StandaloneRunner._set_up``
calls ``torch.set_num_threads(1)`` itself. Device: cpu (``use_gpu=False``); one process
(``federate.process_num=1``).

Per-round wall times (``round_s``): round 0 starts when the last client has joined and the server triggers
training (``trigger_for_start``); a round ends when ``Server.check_and_move_on`` returns having aggregated
(``state`` moved on), i.e. after the aggregation, the server's evaluation of that round (if due) and the
broadcast that starts the next round. So a round holds the sampled clients' local training, the messages
(each sized with pympler, as FederatedScope does), the aggregation and the held-out evaluation; with
participant evaluation, a round also holds the clients' evaluation of the round before it.

Logs: FederatedScope logs at INFO (its default ``verbose=1``) to stderr and to ``exp_print.log`` in its outdir,
a temporary directory removed at the end; anything it prints to stdout goes to stderr, so the last stdout
line is the JSON result. No downloads; nothing is pickled to disk (``federate.save_to`` is empty). The tox env's
TensorFlow, on the venv's sys.path through setup.sh's .pth, is kept from being imported (its
``setup_seed`` would call TF1's ``tf.set_random_seed``): ``sys.modules['tensorflow'] = None``.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()
C0 = time.process_time()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

# FederatedScope imports tensorflow if it can (core/auxiliaries/utils.py) and then calls tf.set_random_seed,
# which TF 2 lacks; the tox env's TF is importable here, so make that import fail as if TF were absent.
sys.modules.setdefault("tensorflow", None)

import torch  # noqa: E402
from torch import nn  # noqa: E402

SIDE = "federatedscope"
DATA_TYPE = "fscope_workload"
MODEL_TYPE = "fscope_mlp"


class MLP(nn.Module):
    """fscope's MLP (models/torch_zoo.py): fc1, ReLU, fc2, under the same parameter names. Module-level, since
    FederatedScope pickles each client's model (in memory) to size it."""

    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(features, hidden), nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def check() -> None:
    import federatedscope
    import google.protobuf
    import grpc
    import scipy
    import sklearn
    from federatedscope.core.auxiliaries.runner_builder import get_runner  # noqa: F401  (grpc, protobuf stubs)
    from federatedscope.core.fed_runner import StandaloneRunner  # noqa: F401
    print(f"federatedscope {federatedscope.__version__} ({Path(federatedscope.__file__).parent}), "
          f"torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"scikit-learn {sklearn.__version__}, protobuf {google.protobuf.__version__}, grpcio {grpc.__version__}")


def register(w: dict, arrays) -> None:
    """Hand the workload's data, model and workers to FederatedScope through its registers."""
    from federatedscope.core.auxiliaries.utils import setup_seed
    from federatedscope.core.data import ClientData, StandaloneDataDict
    from federatedscope.core.message import Message
    from federatedscope.core.sampler import Sampler
    from federatedscope.core.workers import Client, Server
    from federatedscope.register import register_data, register_model, register_worker
    from torch.utils.data import TensorDataset

    n = w["participants"]
    features = arrays["heldout_x"].shape[1]
    init = {name: torch.from_numpy(arrays[f"init.{name}"]) for name in w["tensors"]}

    def split(x_key: str, y_key: str) -> TensorDataset:
        return TensorDataset(torch.from_numpy(arrays[x_key]), torch.from_numpy(arrays[y_key]))

    def load_workload(config, client_cfgs=None):
        if config.data.type != DATA_TYPE:
            return None
        datadict = {0: ClientData(config, test=split("heldout_x", "heldout_y"))}
        for i in range(n):
            datadict[i + 1] = ClientData(config, train=split(f"train_x_{i}", f"train_y_{i}"),
                                         test=split(f"test_x_{i}", f"test_y_{i}"))
        data = StandaloneDataDict(datadict, config)
        setup_seed(config.seed)  # get_data seeds 12345 for data making and leaves restoring it to the loader
        return data, config

    def build_model(model_config, input_shape):
        if model_config.type != MODEL_TYPE:
            return None
        model = MLP(features, model_config.hidden, model_config.out_channels)
        model.load_state_dict(init)
        return model

    class CohortSampler(Sampler):
        """The workload's cohorts, one round after the other (FederatedScope's client ids are 1-based)."""

        def __init__(self, client_num: int) -> None:
            super().__init__(client_num)
            self.rounds = iter(w["cohorts"])

        def sample(self, size):
            drawn = next(self.rounds, None)
            if drawn is None:
                raise RuntimeError("FederatedScope asked for more cohorts than the workload's rounds")
            cohort = [i + 1 for i in drawn]
            if len(cohort) != size:
                raise RuntimeError(f"FederatedScope asked for {size} clients; the workload's cohort has {len(cohort)}")
            self.change_state(cohort, "working")
            return cohort

    class BenchServer(Server):
        """FederatedScope's Server, plus the workload's cohorts, round stamps and (when asked) the participants'
        evaluation."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.sampler = CohortSampler(n)
            self.bench_round_s: list[float] = []
            self.bench_heldout_acc = float("nan")
            self._bench_t: float | None = None

        def trigger_for_start(self):
            if self._bench_t is None and self.check_client_join_in():
                self._bench_t = time.perf_counter()
            return super().trigger_for_start()

        def check_and_move_on(self, check_eval_result=False, min_received_num=None):
            before = self.state
            moved = super().check_and_move_on(check_eval_result=check_eval_result,
                                              min_received_num=min_received_num)
            if not check_eval_result and self.state != before:
                now = time.perf_counter()
                self.bench_round_s.append(now - self._bench_t)
                self._bench_t = now
            return moved

        def eval(self):
            if w["evaluation"]["participants"]:
                # FederatedScope's client-side evaluation request, as with make_global_eval=False
                self.broadcast_model_para(msg_type="evaluate", filter_unseen_clients=False)
            super().eval()  # make_global_eval: the server's test split, i.e. the held-out set
            accs = self.history_results.get("Results_raw", {}).get("test_acc")
            if accs:
                self.bench_heldout_acc = float(accs[-1])

        def callback_funcs_for_metrics(self, message: Message):
            # the clients' answers: merge and log them as FederatedScope does, but leave the course to the
            # server's own evaluation (the stock handler would also run check_and_save a second time)
            buffer = self.msg_buffer["eval"].setdefault(message.state, {})
            buffer[message.sender] = message.content
            if len(buffer) >= len(self.comm_manager.get_neighbors()):
                self.merge_eval_results_from_all_clients()
                buffer.clear()
            return False

    def workers(method):
        if method == "fedavg":
            return {"client": Client, "server": BenchServer}
        return None

    register_data(DATA_TYPE, load_workload)
    register_model(MODEL_TYPE, build_model)
    register_worker("fscope_bench", workers)


def configure(cfg, w: dict, outdir: str) -> None:
    """The workload's settings on FederatedScope's global config."""
    n, t = w["participants"], w["trainer"]
    if t["optimizer"] != "sgd":
        raise SystemExit(f"harness.py trains with SGD only, not {t['optimizer']!r}")
    k = w["sample_size"] or n
    cfg.use_gpu = False
    cfg.device = -1
    cfg.backend = "torch"
    cfg.seed = w["seed"]
    cfg.outdir = outdir
    cfg.expname = "fscope_bench"
    cfg.federate.mode = "standalone"
    cfg.federate.method = "FedAvg"
    cfg.federate.process_num = 1
    cfg.federate.client_num = n
    cfg.federate.sample_client_num = min(k, n)
    cfg.federate.total_round_num = w["rounds"]
    cfg.federate.make_global_eval = True
    cfg.federate.share_local_model = False
    cfg.federate.online_aggr = False
    cfg.data.type = DATA_TYPE
    cfg.dataloader.type = "base"
    cfg.dataloader.batch_size = t["batch_size"]
    cfg.dataloader.shuffle = True
    cfg.dataloader.drop_last = False
    cfg.dataloader.num_workers = 0
    cfg.model.type = MODEL_TYPE
    cfg.model.hidden = w["model"]["hidden"]
    cfg.model.out_channels = w["model"]["classes"]
    cfg.trainer.type = "general"
    cfg.criterion.type = "CrossEntropyLoss"
    cfg.train.batch_or_epoch = "epoch"
    cfg.train.local_update_steps = t["local_epochs"]
    cfg.train.optimizer.type = "SGD"
    cfg.train.optimizer.lr = t["lr"]
    cfg.train.optimizer.momentum = t["momentum"]
    cfg.train.optimizer.weight_decay = t["weight_decay"]
    cfg.eval.freq = w["evaluation"]["every"]
    cfg.eval.metrics = ["acc"]
    cfg.eval.split = ["test"]
    cfg.eval.best_res_update_round_wise_key = "test_loss"
    cfg.eval.count_flops = False
    cfg.early_stop.patience = 0


def run(workload: Path, threads: int | None) -> dict:
    w = json.loads((workload / "workload.json").read_text())
    if w["model"]["name"] != "mlp":
        raise SystemExit(f"harness.py trains the MLP only, not {w['model']['name']!r}")
    arrays = dict(np.load(workload / "workload.npz"))

    from federatedscope.core.auxiliaries.data_builder import get_data
    from federatedscope.core.auxiliaries.logging import update_logger
    from federatedscope.core.auxiliaries.runner_builder import get_runner
    from federatedscope.core.auxiliaries.utils import setup_seed
    from federatedscope.core.auxiliaries.worker_builder import get_client_cls, get_server_cls
    from federatedscope.core.configs.config import global_cfg

    register(w, arrays)
    with tempfile.TemporaryDirectory(prefix="fs_bench_") as outdir:
        # federatedscope/main.py, with the workload's config instead of a yaml file
        init_cfg = global_cfg.clone()
        configure(init_cfg, w, outdir)
        update_logger(init_cfg, clear_before_add=True)
        setup_seed(init_cfg.seed)
        data, modified_cfg = get_data(config=init_cfg.clone(), client_cfgs=None)
        init_cfg.merge_from_other_cfg(modified_cfg)
        init_cfg.freeze()
        runner = get_runner(data=data, server_class=get_server_cls(init_cfg),
                            client_class=get_client_cls(init_cfg), config=init_cfg.clone(), client_configs=None)
        if threads:
            torch.set_num_threads(threads)  # StandaloneRunner._set_up has set it to 1
        runner.run()
        server = runner.server
    if len(server.bench_round_s) != w["rounds"]:
        raise SystemExit(f"FederatedScope ran {len(server.bench_round_s)} rounds, not {w['rounds']}")
    return {"round_s": server.bench_round_s, "heldout_accuracy": server.bench_heldout_acc}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", type=Path, nargs="?")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--check", action="store_true", help="import federatedscope and torch, print versions")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check:
        check()
        return
    if args.workload is None:
        parser.error("WORKLOAD_DIR is required (or --check)")
    with contextlib.redirect_stdout(sys.stderr):  # FederatedScope's prints, if any, stay off the JSON line
        result = run(args.workload, args.threads)
    import federatedscope
    print(json.dumps({"side": SIDE, "version": federatedscope.__version__,
                      "wall_s": time.perf_counter() - T0, "cpu_s": time.process_time() - C0,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      **result, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
