"""simulation.batched: a cohort's local SGD as one batched computation, against the exact per-participant path
(issue 19): the same messages, virtual time and accuracy, models equal to float rounding, replay verifies."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.config import load_config
from fscore.errors import ConfigError
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone

SMALL = ["rounds=3", "participants=6", "trainer.local_epochs=2", "trainer.batch_size=8", "trainer.momentum=0.5",
         "trainer.weight_decay=0.001", "simulation.progress=false"]


def _run(overrides, tmp_path=None):
    from tests.conftest import ROOT

    return run_standalone(load_config(ROOT / "examples" / "digits_fedavg.yaml", overrides), progress=False,
                          output_dir=tmp_path)


def _close(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.mark.parametrize("extra", [[], ["sample_size=4", "data.split=iid"], ["model.name=logreg"],
                                   ["strategy.name=async_goal_aggr_unif", "strategy.min_received=3", "sample_size=5"]])
def test_batched_training_gives_the_per_participant_paths_course_to_float_rounding(extra):
    exact = _run(SMALL + extra)
    batched = _run(SMALL + extra + ["simulation.batched=true"])
    assert batched.summary["batched_trainings"] > 0  # the cohorts did train together
    assert _close(exact.coordinator.params, batched.coordinator.params) < 1e-5
    e, b = exact.summary, batched.summary
    assert abs(e["final_metrics"]["heldout.accuracy"] - b["final_metrics"]["heldout.accuracy"]) <= 0.005
    # the same messages at the same virtual times: only how the maths was done differs
    assert e["intake"] == b["intake"] and e["records"] == b["records"]
    assert e["virtual_time_s"] == b["virtual_time_s"]
    for x, y in zip(exact.history, batched.history, strict=True):
        assert x["round"] == y["round"]
        for key in ("clients.loss", "heldout.loss"):
            if key in x:
                assert x[key] == pytest.approx(y[key], rel=1e-4)


def _updates(result) -> dict[tuple[str, int], dict]:
    """Every model_update in the course's log, by (sender, round): what each participant trained and reported."""
    codec = result.coordinator.catalog.codec
    out = {}
    for record in result.log.read(f"fscope.{result.summary['course_id']}.coordinator"):
        header, payload = codec.decode(record.value)
        if header.type == "model_update":
            out[(header.sender, header.round)] = payload
    return out


def test_unequal_datasets_are_masked_each_participant_stepping_its_own_batches():
    """Dirichlet shards of very different sizes: participants with fewer batches stop moving, and each one's model
    and train metrics (steps, loss, loss_square_mean) are its own, as the exact path computes them."""
    overrides = [*SMALL, "data.alpha=0.1", "rounds=2"]
    exact = _run(overrides)
    batched = _run([*overrides, "simulation.batched=true"])
    assert len({len(p.data.train) for p in exact.participants}) > 3
    mine, theirs = _updates(exact), _updates(batched)
    assert mine.keys() == theirs.keys() and len(mine) == 12
    for key, update in mine.items():
        other = theirs[key]
        assert _close(update["tensors"], other["tensors"]) < 1e-5, key
        assert update["num_samples"] == other["num_samples"]
        assert update["train_metrics"].keys() == other["train_metrics"].keys()
        for name, value in update["train_metrics"].items():
            assert other["train_metrics"][name] == pytest.approx(value, rel=1e-5), (key, name)


def test_a_failing_batch_falls_back_to_each_participants_own_training(monkeypatch):
    from fscore.simulation import batched as module

    def fails(self, *args):
        raise MemoryError("no room for the stacked cohort")

    monkeypatch.setattr(module.CohortTraining, "_train", fails)
    exact = _run(SMALL)
    fallen = _run([*SMALL, "simulation.batched=true"])
    assert fallen.summary["model_sha256"] == exact.summary["model_sha256"]  # the exact path, bit for bit
    assert fallen.summary["dead_lettered"] == 0


def test_a_batched_course_is_deterministic_and_replays_with_verify(tmp_path):
    first = _run([*SMALL, "simulation.batched=true", "course_id=batched"])
    again = _run([*SMALL, "simulation.batched=true", "course_id=batched"])
    assert first.summary["model_sha256"] == again.summary["model_sha256"]
    report = replay_course(first.log, "batched", output_dir=tmp_path)
    assert report.verified, report.mismatches
    assert report.final_sha256 == first.summary["model_sha256"]


@pytest.mark.parametrize(("override", "named"), [
    ("trainer.optimizer=adam", "optimizer 'adam'"),
    ("trainer.proximal_mu=0.1", "proximal_mu"),
    ("personalization.name=ditto", "personalization.name"),
    ("attack={kind: sign_flip, participants: [1]}", "attack"),
    ("model.name=mlp_bn", "buffers"),
    ("model.name=convnet2", "no batched_forward"),
])
def test_what_batching_cannot_do_is_refused_in_one_line_naming_the_key(override, named):
    with pytest.raises(ConfigError, match=r"simulation\.batched") as info:
        _run([*SMALL, "simulation.batched=true", override])
    assert named in str(info.value) and "\n" not in str(info.value)


def test_participants_of_one_process_share_one_module_unless_something_of_theirs_may_live_in_it():
    from fscore.course import CourseBuilder
    from tests.conftest import ROOT

    plain = CourseBuilder(load_config(ROOT / "examples" / "digits_fedavg.yaml", ["participants=4"]))
    assert plain.models_shareable
    assert len({id(plain.trainer(i).model) for i in range(4)}) == 1
    ditto = CourseBuilder(load_config(ROOT / "examples" / "digits_fedavg.yaml",
                                      ["participants=4", "personalization.name=ditto"]))
    assert not ditto.models_shareable


def test_a_batched_mlp_course_imports_no_torch_compiler():
    import subprocess
    import sys

    code = ("import sys; from fscore.config import load_config; from fscore.simulation.runner import run_standalone;"
            "from tests.conftest import ROOT;"
            "r = run_standalone(load_config(ROOT / 'examples' / 'digits_fedavg.yaml', ['rounds=1', 'participants=3',"
            " 'simulation.batched=true']), progress=False);"
            "print(r.summary['batched_trainings'], 'torch._dynamo' in sys.modules)")
    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split()[-2:] == ["3", "False"]
