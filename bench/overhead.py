"""(c) Framework overhead per message with a no-op trainer, and a 10,000-participant course.

Baseline: the bare minimum any message costs here — encode with the codec, append to the
embedded log, read back, decode — run on the same messages in the same process. fscope's
number adds everything else: routing, the handler registry, condition checks, validation,
aggregation of tiny models, virtual-time bookkeeping. Target: < 100 us per message.

    python bench/overhead.py [--participants 10000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from harness import quiet_logs, report

from fscore.config import config_from_dict
from fscore.simulation.runner import run_standalone
from fscore.trainers.base import NoOpTrainer
from fscore.transport import EmbeddedLog, TopicSpec
from fstranslation import Header, WireCodec


def course(participants: int, rounds: int) -> dict:
    return {"course_id": "overhead", "participants": participants, "rounds": rounds, "seed": 0,
            "data": {"dataset": "synthetic", "heldout_fraction": 0.1, "test_fraction": 0.2,
                     "min_samples_per_participant": 2},
            "model": {"name": "logreg"}, "transport": {"direct_partitions": max(16, participants // 16)},
            "simulation": {"progress": False}}


def run(participants: int, rounds: int) -> tuple[float, float, int]:
    """(course wall seconds, of which building the federation's data, messages handled)."""
    from fscore.data.federation import build_federation

    config = config_from_dict(course(participants, rounds))
    t = time.perf_counter()
    build_federation(config.data, participants, config.seed)  # the same work the runner does first
    data_s = time.perf_counter() - t
    t = time.perf_counter()
    result = run_standalone(config, progress=False, trainer=NoOpTrainer)
    wall = time.perf_counter() - t
    # Messages handled by some worker's handler (a broadcast read by N participants counts N times).
    handled = len(result.coordinator._seen) + sum(len(p._seen) for p in result.participants)
    return wall, data_s, handled


def baseline_per_message(n: int = 20_000) -> float:
    codec = WireCodec()
    log = EmbeddedLog()
    log.ensure_topics([TopicSpec("t")])
    tensors = {"fc.weight": np.zeros((10, 60), np.float32), "fc.bias": np.zeros(10, np.float32)}
    payload = {"num_samples": 5, "base_round": 0, "train_metrics": {}, "tensors": tensors}
    consumer = log.consumer(["t"], group="g")
    t = time.perf_counter()
    for i in range(n):
        log.publish("t", codec.encode(Header(str(i), "c", "model_update", "p", ("coordinator",), 0, 0.0), payload))
        for record in consumer.poll():
            codec.decode(record.value)
    return (time.perf_counter() - t) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=10_000)
    args = parser.parse_args()
    quiet_logs()
    base = baseline_per_message()
    run(10, 2)  # warm-up: imports and caches are not the framework's per-message cost
    rows = [{"run": "codec + log round-trip (baseline)", "participants": "-", "messages": 20_000,
             "wall_s": base * 20_000, "data_s": 0.0, "us_per_message": base * 1e6, "ratio_to_baseline": 1.0,
             "max_rss_MB": "-"}]
    for participants, rounds in ((100, 20), (args.participants, 3)):
        wall, data_s, messages = run(participants, rounds)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        per = (wall - data_s) / messages
        rows.append({"run": f"fscope course, NoOpTrainer, {rounds} rounds", "participants": participants,
                     "messages": messages, "wall_s": wall, "data_s": data_s, "us_per_message": per * 1e6,
                     "ratio_to_baseline": per / base, "max_rss_MB": round(rss)})
    report("overhead", rows,
           "us_per_message = (course wall time - time to build its data) / messages handled by a worker")


if __name__ == "__main__":
    main()
