import numpy as np
import pytest
import torch

from fstranslation import Header, WireCodec
from fstranslation.adapters import get_adapter


def test_torch_state_dict_survives_the_wire_bit_exactly():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3))
    adapter = get_adapter("torch")
    codec = WireCodec()
    data = codec.encode(Header("1", "c", "model_parameters", "s", ("r",), 0, 0.0),
                        {"tensors": adapter.to_wire(model.state_dict())})
    restored = adapter.from_wire(codec.decode(data)[1]["tensors"])
    for name, tensor in model.state_dict().items():
        assert restored[name].dtype == tensor.dtype
        assert torch.equal(restored[name], tensor), name


def test_decoded_tensors_are_writable_after_from_wire():
    adapter = get_adapter("torch")
    out = adapter.from_wire({"w": np.frombuffer(b"\x00" * 8, dtype="<f4")})
    out["w"] += 1  # must not raise on a read-only buffer


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match="known backends: numpy, tensorflow, torch"):
        get_adapter("jax")
