"""Device profiles: uniform, heavy-tailed from the seed, or from a file; bad files get clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fscore.config import SimulationConfig
from fscore.errors import ConfigError
from fscore.simulation.device import DeviceProfile, device_profiles


def test_heavy_tailed_profiles_are_deterministic_and_heavy_tailed():
    sim = SimulationConfig(devices="heavy_tailed", compute_s_per_sample=0.05, bandwidth_bytes_per_s=1e5)
    a = device_profiles(sim, 1000, np.random.default_rng([0, 4]))
    assert a == device_profiles(sim, 1000, np.random.default_rng([0, 4]))
    compute = np.array([p.compute_s_per_sample for p in a])
    assert 0.04 < np.median(compute) < 0.06  # the configured median
    assert compute.max() / np.median(compute) > 10  # a long tail of slow devices
    assert np.mean(compute) > np.median(compute)


def test_uniform_profiles_are_the_median_device():
    sim = SimulationConfig(compute_s_per_sample=0.2, bandwidth_bytes_per_s=10.0)
    assert device_profiles(sim, 3, np.random.default_rng(0)) == [DeviceProfile(0.2, 10.0)] * 3


def test_profiles_from_json_and_csv(tmp_path):
    js = tmp_path / "devices.json"
    js.write_text(json.dumps([{"compute_s_per_sample": 0.1, "bandwidth_bytes_per_s": 5e4}] * 3))
    sim = SimulationConfig(devices="file", device_file=js)
    assert device_profiles(sim, 2, np.random.default_rng(0)) == [DeviceProfile(0.1, 5e4)] * 2
    csv = tmp_path / "devices.csv"
    csv.write_text("compute_s_per_sample,bandwidth_bytes_per_s\n0.1,100\n0.2,200\n")
    assert device_profiles(SimulationConfig(devices="file", device_file=csv), 2, np.random.default_rng(0))[1] == \
        DeviceProfile(0.2, 200.0)


@pytest.mark.parametrize("content, message", [
    ('[{"compute_s_per_sample": 0.1}]', "entry 0: needs numeric compute_s_per_sample and bandwidth_bytes_per_s"),
    ('[{"compute_s_per_sample": 0.1, "bandwidth_bytes_per_s": 0}]', "entry 0: compute must be >= 0 and bandwidth > 0"),
    ("[1, 2", "is not valid JSON"),
    ('[{"compute_s_per_sample": 0.1, "bandwidth_bytes_per_s": 1}]', "has 1 profiles, but the course has 2"),
])
def test_a_bad_device_file_is_refused_naming_the_key_and_entry(tmp_path, content, message):
    path = tmp_path / "devices.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"simulation\.device_file") as err:
        device_profiles(SimulationConfig(devices="file", device_file=path), 2, np.random.default_rng(0))
    assert message in str(err.value)
