"""The coordinator (FL server) and its default handlers: sync and async courses as <event, handler> pairs.

    start                      -> open_joining       emits alarm   (the join deadline, when there is one)
    message:join_in            -> on_join_in         emits assign_id, or refuse (its model does not fit)
    condition:all_joined_in    -> begin_training     emits model_parameters, alarm
    message:model_update       -> on_model_update    (validates; buffers, or drops if too stale)
    message:alarm              -> on_alarm           (the join deadline passed, the time_up timer rang, or a
                                                      reply deadline passed: emits model_parameters to replace
                                                      participants given up on)
    condition:all_received     -> aggregate          emits evaluate, model_parameters, alarm
    condition:goal_achieved    -> aggregate
    condition:time_up          -> aggregate
    message:metrics            -> on_metrics         (stores)
    condition:all_evaluated    -> record_evaluation
    condition:max_rounds_reached, early_stopped, target_reached -> finish_course   emits finish
    condition:next_round_due   -> next_round         emits model_parameters, alarm
    condition:participant_idle -> dispatch           emits model_parameters   (after_receiving)

Which trigger, broadcast manner, sampler and staleness toleration apply is the course's
:class:`~fscore.strategy.Strategy` (paper §3.3); the conditions read it, so Sync-vanilla,
Sync-OS and the async strategies are the same handlers with different settings.

Works on numpy arrays decoded from the wire and imports no ML framework.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
import structlog

from fscore.aggregators.base import Aggregator, ClientUpdate
from fscore.config import StrategyConfig
from fscore.content import check_after, check_finite, nbytes
from fscore.coordinator.alarms import Alarms
from fscore.coordinator.conditions import default_conditions
from fscore.coordinator.evaluation import Evaluating
from fscore.coordinator.joining import Joining
from fscore.coordinator.state import Aggregation, CoordinatorState, CoursePlan, Evaluation
from fscore.errors import RejectedMessage
from fscore.events import START, on_condition, on_message
from fscore.message import (
    ALARM,
    ASSIGN_ID,
    COORDINATOR,
    EVALUATE,
    FINISH,
    JOIN_IN,
    METRICS,
    MODEL_PARAMETERS,
    MODEL_UPDATE,
    REFUSE,
    Message,
    MessageCatalog,
)
from fscore.samplers import Sampler
from fscore.strategy import Strategy
from fscore.worker import BaseWorker, Outbox

log = structlog.get_logger("fscore.coordinator")


class Evaluator(Protocol):
    """Evaluates the global model on the coordinator's held-out set; optional, and framework-specific."""

    def __call__(self, params: Mapping[str, np.ndarray]) -> dict[str, float]: ...


class Coordinator(Joining, Alarms, Evaluating, BaseWorker):
    """The FL server: its handlers by phase live in the parts it is made of (joining, alarms, evaluation);
    training and aggregation are here."""

    role = COORDINATOR
    #: from the config (a restored course may run more rounds), or wired by the process
    snapshot_exclude = ("plan", "strategy", "evaluator", "on_evaluation", "on_aggregation", "clock")

    def __init__(self, address: str, course: str, catalog: MessageCatalog, outbox: Outbox, *, plan: CoursePlan,
                 initial_params: Mapping[str, np.ndarray], aggregator: Aggregator, sampler: Sampler,
                 rng: np.random.Generator, evaluator: Evaluator | None = None,
                 on_evaluation: Callable[[Evaluation], None] | None = None,
                 on_aggregation: Callable[[Aggregation], None] | None = None, strategy: Strategy | None = None,
                 clock: str = "virtual", incarnation: str = "0") -> None:
        self.plan = plan
        self.strategy = strategy or Strategy.from_config(StrategyConfig(), plan.sample_size or plan.participants)
        self.params: dict[str, np.ndarray] = dict(initial_params)
        self.versions: dict[int, dict[str, np.ndarray]] = {0: self.params}  # models busy participants started from
        self.aggregator = aggregator
        self.sampler = sampler
        self.rng = rng
        self.evaluator = evaluator
        self.on_evaluation = on_evaluation
        self.on_aggregation = on_aggregation
        #: "virtual": the time_up alarm is sent at once, stamped with its deadline, and the network delivers it
        #: in timestamp order; "wall": the service loop calls ring_alarm() when the budget has passed.
        self.clock = clock
        self.state = CoordinatorState()
        super().__init__(address, course, catalog, outbox, incarnation)

    @property
    def finished(self) -> bool:
        return self.state.phase == "finished"

    def install_default_handlers(self) -> None:
        for condition in default_conditions(self.strategy):
            self.add_condition(condition)
        timed = self.strategy.trigger == "time_up" or self.strategy.reply_timeout_s is not None
        alarm = [ALARM] if timed else []
        self.register(START, self.open_joining, emits=[ALARM])
        self.register(on_message(JOIN_IN), self.on_join_in, emits=[ASSIGN_ID, REFUSE])
        self.register(on_condition("all_joined_in"), self.begin_training, emits=[MODEL_PARAMETERS, *alarm])
        self.register(on_message(MODEL_UPDATE), self.on_model_update)
        replacing = [MODEL_PARAMETERS, ALARM] if self.strategy.reply_timeout_s is not None else []
        self.register(on_message(ALARM), self.on_alarm, emits=replacing)
        for trigger in ("all_received", "goal_achieved", "time_up"):
            self.register(on_condition(trigger), self.aggregate, emits=[EVALUATE, MODEL_PARAMETERS, *alarm])
        self.register(on_message(METRICS), self.on_metrics)
        self.register(on_condition("all_evaluated"), self.record_evaluation)
        for reason in ("max_rounds_reached", "early_stopped", "target_reached"):
            self.register(on_condition(reason), self.finish_course, emits=[FINISH])
        self.register(on_condition("next_round_due"), self.next_round, emits=[MODEL_PARAMETERS, *alarm])
        self.register(on_condition("participant_idle"), self.dispatch, emits=[MODEL_PARAMETERS, *alarm])

    # -- training -------------------------------------------------------------------------

    def begin_training(self, _: Message | None = None) -> None:
        self.state.phase = "training"
        self._start_round()

    def next_round(self, _: Message | None = None) -> None:
        self.state.phase = "training"
        self._start_round()

    def _start_round(self) -> None:
        self._send_models()
        self._schedule_alarm()

    def dispatch(self, _: Message | None = None) -> None:
        """after_receiving: the current model goes to an idle participant as soon as another one reports."""
        self._send_models()

    def _send_models(self) -> None:
        """Send the current model: to a fresh cohort (sync), or to enough idle participants to keep the
        concurrency (async)."""
        s, st = self.state, self.strategy
        idle = self.candidates()
        wanted = st.concurrency if st.synchronous else st.concurrency - len(s.requests.busy)
        if wanted <= 0 or not idle:
            return
        self.sampler.at(s.round, self.now)
        chosen = self.sampler.sample(idle, wanted, self.rng, response_times=s.membership.response_times)
        s.requests.sampled = tuple(chosen)
        dispatch = self._dispatched()
        for address in chosen:
            s.requests.busy[address] = s.round
            s.requests.requested[address] = dispatch
            s.requests.sent_at[address] = self.now
            s.requests.trained[address] = s.requests.trained.get(address, 0) + 1
        log.debug("models_sent", course=self.course, round=s.round, receivers=len(chosen), busy=len(s.requests.busy))
        self.send(MODEL_PARAMETERS, chosen, s.round, {"tensors": self.params})

    def candidates(self) -> list[str]:
        """Who may be sent a model: the idle participants, except those given up on; if that leaves no one and
        no one is training, everyone idle (the course would stall otherwise, so the unresponsive get another go)."""
        s = self.state
        idle = [a for a in s.membership.participants if a not in s.requests.busy]
        responsive = [a for a in idle if a not in s.membership.unresponsive]
        return responsive if responsive or s.requests.busy else idle

    def on_model_update(self, msg: Message) -> None:
        s, st = self.state, self.strategy
        if msg.sender not in s.membership.participants:
            raise RejectedMessage(f"model_update from unknown sender {msg.sender!r}")
        if s.phase not in ("training", "evaluating", "round_done"):
            raise RejectedMessage(f"model_update from {msg.sender!r} for round {msg.round}, but the course is "
                                  f"{s.phase} (round {s.round})")
        sent = s.requests.busy.get(msg.sender)
        if sent is None and s.membership.unresponsive.pop(msg.sender, None) is not None:
            raise RejectedMessage(f"model_update from {msg.sender!r} for round {msg.round} came after its reply "
                                  f"deadline; the course went on without it (id {msg.id})")
        if sent is None:
            raise RejectedMessage(f"second model_update from {msg.sender!r}, or one it was not asked for: it has no "
                                  f"model out for training (update is for round {msg.round}, id {msg.id})")
        if msg.round != sent:
            raise RejectedMessage(f"model_update from {msg.sender!r} is for round {msg.round}, but it was sent the "
                                  f"model of round {sent}")
        p = msg.payload
        self._check_tensors(msg.sender, p["tensors"])
        declared = s.membership.participants[msg.sender].num_train_samples
        if not 0 < p["num_samples"] <= declared * self.plan.max_samples_factor:
            raise RejectedMessage(f"model_update from {msg.sender!r} claims num_samples {p['num_samples']}; it "
                                  f"declared {declared} training samples at join (limits.max_samples_factor "
                                  f"{self.plan.max_samples_factor:g})")
        check_finite(f"model_update from {msg.sender!r}", p["tensors"], p["train_metrics"])
        check_after(msg, s.requests.sent_at.get(msg.sender), "the model it answers")
        del s.requests.busy[msg.sender], s.requests.requested[msg.sender]
        s.membership.unresponsive.pop(msg.sender, None)  # it had been given another go, and answered in time
        s.membership.response_times[msg.sender] = msg.timestamp - s.requests.sent_at.pop(msg.sender, msg.timestamp)
        self.sampler.at(s.round, self.now)
        self.sampler.feedback(msg.sender, num_samples=p["num_samples"], metrics=p["train_metrics"],
                              duration=s.membership.response_times[msg.sender])
        staleness = s.round - msg.round
        if staleness > st.toleration:
            s.buffer.dropped.append((msg.sender, staleness))
            log.debug("stale_update_dropped", course=self.course, participant=msg.sender, staleness=staleness,
                      toleration=st.toleration)
            return
        s.buffer.updates.append(ClientUpdate(msg.sender, p["tensors"], p["num_samples"], msg.round, staleness,
                                      weight=st.weight(staleness),
                                      base=self.versions[msg.round] if staleness else None,
                                      metrics=p["train_metrics"]))

    def _check_tensors(self, sender: str, tensors: Mapping[str, np.ndarray]) -> None:
        expected = self.params
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        private = sorted(set(extra) & set(self.plan.private))
        if private:
            raise RejectedMessage(f"participant {sender} sent private parameters {private}: they never leave a "
                                  "participant (model.share, personalization), so the update is refused")
        if missing or extra:
            raise RejectedMessage(f"participant {sender} sent tensors that do not match the course model: "
                                  f"missing {missing}, unexpected {extra}")
        for name, ref in expected.items():
            got = tensors[name]
            if got.shape != ref.shape:
                raise RejectedMessage(f"participant {sender} sent tensor `{name}` with shape {got.shape}; "
                                      f"the course expects {ref.shape}")
            if got.dtype != ref.dtype:
                raise RejectedMessage(f"participant {sender} sent tensor `{name}` as {got.dtype}; "
                                      f"the course expects {ref.dtype}")

    def aggregate(self, _: Message | None = None) -> None:
        s, st = self.state, self.strategy
        s.timer.rang = False
        if not s.buffer.updates:  # time_up with nothing in time, or every update dropped: same model, new budget
            self._start_round()
            return
        updates = sorted(s.buffer.updates, key=lambda u: (u.sender, u.base_round))
        self.params = self.aggregator.aggregate(self.params, updates)
        s.round += 1
        self.versions[s.round] = self.params
        # Keep only the models someone is still training from and whose updates would not be too stale:
        # memory is bounded by the concurrency, not by the toleration.
        needed = {s.round, *(r for r in s.requests.busy.values() if r >= s.round - st.toleration)}
        for old in [r for r in self.versions if r not in needed]:
            del self.versions[old]
        record = Aggregation(s.round, self.now, tuple(u.sender for u in updates),
                             tuple(u.staleness for u in updates), tuple(s.buffer.dropped),
                             update_bytes=sum(nbytes(u.params) for u in updates), model_bytes=nbytes(self.params))
        s.aggregations.append(record)
        s.last_aggregated = record.senders
        s.buffer.updates, s.buffer.dropped = [], []
        log.debug("aggregated", course=self.course, round=s.round, updates=len(updates))
        if self.on_aggregation is not None:
            self.on_aggregation(record)
        due = s.round % self.plan.eval_every == 0 or s.round >= self.plan.rounds
        if due and st.evaluates_participants:
            s.evaluation.replies = {}
            s.evaluation.evaluators = tuple(a for a in s.membership.participants if a not in s.membership.unresponsive)
            s.phase = "evaluating"  # with nobody to ask, all_evaluated holds at once
            if s.evaluation.evaluators:
                s.evaluation.dispatch = self._dispatched()
                s.evaluation.sent_at = self.now
                self.send(EVALUATE, list(s.evaluation.evaluators), s.round, {"tensors": self.params})
        elif due:
            self._record({})
        else:
            s.phase = "round_done"

    def finish_course(self, _: Message | None = None) -> None:
        s = self.state
        if s.round >= self.plan.rounds:
            s.finish_reason = "max_rounds_reached"
        elif self.plan.stop_at_target and s.progress.target_reached:
            s.finish_reason = "target_reached"
        else:
            s.finish_reason = "early_stopped"
        s.phase = "finished"
        log.info("course_finished", course=self.course, round=s.round, reason=s.finish_reason)
        self.send(FINISH, list(s.membership.participants), s.round, {"reason": s.finish_reason, "tensors": self.params})

