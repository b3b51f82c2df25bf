"""The renaming adapter: a model's own layer names <-> the agreed ones, around a backend adapter."""

from __future__ import annotations

import numpy as np
import pytest

from fstranslation.adapters import get_adapter
from fstranslation.adapters.renaming import Renamed


def test_keras_layers_named_their_own_way_encode_to_the_agreed_names_and_back_bit_exactly():
    codec = Renamed(get_adapter("tensorflow"), {"dense": "fc1", "dense_1": "fc2"})
    rng = np.random.default_rng(0)
    own = {"dense.kernel": rng.random((64, 32), dtype=np.float32), "dense.bias": rng.random(32, dtype=np.float32),
           "dense_1.kernel": rng.random((32, 10), dtype=np.float32), "dense_1.bias": rng.random(10, dtype=np.float32)}
    wire = codec.to_wire(own)
    assert {k: v.shape for k, v in wire.items()} == {"fc1.weight": (32, 64), "fc1.bias": (32,),
                                                     "fc2.weight": (10, 32), "fc2.bias": (10,)}
    back = codec.from_wire(wire)
    assert set(back) == set(own) and all(back[k].tobytes() == own[k].tobytes() for k in own)


def test_layers_not_in_the_map_keep_their_names_and_two_layers_cannot_share_one():
    codec = Renamed(get_adapter("numpy"), {"0": "fc1"})
    assert set(codec.to_wire({"0.weight": np.zeros(2), "head.bias": np.zeros(1)})) == {"fc1.weight", "head.bias"}
    with pytest.raises(ValueError, match="two layers map to the same agreed name"):
        Renamed(get_adapter("numpy"), {"a": "fc", "b": "fc"})
