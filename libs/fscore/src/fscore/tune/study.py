"""The tuner behind ``fscope tune``: Optuna's study drives, fscope's courses are the trials (§4.3, Figure 13).

One driver owns the study's ask/tell loop; the rungs it schedules run in this process or in ``--jobs`` worker
processes. The schedule is a function of the seed and ``--batch`` only: each step takes the trials promoted so
far (lowest trial number first) and new trials drawn by the sampler, up to ``batch`` rungs, trains them, and then
reports their validation metrics to Optuna in trial order, asking its pruner whether each goes on. So ``--jobs 2``
trains the same rungs as ``--jobs 1`` and picks the same best config, only sooner.

The budget counts rounds aggregated over all trials: a rung that would overrun it is not started. The trials'
state lives in the Optuna storage (a journal file in the output by default, or ``--storage URL``), so several
machines can share one study the way Optuna users do; each driver reports its own trials.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from fscore.config import CourseConfig, load_config
from fscore.errors import ConfigError, FscoreError
from fscore.tune.results import TuneLog, write_best, write_plot
from fscore.tune.settings import TuneSettings, fidelity, sampler_and_pruner
from fscore.tune.space import SearchSpace
from fscore.tune.trial import Rung, RungResult, run_rung, worker_init

log = structlog.get_logger("fscore.tune")


@dataclass
class _Trial:
    """A trial this driver runs: its Optuna handle, its config, and how far it has come."""

    handle: Any  # optuna.Trial
    params: dict[str, Any]
    config: CourseConfig
    rung: int = 0  # index of the rung it trains next
    reached: int = 0
    snapshot: str | None = None

    @property
    def number(self) -> int:
        return int(self.handle.number)


@dataclass(frozen=True)
class _Best:
    number: int
    params: dict[str, Any]
    value: float


class Tuner:
    def __init__(self, config_path: Path, overrides: list[str], space: SearchSpace, settings: TuneSettings,
                 output: Path) -> None:
        self.config_path, self.overrides, self.space, self.settings = config_path, overrides, space, settings
        self.output = output
        self.base = load_config(config_path, overrides)
        base_fraction = self.base.data.validation_fraction
        self.validation_fraction = settings.validation_fraction or base_fraction or 0.2
        # a fixed thread count, so a trial computes the same bits in any process (--jobs) and best.yaml rebuilds
        # the chosen model exactly
        self.threads = self.base.simulation.threads or 1
        self.rungs = fidelity(settings, self.base.rounds, self.base.evaluation.every)
        self.r_max = self.rungs[-1]
        self.sampler, self.pruner = sampler_and_pruner(settings, self.rungs[0], self.r_max)
        # --fedex: FedEx explores the local keys inside each trial among candidates the outer method draws
        self.fedex = {k: settings.fedex_arms for k in space.dimensions if k.startswith("trainer.")} \
            if settings.fedex else {}
        if settings.fedex and not self.fedex:
            raise ConfigError(f"--fedex: {space.source} has no trainer.* key for FedEx to explore per participant")
        space.check(self.trial_config)  # every key and both ends of its range, before anything is written
        self._check_fedex_arms()
        for made in ("tune.jsonl", "study.journal"):  # a crashed run leaves its journal: its trials would count
            if (output / made).exists():
                raise ConfigError(f"--output: {output} already holds a tuning run ({made}); give another directory")
        if self.base.evaluation.participants is False:
            raise ConfigError("evaluation.participants: false, but the objective is the participants' validation "
                              "metrics; leave it unset")

    def _check_fedex_arms(self) -> None:
        """FedEx takes numeric trainer keys only: one that is not, or a value it refuses, is one line now rather
        than a failed first trial."""
        from pydantic import ValidationError

        from fscore.tune.fedex import FedExOptions

        for key in self.fedex:
            values = [v[key] for v in self.space.corners() if key in v]
            try:
                FedExOptions(arms={key.removeprefix("trainer."): values})
            except ValidationError as exc:
                err = exc.errors()[0]
                raise ConfigError(f"--fedex: {key}: {err['msg'].removeprefix('Value error, ')} (FedEx explores "
                                  "numeric trainer keys)") from None

    def trial_config(self, params: dict[str, Any], split: str = "validation") -> CourseConfig:
        """The course a trial trains: the base config with the trial's values, at full fidelity. With ``--fedex``
        the candidates of each local key (``trainer.lr#0``, ...) become the arms of a FedEx plug-in."""
        plain = {k: v for k, v in params.items() if "#" not in k}
        arms: dict[str, list[Any]] = {}
        for key, value in params.items():
            if "#" in key:  # a value drawn twice is one candidate: a duplicate would only dilute the policy
                candidates = arms.setdefault(key.partition("#")[0].removeprefix("trainer."), [])
                if value not in candidates:
                    candidates.append(value)
        if arms:
            plain["plugins"] = [*(p.model_dump(mode="json") for p in self.base.plugins),
                                {"name": "fedex", "role": "all", "options": {"arms": arms}}]
        return load_config(self.config_path, self.overrides, values={
            **plain, "rounds": self.r_max, "data.validation_fraction": self.validation_fraction,
            "evaluation.split": split, "simulation.progress": False, "simulation.threads": self.threads,
            # the objective: participants evaluate every evaluated round, whatever the strategy's trigger
            "evaluation.participants": True})

    def run(self, progress: bool = True) -> dict[str, Any]:
        import optuna
        from tqdm import tqdm

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        s = self.settings
        started = time.perf_counter()
        self.output.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(storage=self._storage(), sampler=self.sampler, pruner=self.pruner,
                                    study_name=s.study_name or f"{self.base.course_id}-{s.method}-seed{s.seed}",
                                    direction=s.direction, load_if_exists=True)
        tune_log = TuneLog(self.output / "tune.jsonl", s)
        active: list[_Trial] = []
        asked = 0
        with self._runner() as train, tqdm(total=s.budget, unit="round", desc=f"tune {s.method}",
                                           disable=not progress, leave=False) as bar:
            while True:
                batch, active = self._next_batch(study, active, tune_log)
                fresh = s.batch - len(batch)
                while fresh > 0 and (s.trials is None or asked < s.trials) and \
                        tune_log.consumed + sum(self._length(t) for t in batch) + self.rungs[0] <= s.budget:
                    batch.append(self._ask(study))
                    asked += 1
                    fresh -= 1
                if not batch:
                    break
                results = train([self._job(t) for t in batch])
                for trial, result in zip(batch, results, strict=True):
                    if self._judge(study, trial, result, tune_log):
                        active.append(trial)
                active.sort(key=lambda t: t.number)
                bar.update(tune_log.consumed - bar.n)
                bar.set_postfix_str(tune_log.postfix())
            for trial in active:
                tune_log.stopped(trial.number, trial.params, trial.reached, "the budget ends before its next rung")
                study.tell(trial.handle, state=optuna.trial.TrialState.PRUNED)
            best = self._best(study)
            test = self._test(train, best, tune_log) if s.test and best is not None else None
        summary = tune_log.summary(best, test, self.rungs, time.perf_counter() - started, study.study_name)
        if best is not None:
            write_best(self.output / "best.yaml", self.trial_config(best.params, split="test"), summary)
        write_plot(self.output / "best_seen.png", tune_log.lines, s)
        (self.output / "tune.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        return summary

    # -- scheduling ------------------------------------------------------------------------------------------
    def _length(self, trial: _Trial) -> int:
        return self.rungs[trial.rung] - trial.reached

    def _next_batch(self, study: Any, active: list[_Trial], tune_log: TuneLog) -> tuple[list[_Trial], list[_Trial]]:
        """Promoted trials first, lowest number first; one whose next rung no longer fits the budget stops."""
        batch: list[_Trial] = []
        waiting: list[_Trial] = []
        for trial in active:
            if tune_log.consumed + self._length(trial) > self.settings.budget:
                import optuna

                tune_log.stopped(trial.number, trial.params, trial.reached, "the budget ends before its next rung")
                study.tell(trial.handle, state=optuna.trial.TrialState.PRUNED)
            elif len(batch) < self.settings.batch and \
                    tune_log.consumed + sum(self._length(t) for t in batch) + self._length(trial) <= \
                    self.settings.budget:
                batch.append(trial)
            else:
                waiting.append(trial)
        return batch, waiting

    def _ask(self, study: Any) -> _Trial:
        handle = study.ask()
        params = self.space.suggest(handle, self.fedex)
        handle.set_user_attr("values", params)
        return _Trial(handle, params, self.trial_config(params))

    def _job(self, trial: _Trial) -> Rung:
        stop = self.rungs[trial.rung]
        out = self.output / "trials" / f"{trial.number:05d}" / f"rung-{trial.rung}"
        return Rung(trial.number, trial.rung, trial.config.model_dump(mode="json"), trial.reached, stop,
                    trial.snapshot, str(out))

    def _judge(self, study: Any, trial: _Trial, result: RungResult, tune_log: TuneLog) -> bool:
        """Report the rung's validation metrics to Optuna; True if the trial goes on to its next rung."""
        import optuna

        metric = self.settings.metric
        values = [(r["round"], r[metric]) for r in result.rows if metric in r]
        if result.error is not None or not values:
            reason = result.error or f"no {metric} was evaluated (does evaluation.every skip its rounds?)"
            study.tell(trial.handle, state=optuna.trial.TrialState.FAIL)
            tune_log.rung(trial.number, trial.rung, trial.params, result, None, "failed", reason)
            return False
        for step, value in values:
            trial.handle.report(value, step)
        value = values[-1][1]
        trial.reached, trial.snapshot = result.reached, result.snapshot
        if result.finished:
            study.tell(trial.handle, value)
            state = "complete"
        elif trial.handle.should_prune():
            study.tell(trial.handle, state=optuna.trial.TrialState.PRUNED)
            state = "pruned"
        else:
            trial.rung += 1
            state = "promoted"
        tune_log.rung(trial.number, result.rung, trial.params, result, value, state)
        return state == "promoted"

    # -- the end ------------------------------------------------------------------------------------------------
    def _best(self, study: Any) -> Any:
        import optuna

        complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
        if not complete:
            log.warning("no_trial_completed", hint="raise --budget: no trial reached its full fidelity")
            return None
        best = study.best_trial
        # the config values the trial ran with (FedEx's fixed candidates are not Optuna parameters)
        return _Best(best.number, dict(best.user_attrs.get("values", best.params)), float(best.value))

    def _test(self, train: Callable[[list[Rung]], list[RungResult]], best: Any, tune_log: TuneLog) -> dict[str, Any]:
        """The chosen config, trained again to full fidelity and evaluated on the test split: the only time the
        tuner looks at it. Not counted in the budget."""
        trained = [line for line in tune_log.lines if line["trial"] == best.number and line["state"] == "complete"]
        config = self.trial_config(best.params, split="test")
        # exactly the rounds the trial trained, and no early stop: on the test split that would judge by test data
        rounds = trained[-1]["rounds"] if trained else self.r_max
        config = config.model_copy(update={"rounds": rounds, "evaluation": config.evaluation.model_copy(
            update={"patience": 0, "stop_at_target": False})})
        job = Rung(best.number, -1, config.model_dump(mode="json"), 0, rounds, None, str(self.output / "best"))
        result, = train([job])
        if result.error is not None:
            raise FscoreError(f"the chosen config (trial {best.number}) failed its test run: {result.error}")
        last = result.rows[-1] if result.rows else {}
        return {"trial": best.number, "rounds": result.reached, "model_sha256": result.model_sha256,
                # the split evaluated on changes nothing a sync course trains, so this is the trial's own model
                "same_model_as_trial": bool(trained) and trained[-1]["model_sha256"] == result.model_sha256,
                # the participants' test splits; heldout.* is the coordinator's own set, which trials saw too
                "metrics": {k: v for k, v in last.items() if k.startswith("clients.")},
                "output": str(self.output / "best")}

    # -- where things live --------------------------------------------------------------------------------------
    def _storage(self) -> Any:
        if self.settings.storage:
            return self.settings.storage
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(self.output / "study.journal")))

    @contextmanager
    def _runner(self) -> Iterator[Callable[[list[Rung]], list[RungResult]]]:
        if self.settings.jobs == 1:
            yield lambda jobs: [_guarded(job) for job in jobs]
            return
        import multiprocessing

        with ProcessPoolExecutor(max_workers=self.settings.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=worker_init) as pool:
            yield lambda jobs: list(pool.map(_guarded, jobs))


def _guarded(job: Rung) -> RungResult:
    """A rung whose course fails (stalls, refuses its config, a trainer raises) fails its trial, not the study.
    It is charged its planned rounds: how far it got is unknown, and a budget that failures did not spend would
    let a space where every trial fails be searched for ever."""
    try:
        return run_rung(job)
    except Exception as exc:  # noqa: BLE001 - whatever a user's config or trainer raises fails only its trial
        return RungResult(job.trial, job.rung, job.start, job.stop, True,
                          error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")

