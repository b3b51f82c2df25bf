"""Keras twins of the zoo's models: their parameters, through the Keras adapter, match :func:`zoo.layout`.

Layers carry the agreed names (``fc1``, ``conv1``, ...). Inputs arrive flat, as in torch. ConvNet2
reshapes to channels-first like its torch twin, computes channels-last as Keras prefers, and
permutes back to channels-first before flattening, so ``fc1`` sees features in torch's order and
the same weights give the same function in both backends.
"""

from __future__ import annotations

from typing import Any

from fscore.models.zoo import ModelSpec


def build_keras_model(spec: ModelSpec) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input((spec.num_features,))
    if spec.name == "logreg":
        outputs = layers.Dense(spec.num_classes, name="fc")(inputs)
    elif spec.name == "mlp":
        hidden = layers.Dense(spec.hidden, activation="relu", name="fc1")(inputs)
        outputs = layers.Dense(spec.num_classes, name="fc2")(hidden)
    elif spec.name == "mlp_bn":  # torch's BatchNorm1d defaults: Keras' momentum 0.9 is torch's 0.1
        hidden = layers.Dense(spec.hidden, name="fc1")(inputs)
        hidden = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn1")(hidden)
        outputs = layers.Dense(spec.num_classes, name="fc2")(layers.Activation("relu")(hidden))
    else:
        x = layers.Reshape(spec.input_shape)(inputs)
        x = layers.Permute((2, 3, 1))(x)  # CHW -> HWC
        x = layers.Conv2D(32, 5, padding="same", activation="relu", name="conv1")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(64, 5, padding="same", activation="relu", name="conv2")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Permute((3, 1, 2))(x)  # HWC -> CHW, so flattening matches torch
        x = layers.Dense(spec.hidden, activation="relu", name="fc1")(layers.Flatten()(x))
        outputs = layers.Dense(spec.num_classes, name="fc2")(x)
    return keras.Model(inputs, outputs, name=spec.name)
