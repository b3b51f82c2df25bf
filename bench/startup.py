"""Start-up: `fscope --help`, and how soon after `import torch` a course's first round starts (issue 19).

Every figure is a fresh process, so imports are paid in full, repeated (median) and alternated with its
baseline in the same run:

  * `fscope --help` against `python -c pass` (the interpreter alone);
  * time to the first round: a process imports torch, then builds and starts the default course; the
    figure is from `import torch` finishing to the coordinator first sending models (round 0), against the
    same process's `import torch` time. Target (issue 19): within 1 s of `import torch`;
  * the modules a torch-only default course has imported when it ends (none of TensorFlow, scipy,
    scikit-learn, matplotlib or torch's compiler is needed).

    python bench/startup.py [--repeat 5]

Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import report

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch._dynamo", "tensorflow", "scipy", "sklearn", "matplotlib", "networkx", "opacus", "optuna")

FIRST_ROUND = f"""
import json, sys, time
t0 = time.perf_counter()
import torch
t_torch = time.perf_counter()
from fscore.coordinator.coordinator import Coordinator
from fscore.config import load_config
from fscore.simulation.runner import run_standalone
first = []
send = Coordinator._send_models
def timed(self):
    if not first:
        first.append(time.perf_counter())
    return send(self)
Coordinator._send_models = timed
run_standalone(load_config({str(ROOT / 'examples' / 'digits_fedavg.yaml')!r}, ['rounds=1']), progress=False)
print(json.dumps({{"import_torch": t_torch - t0, "to_first_round": first[0] - t_torch,
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - t


def first_round() -> dict:
    out = subprocess.run([sys.executable, "-c", FIRST_ROUND], check=True, capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    fscope = shutil.which("fscope") or str(Path(sys.executable).with_name("fscope"))
    bare, helps, runs = [], [], []
    for _ in range(args.repeat):  # alternated: A B A B
        bare.append(wall([sys.executable, "-c", "pass"]))
        helps.append(wall([fscope, "--help"]))
        runs.append(first_round())
    interpreter, help_s = statistics.median(bare), statistics.median(helps)
    torch_s = statistics.median(r["import_torch"] for r in runs)
    to_first = statistics.median(r["to_first_round"] for r in runs)
    rows = [
        {"figure": "fscope --help (s)", "median": round(help_s, 3), "baseline": "python -c pass",
         "baseline_s": round(interpreter, 3), "ratio": f"{help_s / interpreter:.1f}x"},
        {"figure": "first round after import torch (s)", "median": round(to_first, 3), "baseline": "import torch",
         "baseline_s": round(torch_s, 3), "ratio": f"{to_first / torch_s:.2f}x"},
        {"figure": "heavy modules a torch course imported", "median": ", ".join(runs[-1]["heavy"]) or "none",
         "baseline": "", "baseline_s": "", "ratio": ""},
    ]
    report("startup", rows, notes=f"medians of {args.repeat} fresh processes each, alternated; target: first "
                                  "round within 1 s of import torch")


if __name__ == "__main__":
    main()
