"""(b) FedAvg over 100 updates of 1M parameters, against numpy's memory bandwidth in the same run.

Baseline: numpy summing the same 100 arrays into an accumulator (``acc += a``), which reads
every input once, as FedAvg must. Target: >= 0.5 of it.

    python bench/fedavg.py
"""

from __future__ import annotations

import numpy as np
from harness import median_seconds, report

from fscore.aggregators import ClientUpdate, FedAvg

N_UPDATES, N_PARAMS = 100, 1_000_000


def main() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(N_PARAMS, dtype=np.float32) for _ in range(N_UPDATES)]
    updates = [ClientUpdate(f"p{i}", {"w": a}, int(rng.integers(1, 100)), 0) for i, a in enumerate(arrays)]
    fedavg = FedAvg()
    global_params = {"w": np.zeros(N_PARAMS, np.float32)}

    def numpy_sum() -> np.ndarray:
        acc = np.zeros(N_PARAMS, np.float32)
        for a in arrays:
            acc += a
        return acc

    t_base = median_seconds(numpy_sum)
    t_avg = median_seconds(lambda: fedavg.aggregate(global_params, updates))
    gb = N_UPDATES * N_PARAMS * 4 / 1e9
    rows = [
        {"operation": "numpy acc += a (baseline)", "seconds": t_base, "GB/s read": gb / t_base, "ratio": 1.0},
        {"operation": "fscope FedAvg (weighted)", "seconds": t_avg, "GB/s read": gb / t_avg, "ratio": t_base / t_avg},
    ]
    report("fedavg", rows, f"{N_UPDATES} updates x {N_PARAMS:,} float32 parameters; median of 5 runs")


if __name__ == "__main__":
    main()
