"""Gradient inversion by an honest-but-curious coordinator: DLG (Zhu et al. 2019) and iDLG (Zhao et al. 2020),
the attack of the paper's Figure 12 (§4.2, §5.3.3), as a coordinator plug-in.

The coordinator sees each participant's update. When a participant trains one SGD step on one example
(``trainer.batch_size: 1``, ``local_steps: 1``, no momentum or weight decay), the update is the model it was
sent minus lr times that example's gradient, so the coordinator knows the gradient exactly, and DLG
recovers the example from it (:mod:`fscore.attacks.inversion_torch`). Client-side DP noise on the update
(:mod:`fscore.privacy.client`) is what stops it.

The plug-in notes the model it sends each round, turns the first ``max_samples`` updates of its target
participants into gradients as they arrive, and reconstructs them when the course's summary is written.
To score a reconstruction the simulation knows what the attacker does not: the example the participant
really trained on (its data, and the first batch of its seeded order in that round). The summary holds,
per reconstruction, its MSE and SSIM (scikit-image) against that example and whether the label is right,
their means, and both images, which ``fscope report`` draws as a grid.

The attacker's randomness (DLG's starting guess) is drawn from the plug-in's seeded streams, so a course
with the attack is as deterministic as one without. Reconstruction needs torch: the plug-in imports it
when it reconstructs, so a coordinator service given this attack imports torch (no other does).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fscore.errors import ConfigError
from fscore.message import COORDINATOR, MODEL_PARAMETERS, MODEL_UPDATE, Message
from fscore.plugins import Plugin, PluginContext
from fscore.worker import BaseWorker


class InversionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["idlg", "dlg"] = "idlg"
    targets: list[int] | None = Field(None, description="participant indices attacked (default: all)")
    max_samples: int = Field(20, ge=1, description="updates attacked, the first that arrive")
    iterations: int = Field(30, ge=1, description="L-BFGS steps (of up to 20 evaluations each)")


class GradientInversion(Plugin):
    name = "gradient_inversion"
    roles = frozenset({COORDINATOR})
    Options = InversionOptions

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        config = context.config
        if config is None:
            raise ValueError("method: gradient inversion needs the course config (its model and learning rate)")
        _check_single_step(config)
        if config.model.name not in ("logreg", "mlp"):
            raise ConfigError(f"model.name: gradient_inversion attacks the dense zoo models (logreg, mlp), not "
                              f"{config.model.name}")
        self.lr = config.trainer.lr
        self._sent: dict[int, Mapping[str, np.ndarray]] = {}  # round -> the model sent (the latest rounds)
        #: (sender, round, the model it was sent, the gradient its update implies)
        self._captured: list[tuple[str, int, Mapping[str, np.ndarray], dict[str, np.ndarray]]] = []
        self._results: dict[str, Any] | None = None

    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        if message.type == MODEL_PARAMETERS:
            self._sent[message.round] = message.payload["tensors"]
            for old in [r for r in self._sent if r < message.round - 1]:
                del self._sent[old]
        return message

    def incoming(self, worker: BaseWorker, message: Message) -> Message:
        if message.type != MODEL_UPDATE or len(self._captured) >= self.options.max_samples:
            return message
        sent = self._sent.get(message.round)
        index = _index(message.sender)
        targets = self.options.targets
        if sent is None or index is None or (targets is not None and index not in targets):
            return message
        if any(s == message.sender and r == message.round for s, r, _, _ in self._captured):
            return message  # a copy: the first one counts
        update = message.payload["tensors"]
        if set(update) != set(sent):
            return message  # not a whole model update (the coordinator refuses it anyway)
        gradient = {n: (sent[n].astype(np.float64) - update[n]) / self.lr for n in sent}
        self._captured.append((message.sender, message.round, sent, gradient))
        return message

    @cached_property
    def _course(self) -> Any:
        from fscore.course import CourseBuilder

        return CourseBuilder(self.context.config)

    def summary(self) -> dict[str, Any]:
        if self._results is None:
            self._results = self._attack()
        return self._results

    def _attack(self) -> dict[str, Any]:
        from skimage.metrics import structural_similarity

        from fscore.attacks.inversion_torch import idlg_label, reconstruct
        from fscore.models.torch_zoo import build_torch_model
        from fstranslation.adapters import get_adapter

        builder = self._course
        spec = builder.model_spec
        rows = []
        for n, (sender, round_, sent, gradient) in enumerate(self._captured):
            model = build_torch_model(spec)
            model.load_state_dict(get_adapter("torch").from_wire(sent), strict=True)
            label = idlg_label(gradient) if self.options.method == "idlg" else None
            image, found = reconstruct(model, gradient, spec.input_shape, spec.num_classes, label, self.rng(n),
                                       self.options.iterations)
            truth, true_label = self._truth(sender, round_)
            shown = np.clip(image.reshape(truth.shape), 0.0, 1.0)  # the attacker knows the inputs' range
            picture = shown.reshape(shown.shape[-2:]) if shown.ndim > 1 else shown
            rows.append({"participant": sender, "round": round_, "label": found, "true_label": true_label,
                         "mse": float(np.mean((shown - truth) ** 2)),
                         "ssim": float(structural_similarity(truth.reshape(picture.shape), picture, data_range=1.0))
                         if picture.ndim == 2 else None,
                         "image": np.round(shown.reshape(-1), 4).tolist(),
                         "truth": np.round(truth.reshape(-1), 4).tolist()})
        scored = [r["ssim"] for r in rows if r["ssim"] is not None]
        return {"method": self.options.method, "attacked": len(rows), "image_shape": list(spec.input_shape[-2:]),
                "mean_ssim": float(np.mean(scored)) if scored else None,
                "mean_mse": float(np.mean([r["mse"] for r in rows])) if rows else None,
                "label_accuracy": float(np.mean([r["label"] == r["true_label"] for r in rows])) if rows else None,
                "reconstructions": rows}

    def _truth(self, sender: str, round_: int) -> tuple[np.ndarray, int]:
        """The example ``sender`` trained on in ``round_``: the first of its seeded batch order (what
        TorchTrainer.start_round and trainers.base.batches draw), from its data."""
        from fscore.course import _STREAM_TRAINER
        from fscore.trainers.base import batches

        index = _index(sender)
        config = self.context.config
        train = self._course.participant_data(index).train
        rng = np.random.default_rng([config.seed, _STREAM_TRAINER, index, round_])
        first = int(next(batches(len(train), config.trainer_for(index), rng))[0])
        return train.x[first].reshape(self._course.model_spec.input_shape).astype(np.float64), int(train.y[first])


def _index(address: str) -> int | None:
    head, _, tail = address.rpartition("-")
    return int(tail) if head == "participant" and tail.isdigit() else None


def _check_single_step(config: Any) -> None:
    t = config.trainer
    problems = [(key, value, want) for key, value, want in (
        ("trainer.batch_size", t.batch_size, 1), ("trainer.local_steps", t.local_steps, 1),
        ("trainer.optimizer", t.optimizer, "sgd"), ("trainer.momentum", t.momentum, 0.0),
        ("trainer.weight_decay", t.weight_decay, 0.0), ("trainer.proximal_mu", t.proximal_mu, 0.0)) if value != want]
    if problems:
        key, value, want = problems[0]
        raise ConfigError(f"{key}: gradient_inversion reconstructs one example from one plain SGD step, so it needs "
                          f"{key.split('.')[1]}={want} (got {value})")
