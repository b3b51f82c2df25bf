"""Client-wise configuration and personalization (issue 14): overrides, shared and private parameters, tasks,
the algorithms' trainers, skewed data, and one-line errors naming the key."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.data.splitters import classes_split
from fscore.errors import ConfigError, RejectedMessage
from fscore.message import Message
from fscore.personalization import SharedPart
from fscore.personalization.ditto import DittoTrainer
from fscore.personalization.fedem import FedEMTrainer
from fscore.personalization.pfedme import PFedMeTrainer
from fscore.trainers.torch_trainer import TorchTrainer

from .helpers import ListOutbox

SKEW = "data.feature_skew={rotation_deg: 30, intensity: [0.6, 1.4], noise_std: 0.05}"
HEADS = ['participant_overrides={"5-9": {task: parity}}', "model.share=[fc1.*]"]


def builder(example_config, *sets: str) -> CourseBuilder:
    return CourseBuilder(load_config(example_config, list(sets)))


def test_overrides_by_index_and_range_reach_each_participants_trainer(example_config):
    b = builder(example_config, 'participant_overrides={"0-4": {lr: 0.05, local_epochs: 3}, 7: {optimizer: adam, '
                                'batch_size: 8}, "3": {lr: 0.2}}')
    assert [b.config.trainer_for(i).lr for i in (0, 3, 4, 5, 7)] == [0.05, 0.2, 0.05, 0.1, 0.1]
    assert b.config.trainer_for(3).local_epochs == 3 and b.config.trainer_for(5).local_epochs == 2
    trainer = b.trainer(7)
    assert trainer.cfg.optimizer == "adam" and trainer.cfg.batch_size == 8
    assert b.trainer(0).cfg.lr == 0.05


def test_an_override_picks_the_backend_over_participant_backends(example_config):
    config = load_config(example_config, ["trainer.participant_backends={2: tensorflow}",
                                          'participant_overrides={"2-3": {backend: torch}, 4: {backend: tensorflow}}'])
    assert [config.backend_for(i) for i in (1, 2, 3, 4)] == ["torch", "torch", "torch", "tensorflow"]


@pytest.mark.parametrize(("override", "expected"), [
    ('participant_overrides={"12": {lr: 0.1}}', r"participant_overrides\.12: participant 12 does not exist "
                                                r"\(indices run from 0 to 9\)"),
    ('participant_overrides={"8-11": {lr: 0.1}}', r"participant_overrides\.8-11: participant 11 does not exist"),
    ('participant_overrides={"0-3": {lr: -1}}', r"participant_overrides\.0-3\.lr: Input should be greater than 0"),
    ('participant_overrides={"2": {lrr: 1}}', r"participant_overrides\.2\.lrr: unknown key"),
    ('participant_overrides={"a": {lr: 1}}', r"participant_overrides\.a: not a participant index"),
    ('participant_overrides={"1": {factory: x:y}}', r"participant_overrides\.1\.factory: a course-wide trainer key"),
])
def test_a_bad_override_is_refused_naming_the_participant_and_the_key(example_config, override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(example_config, [override])


@pytest.mark.parametrize(("sets", "expected"), [
    (["model.share=[fc1.*, fc3.*]"], r"^model\.share\[1\]: pattern 'fc3\.\*' matches no parameter of model mlp"),
    (["personalization.name=fedbn"], r"^personalization\.name: fedbn keeps .* model mlp has no such parameter"),
    (["personalization.name=nope"], r"^personalization\.name: unknown personalization 'nope'; known: ditto, fedbn"),
    (["personalization.name=nowhere.at_all:Thing"], r"^personalization\.name: cannot import 'nowhere\.at_all:Thing'"),
    (["personalization={name: ditto, options: {lamb: 1}}"], r"^personalization\.options\.lamb: ditto has no option"),
    (["personalization.name=ditto", "trainer.participant_backends={1: tensorflow}"],
     r"^personalization\.name: ditto trains torch participants only; participant 1 is on tensorflow"),
    (["personalization.name=fedem", "model.share=[fc1.*]"], r"^model\.share: fedem shares whole models"),
    (['participant_overrides={"5-9": {task: parity}}'], r"^model\.share: fc2\.weight is shared, but participants "
                                                         r"5-9 \(task parity\) hold it as \(2, 64\)"),
    (['participant_overrides={"5": {task: oddness}}'], r"^participant_overrides\.5\.task: unknown task 'oddness'"),
])
def test_sharing_and_personalization_mistakes_are_refused_before_the_start(example_config, sets, expected):
    with pytest.raises(ConfigError, match=expected):
        builder(example_config, *sets)


def test_fedbn_keeps_batchnorm_private_everywhere(example_config):
    b = builder(example_config, "model.name=mlp_bn", "personalization.name=fedbn")
    batchnorm = {"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"}
    assert set(b.agreed_layout) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert set(b.initial_params()) == set(b.agreed_layout) and set(b.plan().private) == batchnorm
    trainer = b.trainer(0)
    assert isinstance(trainer, SharedPart) and set(trainer.get_parameters()) == set(b.agreed_layout)
    assert batchnorm <= set(trainer.full_parameters())
    assert b.heldout_evaluator() is None and b.numpy_evaluator() is None  # no global BatchNorm to evaluate with


def test_private_parameters_survive_a_received_model_and_start_from_the_seed(example_config):
    b = builder(example_config, "model.name=mlp_bn", "personalization.name=fedbn")
    first, again = b.trainer(3), b.trainer(3)
    for name, value in first.full_parameters().items():  # seeded: every process agrees on the private start
        assert value.tobytes() == again.full_parameters()[name].tobytes(), name
    assert np.all(first.full_parameters()["bn1.running_var"] == 1.0)
    private = {k: v.copy() for k, v in first.full_parameters().items() if k.startswith("bn1.")}
    first.set_parameters({k: np.zeros_like(v) for k, v in first.get_parameters().items()})
    assert all(np.array_equal(first.full_parameters()[k], v) for k, v in private.items())
    assert not first.full_parameters()["fc1.weight"].any()


def test_a_participant_sending_a_private_parameter_is_refused_naming_it(example_config):
    b = builder(example_config, "model.name=mlp_bn", "personalization.name=fedbn", "participants=2")
    coordinator = b.coordinator(ListOutbox())
    coordinator.start()
    trainer = b.trainer(0)
    for i in range(2):
        coordinator.handle(Message("join_in", ("coordinator",), 0, {
            "address": f"p{i}", "num_train_samples": 50, "num_test_samples": 5, "backend": "torch"},
            sender=f"p{i}", timestamp=1.0, id=f"p{i}/j", course=b.config.course_id))
    leaked = {**trainer.get_parameters(), "bn1.running_mean": trainer.full_parameters()["bn1.running_mean"]}
    update = Message("model_update", ("coordinator",), 0, {"num_samples": 10, "base_round": 0, "train_metrics": {},
                                                           "tensors": leaked},
                     sender="p0", timestamp=2.0, id="p0/u", course=b.config.course_id)
    with pytest.raises(RejectedMessage, match=r"participant p0 sent private parameters \['bn1\.running_mean'\]"):
        coordinator.handle(update)
    assert coordinator.state.buffer.updates == []


def test_different_heads_share_the_body_and_learn_their_own_task(example_config):
    b = builder(example_config, *HEADS)
    assert set(b.agreed_layout) == {"fc1.weight", "fc1.bias"}
    assert b.layout_for(7)["fc2.weight"].shape == (2, 64) and b.layout_for(2)["fc2.weight"].shape == (10, 64)
    assert set(np.unique(b.participant_data(7).train.y)) <= {0, 1}
    assert set(b.trainer(7).get_parameters()) == {"fc1.weight", "fc1.bias"}


@pytest.mark.parametrize(("name", "cls"), [("ditto", DittoTrainer), ("pfedme", PFedMeTrainer),
                                           ("fedem", FedEMTrainer)])
def test_each_algorithm_is_a_trainer_that_exchanges_the_global_layout(example_config, name, cls):
    b = builder(example_config, f"personalization.name={name}", "rounds=1")
    trainer = b.trainer(2)
    assert isinstance(trainer, cls)
    assert {k: v.shape for k, v in trainer.get_parameters().items()} == \
        {k: s.shape for k, s in b.agreed_layout.items()}
    trainer.set_parameters(b.initial_params())
    trainer.start_round(0)
    data = b.participant_data(2)
    assert trainer.train(data.train).num_samples == len(data.train)
    assert 0.0 <= trainer.evaluate(data.test).metrics["accuracy"] <= 1.0


def test_fedem_has_k_components_and_learns_mixture_weights(example_config):
    b = builder(example_config, "personalization={name: fedem, options: {components: 3}}")
    assert set(b.agreed_layout) == {f"c{k}.{n}" for k in range(3) for n in ("fc1.weight", "fc1.bias", "fc2.weight",
                                                                           "fc2.bias")}
    trainer = b.trainer(0)
    trainer.set_parameters(b.initial_params())
    trainer.start_round(0)
    trainer.train(b.participant_data(0).train)
    assert trainer.weights.sum() == pytest.approx(1.0) and not np.allclose(trainer.weights, 1 / 3)


def test_ditto_pulls_its_personal_model_towards_the_global_one(example_config):
    b = builder(example_config, "personalization={name: ditto, options: {lam: 1.0}}")
    trainer = b.trainer(1)
    assert isinstance(trainer.personal, TorchTrainer) and trainer.personal.cfg.proximal_mu == 1.0
    trainer.set_parameters(b.initial_params())
    trainer.start_round(0)
    trainer.train(b.participant_data(1).train)
    sent, personal = trainer.get_parameters(), trainer.personal.get_parameters()
    assert not np.array_equal(sent["fc1.weight"], personal["fc1.weight"])  # two models, one sent


def test_feature_skew_gives_each_participant_its_own_transform_and_keeps_the_split(example_config):
    plain, skewed = builder(example_config), builder(example_config, SKEW)
    a, b = plain.federation.clients, skewed.federation.clients
    assert all(np.array_equal(x.train.y, y.train.y) for x, y in zip(a, b, strict=True))  # same examples
    assert not np.allclose(a[0].train.x, b[0].train.x)
    assert np.array_equal(plain.federation.heldout.x, skewed.federation.heldout.x)  # the coordinator's is left
    again = builder(example_config, SKEW).federation.clients
    assert all(np.array_equal(x.train.x, y.train.x) for x, y in zip(b, again, strict=True))


def test_rotation_needs_images(example_config):
    with pytest.raises(ConfigError, match=r"data\.feature_skew\.rotation_deg: .* not images"):
        _ = builder(example_config, "data.dataset=synthetic", "data.feature_skew={rotation_deg: 10}")


def test_classes_split_gives_each_participant_its_classes():
    labels = np.repeat(np.arange(10), 30)
    parts = classes_split(labels, 20, 2, np.random.default_rng(0))
    assert all(len(np.unique(labels[p])) == 2 for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == list(range(300))
