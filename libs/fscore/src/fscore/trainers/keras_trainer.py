"""KerasTrainer: the Trainer interface on TensorFlow 2 with Keras 3, eager, with seeded shuffling.

Parameters cross the interface in the agreed layout (the Keras adapter transposes and renames),
so a TensorFlow participant and a torch participant exchange the same messages. Training is a
plain GradientTape loop rather than ``fit``: batches follow the same seeded permutation a
TorchTrainer uses, and nothing depends on Keras' global random state.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fscore.config import TrainerConfig
from fscore.data.dataset import Dataset
from fscore.trainers.base import EvalResult, Trainer, TrainResult, batches, train_result
from fstranslation.adapters import BackendAdapter, get_adapter

_adapter = get_adapter("tensorflow")

# torch and TensorFlow each bundle LLVM. torch registers its LLVM options when torch._dynamo is first
# imported (lazily, by its first optimizer); if TensorFlow has loaded by then, the process aborts with
# "LLVM ERROR: inconsistency in registered CommandLine options". Where torch is installed, a process
# that may use both (a mixed standalone course) therefore loads torch's first.
if importlib.util.find_spec("torch") is not None:
    import torch._dynamo  # noqa: F401


def _variables(model: Any) -> dict[str, Any]:
    """``<layer>.<variable>`` -> the Keras variable, for every weight of the model."""
    out = {}
    for layer in model.layers:
        for var in layer.weights:
            out[f"{layer.name}.{var.name}"] = var
    return out


class KerasTrainer(Trainer):
    backend = "tensorflow"

    def __init__(self, model: Any, cfg: TrainerConfig, seed: Sequence[int],
                 adapter: BackendAdapter | None = None) -> None:
        import keras
        import tensorflow as tf

        self.tf = tf
        self.model = model
        self.adapter = adapter or _adapter  # a participant's own encode/decode for a custom model
        self.cfg = cfg
        self.seed = tuple(seed)
        self.rng = np.random.default_rng(self.seed)
        self.variables = _variables(model)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.per_sample_loss = keras.losses.sparse_categorical_crossentropy  # for loss_square_mean (Oort)

    def start_round(self, round_: int) -> None:
        self.rng = np.random.default_rng([*self.seed, round_])

    def snapshot_state(self) -> dict[str, Any]:
        """What a course snapshot keeps (fscore.snapshot, which copies the arrays): every variable, and the stream."""
        return {"variables": {k: v.numpy() for k, v in self.variables.items()}, "rng": self.rng}

    def restore_state(self, state: dict[str, Any]) -> None:
        for key, var in self.variables.items():
            var.assign(state["variables"][key])
        self.rng = state["rng"]

    def get_parameters(self) -> dict[str, np.ndarray]:
        return self.adapter.to_wire({k: v.numpy() for k, v in self.variables.items()})

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        arrays = self.adapter.from_wire(params)
        missing = sorted(set(self.variables) - set(arrays))
        extra = sorted(set(arrays) - set(self.variables))
        if missing or extra:
            raise ValueError(f"Keras model {self.model.name}: parameters missing {missing}, unexpected {extra}")
        for key, var in self.variables.items():
            if tuple(var.shape) != arrays[key].shape:
                raise ValueError(f"Keras model {self.model.name}: `{key}` has shape {tuple(var.shape)}, "
                                 f"the message has {arrays[key].shape}")
            var.assign(arrays[key])

    def _optimizer(self) -> Any:
        import keras

        cfg = self.cfg
        if cfg.optimizer == "adam":
            return keras.optimizers.Adam(learning_rate=cfg.lr, weight_decay=cfg.weight_decay or None)
        return keras.optimizers.SGD(learning_rate=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay or None)

    def train(self, data: Dataset) -> TrainResult:
        tf = self.tf
        x = data.x.reshape(len(data), -1)
        opt = self._optimizer()
        trainable = self.model.trainable_variables
        mu = self.cfg.proximal_mu
        anchor = [tf.identity(v) for v in trainable] if mu else []
        steps, seen, total_loss, total_square = 0, 0, 0.0, 0.0
        for idx in batches(len(data), self.cfg, self.rng):
            with tf.GradientTape() as tape:
                logits = self.model(x[idx], training=True)
                loss = self.loss_fn(data.y[idx], logits)
                objective = loss
                if mu:  # FedProx's proximal term; the reported loss stays the task loss
                    pairs = zip(trainable, anchor, strict=True)
                    proximal = tf.add_n([tf.reduce_sum(tf.square(v - a)) for v, a in pairs])
                    objective = loss + mu / 2 * proximal
            opt.apply_gradients(zip(tape.gradient(objective, trainable), trainable, strict=True))
            total_loss += float(loss) * len(idx)
            losses = self.per_sample_loss(data.y[idx], logits, from_logits=True)
            total_square += float(tf.reduce_sum(tf.square(losses)))
            seen += len(idx)
            steps += 1
        return train_result(self.cfg, len(data), steps, seen, total_loss, total_square)

    def evaluate(self, data: Dataset) -> EvalResult:
        if len(data) == 0:
            return EvalResult(0, {})
        logits = self.model(data.x.reshape(len(data), -1), training=False)
        loss = float(self.loss_fn(data.y, logits))
        acc = float(np.mean(np.argmax(np.asarray(logits), axis=1) == data.y))
        return EvalResult(len(data), {"accuracy": acc, "loss": loss})
