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
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import structlog

from fscore.aggregators.base import Aggregator, ClientUpdate
from fscore.conditions import Condition
from fscore.config import StrategyConfig
from fscore.content import check_after, check_finite, check_join_numbers
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
from fstranslation import spec_problem
from fstranslation.layout import TensorSpec, layout_differences, layout_of

log = structlog.get_logger("fscore.coordinator")


@dataclass(frozen=True)
class CoursePlan:
    participants: int
    rounds: int
    sample_size: int | None = None
    eval_every: int = 1
    patience: int = 0
    min_delta: float = 0.0
    metric: str = "accuracy"
    target: float | None = None  # the metric value time-to-target is measured against
    stop_at_target: bool = False
    join_timeout_s: float | None = None  # start with whoever joined this long after the coordinator started
    min_participants: int = 1  # ...if at least this many did
    max_samples_factor: float = 1.0  # an update may claim at most this x the samples its sender declared


@dataclass(frozen=True)
class ParticipantInfo:
    address: str
    id: int
    num_train_samples: int
    num_test_samples: int
    backend: str


@dataclass(frozen=True)
class Evaluation:
    round: int
    virtual_time: float
    metrics: dict[str, float]
    aggregated: tuple[str, ...]


@dataclass(frozen=True)
class Aggregation:
    """One aggregation: who contributed at which staleness, and which updates were dropped since the last one."""

    round: int  # the model version it produced
    virtual_time: float
    senders: tuple[str, ...]
    staleness: tuple[int, ...]
    dropped: tuple[tuple[str, int], ...] = ()  # (sender, staleness) of updates over the toleration


class Evaluator(Protocol):
    """Evaluates the global model on the coordinator's held-out set; optional, and framework-specific."""

    def __call__(self, params: Mapping[str, np.ndarray]) -> dict[str, float]: ...


@dataclass
class CoordinatorState:
    phase: str = "joining"  # joining -> training <-> evaluating/round_done -> finished
    round: int = 0  # the global model's version: how many aggregations produced it
    participants: dict[str, ParticipantInfo] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # address -> why its model does not fit the layout
    busy: dict[str, int] = field(default_factory=dict)  # address -> round of the model it is training from
    sent_at: dict[str, float] = field(default_factory=dict)  # address -> virtual time its model was sent
    sampled: tuple[str, ...] = ()  # the latest dispatch
    updates: list[ClientUpdate] = field(default_factory=list)  # the buffer of accepted updates
    dropped: list[tuple[str, int]] = field(default_factory=list)  # (sender, staleness) since the last aggregation
    response_times: dict[str, float] = field(default_factory=dict)  # estimated, then observed
    join_closed: bool = False  # the join deadline passed: the course starts with min_participants
    budget: int = 0  # time_up: the number of the current time budget (0: none yet, and the join deadline's)
    dispatch: int = 0  # numbers each batch of requests (models or evaluate); reply deadlines name one
    requested: dict[str, int] = field(default_factory=dict)  # busy address -> dispatch of its model
    eval_dispatch: int = 0  # the dispatch that asked the current evaluators
    eval_sent_at: float = 0.0  # virtual time the current evaluate request went out
    unresponsive: dict[str, int] = field(default_factory=dict)  # given up on (-> dispatch); not sampled
    timeouts: dict[str, int] = field(default_factory=dict)  # address -> requests it was given up on
    deadline: float | None = None  # time_up: the end of the current budget, in virtual time
    alarm_rang: bool = False
    evaluators: tuple[str, ...] = ()  # asked to evaluate the current model
    eval_replies: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)
    last_aggregated: tuple[str, ...] = ()
    history: list[Evaluation] = field(default_factory=list)
    aggregations: list[Aggregation] = field(default_factory=list)
    best: float | None = None
    evals_without_improvement: int = 0
    target_reached: bool = False
    finish_reason: str = ""


class Coordinator(BaseWorker):
    role = COORDINATOR

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
        # What can make a condition hold; the completeness check draws its edges from this.
        timed = self.strategy.trigger == "time_up" or self.strategy.reply_timeout_s is not None
        alarm = [ALARM] if timed else []
        training = [MODEL_UPDATE, *alarm]
        after = [*training, METRICS]
        for name, check, watches in (
            ("all_joined_in", _all_joined_in, [JOIN_IN, ALARM]),
            ("all_received", _all_received, training),
            ("goal_achieved", _goal_achieved, training),
            ("time_up", _time_up, training),
            ("all_evaluated", _all_evaluated, [METRICS, *alarm]),
            ("max_rounds_reached", _max_rounds_reached, after),
            ("early_stopped", _early_stopped, after),
            ("target_reached", _target_reached, after),
            ("next_round_due", _next_round_due, after),
            ("participant_idle", _participant_idle, training),
        ):
            self.add_condition(Condition.of(name, check, watches))
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

    # -- joining --------------------------------------------------------------------------

    def open_joining(self, _: Message | None = None) -> None:
        """With a join deadline in virtual time, the alarm that ends joining is sent at once, stamped with
        the deadline; on the wall clock the service loop rings it (:meth:`ring_join_deadline`)."""
        if self.plan.join_timeout_s is not None and self.clock == "virtual":
            self.send(ALARM, [self.address], 0, {"budget": 0, "deadline": self.plan.join_timeout_s, "kind": "join"},
                      timestamp=self.plan.join_timeout_s)

    def ring_join_deadline(self) -> None:
        """Wall clock: joining has lasted ``join_timeout_s``; the alarm goes through the inbox, to be replayed."""
        if self.state.phase == "joining" and not self.state.join_closed:
            self.send(ALARM, [self.address], 0, {"budget": 0, "deadline": self.now, "kind": "join"})

    def on_join_in(self, msg: Message) -> None:
        s = self.state
        p = msg.payload
        if p["address"] != msg.sender:
            raise RejectedMessage(f"join_in from {msg.sender!r} claims address {p['address']!r}")
        if s.phase == "finished":  # a participant process checks the meta topic for this before joining
            raise RejectedMessage(f"join_in from {msg.sender!r} after the course finished (round {s.round})")
        check_join_numbers(msg.sender, p)
        declared = self._declared_layout(p.get("layout", []))  # raises for a malformed one
        info = s.participants.get(msg.sender)
        if info is None:
            known = len(s.participants) + len(s.refused) - (msg.sender in s.refused)
            if known >= self.plan.participants:
                raise RejectedMessage(f"join_in from {msg.sender!r}: the course is full "
                                      f"({self.plan.participants} participants)")
            # none declared: trusted
            problems = layout_differences(declared, layout_of(self.params)) if declared else []
        s.unresponsive.pop(msg.sender, None)  # heard from again
        if info is None:
            s.refused.pop(msg.sender, None)  # a refused participant may come back with a model that fits
            if problems:
                self._refuse(msg.sender, p["backend"], problems)
                return
            # Once the course has started, a late joiner is admitted too: the next dispatch may sample it.
            info = ParticipantInfo(msg.sender, len(s.participants), p["num_train_samples"], p["num_test_samples"],
                                   p["backend"])
            s.participants[msg.sender] = info
            estimate = self._expected_response_time(p)
            if estimate is not None:
                s.response_times[msg.sender] = estimate
            log.debug("joined", course=self.course, participant=msg.sender, id=info.id, phase=s.phase)
        # A participant that joins again (e.g. after a restart) gets its id again.
        self.send(ASSIGN_ID, [msg.sender], s.round, {"participant_id": info.id, "address": msg.sender})

    def _declared_layout(self, declared: list[Mapping[str, Any]]) -> dict[str, TensorSpec]:
        """A participant's declared model layout; untrusted, so checked before anything is built from it."""
        layout = {}
        for d in declared:
            problem = spec_problem(d["name"], d["dtype"], d["shape"], self.catalog.limits)
            if problem is not None:
                raise RejectedMessage(f"join_in declares a malformed layout: {problem}")
            layout[d["name"]] = TensorSpec(tuple(d["shape"]), d["dtype"])
        return layout

    def _refuse(self, address: str, backend: str, problems: list[str]) -> None:
        """Refuse a participant whose model does not fit: it is told why and the course goes on without it."""
        reason = f"refused: {address} ({backend}) does not match the agreed layout: " + "; ".join(problems)
        self.state.refused[address] = reason
        log.warning("participant_refused", course=self.course, participant=address, reason=reason)
        self.send(REFUSE, [address], 0, {"reason": reason})

    def _expected_response_time(self, join: Mapping[str, Any]) -> float | None:
        """A first guess from the device a participant reports: one pass over its data, the model both ways."""
        compute, bandwidth = join.get("compute_s_per_sample", 0.0), join.get("bandwidth_bytes_per_s", 0.0)
        if bandwidth <= 0:
            return None
        model_bytes = sum(int(t.nbytes) for t in self.params.values())
        return float(join["num_train_samples"] * compute + 2 * model_bytes / bandwidth)

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
        wanted = st.concurrency if st.synchronous else st.concurrency - len(s.busy)
        if wanted <= 0 or not idle:
            return
        chosen = self.sampler.sample(idle, wanted, self.rng, response_times=s.response_times)
        s.sampled = tuple(chosen)
        dispatch = self._dispatched()
        for address in chosen:
            s.busy[address] = s.round
            s.requested[address] = dispatch
            s.sent_at[address] = self.now
        log.debug("models_sent", course=self.course, round=s.round, receivers=len(chosen), busy=len(s.busy))
        self.send(MODEL_PARAMETERS, chosen, s.round, {"tensors": self.params})

    def candidates(self) -> list[str]:
        """Who may be sent a model: the idle participants, except those given up on; if that leaves no one and
        no one is training, everyone idle (the course would stall otherwise, so the unresponsive get another go)."""
        s = self.state
        idle = [a for a in s.participants if a not in s.busy]
        responsive = [a for a in idle if a not in s.unresponsive]
        return responsive if responsive or s.busy else idle

    def _dispatched(self) -> int:
        """Numbers a batch of requests. With a reply timeout on the virtual clock, the batch's deadline goes
        into the inbox now, stamped with its time; on the wall clock the service loop rings it."""
        s = self.state
        s.dispatch += 1
        timeout = self.strategy.reply_timeout_s
        if timeout is not None and self.clock == "virtual":
            deadline = self.now + timeout
            self.send(ALARM, [self.address], s.round, {"budget": s.dispatch, "deadline": deadline, "kind": "reply"},
                      timestamp=deadline)
        return s.dispatch

    def _schedule_alarm(self) -> None:
        s, st = self.state, self.strategy
        if st.trigger != "time_up" or st.time_budget_s is None:
            return
        s.budget += 1
        s.deadline = self.now + st.time_budget_s
        s.alarm_rang = False
        if self.clock == "virtual":
            self.send(ALARM, [self.address], s.round, self._alarm_payload(), timestamp=s.deadline)

    def _alarm_payload(self) -> dict[str, Any]:
        return {"budget": self.state.budget, "deadline": self.state.deadline, "kind": "time_up"}

    def ring_alarm(self) -> None:
        """Wall clock: the service loop calls this when the round's budget has passed. The alarm goes
        through the inbox, so it is ordered with the updates and a replay sees it where the live run did."""
        s = self.state
        if s.budget and s.phase == "training" and not s.alarm_rang:
            self.send(ALARM, [self.address], s.round, self._alarm_payload())

    def ring_reply_deadline(self, dispatch: int) -> None:
        """Wall clock: ``reply_timeout_s`` has passed since ``dispatch`` was sent. Rung only if a request of it
        (or an earlier one) is still unanswered, so a course that keeps up writes no alarms."""
        if self.unanswered(dispatch) != ([], []):
            self.send(ALARM, [self.address], self.state.round, {"budget": dispatch, "deadline": self.now,
                                                                "kind": "reply"})

    def unanswered(self, dispatch: int) -> tuple[list[str], list[str]]:
        """Who still owes an update, and who still owes metrics, for requests of ``dispatch`` or earlier."""
        s = self.state
        training = sorted(a for a, n in s.requested.items() if n <= dispatch)
        evaluating = []
        if s.phase == "evaluating" and s.eval_dispatch <= dispatch:
            evaluating = [a for a in s.evaluators if a not in s.eval_replies]
        return training, evaluating

    def on_alarm(self, msg: Message) -> None:
        s = self.state
        if msg.sender != self.address:
            raise RejectedMessage(f"alarm from {msg.sender!r}: only the coordinator sets its own timer")
        if msg.payload.get("kind") == "reply":
            self._give_up(msg.payload["budget"])
        elif msg.payload["budget"] == 0:  # the join deadline (kind join; version-1 alarms have no kind)
            if s.phase == "joining":
                s.join_closed = True
                log.info("join_deadline", course=self.course, joined=len(s.participants), refused=len(s.refused),
                         expected=self.plan.participants, needed=self.plan.min_participants)
        elif s.phase == "training" and msg.payload["budget"] == s.budget:
            s.alarm_rang = True  # an alarm of an earlier budget is simply out of date

    def _give_up(self, dispatch: int) -> None:
        """A reply deadline passed: the round goes on without whoever has not answered a request of ``dispatch``
        or earlier. They are not sampled or asked to evaluate until heard from again (a late reply, a join).
        A sync round aggregates what arrived; an async course hands their places to others at once."""
        s, st = self.state, self.strategy
        training, evaluating = self.unanswered(dispatch)
        for address in training:
            del s.busy[address], s.requested[address]
            waited = self.now - s.sent_at.pop(address, self.now)
            s.response_times[address] = max(s.response_times.get(address, 0.0), waited, st.reply_timeout_s or 0.0)
        if evaluating:
            s.evaluators = tuple(a for a in s.evaluators if a in s.eval_replies)
        for address in [*training, *evaluating]:
            s.unresponsive[address] = dispatch
            s.timeouts[address] = s.timeouts.get(address, 0) + 1
        if training or evaluating:
            log.warning("reply_deadline_passed", course=self.course, round=s.round, dispatch=dispatch,
                        no_update=training, no_metrics=evaluating, timeout_s=st.reply_timeout_s)
        if training and s.phase == "training" and st.trigger != "all_received" and not st.synchronous:
            self._send_models()  # all_received instead ends the round once nobody is left training

    def on_model_update(self, msg: Message) -> None:
        s, st = self.state, self.strategy
        if msg.sender not in s.participants:
            raise RejectedMessage(f"model_update from unknown sender {msg.sender!r}")
        if s.phase not in ("training", "evaluating", "round_done"):
            raise RejectedMessage(f"model_update from {msg.sender!r} for round {msg.round}, but the course is "
                                  f"{s.phase} (round {s.round})")
        sent = s.busy.get(msg.sender)
        if sent is None and s.unresponsive.pop(msg.sender, None) is not None:
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
        declared = s.participants[msg.sender].num_train_samples
        if not 0 < p["num_samples"] <= declared * self.plan.max_samples_factor:
            raise RejectedMessage(f"model_update from {msg.sender!r} claims num_samples {p['num_samples']}; it "
                                  f"declared {declared} training samples at join (limits.max_samples_factor "
                                  f"{self.plan.max_samples_factor:g})")
        check_finite(f"model_update from {msg.sender!r}", p["tensors"], p["train_metrics"])
        check_after(msg, s.sent_at.get(msg.sender), "the model it answers")
        del s.busy[msg.sender], s.requested[msg.sender]
        s.unresponsive.pop(msg.sender, None)  # it had been given another go, and answered in time
        s.response_times[msg.sender] = msg.timestamp - s.sent_at.pop(msg.sender, msg.timestamp)
        self.sampler.feedback(msg.sender, num_samples=p["num_samples"], metrics=p["train_metrics"],
                              duration=s.response_times[msg.sender])
        staleness = s.round - msg.round
        if staleness > st.toleration:
            s.dropped.append((msg.sender, staleness))
            log.debug("stale_update_dropped", course=self.course, participant=msg.sender, staleness=staleness,
                      toleration=st.toleration)
            return
        s.updates.append(ClientUpdate(msg.sender, p["tensors"], p["num_samples"], msg.round, staleness,
                                      weight=st.weight(staleness),
                                      base=self.versions[msg.round] if staleness else None,
                                      metrics=p["train_metrics"]))

    def _check_tensors(self, sender: str, tensors: Mapping[str, np.ndarray]) -> None:
        expected = self.params
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
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
        s.alarm_rang = False
        if not s.updates:  # time_up with nothing in time, or every update dropped: same model, new budget
            self._start_round()
            return
        updates = sorted(s.updates, key=lambda u: (u.sender, u.base_round))
        self.params = self.aggregator.aggregate(self.params, updates)
        s.round += 1
        self.versions[s.round] = self.params
        # Keep only the models someone is still training from and whose updates would not be too stale:
        # memory is bounded by the concurrency, not by the toleration.
        needed = {s.round, *(r for r in s.busy.values() if r >= s.round - st.toleration)}
        for old in [r for r in self.versions if r not in needed]:
            del self.versions[old]
        record = Aggregation(s.round, self.now, tuple(u.sender for u in updates),
                             tuple(u.staleness for u in updates), tuple(s.dropped))
        s.aggregations.append(record)
        s.last_aggregated = record.senders
        s.updates, s.dropped = [], []
        log.debug("aggregated", course=self.course, round=s.round, updates=len(updates))
        if self.on_aggregation is not None:
            self.on_aggregation(record)
        due = s.round % self.plan.eval_every == 0 or s.round >= self.plan.rounds
        if due and st.evaluates_participants:
            s.eval_replies = {}
            s.evaluators = tuple(a for a in s.participants if a not in s.unresponsive)
            s.phase = "evaluating"  # with nobody to ask, all_evaluated holds at once
            if s.evaluators:
                s.eval_dispatch = self._dispatched()
                s.eval_sent_at = self.now
                self.send(EVALUATE, list(s.evaluators), s.round, {"tensors": self.params})
        elif due:
            self._record({})
        else:
            s.phase = "round_done"

    # -- evaluation -----------------------------------------------------------------------

    def on_metrics(self, msg: Message) -> None:
        s = self.state
        if msg.sender not in s.participants:
            raise RejectedMessage(f"metrics from unknown sender {msg.sender!r}")
        if msg.sender not in s.evaluators and s.unresponsive.pop(msg.sender, None) is not None:
            raise RejectedMessage(f"metrics from {msg.sender!r} for round {msg.round} came after its reply deadline "
                                  f"(id {msg.id})")
        if s.phase != "evaluating" or msg.round != s.round or msg.sender not in s.evaluators:
            raise RejectedMessage(f"metrics from {msg.sender!r} are for round {msg.round}, but the course is at "
                                  f"round {s.round} ({s.phase})")
        p = msg.payload
        declared = s.participants[msg.sender].num_test_samples
        if not 0 <= p["num_samples"] <= declared * self.plan.max_samples_factor:
            raise RejectedMessage(f"metrics from {msg.sender!r} claim num_samples {p['num_samples']}; it declared "
                                  f"{declared} test samples at join")
        check_finite(f"metrics from {msg.sender!r}", {}, p["values"])
        check_after(msg, s.eval_sent_at, "the evaluate request it answers")
        s.eval_replies[msg.sender] = (p["num_samples"], dict(p["values"]))
        s.unresponsive.pop(msg.sender, None)  # heard from (it may have missed a training deadline meanwhile)

    def record_evaluation(self, _: Message | None = None) -> None:
        self._record(_weighted_metrics(self.state.eval_replies.values(), prefix="clients."))

    def _record(self, metrics: dict[str, float]) -> None:
        s = self.state
        if self.evaluator is not None:
            metrics.update({f"heldout.{k}": v for k, v in self.evaluator(self.params).items()})
        evaluation = Evaluation(s.round, self.now, metrics, s.last_aggregated)
        s.history.append(evaluation)
        self._track_progress(metrics)
        s.phase = "round_done"
        log.info("evaluated", course=self.course, round=s.round, virtual_time=round(self.now, 3),
                 **{k: round(v, 4) for k, v in metrics.items()})
        if self.on_evaluation is not None:
            self.on_evaluation(evaluation)

    def _track_progress(self, metrics: dict[str, float]) -> None:
        s, plan = self.state, self.plan
        value = metrics.get(f"heldout.{plan.metric}", metrics.get(f"clients.{plan.metric}"))
        if value is None:
            return
        score = value if plan.metric == "accuracy" else -value
        if plan.target is not None and score >= (plan.target if plan.metric == "accuracy" else -plan.target):
            s.target_reached = True
        if s.best is None or score > s.best + plan.min_delta:
            s.best = score
            s.evals_without_improvement = 0
        else:
            s.evals_without_improvement += 1

    def finish_course(self, _: Message | None = None) -> None:
        s = self.state
        if s.round >= self.plan.rounds:
            s.finish_reason = "max_rounds_reached"
        elif self.plan.stop_at_target and s.target_reached:
            s.finish_reason = "target_reached"
        else:
            s.finish_reason = "early_stopped"
        s.phase = "finished"
        log.info("course_finished", course=self.course, round=s.round, reason=s.finish_reason)
        self.send(FINISH, list(s.participants), s.round, {"reason": s.finish_reason, "tensors": self.params})


# Conditions, in precedence order (a worker fires the first that holds, then checks again). Each reads the
# worker it is given, so a test or a user handler may swap the coordinator's plan or strategy.

def _all_joined_in(c: Coordinator) -> bool:
    """Everyone answered (joined, or was refused for a model that does not fit) and someone joined; or the
    join deadline passed and enough joined."""
    s = c.state
    if s.phase != "joining" or not s.participants:
        return False
    return (len(s.participants) + len(s.refused) == c.plan.participants
            or (s.join_closed and len(s.participants) >= c.plan.min_participants))


def _all_received(c: Coordinator) -> bool:
    return c.strategy.trigger == "all_received" and c.state.phase == "training" and not c.state.busy


def _goal_achieved(c: Coordinator) -> bool:
    """k updates are in; or, in a sync round (Sync-OS), everyone still training was given up on."""
    s, st = c.state, c.strategy
    if st.trigger != "goal_achieved" or s.phase != "training":
        return False
    return len(s.updates) >= st.goal or (st.synchronous and not s.busy)


def _time_up(c: Coordinator) -> bool:
    return c.strategy.trigger == "time_up" and c.state.phase == "training" and c.state.alarm_rang


def _all_evaluated(c: Coordinator) -> bool:
    return c.state.phase == "evaluating" and len(c.state.eval_replies) == len(c.state.evaluators)


def _max_rounds_reached(c: Coordinator) -> bool:
    return c.state.phase == "round_done" and c.state.round >= c.plan.rounds


def _early_stopped(c: Coordinator) -> bool:
    return (c.state.phase == "round_done" and c.plan.patience > 0
            and c.state.evals_without_improvement >= c.plan.patience)


def _target_reached(c: Coordinator) -> bool:
    return c.state.phase == "round_done" and c.plan.stop_at_target and c.state.target_reached


def _next_round_due(c: Coordinator) -> bool:
    return c.state.phase == "round_done"


def _participant_idle(c: Coordinator) -> bool:
    """after_receiving: fewer than the concurrency are training, and someone may be sent a model."""
    s = c.state
    return (c.strategy.broadcast == "after_receiving" and s.phase == "training"
            and len(s.busy) < min(c.strategy.concurrency, len(s.participants)) and bool(c.candidates()))


def _weighted_metrics(replies: Any, prefix: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    weights: dict[str, int] = {}
    for n, values in replies:
        if n <= 0:
            continue
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + v * n
            weights[k] = weights.get(k, 0) + n
    return {f"{prefix}{k}": totals[k] / weights[k] for k in sorted(totals)}
