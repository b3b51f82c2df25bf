"""bench/peers/export.py hands every peer the cohorts fscope's coordinator draws (issue 19): the cohorts it
writes are the participants a real course aggregates, round by round, so the sides train the same people."""

from __future__ import annotations

import importlib.util
import json

from fscore.config import load_config
from fscore.simulation.runner import run_standalone
from tests.conftest import ROOT

CONFIG = ROOT / "bench" / "peers" / "configs" / "p1000x5.yaml"
SMALL = ["participants=40", "sample_size=7", "rounds=4", "trainer.local_epochs=1", "simulation.threads=1"]


def _export_module():
    spec = importlib.util.spec_from_file_location("peers_export", ROOT / "bench" / "peers" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_exported_cohorts_are_the_participants_the_course_aggregates(tmp_path):
    workload = _export_module().export(CONFIG, tmp_path / "workload", SMALL)
    assert json.loads((tmp_path / "workload" / "workload.json").read_text())["cohorts"] == workload["cohorts"]
    result = run_standalone(load_config(CONFIG, SMALL), progress=False)
    aggregated = [sorted(int(a.rsplit("-", 1)[1]) for a in row["aggregated"]) for row in result.history]
    assert aggregated == workload["cohorts"]
    assert len(workload["cohorts"]) == 4 and all(len(c) == 7 for c in workload["cohorts"])
    assert len({tuple(c) for c in workload["cohorts"]}) == 4  # a new draw each round
