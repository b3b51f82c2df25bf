"""A two-hidden-layer MLP that is not in the zoo, as a torch model and as a Keras model.

The course config declares its agreed layout (``hidden1``, ``hidden2``, ``out``, torch names).
The torch model carries those names, so the torch adapter needs no help. The Keras model names
its layers in its own way (``dense_a``, ``dense_b``, ``logits``), so it brings its own
encode/decode: :data:`keras_codec` renames its layers and lets the Keras adapter transpose.
"""

from __future__ import annotations

from typing import Any

from fscore.models.zoo import ModelSpec
from fstranslation.adapters import get_adapter
from fstranslation.adapters.renaming import Renamed


def torch_mlp2(spec: ModelSpec) -> Any:
    import torch
    from torch import nn

    class MLP2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden1 = nn.Linear(spec.num_features, spec.hidden)
            self.hidden2 = nn.Linear(spec.hidden, spec.hidden)
            self.out = nn.Linear(spec.hidden, spec.num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.hidden1(x.flatten(1)))
            return self.out(torch.relu(self.hidden2(x)))

    return MLP2()


def keras_mlp2(spec: ModelSpec) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input((spec.num_features,))
    x = layers.Dense(spec.hidden, activation="relu", name="dense_a")(inputs)
    x = layers.Dense(spec.hidden, activation="relu", name="dense_b")(x)
    return keras.Model(inputs, layers.Dense(spec.num_classes, name="logits")(x), name="mlp2")


#: The Keras participant's own encode and decode (config: ``trainer.adapters.tensorflow``).
keras_codec = Renamed(get_adapter("tensorflow"), {"dense_a": "hidden1", "dense_b": "hidden2", "logits": "out"})
