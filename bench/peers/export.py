"""Export one fscope workload for the peer simulators (issue 19): the same partitions, initial weights and
training settings, so Flower, FederatedScope and pfl-research train exactly what fscope trains.

    python bench/peers/export.py CONFIG OUT_DIR [--set key=value ...]

Writes OUT_DIR/workload.npz and OUT_DIR/workload.json:

  * ``train_x_<i>``, ``train_y_<i>``, ``test_x_<i>``, ``test_y_<i>``: participant i's data, as fscope's
    splitter dealt it (float32 features flattened, int64 labels);
  * ``heldout_x``, ``heldout_y``: the coordinator's held-out set, on which every side reports accuracy;
  * ``init.<name>``: the initial global model in fscope's agreed (torch) layout and names;
  * workload.json: participants, sample size, rounds, model, optimizer, lr, momentum, weight decay,
    local epochs, batch size, seed, the tensor names in order, and ``cohorts``: which participants train in
    each round (indices, sorted), drawn as fscope's coordinator draws them (its uniform sampler on its own
    sampling stream, every participant idle at the start of a synchronous round). Every harness trains those
    cohorts, so the sides train the same participants in the same rounds; bench/peers/run.py checks that
    fscope's ``metrics.jsonl`` aggregated exactly them.

Nothing here runs a course; the harnesses read these two files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fscore.config import load_config
from fscore.course import CourseBuilder, participant_address
from fscore.samplers import UniformSampler, sampling_stream


def _flat(x: np.ndarray) -> np.ndarray:
    """Features flattened to (n, prod(shape)) float32; an empty split (a participant of one example) too."""
    return x.reshape(len(x), int(np.prod(x.shape[1:]))).astype(np.float32)


def cohorts(builder: CourseBuilder) -> list[list[int]]:
    """Each round's participants, as the coordinator of a synchronous course with the uniform sampler draws
    them: from all participants, in address order, on its sampling stream, one draw a round. Participants join in
    address order in simulation; bench/peers/run.py checks what fscope aggregated against these."""
    config, strategy = builder.config, builder.strategy()
    k = config.sample_size or config.participants
    if not (strategy.synchronous and strategy.sampler == "uniform" and strategy.trigger == "all_received"
            and strategy.concurrency == k and strategy.reply_timeout_s is None):
        raise SystemExit("export.py: the peer workloads are synchronous courses that sample sample_size participants "
                         "uniformly and wait for all of them (no overselection, no reply timeout)")
    addresses = [participant_address(i) for i in range(config.participants)]
    index = {a: i for i, a in enumerate(addresses)}
    rng, sampler = sampling_stream(config.seed), UniformSampler()
    return [[index[a] for a in sampler.sample(addresses, k, rng)] for _ in range(config.rounds)]


def export(config_path: Path, out: Path, overrides: list[str]) -> dict:
    config = load_config(config_path, overrides)
    builder = CourseBuilder(config)
    federation = builder.federation
    arrays: dict[str, np.ndarray] = {}
    for i, client in enumerate(federation.clients):
        for part, data in (("train", client.train), ("test", client.test)):
            arrays[f"{part}_x_{i}"] = _flat(data.x)
            arrays[f"{part}_y_{i}"] = data.y.astype(np.int64)
    arrays["heldout_x"] = _flat(federation.heldout.x)
    arrays["heldout_y"] = federation.heldout.y.astype(np.int64)
    init = builder.initial_params()
    arrays |= {f"init.{name}": value for name, value in init.items()}
    t = config.trainer
    workload = {
        "source": str(config_path), "overrides": overrides, "seed": config.seed,
        "participants": config.participants, "sample_size": config.sample_size, "rounds": config.rounds,
        "model": {"name": config.model.name, "hidden": config.model.hidden,
                  "input_shape": list(builder.model_spec.input_shape), "classes": builder.model_spec.num_classes},
        "trainer": {"optimizer": t.optimizer, "lr": t.lr, "momentum": t.momentum, "weight_decay": t.weight_decay,
                    "local_epochs": t.local_epochs, "batch_size": t.batch_size},
        "evaluation": {"every": config.evaluation.every, "participants": config.evaluation.participants},
        "tensors": list(init),
        "cohorts": cohorts(builder),
    }
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "workload.npz", **arrays)
    (out / "workload.json").write_text(json.dumps(workload, indent=2) + "\n")
    return workload


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    workload = export(args.config, args.out, args.overrides)
    print(f"wrote {args.out / 'workload.npz'}: {workload['participants']} participants, "
          f"{len(workload['tensors'])} tensors")


if __name__ == "__main__":
    main()
