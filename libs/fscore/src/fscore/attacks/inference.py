"""Inference attacks by an honest-but-curious coordinator (paper §4.2): membership and property inference.

Both are coordinator plug-ins that score themselves when the course's summary is written, against what the
simulation knows and the attacker does not (which examples trained, which participant holds what):

- ``membership_inference``: given an example, was it in some participant's training data? Members are drawn
  from the participants' training splits, non-members from the coordinator's held-out set, as many of each.
  - ``loss`` (Yeom et al. 2018): the lower the final global model's loss on an example, the likelier a member;
  - ``shadow`` (Shokri et al. 2017): shadow models of the same architecture are trained (torch, SGD) on
    auxiliary data the attacker owns (the participants' test splits, disjoint from both sets), half in and
    half out of each; a classifier learns in/out from their sorted output probabilities and is applied to
    the global model's.
  The summary holds each method's ROC AUC (scikit-learn): 0.5 is a coin toss.
- ``property_inference`` (Melis et al. 2019): from a participant's update alone, does its training data hold
  ``property_class`` in at least ``min_share`` of its examples? For each attacked round the attacker trains
  the model it sent on auxiliary batches with and without the property (the participants' trainer and
  config, on held-out examples), learns the difference from their updates' last-layer change (logistic
  regression), and scores the real updates. The summary holds the AUC over every attacked update.

Their randomness is drawn from the plug-in's seeded streams; the attacks need torch, imported when they run.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fscore.data.dataset import Dataset
from fscore.errors import ConfigError
from fscore.message import COORDINATOR, MODEL_PARAMETERS, MODEL_UPDATE, Message
from fscore.plugins import Plugin, PluginContext
from fscore.worker import BaseWorker


class _CourseAttack(Plugin):
    """What both attacks share: the course they run in (built lazily from the config) and its dense model."""

    roles = frozenset({COORDINATOR})

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        if context.config is None:
            raise ValueError("method: an inference attack needs the course config")
        if context.config.model.name not in ("logreg", "mlp"):
            raise ConfigError(f"model.name: {self.name} attacks the dense zoo models (logreg, mlp), not "
                              f"{context.config.model.name}")
        self.worker: BaseWorker | None = None
        self._results: dict[str, Any] | None = None

    def install(self, worker: BaseWorker) -> None:
        self.worker = worker

    @cached_property
    def course(self) -> Any:
        from fscore.course import CourseBuilder

        return CourseBuilder(self.context.config)

    def probabilities(self, params: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        from fscore.models.numpy_forward import logits

        z = logits(self.course.model_spec, params, x).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def summary(self) -> dict[str, Any]:
        if self._results is None:
            self._results = self.attack()
        return self._results

    def attack(self) -> dict[str, Any]:
        raise NotImplementedError


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else None


def _sorted_probabilities(p: np.ndarray) -> np.ndarray:
    return -np.sort(-p, axis=1)


# ----------------------------------------------------------------------------- membership


class MembershipOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    methods: list[Literal["loss", "shadow"]] = Field(default_factory=lambda: ["loss", "shadow"])
    examples: int = Field(300, ge=10, description="members and non-members each (at most the held-out set's size)")
    shadow_models: int = Field(2, ge=1)
    shadow_epochs: int = Field(30, ge=1, description="SGD epochs of each shadow model")


class MembershipInference(_CourseAttack):
    name = "membership_inference"
    Options = MembershipOptions

    def attack(self) -> dict[str, Any]:
        params = self.worker.params  # type: ignore[union-attr]  # the final global model
        fed = self.course.federation
        rng = self.rng(0)
        pool = _concat([c.train for c in fed.clients])
        n = min(self.options.examples, len(fed.heldout), len(pool))
        members = pool.subset(rng.choice(len(pool), n, replace=False))
        others = fed.heldout.subset(rng.choice(len(fed.heldout), n, replace=False))
        x = np.concatenate([members.x, others.x])
        y = np.concatenate([members.y, others.y])
        truth = np.concatenate([np.ones(n), np.zeros(n)])
        probs = self.probabilities(params, x)
        out: dict[str, Any] = {"examples": int(2 * n)}
        if "loss" in self.options.methods:
            loss = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))
            out["loss_auc"] = _auc(truth, -loss)
        if "shadow" in self.options.methods:
            out["shadow_auc"] = _auc(truth, self._shadow_scores(probs, _concat([c.test for c in fed.clients])))
        return out

    def _shadow_scores(self, target_probs: np.ndarray, auxiliary: Dataset) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        features, labels = [], []
        for k in range(self.options.shadow_models):
            rng = self.rng(1, k)
            order = rng.permutation(len(auxiliary))
            inside, outside = auxiliary.subset(order[: len(order) // 2]), auxiliary.subset(order[len(order) // 2:])
            shadow = self._train_shadow(inside, k)
            for part, label in ((inside, 1), (outside, 0)):
                features.append(_sorted_probabilities(self.probabilities(shadow, part.x)))
                labels.append(np.full(len(part), label))
        attack = LogisticRegression(max_iter=1000).fit(np.concatenate(features), np.concatenate(labels))
        return attack.predict_proba(_sorted_probabilities(target_probs))[:, 1]

    def _train_shadow(self, data: Dataset, k: int) -> dict[str, np.ndarray]:
        """A shadow model: the course's architecture trained centrally with its trainer, from the initial model."""
        cfg = self.context.config.trainer.model_copy(update={"local_epochs": self.options.shadow_epochs,
                                                             "local_steps": None})
        trainer = self.course.base_trainer(0, cfg, copy=1000 + k)
        trainer.set_parameters(self.course.initial_params())
        trainer.start_round(0)
        trainer.train(data)
        return trainer.get_parameters()


def _concat(parts: list[Dataset]) -> Dataset:
    parts = [p for p in parts if len(p)]
    return Dataset(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))


# ----------------------------------------------------------------------------- property


class PropertyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    property_class: int = Field(0, ge=0, description="the property: the participant's data holds this class")
    min_share: float = Field(0.1, gt=0, lt=1, description="... in at least this share of its examples")
    rounds: int = Field(3, ge=1, description="rounds whose updates are attacked (the first)")
    auxiliary_updates: int = Field(30, ge=2, description="simulated updates per round, half with the property")


class PropertyInference(_CourseAttack):
    name = "property_inference"
    Options = PropertyOptions

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        from fscore.data.sources import dataset_source

        classes = dataset_source(context.config.data).shape(context.config.data)[1]
        if self.options.property_class >= classes:
            raise ValueError(f"property_class: {self.options.property_class} is not a label of the dataset (labels "
                             f"0 to {classes - 1})")
        self._sent: dict[int, Mapping[str, np.ndarray]] = {}
        self._updates: list[tuple[str, int, Mapping[str, np.ndarray]]] = []

    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        if message.type == MODEL_PARAMETERS and message.round < self.options.rounds:
            self._sent[message.round] = message.payload["tensors"]
        return message

    def incoming(self, worker: BaseWorker, message: Message) -> Message:
        if message.type == MODEL_UPDATE and message.round in self._sent and \
                not any(s == message.sender and r == message.round for s, r, _ in self._updates):
            self._updates.append((message.sender, message.round, message.payload["tensors"]))
        return message

    def _features(self, sent: Mapping[str, np.ndarray], update: Mapping[str, np.ndarray]) -> np.ndarray:
        last = [n for n in sent if n.endswith("bias")][-1]  # the output layer's bias: one entry per class
        weight = last[: -len("bias")] + "weight"
        return np.concatenate([(update[last] - sent[last]).ravel(), (update[weight] - sent[weight]).sum(axis=1)])

    def attack(self) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression

        o, fed = self.options, self.course.federation
        truth = {}
        for index, client in enumerate(fed.clients):
            share = float(np.mean(client.train.y == o.property_class)) if len(client.train) else 0.0
            truth[f"participant-{index:05d}"] = share >= o.min_share
        sizes = [len(c.train) for c in fed.clients if len(c.train)]
        size = int(np.median(sizes)) if sizes else 1
        scores, labels = [], []
        for round_, sent in sorted(self._sent.items()):
            mine = [(s, u) for s, r, u in self._updates if r == round_ and s in truth]
            if not mine:
                continue
            x, y = self._auxiliary(round_, sent, size)
            model = LogisticRegression(max_iter=2000).fit(x, y)
            scores += model.predict_proba(np.stack([self._features(sent, u) for _, u in mine]))[:, 1].tolist()
            labels += [int(truth[s]) for s, _ in mine]
        return {"property_class": o.property_class, "min_share": o.min_share, "attacked": len(labels),
                "with_property": int(sum(labels)), "auc": _auc(np.array(labels), np.array(scores)) if labels else None}

    def _auxiliary(self, round_: int, sent: Mapping[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
        """Updates of the model sent in ``round_`` trained on held-out batches with and without the property."""
        o, heldout = self.options, self.course.federation.heldout
        rng = self.rng(2, round_)
        having, lacking = np.flatnonzero(heldout.y == o.property_class), np.flatnonzero(heldout.y != o.property_class)
        trainer = self.course.base_trainer(0, self.context.config.trainer_for(0), copy=2000 + round_)
        features, labels = [], []
        for k in range(o.auxiliary_updates):
            with_property = k % 2 == 0
            share = rng.uniform(o.min_share, 0.5) if with_property else 0.0
            count = min(max(1, round(share * size)), len(having)) if with_property else 0
            idx = np.concatenate([rng.choice(having, count, replace=False),
                                  rng.choice(lacking, size - count, replace=len(lacking) < size - count)])
            trainer.set_parameters(sent)
            trainer.start_round(round_ * 1000 + k)
            trainer.train(heldout.subset(idx))
            features.append(self._features(sent, trainer.get_parameters()))
            labels.append(int(with_property))
        return np.stack(features), np.array(labels)
