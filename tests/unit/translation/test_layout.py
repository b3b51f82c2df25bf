"""The agreed layout and the Keras adapter, without TensorFlow: names, transposes, and clear mismatch errors."""

from __future__ import annotations

import numpy as np
import pytest

from fstranslation import LayoutError
from fstranslation.adapters import get_adapter
from fstranslation.layout import TensorSpec, check_layout, layout_of

keras_adapter = get_adapter("tensorflow")


def keras_params(rng):
    return {
        "conv1.kernel": rng.standard_normal((5, 5, 1, 32)).astype(np.float32),  # HWIO
        "conv1.bias": rng.standard_normal(32).astype(np.float32),
        "bn1.gamma": rng.standard_normal(32).astype(np.float32),
        "bn1.beta": rng.standard_normal(32).astype(np.float32),
        "bn1.moving_mean": rng.standard_normal(32).astype(np.float32),
        "bn1.moving_variance": rng.random(32).astype(np.float32),
        "fc1.kernel": rng.standard_normal((64, 10)).astype(np.float32),  # [in, out]
        "fc1.bias": rng.standard_normal(10).astype(np.float32),
    }


def test_keras_parameters_map_to_torch_conventions_and_back_bit_exactly():
    params = keras_params(np.random.default_rng(0))
    wire = keras_adapter.to_wire(params)
    assert {k: v.shape for k, v in wire.items()} == {
        "conv1.weight": (32, 1, 5, 5), "conv1.bias": (32,), "bn1.weight": (32,), "bn1.bias": (32,),
        "bn1.running_mean": (32,), "bn1.running_var": (32,), "fc1.weight": (10, 64), "fc1.bias": (10,)}
    assert wire["conv1.weight"][3, 0, 1, 2] == params["conv1.kernel"][1, 2, 0, 3]
    assert wire["fc1.weight"][7, 5] == params["fc1.kernel"][5, 7]
    assert all(v.flags.c_contiguous for v in wire.values())
    back = keras_adapter.from_wire({**wire, "bn1.num_batches_tracked": np.array(3)})
    assert set(back) == set(params)
    for name, value in params.items():
        assert back[name].tobytes() == value.tobytes(), name


def test_a_mismatch_names_each_parameter_and_both_shapes():
    agreed = {"fc1.weight": TensorSpec((10, 64)), "fc1.bias": TensorSpec((10,)), "fc2.weight": TensorSpec((2, 10))}
    params = {"fc1.weight": np.zeros((64, 10), np.float32), "fc1.bias": np.zeros(10, np.float64),
              "head.weight": np.zeros((2, 10), np.float32)}
    with pytest.raises(LayoutError) as err:
        check_layout(params, agreed, "participant-00003 (tensorflow)")
    message = str(err.value)
    assert message.startswith("participant-00003 (tensorflow) does not match the agreed layout: ")
    assert "missing parameter `fc2.weight` (the layout expects shape (2, 10), float32)" in message
    assert "extra parameter `head.weight` with shape (2, 10)" in message
    assert "parameter `fc1.weight` has shape (64, 10); the agreed layout says (10, 64)" in message
    assert "parameter `fc1.bias` is float64; the agreed layout says float32" in message
    check_layout({"fc1.bias": np.zeros(10, np.float32)}, layout_of({"fc1.bias": np.ones(10, np.float32)}), "x")


def test_large_dense_kernels_are_transposed_tile_by_tile_bit_exactly_with_ragged_edges():
    from fstranslation.adapters import keras_backend

    kernel = np.random.default_rng(3).standard_normal((700, 300)).astype(np.float32)  # tiles of 256: ragged
    wire = keras_backend.to_wire({"fc.kernel": kernel, "fc.bias": np.zeros(300, np.float32)})
    assert wire["fc.weight"].flags.c_contiguous and np.array_equal(wire["fc.weight"], kernel.T)
    assert keras_backend.from_wire(wire)["fc.kernel"].tobytes() == kernel.tobytes()
