"""Model-poisoning participants (the first plug-in): what they send instead of their update, and the config checks."""

import numpy as np
import pytest

from fscore.attacks.poisoning import ModelPoisoning
from fscore.config import config_from_dict
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.message import MODEL_PARAMETERS, MODEL_UPDATE, Message
from fscore.plugins import PluginContext

RECEIVED = {"w": np.full(3, 1.0, np.float32), "count": np.array([5], np.int64)}
TRAINED = {"w": np.full(3, 1.5, np.float32), "count": np.array([9], np.int64)}


def attack(kind: str, scale: float = 4.0):
    """What participant 2, poisoning with ``kind``, sends in round ``r`` for TRAINED after receiving RECEIVED."""
    plugin = ModelPoisoning(PluginContext("c", 0, "participant", 2), kind=kind, scale=scale)

    def sent(received, trained, r):
        plugin.incoming(None, Message(MODEL_PARAMETERS, ("participant-00002",), r, {"tensors": received}))
        update = Message(MODEL_UPDATE, ("coordinator",), r, {"tensors": trained, "num_samples": 3})
        out = plugin.outgoing(None, update)
        assert out.payload["num_samples"] == 3  # only the tensors are replaced
        return out.payload["tensors"]
    return sent


def test_sign_flip_sends_the_received_model_minus_scale_times_the_change():
    sent = attack("sign_flip")(RECEIVED, TRAINED, 1)
    assert sent["w"].tolist() == [-1.0] * 3  # 1 - 4 x 0.5
    assert sent["w"].dtype == np.float32 and sent["count"].tolist() == [9]  # integer buffers untouched


def test_scale_boosts_the_change():
    assert attack("scale", 3.0)(RECEIVED, TRAINED, 1)["w"].tolist() == [2.5] * 3


def test_gaussian_noise_is_reproducible_per_round_and_differs_between_rounds():
    a = attack("gaussian", 1.0)
    first, again, later = a(RECEIVED, TRAINED, 1)["w"], a(RECEIVED, TRAINED, 1)["w"], a(RECEIVED, TRAINED, 2)["w"]
    assert first.tobytes() == again.tobytes() and first.tobytes() != later.tobytes()
    assert np.all(first != 1.0)


def test_an_update_for_a_round_it_was_not_sent_is_passed_through():
    plugin = ModelPoisoning(PluginContext("c", 0, "participant", 2), kind="sign_flip")
    update = Message(MODEL_UPDATE, ("coordinator",), 4, {"tensors": TRAINED})
    assert plugin.outgoing(None, update) is update


def test_the_attack_section_gives_the_plugin_to_the_malicious_participants_only():
    builder = CourseBuilder(config_from_dict({"participants": 4}, ["attack.kind=sign_flip", "attack.participants=[2]"]))
    assert [[p.label for p in builder.plugins_for("participant", i)] for i in range(4)] == [
        [], [], ["model_poisoning"], []]
    assert builder.plugins_for("coordinator", None) == []
    assert list(builder.participant_variants().values()) == [[0, 1, 3], [2]]


@pytest.mark.parametrize(("overrides", "message"), [
    (["attack.kind=sign_flip", "attack.participants=[3, 12]"],
     "attack.participants: participants [12] do not exist (indices run from 0 to 9)"),
    (["attack.kind=scale"], "attack.participants: attack 'scale' names no malicious participant"),
    (["attack.kind=backdoor"], "attack.kind: Input should be"),
    (["attack.kind=gaussian", "attack.participants=[1]", "attack.scale=0"], "attack.scale: Input should be greater"),
])
def test_an_attack_that_cannot_work_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict({}, overrides)
    assert message in str(err.value)
