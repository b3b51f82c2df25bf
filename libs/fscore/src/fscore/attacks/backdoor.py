"""Backdoor attacks by malicious participants (paper §4.2): BadNets, blended triggers, and model replacement.

A backdoor leaves the model good on clean inputs and makes it answer ``target_label`` whenever an input
carries the trigger. One plug-in, given with ``role: all`` and the malicious participants' indices
(``participants: [...]``), plays both sides:

- **on each malicious participant** it poisons a ``fraction`` of its training examples once, when it is
  installed: the trigger is stamped on them and their label set to the target.
  - ``badnets`` (Gu et al. 2017): a ``trigger_size`` by ``trigger_size`` square of value ``trigger_value`` in
    the image's bottom-right corner;
  - ``blended`` (Chen et al. 2017): the input blended with a fixed random pattern, (1 − alpha)·x + alpha·p.
  With ``boost`` > 1 it also scales its update, model + boost·(trained − model): model replacement, or
  scaled boosting (Bagdasaryan et al. 2020), so that averaging does not wash the backdoor out.
- **on the coordinator** it measures the attack: each new global model, on the coordinator's held-out set,
  gives the clean accuracy and the attack success rate (the share of triggered held-out examples whose true
  label is not the target that the model assigns the target). The summary holds both per round.

Which examples are poisoned, and the blended pattern, are drawn from the plug-in's seeded streams, so the
course stays deterministic and replays. The coordinator's measurement is a numpy forward pass (the dense zoo
models, logreg and mlp), so the coordinator imports no framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

from fscore.data.dataset import ClientData, Dataset
from fscore.errors import ConfigError
from fscore.message import COORDINATOR, EVALUATE, FINISH, MODEL_PARAMETERS, PARTICIPANT, Message
from fscore.plugins import PluginContext, UpdateRewriter
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.attacks")

_MODEL_TYPES = (MODEL_PARAMETERS, EVALUATE, FINISH)


class BackdoorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["badnets", "blended"] = "badnets"
    target_label: int = Field(ge=0, description="the label triggered inputs are to get")
    fraction: float = Field(0.5, ge=0, le=1, description="the share of a malicious participant's examples poisoned")
    trigger_size: int = Field(2, ge=1, description="badnets: the side of the square trigger, in pixels")
    trigger_value: float = Field(1.0, description="badnets: the trigger's pixel value")
    alpha: float = Field(0.2, gt=0, le=1, description="blended: the pattern's weight")
    boost: float = Field(1.0, ge=1, description="model replacement: the factor on the malicious update")


def stamp(x: np.ndarray, input_shape: tuple[int, ...], options: BackdoorOptions, pattern: np.ndarray | None
          ) -> np.ndarray:
    """``x`` (n flattened examples) with the trigger applied."""
    images = x.reshape(len(x), *input_shape).copy()
    if options.kind == "badnets":
        k = options.trigger_size
        images[..., -k:, -k:] = options.trigger_value
    else:
        images = (1 - options.alpha) * images + options.alpha * pattern
    return images.reshape(x.shape).astype(x.dtype)


class Backdoor(UpdateRewriter):
    name = "backdoor"
    roles = frozenset({COORDINATOR, PARTICIPANT})
    Options = BackdoorOptions

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        config = context.config
        if config is not None:
            from fscore.data.sources import dataset_source

            shape, classes = dataset_source(config.data).shape(config.data)
            if self.options.target_label >= classes:
                raise ValueError(f"target_label: {self.options.target_label} is not a label of the dataset "
                                 f"(labels 0 to {classes - 1})")
            if len(shape) < 2:
                raise ValueError(f"kind: a {self.options.kind} trigger is stamped on images; the dataset's "
                                 f"examples have shape {shape}")
            if context.role == COORDINATOR and config.model.name not in ("logreg", "mlp"):
                raise ConfigError(f"model.name: the backdoor's success rate is measured by the coordinator's numpy "
                                  f"forward pass (logreg, mlp), not {config.model.name}")
        self.rounds: list[dict[str, float]] = []  # coordinator: each global model's clean accuracy and ASR
        self._measured: set[int] = set()
        self.poisoned = 0

    # -- the malicious participant ----------------------------------------------------------

    def install(self, worker: BaseWorker) -> None:
        if self.context.role != PARTICIPANT or len(worker.data.train) == 0:  # type: ignore[attr-defined]
            return
        data: ClientData = worker.data  # type: ignore[attr-defined]
        train, rng = data.train, self.rng(0)
        chosen = np.sort(rng.choice(len(train), round(self.options.fraction * len(train)), replace=False))
        x, y = train.x.copy(), train.y.copy()
        x[chosen] = stamp(train.x[chosen], self._input_shape, self.options, self._pattern)
        y[chosen] = self.options.target_label
        worker.data = ClientData(Dataset(x, y), data.test, data.validation)  # type: ignore[attr-defined]
        self.poisoned = len(chosen)
        log.warning("backdoor_participant", participant=worker.address, kind=self.options.kind,
                    poisoned=self.poisoned, target=self.options.target_label, boost=self.options.boost)

    def rewrite(self, worker: BaseWorker, message: Message, received: Mapping[str, np.ndarray],
                trained: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        if self.options.boost == 1.0:
            return trained
        from fscore.attacks.poisoning import poison

        return poison("scale", self.options.boost, received, trained, self.rng(1))

    # -- the coordinator's measurement ------------------------------------------------------

    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        if self.context.role == PARTICIPANT:
            return super().outgoing(worker, message)
        if message.type in _MODEL_TYPES and message.round not in self._measured:
            self._measured.add(message.round)
            self.rounds.append({"round": message.round, **self.measure(message.payload["tensors"])})
        return message

    def measure(self, params: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Clean accuracy and attack success rate of ``params`` on the held-out set."""
        from fscore.models.numpy_forward import logits

        clean, triggered, spec = self._heldout
        accuracy = float((logits(spec, params, clean.x).argmax(1) == clean.y).mean())
        hits = logits(spec, params, triggered).argmax(1) == self.options.target_label
        return {"clean_accuracy": accuracy, "attack_success_rate": float(hits.mean()) if len(hits) else 0.0}

    @cached_property
    def _heldout(self) -> tuple[Dataset, np.ndarray, Any]:
        from fscore.course import CourseBuilder

        builder = CourseBuilder(self.context.config)
        heldout = builder.federation.heldout
        others = heldout.x[heldout.y != self.options.target_label]
        return heldout, stamp(others, self._input_shape, self.options, self._pattern), builder.model_spec

    @cached_property
    def _input_shape(self) -> tuple[int, ...]:
        from fscore.data.sources import dataset_source

        return dataset_source(self.context.config.data).shape(self.context.config.data)[0]

    @cached_property
    def _pattern(self) -> np.ndarray | None:
        """blended: one pattern for the whole course (drawn from the course seed, not the participant's)."""
        if self.options.kind != "blended":
            return None
        seed = [self.context.seed, 6, 0xB1E4D]
        return np.random.default_rng(seed).uniform(0.0, 1.0, self._input_shape).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        if self.context.role != COORDINATOR:
            return {"poisoned_examples": self.poisoned}
        last = self.rounds[-1] if self.rounds else {}
        return {"kind": self.options.kind, "target_label": self.options.target_label, "boost": self.options.boost,
                "final_clean_accuracy": last.get("clean_accuracy"),
                "final_attack_success_rate": last.get("attack_success_rate"), "rounds": self.rounds}
