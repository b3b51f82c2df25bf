"""(e) The cost of secure aggregation (issue 16) against plain FedAvg, as the number of participants grows.

The same standalone course is run with and without the ``secure_aggregation`` plug-in, alternated (A B A B),
with a no-op trainer, so what is measured is the protocol: per round, fresh X25519 keys, Shamir sharing of two
secrets among the roster (O(n^2) sealed shares), pairwise masks over the model, and the unmasking. Logistic
regression on digits (650 parameters), 3 rounds, one dropout tolerated.

    python bench/secagg.py [--participants 10 50 100] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness import quiet_logs, report

from fscore.config import config_from_dict
from fscore.simulation.runner import run_standalone
from fscore.trainers.base import NoOpTrainer

ROUNDS = 3


def course(participants: int, secure: bool, plugin: dict | None = None) -> dict:
    default = {"name": "secure_aggregation", "role": "all", "options": {"dropouts": 1}}
    plugins = [plugin or default] if secure else []
    return {"course_id": "secagg-bench", "participants": participants, "rounds": ROUNDS, "seed": 0,
            "data": {"dataset": "digits", "split": "iid", "min_samples_per_participant": 5},
            "model": {"name": "logreg"}, "evaluation": {"every": ROUNDS}, "simulation": {"progress": False},
            "plugins": plugins}


def timed(participants: int, secure: bool, plugin: dict | None = None) -> tuple[float, int]:
    config = config_from_dict(course(participants, secure, plugin))
    t = time.perf_counter()
    result = run_standalone(config, progress=False, trainer=NoOpTrainer)
    return time.perf_counter() - t, sum(result.summary["records"].values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    quiet_logs()
    timed(5, True)  # warm-up: imports and caches
    rows = []
    for n in args.participants:
        walls: dict[bool, list[float]] = {False: [], True: []}
        records = {}
        for _ in range(args.repeat):
            for secure in (False, True):
                wall, records[secure] = timed(n, secure)
                walls[secure].append(wall)
        plain, secure = statistics.median(walls[False]), statistics.median(walls[True])
        rows.append({"participants": n, "plain_fedavg_s": plain, "secure_aggregation_s": secure,
                     "ratio_to_plain": secure / plain, "secagg_ms_per_participant_round": (secure - plain) / n / ROUNDS
                     * 1000, "records_plain": records[False], "records_secure": records[True]})
    report("secagg", rows, f"{ROUNDS} rounds, NoOpTrainer, logreg on digits (650 parameters), dropouts 1; median of "
                           f"{args.repeat} alternated runs each")
    he_rows = []
    for bits in (1024, 2048):
        timed(3, True, {"name": "paillier", "role": "all", "options": {"key_bits": bits}})  # the seeded key, once
        plugin = {"name": "paillier", "role": "all", "options": {"key_bits": bits}}
        walls = {False: [], True: []}
        for _ in range(args.repeat):
            for secure in (False, True):
                walls[secure].append(timed(3, secure, plugin)[0])
        plain, he = statistics.median(walls[False]), statistics.median(walls[True])
        he_rows.append({"key_bits": bits, "participants": 3, "plain_fedavg_s": plain, "paillier_s": he,
                        "ratio_to_plain": he / plain,
                        "us_per_parameter_per_update": (he - plain) / (3 * ROUNDS) / 650 * 1e6})
    report("paillier", he_rows, f"3 participants x {ROUNDS} rounds, NoOpTrainer, logreg on digits (650 parameters, "
                                "packed into slots); encrypt, add and decrypt per parameter of one update")


if __name__ == "__main__":
    main()
