"""Model-poisoning participants: what they send instead of their update, and the config checks."""

import numpy as np
import pytest

from fscore.attacks import poisoner
from fscore.config import AttackConfig, config_from_dict
from fscore.errors import ConfigError

RECEIVED = {"w": np.full(3, 1.0, np.float32), "count": np.array([5], np.int64)}
TRAINED = {"w": np.full(3, 1.5, np.float32), "count": np.array([9], np.int64)}


def attack(kind: str, scale: float = 4.0):
    return poisoner(AttackConfig(kind=kind, participants=[2], scale=scale), seed=0, index=2)


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


def test_honest_participants_get_no_attack():
    assert poisoner(AttackConfig(kind="sign_flip", participants=[2]), 0, 3) is None
    assert poisoner(AttackConfig(), 0, 2) is None


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
