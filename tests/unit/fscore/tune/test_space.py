"""The search space and the fidelity (issue 17, part 2): what ``fscope tune`` refuses before it trains anything,
each in one line naming the key or the option."""

from __future__ import annotations

import pytest

from fscore.config import load_config
from fscore.errors import ConfigError
from fscore.tune.settings import TuneSettings, fidelity
from fscore.tune.space import SearchSpace


def _space(raw):
    return SearchSpace.parse(raw, "space.yaml")


@pytest.mark.parametrize(("raw", "expected"), [
    ({"trainer.lr": {"type": "uniform", "low": 0.2, "high": 0.2}},
     "space.yaml: trainer.lr: empty range: low 0.2 is not below high 0.2"),
    ({"trainer.local_epochs": {"type": "int", "low": 4, "high": 1}},
     "space.yaml: trainer.local_epochs: empty range: low 4 is not below high 1"),
    ({"trainer.lr": {"type": "loguniform", "low": 0, "high": 1}},
     "space.yaml: trainer.lr: a log-uniform range needs low > 0, not 0.0"),
    ({"trainer.batch_size": {"type": "categorical", "choices": []}}, "space.yaml: trainer.batch_size choices:"),
    ({"trainer.batch_size": {"type": "categorical", "choices": [16, 16]}},
     "space.yaml: trainer.batch_size: choices repeat a value"),
    ({"trainer.lr": {"type": "normal", "low": 0.1, "high": 1}},
     "space.yaml: trainer.lr: give type: uniform | loguniform | int | categorical"),
    ({"trainer.lr": {"type": "uniform", "low": 0.1, "hihg": 1}}, "space.yaml: trainer.lr"),
    ({"rounds": {"type": "int", "low": 1, "high": 9}}, "space.yaml: rounds: the tuner sets this key itself"),
    ({"evaluation.split": {"type": "categorical", "choices": ["test"]}}, "space.yaml: evaluation.split: the tuner"),
    ([], "space.yaml: a search space maps config keys to distributions"),
])
def test_a_malformed_space_is_one_line_naming_the_key(raw, expected):
    with pytest.raises(ConfigError) as err:
        _space(raw)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def _build(path):
    return lambda values: load_config(path, values=values)


@pytest.fixture
def course(tmp_path):
    path = tmp_path / "course.yaml"
    path.write_text("participants: 5\nrounds: 9\n")
    return path


def test_a_key_that_is_not_a_config_key_is_named(course):
    space = _space({"trainer.lrr": {"type": "uniform", "low": 0.1, "high": 0.2}})
    with pytest.raises(ConfigError, match=r"^space.yaml: trainer.lrr: not a config key"):
        space.check(_build(course))


def test_either_end_of_a_range_the_config_refuses_is_named(course):
    space = _space({"trainer.local_epochs": {"type": "int", "low": 0, "high": 3}})
    with pytest.raises(ConfigError, match=r"^space.yaml: trainer.local_epochs=0: the course config refuses it"):
        space.check(_build(course))
    _space({"trainer.lr": {"type": "loguniform", "low": 0.01, "high": 0.5},
            "aggregator.name": {"type": "categorical", "choices": ["fedavg", "fedadam"]}}).check(_build(course))


def test_suggested_values_come_from_optunas_sampler_in_the_files_order():
    import optuna

    space = _space({"trainer.lr": {"type": "loguniform", "low": 0.01, "high": 0.5},
                    "trainer.local_epochs": {"type": "int", "low": 1, "high": 4},
                    "trainer.batch_size": {"type": "categorical", "choices": [16, 32]}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    draws = [space.suggest(study.ask()) for _ in range(20)]
    assert all(list(d) == ["trainer.lr", "trainer.local_epochs", "trainer.batch_size"] for d in draws)
    assert all(0.01 <= d["trainer.lr"] <= 0.5 and d["trainer.local_epochs"] in (1, 2, 3, 4) for d in draws)
    again = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    assert [space.suggest(again.ask()) for _ in range(20)] == draws  # seeded: the same draws


@pytest.mark.parametrize(("options", "rungs"), [
    ({"method": "sha", "budget": 100, "min_rounds": 1}, [1, 3, 9, 27, 30]),
    ({"method": "hyperband", "budget": 100}, [3, 9, 27, 30]),
    ({"method": "sha", "budget": 100, "min_rounds": 2, "eta": 2, "max_rounds": 16}, [2, 4, 8, 16]),
    ({"method": "rs", "budget": 100}, [30]),
    ({"method": "bo", "budget": 30}, [30]),
])
def test_the_rungs_are_min_rounds_times_powers_of_eta_then_the_full_course(options, rungs):
    assert fidelity(TuneSettings(**options), 30, 1) == rungs


@pytest.mark.parametrize(("options", "every", "expected"), [
    ({"method": "rs", "budget": 29}, 1, "--budget: 29 rounds cannot train one trial to the lowest fidelity of 30"),
    ({"method": "sha", "budget": 2, "min_rounds": 3}, 1, "--budget: 2 rounds cannot train one trial to the lowest"),
    ({"method": "sha", "budget": 99, "min_rounds": 30}, 1, "--min-rounds: 30 is not below the full fidelity"),
    ({"method": "rs", "budget": 99, "min_rounds": 3}, 1, "--min-rounds: method rs trains every trial to its full"),
    ({"method": "sha", "budget": 99, "min_rounds": 3}, 2, "evaluation.every: 2 does not divide the rungs [3, 9, 27]"),
])
def test_a_fidelity_that_cannot_be_met_is_refused_in_one_line(options, every, expected):
    with pytest.raises(ConfigError) as err:
        fidelity(TuneSettings(**options), 30, every)
    assert str(err.value).startswith(expected)


def test_a_failing_rung_fails_its_trial_and_is_charged_its_planned_rounds():
    from fscore.tune.study import _guarded
    from fscore.tune.trial import Rung

    result = _guarded(Rung(7, 1, {"rounds": "not a number"}, 3, 9, None, "/nonexistent/out"))
    assert result.error is not None and result.error.startswith("ConfigError: ")
    assert (result.trial, result.start, result.reached, result.rounds_trained) == (7, 3, 9, 6)


def test_fedex_explores_numeric_trainer_keys_only_and_says_so_up_front(tmp_path):
    from fscore.tune.settings import TuneSettings
    from fscore.tune.study import Tuner
    from tests.conftest import ROOT

    space = SearchSpace.parse({"trainer.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]}}, "space")
    with pytest.raises(ConfigError, match=r"^--fedex: trainer.optimizer: .*\(FedEx explores numeric trainer keys\)$"):
        Tuner(ROOT / "examples" / "digits_fedavg.yaml", ["rounds=9"], space,
              TuneSettings(method="rs", budget=9, fedex=True), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written
