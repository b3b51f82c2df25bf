"""Device profiles: how long a participant computes and communicates, in virtual seconds (FedScale-style)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceProfile:
    compute_s_per_sample: float = 0.001
    bandwidth_bytes_per_s: float = 1.25e6

    def compute_time(self, samples: int) -> float:
        return samples * self.compute_s_per_sample

    def transfer_time(self, num_bytes: int) -> float:
        return num_bytes / self.bandwidth_bytes_per_s
