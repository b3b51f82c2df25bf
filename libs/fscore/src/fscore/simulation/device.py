"""Device profiles: how long a participant computes and communicates, in virtual seconds (FedScale-style).

Heterogeneity is why asynchronous strategies exist, so a course's devices can differ:

* ``uniform``: every participant has the median device;
* ``heavy_tailed``: compute seconds per sample and bandwidth are each log-normal around the
  configured medians (sigma ``compute_sigma`` and ``bandwidth_sigma``, independent draws from the
  course seed). FedScale's measured device traces are heavy-tailed in both: most devices are near
  the median and a few are an order of magnitude slower. We cannot ship those traces (nothing is
  downloaded), so the shape is modelled, not fitted; with sigma 1 the slowest of 200 devices
  is about 15x slower than the median;
* ``file``: one profile per participant from a JSON list of objects, or a CSV with a header,
  with the fields ``compute_s_per_sample`` and ``bandwidth_bytes_per_s``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fscore.config import SimulationConfig
from fscore.errors import ConfigError


@dataclass(frozen=True)
class DeviceProfile:
    compute_s_per_sample: float = 0.001
    bandwidth_bytes_per_s: float = 1.25e6

    def compute_time(self, samples: int) -> float:
        return samples * self.compute_s_per_sample

    def transfer_time(self, num_bytes: int) -> float:
        return num_bytes / self.bandwidth_bytes_per_s


def device_profiles(sim: SimulationConfig, participants: int, rng: np.random.Generator) -> list[DeviceProfile]:
    """One profile per participant, in participant order; deterministic for a given rng seed."""
    if sim.devices == "uniform":
        return [DeviceProfile(sim.compute_s_per_sample, sim.bandwidth_bytes_per_s)] * participants
    if sim.devices == "heavy_tailed":
        compute = sim.compute_s_per_sample * np.exp(sim.compute_sigma * rng.standard_normal(participants))
        bandwidth = sim.bandwidth_bytes_per_s * np.exp(sim.bandwidth_sigma * rng.standard_normal(participants))
        return [DeviceProfile(float(c), float(b)) for c, b in zip(compute, bandwidth, strict=True)]
    assert sim.device_file is not None  # the config validator guarantees it
    profiles = load_device_file(sim.device_file)
    if len(profiles) < participants:
        raise ConfigError(f"simulation.device_file: {sim.device_file} has {len(profiles)} profiles, but the course "
                          f"has {participants} participants")
    return profiles[:participants]


def load_device_file(path: Path) -> list[DeviceProfile]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"simulation.device_file: cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        rows = json.loads(text) if path.suffix == ".json" else list(csv.DictReader(text.splitlines()))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"simulation.device_file: {path} is not valid JSON: {exc}") from None
    profiles = []
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        try:
            profile = DeviceProfile(float(row["compute_s_per_sample"]), float(row["bandwidth_bytes_per_s"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"simulation.device_file: {path} entry {i}: needs numeric compute_s_per_sample and "
                              f"bandwidth_bytes_per_s ({exc!r})") from None
        if profile.compute_s_per_sample < 0 or profile.bandwidth_bytes_per_s <= 0:
            raise ConfigError(f"simulation.device_file: {path} entry {i}: compute must be >= 0 and bandwidth > 0")
        profiles.append(profile)
    if not profiles:
        raise ConfigError(f"simulation.device_file: {path} holds no profiles (a JSON list or a CSV with a header)")
    return profiles
