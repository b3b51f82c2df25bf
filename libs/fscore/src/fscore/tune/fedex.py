"""FedEx (Khodak et al. 2021; the paper's §4.3 and Figure 13) as a plug-in: client-wise hyperparameters explored
inside one course, by weight sharing.

Given to every worker (``role: all``). For each local hyperparameter it tunes (a key of the trainer section:
``lr``, ``local_epochs``, ``batch_size``, ...) the coordinator keeps a categorical policy over a few candidate
values (``arms``). Whenever it sends a model to train, it draws each receiver's configuration from the policies
and sends it first, in its own message type (``fedex_config``, with its Avro schema). A participant trains that
round with the configuration it was given, evaluates the trained model on its validation split, and reports the
loss with its update (``fedex.*`` in ``train_metrics``). Before the next draw the coordinator takes an
exponentiated-gradient step on each policy with the reports since the last step, weighted by validation size,
against a baseline: the (discounted) mean of the earlier steps' weighted losses. The step size is
``eta0 / sqrt(t)``, with ``eta0 = sqrt(2 ln K)`` for K arms unless given.

The policies, the baseline's trace and the pending reports are plain attributes, so a course snapshot keeps them;
the draws come from :meth:`Plugin.rng` (by round and send), so recovery and replay draw the same configurations.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fscore.config import TrainerConfig
from fscore.errors import ConfigError, FscoreError, RejectedMessage
from fscore.events import on_message
from fscore.message import COORDINATOR, MODEL_PARAMETERS, MODEL_UPDATE, PARTICIPANT, Message
from fscore.plugins import MessageType, Plugin, PluginContext, replace_payload
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.fedex")

FEDEX_CONFIG = "fedex_config"
_P_FLOOR = 1e-6  # no arm's probability falls below this (after normalizing), so no report divides by zero
_SCHEMA = {
    "type": "record", "name": "FedExConfig", "namespace": "fscope.payload.fedex",
    "doc": "Each receiver's local hyperparameters for the round (FedEx): address -> trainer key -> value, and the "
           "arm index of each value.",
    "fields": [
        {"name": "configs", "type": {"type": "map", "values": {"type": "map", "values": "double"}}},
        {"name": "arms", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
    ],
}


class FedExOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arms: dict[str, list[float]] = Field(description="trainer key -> its candidate values, e.g. {lr: [0.01, 0.1]}")
    eta0: float | None = Field(None, gt=0, description="step size; default sqrt(2 ln K) for K arms")
    gamma: float = Field(1.0, gt=0, le=1, description="the baseline's discount of older steps (1: plain mean)")
    cutoff: float = Field(0.0, ge=0, description="stop exploring (take each policy's mode) below this entropy")
    difference: bool = Field(False, description="judge a configuration by the validation loss it removed "
                                                "(before - after training) instead of the loss after")
    loss_bound: float = Field(100.0, gt=0, description="a reported loss is clipped to [0, this] (to [-this, this] "
                                                       "with difference): one participant moves a policy boundedly")

    @model_validator(mode="after")
    def _arms(self) -> FedExOptions:
        if not self.arms:
            raise ValueError("arms: give at least one trainer key with its candidate values")
        for key, values in self.arms.items():
            if key not in TrainerConfig.model_fields:
                raise ValueError(f"arms.{key}: not a key of the trainer section")
            if not values:
                raise ValueError(f"arms.{key}: no candidate values")
            for value in values:
                try:
                    TrainerConfig(**{key: value})
                except ValidationError as exc:
                    raise ValueError(f"arms.{key}: {value} is not a valid trainer.{key} "
                                     f"({exc.errors()[0]['msg']})") from None
        return self


def _entropy(theta: np.ndarray) -> float:
    p = theta[theta > 0]
    return float(-(p * np.log(p)).sum())


class FedEx(Plugin):
    name = "fedex"
    roles = frozenset({COORDINATOR, PARTICIPANT})
    Options = FedExOptions
    companions: ClassVar[Mapping[str, tuple[str, ...]]] = {MODEL_PARAMETERS: (FEDEX_CONFIG,)}
    snapshot_exclude = (*Plugin.snapshot_exclude, "_me", "_coordinator")

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        config = context.config
        if config is not None and config.data.validation_fraction == 0:
            raise ConfigError("data.validation_fraction: fedex judges configurations on the participants' validation "
                              "splits; set it above 0")
        self.keys = sorted(self.options.arms)  # canonical: a config read back from the log has its keys sorted
        sizes = [len(self.options.arms[k]) for k in self.keys]
        # the coordinator's policies, in log space
        self.z = [np.full(n, -math.log(n)) for n in sizes]
        self.steps = 0
        self.trace: list[float] = []  # each step's weighted validation loss (or loss removed): the baseline's
        self.entropy = [sum(_entropy(np.exp(z)) for z in self.z)]
        self.exploring = True
        self.pending: list[dict[str, Any]] = []  # reports since the last step
        self.assigned: dict[str, list[int]] = {}  # "round/address" -> arm indices sent, until its report
        self.sends: dict[str, int] = {}  # "round/address" -> models sent to it in that round
        # a participant's
        self.given: dict[str, Any] | None = None  # {"round", "config"} of its latest assignment
        self.saved: TrainerConfig | None = None
        self.before: float | None = None

    @classmethod
    def message_types(cls) -> list[MessageType]:
        return [MessageType(FEDEX_CONFIG, PARTICIPANT, _SCHEMA)]

    def install(self, worker: BaseWorker) -> None:
        if worker.role == COORDINATOR:
            self._coordinator = worker
            worker.extend(on_message(MODEL_UPDATE), self.collect)
            return
        self._me = worker.address
        worker.register(on_message(FEDEX_CONFIG), self.take)

    @property
    def theta(self) -> list[np.ndarray]:
        return [np.exp(z) for z in self.z]

    # -- the coordinator ---------------------------------------------------------------------------------------
    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        if worker.role == COORDINATOR and message.type == MODEL_PARAMETERS:
            self._step()
            self._assign(worker, message)
        elif worker.role == PARTICIPANT and message.type == MODEL_UPDATE:
            return self._report(worker, message)
        return message

    def _assign(self, worker: BaseWorker, message: Message) -> None:
        thetas = self.theta
        configs, arms = {}, {}
        self.sends = {k: n for k, n in self.sends.items() if int(k.partition("/")[0]) >= message.round - 1}
        # an update older than the strategy tolerates is refused anyway: its draw is not kept for a dropout
        oldest = message.round - worker.strategy.toleration - 1  # type: ignore[attr-defined]
        self.assigned = {k: a for k, a in self.assigned.items() if int(k.partition("/")[0]) >= oldest}
        for address in message.receivers:
            # one stream per receiver, round and resend: the draws do not depend on how sends are grouped
            key = f"{message.round}/{address}"
            self.sends[key] = nth = self.sends.get(key, 0) + 1
            rng = self.rng(message.round, zlib.crc32(address.encode()), nth)
            picks = [int(t.argmax()) if not self.exploring else int(rng.choice(len(t), p=t / t.sum()))
                     for t in thetas]
            arms[address] = picks
            configs[address] = {k: float(self.options.arms[k][i]) for k, i in zip(self.keys, picks, strict=True)}
            self.assigned[f"{message.round}/{address}"] = picks
        worker.send(FEDEX_CONFIG, message.receivers, message.round, {"configs": configs, "arms": arms},
                    timestamp=message.timestamp)

    def collect(self, msg: Message) -> None:
        """An accepted update: its report joins the next step, paired with the arms its sender was given."""
        picks = self.assigned.pop(f"{msg.payload['base_round']}/{msg.sender}", None)
        metrics = msg.payload["train_metrics"]  # finite: the coordinator refused the update otherwise
        if picks is None or "fedex.loss" not in metrics:
            return
        samples = float(metrics.get("fedex.samples", 1.0))
        info = self._coordinator.state.membership.participants.get(msg.sender)  # type: ignore[attr-defined]
        declared = info.num_train_samples + info.num_test_samples if info is not None else 0
        if not samples > 0:
            log.warning("fedex_report_ignored", sender=msg.sender, round=msg.round,
                        reason=f"fedex.samples {samples} is not positive")
            return
        # a report weighs at most the examples its sender declared, and its loss is bounded (a loss after
        # training is never negative), so one participant cannot blow up the policy
        low = -self.options.loss_bound if self.options.difference else 0.0
        self.pending.append({"sender": msg.sender, "arms": picks,
                             "loss": min(max(float(metrics["fedex.loss"]), low), self.options.loss_bound),
                             "samples": min(samples, float(max(declared, 1)))})

    def _step(self) -> None:
        """One exponentiated-gradient step of every policy on the reports since the last (FedEx's update)."""
        if not self.pending:
            return
        # in sender order, so the sums are the same whatever order the updates arrived in (Kafka, replay)
        self.pending.sort(key=lambda r: r["sender"])
        weights = np.array([r["samples"] for r in self.pending], dtype=np.float64)
        weights /= weights.sum()
        losses = np.array([r["loss"] for r in self.pending])
        # the baseline is the discounted mean of the steps' weighted losses, this one's included (as FedEx's
        # code does), so the first step is centred too instead of penalizing whichever arms were drawn
        self.trace.append(float(np.dot(weights, losses)))
        discount = self.options.gamma ** np.arange(len(self.trace))[::-1]
        baseline = float(np.dot(self.trace, discount) / discount.sum())
        self.steps += 1
        if self.exploring:
            for j, z in enumerate(self.z):
                theta = np.exp(z)
                grad = np.zeros(len(z))
                for report, w, loss in zip(self.pending, weights, losses, strict=True):
                    arm = report["arms"][j]
                    grad[arm] += w * (loss - baseline) / theta[arm]
                eta0 = (self.options.eta0 or math.sqrt(2 * math.log(len(z)))) if len(z) > 1 else 0.0
                z = z - eta0 / math.sqrt(self.steps) * grad
                theta = np.maximum(np.exp(z - np.logaddexp.reduce(z)), _P_FLOOR)  # no arm's probability hits 0
                self.z[j] = np.log(theta / theta.sum())
            self.entropy.append(sum(_entropy(t) for t in self.theta))
            if self.entropy[-1] < self.options.cutoff:
                self.exploring = False
        self.pending = []

    def summary(self) -> dict[str, Any]:
        if self.context.role != COORDINATOR:
            return {}
        thetas = self.theta
        return {"steps": self.steps, "entropy": self.entropy[-1], "exploring": self.exploring,
                "policy": {k: {str(v): float(p) for v, p in zip(self.options.arms[k], t, strict=True)}
                           for k, t in zip(self.keys, thetas, strict=True)},
                "most_likely": {k: self.options.arms[k][int(t.argmax())] for k, t in zip(self.keys, thetas,
                                                                                           strict=True)},
                "weighted_validation_loss": self.trace}

    # -- a participant ------------------------------------------------------------------------------------------
    def take(self, msg: Message) -> None:
        """The coordinator's configuration for this participant's next training."""
        mine = msg.payload["configs"].get(self._me)
        if mine is None:
            return
        for key, value in mine.items():  # only this course's candidates: nothing else reaches the trainer
            if key not in self.options.arms or value not in self.options.arms[key]:
                raise RejectedMessage(f"{FEDEX_CONFIG} of round {msg.round} (id {msg.id}) sets {key}={value}, "
                                      f"which is not one of fedex's candidates {self.options.arms.get(key, [])}")
        self.given = {"round": msg.round, "config": dict(mine)}

    def incoming(self, worker: BaseWorker, message: Message) -> Message:
        if worker.role == PARTICIPANT and message.type == MODEL_PARAMETERS and self.given is not None \
                and self.given["round"] == message.round:
            trainer = _configured(worker.trainer)  # type: ignore[attr-defined]
            self.saved = trainer.cfg
            trainer.cfg = TrainerConfig.model_validate({**trainer.cfg.model_dump(), **self.given["config"]})
            if self.options.difference:
                worker.trainer.set_parameters(message.payload["tensors"])  # type: ignore[attr-defined]
                self.before = float(worker.trainer.evaluate(_validation(worker)).metrics["loss"])  # type: ignore
        return message

    def _report(self, worker: BaseWorker, message: Message) -> Message:
        """The trained model's validation loss joins the update; the trainer gets its own config back."""
        if self.saved is None:
            return message
        _configured(worker.trainer).cfg, self.saved = self.saved, None  # type: ignore[attr-defined]
        self.given = None
        result = worker.trainer.evaluate(_validation(worker))  # type: ignore[attr-defined]
        loss = float(result.metrics["loss"])
        if self.options.difference and self.before is not None:
            loss -= self.before  # the loss removed, negated: lower is still better
        self.before = None
        return replace_payload(message, train_metrics={**message.payload["train_metrics"], "fedex.loss": loss,
                                                       "fedex.samples": float(result.num_samples)})

    def __repr__(self) -> str:
        return f"FedEx({self.context.role}, keys={self.keys})"


def _validation(worker: BaseWorker) -> Any:
    data = getattr(worker, "data", None)
    if data is None or data.validation is None:
        raise FscoreError(f"fedex: {worker.address} keeps no validation split (data.validation_fraction)")
    return data.validation


def _configured(trainer: Any) -> Any:
    """The trainer object whose ``cfg`` (a TrainerConfig) local training reads, under any wrappers."""
    seen = 0
    while trainer is not None and seen < 6:
        if isinstance(getattr(trainer, "cfg", None), TrainerConfig):
            return trainer
        trainer = getattr(trainer, "inner", None) or getattr(trainer, "base", None)
        seen += 1
    raise FscoreError("fedex: the participant's trainer keeps no trainer config FedEx could set")
