"""Cross-backend: the torch and Keras twins of the zoo exchange the agreed layout bit-exactly, same function."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.config import TrainerConfig
from fscore.data.dataset import Dataset
from fscore.models.keras_zoo import build_keras_model
from fscore.models.torch_zoo import build_torch_model
from fscore.models.zoo import ModelSpec, batchnorm_constants, init_params, layout, zoo_layout
from fscore.trainers.keras_trainer import KerasTrainer
from fscore.trainers.torch_trainer import TorchTrainer

SPECS = [ModelSpec("logreg", (60,), 10), ModelSpec("mlp", (1, 8, 8), 10, 32), ModelSpec("convnet2", (1, 8, 8), 10, 32),
         ModelSpec("mlp_bn", (1, 8, 8), 10, 32),
         ModelSpec("convnet2", (3, 32, 32), 10, 32)]  # CIFAR-10's shape (issue 18): a course on it needs no code


def _id(spec: ModelSpec) -> str:
    return f"{spec.name}-{'x'.join(map(str, spec.input_shape))}"


def initial(spec: ModelSpec, seed: int) -> dict:
    """Seeded parameters; BatchNorm statistics drawn positive (a variance below zero is no model)."""
    params = init_params(zoo_layout(spec), np.random.default_rng(seed), batchnorm_constants(layout(spec)))
    rng = np.random.default_rng(seed + 100)
    for name in batchnorm_constants(layout(spec)):
        params[name] = (params[name] + rng.uniform(0.1, 0.5, params[name].shape)).astype(np.float32)
    return params


def trainers(spec: ModelSpec):
    cfg = TrainerConfig(lr=0.05)
    return (TorchTrainer(build_torch_model(spec), cfg, seed=(0, 3, 0)),
            KerasTrainer(build_keras_model(spec), cfg, seed=(0, 3, 0)))


@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_torch_to_wire_to_keras_to_wire_to_torch_is_bit_exact(spec):
    torch_t, keras_t = trainers(spec)
    keras_t.set_parameters(torch_t.get_parameters())
    through_keras = keras_t.get_parameters()
    assert {k: v.shape for k, v in through_keras.items()} == layout(spec)
    torch_t.set_parameters(through_keras)
    original = initial(spec, 7)
    keras_t.set_parameters(original)
    torch_t.set_parameters(keras_t.get_parameters())
    for name, value in torch_t.get_parameters().items():
        assert value.tobytes() == original[name].tobytes(), name


@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_the_twins_compute_the_same_function_from_the_same_parameters(spec):
    torch_t, keras_t = trainers(spec)
    params = initial(spec, 1)
    torch_t.set_parameters(params)
    keras_t.set_parameters(params)
    rng = np.random.default_rng(2)
    data = Dataset(rng.random((50, spec.num_features), dtype=np.float32), rng.integers(0, 10, 50))
    a, b = torch_t.evaluate(data), keras_t.evaluate(data)
    assert a.metrics["accuracy"] == pytest.approx(b.metrics["accuracy"], abs=1e-6)
    assert a.metrics["loss"] == pytest.approx(b.metrics["loss"], rel=1e-5)


def test_keras_training_is_deterministic_for_a_seed_and_reduces_the_loss():
    spec = SPECS[1]
    rng = np.random.default_rng(5)
    data = Dataset(rng.random((64, 64), dtype=np.float32), rng.integers(0, 10, 64))
    params = init_params(zoo_layout(spec), np.random.default_rng(1))
    results = []
    for _ in range(2):
        _, keras_t = trainers(spec)
        keras_t.set_parameters(params)
        keras_t.start_round(4)
        before = keras_t.evaluate(data).metrics["loss"]
        for _ in range(3):
            keras_t.train(data)
        results.append(keras_t.get_parameters())
        assert keras_t.evaluate(data).metrics["loss"] < before
    for name in results[0]:
        assert results[0][name].tobytes() == results[1][name].tobytes(), name


def test_a_custom_model_with_its_own_keras_codec_round_trips_bit_exactly_and_computes_the_same(mylab):
    from fscore.config import load_config
    from fscore.course import CourseBuilder

    b = CourseBuilder(load_config(mylab))
    torch_t, keras_t = b.trainer(0), b.trainer(1)  # participant 1 runs TensorFlow in the example
    assert (torch_t.backend, keras_t.backend) == ("torch", "tensorflow")
    assert {k for k in keras_t.variables} == {f"{layer}.{v}" for layer in ("dense_a", "dense_b", "logits")
                                              for v in ("kernel", "bias")}  # its own names, not the agreed ones
    original = b.initial_params()
    torch_t.set_parameters(original)
    keras_t.set_parameters(torch_t.get_parameters())
    torch_t.set_parameters(keras_t.get_parameters())
    for name, value in torch_t.get_parameters().items():
        assert value.tobytes() == original[name].tobytes(), name
    rng = np.random.default_rng(2)
    data = Dataset(rng.random((50, 64), dtype=np.float32), rng.integers(0, 10, 50))
    assert torch_t.evaluate(data).metrics["loss"] == pytest.approx(keras_t.evaluate(data).metrics["loss"], rel=1e-5)


def test_both_trainers_report_the_mean_squared_per_sample_loss_alike():
    """Oort's statistical utility needs sqrt(mean of squared per-sample losses) (Lai et al. 2021 §4.2): both
    twins report it from the same batches, and it is at least the squared mean loss (Jensen)."""
    spec = SPECS[1]
    rng = np.random.default_rng(6)
    data = Dataset(rng.random((40, 64), dtype=np.float32), rng.integers(0, 10, 40))
    params = initial(spec, 3)
    reports = []
    for trainer in trainers(spec):
        trainer.set_parameters(params)
        trainer.start_round(1)
        reports.append(trainer.train(data).metrics)
    for metrics in reports:
        assert metrics["loss_square_mean"] >= metrics["loss"] ** 2 > 0
    assert reports[0]["loss_square_mean"] == pytest.approx(reports[1]["loss_square_mean"], rel=1e-4)
