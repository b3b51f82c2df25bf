import numpy as np
import pytest

from fscore.data.federation import load_digits_dataset
from fscore.models.numpy_forward import NumpyEvaluator
from fscore.models.torch_zoo import build_torch_model
from fscore.models.zoo import ModelSpec, init_params, zoo_layout
from fscore.trainers.torch_trainer import TorchEvaluator


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_numpy_evaluation_matches_torch(name):
    spec = ModelSpec(name, (1, 8, 8), 10, 32)
    params = init_params(zoo_layout(spec), np.random.default_rng(0))
    data = load_digits_dataset()
    ours, ref = NumpyEvaluator(spec, data)(params), TorchEvaluator(build_torch_model(spec), data)(params)
    assert ours["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-3)
    assert ours["loss"] == pytest.approx(ref["loss"], rel=1e-4)


def test_convnet_has_no_numpy_evaluator():
    assert NumpyEvaluator.for_spec(ModelSpec("convnet2", (1, 8, 8), 10), load_digits_dataset()) is None
