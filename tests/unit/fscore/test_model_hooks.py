"""A course's model beyond the zoo: a declared layout, builder, init, adapter and trainer hooks; bad hooks
fail before the course starts, naming the config key."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.trainers.base import NoOpTrainer
from fstranslation.layout import TensorSpec

FIXTURES = "tests.unit.fscore.fixtures.custom_models"
MLP_LAYOUT = ("model.layout=[{name: fc1.weight, shape: [64, 64]}, {name: fc1.bias, shape: [64]}, "
              "{name: fc2.weight, shape: [10, 64]}, {name: fc2.bias, shape: [10]}]")


def builder(example_config, *overrides: str) -> CourseBuilder:
    return CourseBuilder(load_config(example_config, list(overrides)))


def test_a_zoo_model_may_declare_its_layout_and_the_declaration_is_checked(example_config):
    assert builder(example_config, MLP_LAYOUT).agreed_layout["fc2.weight"] == TensorSpec((10, 64))
    with pytest.raises(ConfigError) as err:
        _ = builder(example_config, MLP_LAYOUT, "model.hidden=32").agreed_layout
    assert str(err.value).startswith("model.layout: the declared layout is not the zoo's mlp: parameter `fc1.weight` "
                                     "has shape (64, 64); the agreed layout says (32, 64)")


def test_a_custom_model_takes_its_layout_from_the_config_and_is_initialised_over_it(example_config):
    b = builder(example_config, "model.name=custom", MLP_LAYOUT)
    params = b.initial_params()
    assert {k: v.shape for k, v in params.items()} == {k: s.shape for k, s in b.agreed_layout.items()}
    # the default initialisation over a layout is the zoo's own: a custom twin of the MLP starts identically
    zoo = builder(example_config).initial_params()
    assert all(params[k].tobytes() == zoo[k].tobytes() for k in zoo)


@pytest.mark.parametrize(("overrides", "expected"), [
    (["model.name=custom"], "model.layout: a custom model needs its agreed layout declared"),
    (["model.name=custom", "model.layout=[{name: w, shape: [2, 2]}, {name: w, shape: [2]}]"],
     "model.layout: parameters ['w'] are declared more than once"),
    (["model.builders={tensorflow: not-a-hook}"], "model.builders.tensorflow: 'not-a-hook' is not module:function"),
    (["trainer.factory=nope"], "trainer.factory: unknown trainer 'nope'"),
])
def test_bad_model_declarations_name_the_key(example_config, overrides, expected):
    with pytest.raises(ConfigError) as err:
        CourseBuilder(load_config(example_config, overrides))
    assert expected in str(err.value)


def test_an_init_hook_replaces_the_initialisation_and_must_return_the_agreed_layout(example_config):
    params = builder(example_config, f"model.init={FIXTURES}:zeros").initial_params()
    assert set(params) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert all(not v.any() for v in params.values())
    with pytest.raises(ConfigError, match=r"model.init: .*forgets_a_bias returned parameters that do not match the "
                                          r"agreed layout: missing parameter `fc2.bias`"):
        builder(example_config, f"model.init={FIXTURES}:forgets_a_bias").initial_params()


def test_a_trainer_factory_builds_every_participants_trainer(example_config):
    b = builder(example_config, f"trainer.factory={FIXTURES}:no_op_trainer")
    assert isinstance(b.trainer(3), NoOpTrainer)
    with pytest.raises(ConfigError, match=r"trainer.factory: .*not_a_trainer returned object, not a Trainer"):
        builder(example_config, f"trainer.factory={FIXTURES}:not_a_trainer").trainer(0)


def test_a_custom_model_without_a_builder_for_a_participants_backend_is_a_config_error(example_config):
    b = builder(example_config, "model.name=custom", MLP_LAYOUT)
    with pytest.raises(ConfigError, match=r"model.builders.torch: a custom model needs a torch builder"):
        b.trainer(0)
    assert b.heldout_evaluator() is None  # no torch model to evaluate the held-out set with


def test_an_adapter_hook_must_encode_and_decode(example_config):
    b = builder(example_config, "trainer.adapters={torch: tests.unit.fscore.fixtures.custom_handlers}")
    with pytest.raises(ConfigError, match=r"trainer.adapters.torch: .*custom_handlers has no to_wire or from_wire"):
        b.trainer(0)
    with pytest.raises(ConfigError, match=r"trainer.adapters.torch: cannot import 'nowhere.codec'"):
        builder(example_config, "trainer.adapters={torch: nowhere.codec}").trainer(0)


def test_a_torch_adapter_hook_is_used_by_the_trainer_and_the_held_out_evaluator(example_config):
    b = builder(example_config, "trainer.adapters={torch: fstranslation.adapters.torch_backend}")
    trainer = b.trainer(0)
    trainer.set_parameters(b.initial_params())
    assert trainer.adapter.name == "torch" and b.heldout_evaluator().adapter.name == "torch"
    assert np.array_equal(trainer.get_parameters()["fc2.bias"], b.initial_params()["fc2.bias"])
