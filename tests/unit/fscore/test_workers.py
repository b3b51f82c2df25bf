"""simulation.workers: a cohort's local training in N forked trainer processes (issue 19). Each training is the
exact path run elsewhere, so the course is bit for bit the same whatever N is, replays with --verify, and a lost
or failing trainer process costs nothing but speed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fscore.config import load_config
from fscore.errors import ConfigError
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone

SMALL = ["rounds=3", "participants=6", "trainer.local_epochs=1", "trainer.batch_size=16", "simulation.threads=1",
         "simulation.progress=false"]


def _run(overrides, tmp_path=None):
    from tests.conftest import ROOT

    return run_standalone(load_config(ROOT / "examples" / "digits_fedavg.yaml", overrides), progress=False,
                          output_dir=tmp_path)


def _records(result) -> list[bytes]:
    """The coordinator's inbox, record by record: every update, metric and alarm as it reached the coordinator."""
    return [r.value for r in result.log.read(f"fscope.{result.summary['course_id']}.coordinator")]


@pytest.mark.parametrize("extra", [
    [],
    ["sample_size=4", "data.split=iid", "trainer.momentum=0.5", "trainer.weight_decay=0.001"],
    ["trainer.optimizer=adam", "trainer.lr=0.01"],
    ["trainer.proximal_mu=0.1"],
    ["model.name=mlp_bn"],
    ["strategy.name=async_goal_aggr_unif", "strategy.min_received=3", "sample_size=5"],
])
def test_the_course_is_bit_for_bit_the_same_whatever_the_number_of_trainer_processes(extra):
    alone = _run(SMALL + extra)
    two = _run([*SMALL, *extra, "simulation.workers=2"])
    three = _run([*SMALL, *extra, "simulation.workers=3"])
    assert "parallel_trainings" not in alone.summary
    assert two.summary["parallel_trainings"] > 0 and three.summary["parallel_trainings"] > 0
    for other in (two, three):
        assert other.summary["model_sha256"] == alone.summary["model_sha256"]
        assert _records(other) == _records(alone)  # the same messages, bytes and virtual times
        assert _same_metrics(alone, other)


def _same_metrics(a, b) -> bool:
    def strip(result):  # what the wall clock measured differs; every metric is the same
        return [{k: v for k, v in row.items() if "wall" not in k} for row in result.history]

    return strip(a) == strip(b)


def test_every_sampled_participant_trains_in_a_trainer_process_in_a_sync_course():
    result = _run([*SMALL, "simulation.workers=2"])
    assert result.summary["parallel_trainings"] == 6 * 3
    # nothing is kept per participant once it has replied: no trained model, no result waiting
    assert all(p.trainer._reply is None and p.trainer.prepared is None for p in result.participants)


def test_a_result_is_taken_only_for_the_model_it_was_dealt(monkeypatch):
    """A participant handed a pending training of an earlier dealing trains itself: a result answers one model."""
    from fscore.simulation import workers

    taken = []
    real = workers.TrainingPool.take

    def stale(self, address, dealing):
        taken.append(real(self, address, dealing - 1))  # as if the participant held an older dealing's pending
        return taken[-1]

    monkeypatch.setattr(workers.TrainingPool, "take", stale)
    alone = _run(SMALL)
    result = _run([*SMALL, "simulation.workers=2"])
    assert taken and all(t is None for t in taken)
    assert result.summary["parallel_trainings"] == 0
    assert result.summary["model_sha256"] == alone.summary["model_sha256"]


def test_a_parallel_course_replays_with_verify(tmp_path):
    first = _run([*SMALL, "simulation.workers=2", "course_id=parallel"])
    report = replay_course(first.log, "parallel", output_dir=tmp_path)
    assert report.verified, report.mismatches
    assert report.final_sha256 == first.summary["model_sha256"]


def test_a_failing_training_in_a_trainer_process_is_done_in_the_runner_instead(monkeypatch):
    from fscore.simulation import workers

    real = workers._train_one

    class Exploding:
        def set_parameters(self, params):
            raise RuntimeError("out of memory")

    def failing(connection, worker, address, round_, tensors):  # runs in the forked processes only
        if address == "participant-00001":
            worker = SimpleNamespace(trainer=Exploding(), data=worker.data)
        real(connection, worker, address, round_, tensors)

    monkeypatch.setattr(workers, "_train_one", failing)
    alone = _run(SMALL)
    fallen = _run([*SMALL, "simulation.workers=2"])
    assert fallen.summary["model_sha256"] == alone.summary["model_sha256"]
    assert fallen.summary["parallel_trainings"] == 5 * 3  # participant 1 trained in the runner each round
    assert fallen.summary["dead_lettered"] == 0


def test_a_lost_trainer_process_loses_nothing(monkeypatch):
    from fscore.simulation import workers

    real = workers.TrainingPool.prepare

    def killing(self, receivers, round_, tensors):
        if round_ == 2:  # the third round (rounds count from 0 on the wire)
            self._children[0].process.kill()
            self._children[0].process.join()
        real(self, receivers, round_, tensors)

    monkeypatch.setattr(workers.TrainingPool, "prepare", killing)
    alone = _run(SMALL)
    lost = _run([*SMALL, "simulation.workers=2"])
    assert lost.summary["model_sha256"] == alone.summary["model_sha256"]
    assert lost.summary["parallel_trainings"] == 6 * 2  # two rounds; then everyone trains in the runner
    assert lost.summary["dead_lettered"] == 0


@pytest.mark.parametrize(("override", "named"), [
    ("simulation.batched=true", "simulation.batched"),
    ("personalization.name=ditto", "personalization.name"),
    ("attack={kind: sign_flip, participants: [1]}", "attack"),
    ("trainer.backend=tensorflow", "tensorflow"),
    ("simulation.threads=2", "simulation.threads"),
])
def test_what_another_process_cannot_train_is_refused_in_one_line_naming_the_key(override, named):
    with pytest.raises(ConfigError, match=r"simulation\.workers") as info:
        _run([*SMALL, "simulation.workers=2", override])
    assert named in str(info.value) and "\n" not in str(info.value)
