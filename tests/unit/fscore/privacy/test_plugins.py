"""The DP plug-ins as transforms and as course checks: what is sent, what the coordinator aggregates, and the
configs refused before the start (issue 15, "Bad config")."""

import numpy as np
import pytest

from fscore.aggregators.base import ClientUpdate
from fscore.aggregators.fedavg import FedAvg
from fscore.config import config_from_dict
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.message import MODEL_PARAMETERS, MODEL_UPDATE, Message
from fscore.plugins import PluginContext
from fscore.privacy.central import CentralDP
from fscore.privacy.client import ClientDP
from fscore.privacy.nbafl import NbAFL

RECEIVED = {"w": np.zeros(4, np.float32), "n": np.array([1], np.int64)}
TRAINED = {"w": np.array([3.0, 4.0, 0.0, 0.0], np.float32), "n": np.array([2], np.int64)}


def course(**changes):
    base = {"participants": 10, "rounds": 20, "data": {"dataset": "digits", "split": "iid"},
            "model": {"name": "mlp"}, "trainer": {"backend": "torch"}}
    return config_from_dict({**base, **changes})


def sent_by(plugin, received=RECEIVED, trained=TRAINED, round_=1):
    plugin.incoming(None, Message(MODEL_PARAMETERS, ("participant-00002",), round_, {"tensors": received}))
    out = plugin.outgoing(None, Message(MODEL_UPDATE, ("coordinator",), round_, {"tensors": trained,
                                                                                  "num_samples": 3}))
    return out.payload["tensors"]


def test_client_dp_clips_the_change_and_adds_seeded_noise_per_participant_and_round():
    quiet = ClientDP(PluginContext("c", 0, "participant", 2), clip=1.0, noise_multiplier=0.0)
    out = sent_by(quiet)
    assert np.allclose(out["w"], [0.6, 0.8, 0, 0]) and out["w"].dtype == np.float32
    assert out["n"].tolist() == [2]  # integer buffers pass as trained
    noisy = [ClientDP(PluginContext("c", 0, "participant", i), clip=1.0, noise_multiplier=0.5) for i in (2, 2, 3)]
    a, b, c = (sent_by(p)["w"] for p in noisy)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, sent_by(noisy[0], round_=2)["w"])
    assert np.std(np.concatenate([sent_by(noisy[0], round_=r)["w"] - out["w"] for r in range(200)])) == \
        pytest.approx(0.5, rel=0.1)  # noise std = noise_multiplier x clip


def test_client_dp_derives_its_noise_from_an_epsilon_target_over_the_rounds():
    config = course()
    plugin = ClientDP(PluginContext("c", 0, "participant", 0, config), clip=1.0, epsilon=4.0)
    from fscore.privacy.accounting import epsilon
    assert epsilon(plugin.spends(config.rounds), 1e-5) == pytest.approx(4.0, rel=1e-2)


def test_central_dp_without_noise_is_the_unweighted_mean_of_clipped_changes():
    dp = CentralDP(PluginContext("c", 0, "coordinator", None, course()), clip=1.0, noise_multiplier=0.0)
    current = {"w": np.zeros(2, np.float32)}
    updates = [ClientUpdate("a", {"w": np.array([3.0, 4.0], np.float32)}, 100, 0),  # clipped to norm 1
               ClientUpdate("b", {"w": np.array([0.2, 0.0], np.float32)}, 1, 0)]
    model = dp.aggregate_privately(0, current, updates)
    assert np.allclose(model["w"], [(0.6 + 0.2) / 2, 0.8 / 2])  # sample counts are ignored
    assert FedAvg().aggregate(current, [ClientUpdate("central_dp", model, 1, 0)])["w"].tolist() == \
        model["w"].tolist()
    assert dp.unclipped == [0.5]


def test_adaptive_clipping_moves_the_clip_towards_the_target_quantile():
    dp = CentralDP(PluginContext("c", 0, "coordinator", None, course()), clip=10.0, noise_multiplier=0.0,
                   adaptive=True, count_noise=0.01)
    current = {"w": np.zeros(1, np.float32)}
    updates = [ClientUpdate(str(i), {"w": np.array([float(i + 1)], np.float32)}, 1, 0) for i in range(10)]
    for r in range(60):
        dp.aggregate_privately(r, current, updates)
    assert 4.0 < dp.clip < 7.0  # the median norm is 5.5
    assert dp.clips[0] == 10.0 and all(b < a for a, b in zip(dp.clips[:5], dp.clips[1:6], strict=True))
    assert dp.unclipped[0] == 1.0  # every norm is within the first clip


def test_nbafl_noise_follows_the_paper():
    config = course(rounds=40, participants=10, sample_size=2)
    participant = NbAFL(PluginContext("c", 0, "participant", 0, config), epsilon=10.0, clip=5.0)
    assert participant.exposures == 8  # 40 rounds x 2 of 10
    c = np.sqrt(2 * np.log(1.25 / 1e-5))
    assert participant.noise_multiplier == pytest.approx(c * 8 / 10.0)
    full = NbAFL(PluginContext("c", 0, "participant", 0, course(rounds=40)), epsilon=10.0, clip=5.0)
    assert full.exposures == 40  # everyone every round: T > L sqrt(N) never holds, no downlink noise


@pytest.mark.parametrize(("plugins", "key"), [
    ([{"name": "client_dp", "options": {"clip": 0, "noise_multiplier": 1.0}}], "plugins[0].options.clip"),
    ([{"name": "client_dp", "options": {"clip": 1, "noise_multiplier": -0.5}}],
     "plugins[0].options.noise_multiplier"),
    ([{"name": "client_dp", "options": {"clip": 1}}], "plugins[0].options.noise_multiplier"),
    ([{"name": "client_dp", "options": {"clip": 1, "noise_multiplier": 0.5, "epsilon": 1.0}}],
     "plugins[0].options.epsilon"),
    ([{"name": "central_dp", "role": "coordinator", "options": {"clip": 1, "noise_multiplier": 0.5,
                                                                 "epsilon": 1.0}}], "plugins[0].options.epsilon"),
    ([{"name": "nbafl", "role": "all", "options": {"clip": -1, "epsilon": 1.0}}], "plugins[0].options.clip"),
    ([{"name": "backdoor", "role": "all", "participants": [1], "options": {"target_label": 10}}],
     "plugins[0].options.target_label"),
    ([{"name": "backdoor", "role": "all", "participants": [1], "options": {"target_label": 1, "fraction": 1.5}}],
     "plugins[0].options.fraction"),
    ([{"name": "backdoor", "role": "all", "participants": [1], "options": {"target_label": 1, "fraction": -0.1}}],
     "plugins[0].options.fraction"),
    ([{"name": "gradient_inversion", "role": "coordinator"}], "trainer.batch_size"),
])
def test_bad_privacy_and_attack_configs_are_refused_naming_the_key(plugins, key):
    with pytest.raises(ConfigError) as err:
        CourseBuilder(course(plugins=plugins))
    message = str(err.value)
    assert message.startswith(f"{key}:") and "\n" not in message, message


def test_the_unmeetable_epsilon_target_says_what_the_rounds_would_spend():
    with pytest.raises(ConfigError, match=r"cannot be met: 20 rounds at noise_multiplier 0.5 spend ε="):
        CourseBuilder(course(plugins=[{"name": "client_dp", "options": {"clip": 1, "noise_multiplier": 0.5,
                                                                         "epsilon": 1.0}}]))


def test_central_dp_refuses_an_aggregator_that_needs_individual_updates():
    with pytest.raises(ConfigError, match=r"^aggregator.name: median needs the individual updates"):
        CourseBuilder(course(aggregator={"name": "median"},
                             plugins=[{"name": "central_dp", "role": "coordinator",
                                       "options": {"clip": 1, "noise_multiplier": 0.5}}]))
