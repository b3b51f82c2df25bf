"""FedProx's Synthetic(alpha, beta) federated data (Li et al. 2020, §5.1; LEAF's generator).

Each device k has its own model and input distribution:
    u_k ~ N(0, alpha);  W_k ~ N(u_k, 1) (shape classes x dim);  b_k ~ N(u_k, 1)
    B_k ~ N(0, beta);   v_k ~ N(B_k, 1) (dim);   x ~ N(v_k, Sigma), Sigma = diag(j^-1.2)
    y = argmax(softmax(W_k x + b_k))
alpha controls how much the local models differ, beta how much the local inputs differ.
Sample counts per device follow a lognormal, as in the original generator.
"""

from __future__ import annotations

import numpy as np


def synthetic_devices(num_devices: int, alpha: float, beta: float, rng: np.random.Generator, *, dim: int = 60,
                      num_classes: int = 10, mean_samples: float = 4.0, sigma_samples: float = 2.0,
                      min_samples: int = 10, max_samples: int = 2000) -> list[tuple[np.ndarray, np.ndarray]]:
    sizes = np.clip(rng.lognormal(mean_samples, sigma_samples, num_devices).astype(int) + min_samples,
                    min_samples, max_samples)
    cov_diag = np.arange(1, dim + 1, dtype=np.float64) ** -1.2
    devices = []
    for k in range(num_devices):
        u_k = rng.normal(0.0, np.sqrt(alpha))
        big_b = rng.normal(0.0, np.sqrt(beta))
        w = rng.normal(u_k, 1.0, (num_classes, dim))
        b = rng.normal(u_k, 1.0, num_classes)
        v = rng.normal(big_b, 1.0, dim)
        x = rng.normal(v, np.sqrt(cov_diag), (sizes[k], dim))
        y = np.argmax(x @ w.T + b, axis=1)
        devices.append((x.astype(np.float32), y.astype(np.int64)))
    return devices
