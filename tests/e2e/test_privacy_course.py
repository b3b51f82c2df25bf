"""Privacy and attacks in real standalone courses (issue 15): iDLG/DLG recover training digits from single-step
updates and client-side DP stops them; ε is in the summary; BadNets with boosting plants a backdoor FedAvg
keeps and the median removes; every course is deterministic and replays with ``--verify``."""

from __future__ import annotations

import pytest

from fscore.config import load_config
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone

pytestmark = pytest.mark.slow

SINGLE_STEP = ["rounds=2", "data.split=iid", "trainer.batch_size=1", "trainer.local_steps=1", "trainer.momentum=0",
               "evaluation.every=1"]
INVERSION = "{name: gradient_inversion, role: coordinator, options: {method: %s, max_samples: 20}}"
CLIENT_DP = "{name: client_dp, options: {clip: 1.0, noise_multiplier: %s}}"


def inversion(example_config, method: str, noise: float | None = None, course: str = "dlg"):
    plugins = [INVERSION % method, *([CLIENT_DP % noise] if noise is not None else [])]
    config = load_config(example_config, [*SINGLE_STEP, f"plugins=[{', '.join(plugins)}]", f"course_id={course}"])
    return run_standalone(config, progress=False)


@pytest.mark.parametrize("method", ["idlg", "dlg"])
def test_gradient_inversion_recovers_training_digits_from_single_step_updates(example_config, method):
    attack = inversion(example_config, method).summary["plugins"]["gradient_inversion"]
    assert attack["attacked"] == 20
    assert attack["mean_ssim"] >= 0.8 and attack["label_accuracy"] >= 0.95, attack["mean_ssim"]
    first = attack["reconstructions"][0]
    assert len(first["image"]) == len(first["truth"]) == 64 and first["mse"] < 0.05


def test_client_dp_stops_the_inversion_and_reports_what_it_spent(example_config):
    result = inversion(example_config, "idlg", noise=0.1, course="dlg-dp")
    attack = result.summary["plugins"]["gradient_inversion"]
    assert attack["mean_ssim"] <= 0.3
    privacy = result.summary["privacy"]
    assert privacy["participants"]["protected"] == 10 and privacy["participants"]["unprotected"] == 0
    spent = privacy["participants"]["by_participant"]["participant-00000"]
    assert spent["releases"] == 2 and spent["epsilon"] == privacy["participants"]["epsilon_max"] > 0
    report = replay_course(result.log, "dlg-dp")  # the attack's own draws are seeded too: it re-scores alike
    assert report.verified and report.final_sha256 == result.summary["model_sha256"]
    assert report.plugins["gradient_inversion"]["mean_ssim"] == attack["mean_ssim"]


@pytest.mark.parametrize(("plugin", "learns"), [
    ("{name: client_dp, participants: [0, 1, 2, 3, 4], options: {clip: 2.0, noise_multiplier: 0.05}}", True),
    # Laplace noise on every coordinate at ε=1000 over 4 releases swamps a 4,810-parameter update: it runs,
    # spends what it was given, and learns nothing in 4 rounds
    ("{name: client_dp, options: {clip: 2.0, epsilon: 1000.0, mechanism: laplace}}", False),
    ("{name: central_dp, role: coordinator, options: {clip: 1.0, noise_multiplier: 0.3, adaptive: true}}", True),
    ("{name: nbafl, role: all, options: {clip: 20.0, epsilon: 50.0}}", True),
    ("{name: dp_sgd, options: {max_grad_norm: 1.0, noise_multiplier: 0.5}}", True),
])
def test_each_dp_course_is_deterministic_replays_bit_for_bit_and_reports_epsilon(example_config, plugin, learns):
    config = load_config(example_config, ["rounds=4", "sample_size=4", f"plugins=[{plugin}]", "course_id=dp"])
    result = run_standalone(config, progress=False)
    summary = result.summary
    assert summary["finish_reason"] == "max_rounds_reached"
    if learns:
        assert summary["final_metrics"]["heldout.accuracy"] > 0.3  # learns despite the noise (chance: 0.1)
    privacy = summary["privacy"]
    if "central" in privacy:
        assert privacy["central"]["central_dp"]["epsilon"] > 0
        assert privacy["central"]["central_dp"]["spends"][0]["sampling"] == 0.4  # 4 of 10, uniform
    else:
        unit = privacy["examples" if "dp_sgd" in plugin else "participants"]
        assert unit["epsilon_max"] is None or unit["epsilon_max"] > 0
        releases = {a: p.get("releases", 0) for a, p in unit["by_participant"].items()}
        assert sum(releases.values()) == 16  # 4 rounds x 4 sampled, counted by the coordinator
    report = replay_course(result.log, "dp")
    assert report.verified, report.mismatches
    assert run_standalone(config, progress=False).summary["model_sha256"] == summary["model_sha256"]


BACKDOOR = ("{name: backdoor, role: all, participants: [3, 11], options: {kind: badnets, target_label: 0, "
            "fraction: 0.5, boost: 3.0}}")
BACKDOOR_COURSE = ["participants=20", "rounds=20", "data.split=iid", "evaluation.every=10"]


def test_badnets_with_boosting_survives_fedavg_and_the_median_removes_it(example_config):
    clean = run_standalone(load_config(example_config, BACKDOOR_COURSE), progress=False).summary
    clean_accuracy = clean["final_metrics"]["heldout.accuracy"]
    attacked = load_config(example_config, [*BACKDOOR_COURSE, f"plugins=[{BACKDOOR}]", "course_id=backdoor"])
    fedavg = run_standalone(attacked, progress=False)
    measured = fedavg.summary["plugins"]["backdoor"]
    assert measured["final_attack_success_rate"] >= 0.8
    assert abs(measured["final_clean_accuracy"] - clean_accuracy) <= 0.03
    assert len(measured["rounds"]) == 21 and measured["rounds"][0]["attack_success_rate"] < 0.3
    assert replay_course(fedavg.log, "backdoor").verified
    median = run_standalone(load_config(example_config, [*BACKDOOR_COURSE, f"plugins=[{BACKDOOR}]",
                                                         "aggregator={name: median}"]), progress=False)
    defended = median.summary["plugins"]["backdoor"]
    assert defended["final_attack_success_rate"] < 0.2
    assert abs(defended["final_clean_accuracy"] - clean_accuracy) <= 0.05


def test_inference_attacks_score_themselves_and_property_inference_reads_the_updates(example_config):
    plugins = ("[{name: membership_inference, role: coordinator, options: {shadow_models: 1, shadow_epochs: 10}}, "
               "{name: property_inference, role: coordinator, options: {property_class: 3}}]")
    config = load_config(example_config, ["rounds=10", "evaluation.every=10", f"plugins={plugins}", "course_id=mia"])
    result = run_standalone(config, progress=False)
    membership = result.summary["plugins"]["membership_inference"]
    assert membership["examples"] == 600 and 0.3 < membership["loss_auc"] < 0.8 and 0.3 < membership["shadow_auc"] < 0.8
    prop = result.summary["plugins"]["property_inference"]
    assert prop["attacked"] == 30 and 0 < prop["with_property"] < 30  # Dirichlet(0.5): some lack the class
    assert prop["auc"] >= 0.8  # the last layer's change gives the class away
    assert replay_course(result.log, "mia").plugins == result.summary["plugins"]
