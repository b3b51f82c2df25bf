"""The coordinator must run without any ML framework; the services' entry points must work."""

import subprocess
import sys

CHECK = """
import sys
from pathlib import Path
from fscope_coordinator.main import build_coordinator
c = build_coordinator(Path(sys.argv[1]), [])
assert c.params["fc1.weight"].shape == (64, 64)
loaded = [m for m in ("torch", "tensorflow", "keras") if m in sys.modules]
print("loaded:", loaded)
sys.exit(1 if loaded else 0)
"""


def test_building_a_coordinator_imports_no_ml_framework(example_config):
    proc = subprocess.run([sys.executable, "-c", CHECK, str(example_config)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_coordinator_entry_point_describes_its_handlers(example_config):
    proc = subprocess.run([sys.executable, "-m", "fscope_coordinator.main", "describe", str(example_config)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "condition:all_received -> Coordinator.aggregate emits [evaluate, model_parameters]" in proc.stdout


def test_participant_entry_point_describes_its_shard(example_config):
    proc = subprocess.run([sys.executable, "-m", "fscope_participant.main", "describe", str(example_config),
                           "--index", "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("participant-00003:")


def test_services_refuse_bad_config_with_exit_code_2(example_config):
    proc = subprocess.run([sys.executable, "-m", "fscope_participant.main", "describe", str(example_config),
                           "--index", "99"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "participant index 99 is outside 0..9" in proc.stderr
