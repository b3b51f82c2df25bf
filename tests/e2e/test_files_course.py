"""A LEAF directory on local disk through the command line (issue 18): one participant per writer, who holds
what in summary.json, and fscope report's figure of it."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.unit.fscore.test_files import WRITERS, _leaf

pytestmark = pytest.mark.slow


def test_fscope_run_on_a_leaf_directory_keeps_every_writer_as_one_participant(tmp_path):
    directory, _, _, owner = _leaf(tmp_path / "leaf")
    out, figures = tmp_path / "run", tmp_path / "report"
    fscope = [sys.executable, "-m", "fscore.cli"]
    proc = subprocess.run([*fscope, "run", str(ROOT / "examples" / "leaf_natural.yaml"), "--output", str(out),
                           "--no-progress", "--set", f"data.path={directory}", "--set", f"participants={WRITERS}",
                           "--set", "rounds=2", "--set", "data.min_samples_per_participant=1",
                           "--set", "model.hidden=32"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["dead_lettered"] == 0
    held = summary["data"]["participants"]
    assert len(held) == WRITERS  # one participant per writer, none merged or split
    assert sum(p["train"] + p["test"] for p in held) + summary["data"]["heldout"] == len(owner)  # nothing lost
    assert all(sum(p["labels"]) == p["train"] + p["test"] for p in held)
    proc = subprocess.run([*fscope, "report", str(out), "--output", str(figures)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (figures / "data_partition.png").stat().st_size > 1000
