"""``fscope report`` draws the privacy and attack figures from what the plug-ins leave in summary.json."""

import json

from fscore.report import write_report


def run(tmp_path, name, protected, epsilon, accuracy, **plugins):
    directory = tmp_path / name
    directory.mkdir()
    summary = {"strategy": "sync_vanilla", "participants": 4, "final_metrics": {"heldout.accuracy": accuracy},
               **({"privacy": {"participants": {"protected": protected, "unprotected": 4 - protected,
                                                "epsilon_max": epsilon, "epsilon_mean": epsilon,
                                                "by_participant": {}}}} if protected else {}),
               **({"plugins": plugins} if plugins else {})}
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory


def test_privacy_curve_backdoor_rounds_and_reconstruction_grid(tmp_path):
    image = [0.5] * 64
    inversion = {"mean_ssim": 0.9, "image_shape": [8, 8],
                 "reconstructions": [{"image": image, "truth": image, "ssim": 0.9}] * 3}
    backdoor = {"rounds": [{"round": r, "clean_accuracy": 0.5, "attack_success_rate": r / 3} for r in range(4)]}
    dirs = [run(tmp_path, "clean", 0, None, 0.95, backdoor=backdoor),
            run(tmp_path, "half", 2, 8.0, 0.9), run(tmp_path, "all", 4, 8.0, 0.7, gradient_inversion=inversion)]
    write_report(dirs, tmp_path / "report")
    made = {p.name for p in (tmp_path / "report").glob("*.png")}
    assert {"accuracy_vs_privacy.png", "attack_success_rate.png", "inversion.png"} <= made
    assert (tmp_path / "report" / "inversion.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_without_privacy_or_attacks_draw_none_of_their_figures(tmp_path):
    write_report([run(tmp_path, "plain", 0, None, 0.9)], tmp_path / "report")
    made = {p.name for p in (tmp_path / "report").glob("*.png")}
    assert not made & {"accuracy_vs_privacy.png", "attack_success_rate.png", "inversion.png"}
