"""Plug-ins and the registry (issue 13): extensions found by name, entry point or module:attr, payload transforms,
handlers added without replacing, and one-line errors for every way of naming an extension wrongly."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from fscore.config import config_from_dict, load_config
from fscore.course import CourseBuilder
from fscore.errors import ConfigError, FscoreError, RejectedMessage
from fscore.events import HandlerOverwriteWarning, on_message
from fscore.message import COORDINATOR, MODEL_PARAMETERS, MODEL_UPDATE, Message
from fscore.plugins import Plugin, PluginContext, replace_payload
from fscore.replay import replay_course
from fscore.simulation.runner import run_standalone
from tests.conftest import ROOT

from .helpers import ListOutbox

EXTENSION = ROOT / "tests" / "extension"
SMALL = {"participants": 4, "rounds": 3, "sample_size": 2}
BY_ENTRY_POINT = ["aggregator.name=unweighted_mean", "aggregator.server_lr=0.5", "strategy.sampler=round_robin",
                  "plugins=[{name: update_ledger, role: coordinator}]"]
BY_PATH = ["aggregator.name=fscope_demo_ext:unweighted_mean", "aggregator.server_lr=0.5",
           "strategy.sampler=fscope_demo_ext:round_robin",
           "plugins=[{name: 'fscope_demo_ext:UpdateLedger', role: coordinator}]"]


@pytest.fixture
def extension(monkeypatch):
    """The demo extension package on the path, as `pip install` would make it (its dist-info included)."""
    monkeypatch.syspath_prepend(str(EXTENSION))
    return EXTENSION


@pytest.fixture
def examples(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))


def _course(example_config, overrides):
    return load_config(example_config, [f"{k}={v}" for k, v in SMALL.items()] + overrides)


# -- found by entry point and by module:attr, run standalone, replayed -------------------------------------------

@pytest.mark.slow
def test_a_third_party_extension_runs_by_entry_point_and_by_path_and_replays(extension, example_config):
    by_name = run_standalone(_course(example_config, BY_ENTRY_POINT), progress=False)
    by_path = run_standalone(_course(example_config, BY_PATH), progress=False)
    assert by_name.summary["model_sha256"] == by_path.summary["model_sha256"]
    default = run_standalone(_course(example_config, []), progress=False)
    assert by_name.summary["model_sha256"] != default.summary["model_sha256"]  # the extension did something
    # round robin over 4 participants, 2 a round: everyone trains in 2 of 3 rounds, in address order
    assert [a.senders for a in by_name.coordinator.state.aggregations] == [
        ("participant-00000", "participant-00001"), ("participant-00002", "participant-00003"),
        ("participant-00000", "participant-00001")]
    ledger = by_name.summary["plugins"]["update_ledger"]
    assert ledger["updates"] == 6 and ledger["per_sender"]["participant-00000"] == 2
    report = replay_course(by_name.log, by_name.summary["course_id"])
    assert report.verified and report.checked > 0
    assert report.plugins == by_name.summary["plugins"]  # the plug-in's state, rebuilt from the log


@pytest.mark.slow
def test_a_dataset_from_a_package_sets_the_layout_and_trains(extension, example_config):
    config = _course(example_config, ["data.dataset=five_digits", "rounds=5"])
    builder = CourseBuilder(config)
    assert builder.model_spec.num_classes == 5 and builder.agreed_layout["fc2.bias"].shape == (5,)
    assert int(builder.federation.heldout.y.max()) == 4
    result = run_standalone(config, progress=False)
    assert result.summary["final_metrics"]["heldout.accuracy"] > 0.6  # 5 classes: chance is 0.2
    by_path = _course(example_config, ["data.dataset=fscope_demo_ext:FiveDigits", "rounds=5"])
    assert run_standalone(by_path, progress=False).summary["model_sha256"] == result.summary["model_sha256"]


def test_entry_points_are_listed_among_the_known_names(extension):
    from fscore.aggregators import aggregator_names
    from fscore.plugins import plugin_names
    from fscore.samplers import sampler_names

    assert "unweighted_mean" in aggregator_names() and "fedavg" in aggregator_names()
    assert "round_robin" in sampler_names()
    assert {"update_ledger", "model_poisoning"} <= set(plugin_names())


# -- bad input: one line naming the key, before the course starts ------------------------------------------------

@pytest.mark.parametrize(("overrides", "message"), [
    (["plugins=[{name: nothing_like_it}]"], "plugins[0].name: unknown plugin 'nothing_like_it'; known: "),
    (["plugins=[{name: broken_plugin}]"], "plugins[0].name: entry point 'broken_plugin' of group fscope.plugins "
                                          "(fscope_demo_ext.missing:Nothing) failed to import: ModuleNotFoundError"),
    (["plugins=[{name: update_ledger, role: coordinator, options: {colour: red}}]"],
     "plugins[0].options.colour: update_ledger has no option 'colour'"),
    (["plugins=[{name: update_ledger, role: coordinator, options: {per_sender: maybe}}]"],
     "plugins[0].options.per_sender: Input should be a valid boolean"),
    (["plugins=[{name: update_ledger}]"], "plugins[0].role: plug-in update_ledger cannot be given to participant "
                                          "(only to coordinator)"),
    (["plugins=[{name: 'fscope_demo_ext:nowhere'}]"], "plugins[0].name: cannot import 'fscope_demo_ext:nowhere'"),
    (["plugins=[{name: 'fscope_demo_ext:round_robin'}]"], "plugins[0].name: 'fscope_demo_ext:round_robin' is "
                                                          "function"),
    (["plugins=[{name: model_poisoning, participants: [7]}]"],
     "plugins[0].participants: participants [7] do not exist"),
    (["plugins=[{name: model_poisoning, participants: [1]}]"], "plugins[0].options.kind: Field required"),
    (["aggregator.name=unweighted_mean", "aggregator.server_lr=0"],
     "aggregator.server_lr: Input should be greater than 0 (got 0)"),
    (["data.dataset=mnist"],
     "data.dataset: unknown dataset 'mnist'; known: cifar10, digits, five_digits, leaf, npz, synthetic, table"),
    (["strategy.sampler=round_robin", "strategy.sampler_options={speed: 2}"],
     "strategy.sampler_options: sampler round_robin takes no options (got speed)"),
])
def test_a_wrongly_named_extension_is_refused_in_one_line_naming_the_key(extension, example_config, overrides,
                                                                         message):
    with pytest.raises(ConfigError) as err:
        CourseBuilder(_course(example_config, overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_fscope_run_refuses_a_broken_entry_point_with_exit_2_and_one_line(example_config):
    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "run", str(example_config), "--set",
                           "plugins=[{name: broken_plugin}]"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(EXTENSION)})
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fscope: config error: plugins[0].name: entry point 'broken_plugin'")


# -- transforms and handlers --------------------------------------------------------------------------------------

class Tag(Plugin):
    """Appends its letter to an outgoing update's train metrics key list, and refuses incoming rounds over 99."""

    name = "tag"

    def __init__(self, context, letter="a"):
        super().__init__(context)
        self.letter = letter

    @property
    def label(self):
        return f"tag-{self.letter}"

    def outgoing(self, worker, message):
        return replace_payload(message, trail=message.payload.get("trail", "") + self.letter)

    def incoming(self, worker, message):
        if message.round > 99:
            raise RejectedMessage(f"round {message.round} is too far ahead")
        return replace_payload(message, seen_by=[*message.payload.get("seen_by", []), self.letter])


def _coordinator():
    builder = CourseBuilder(config_from_dict({"participants": 2}))
    outbox = ListOutbox()
    return builder.coordinator(outbox), outbox


def test_transforms_run_in_config_order_on_every_message_sent_and_received():
    coordinator, outbox = _coordinator()
    ctx = PluginContext("course", 0, COORDINATOR)
    coordinator.use(Tag(ctx, "a"))
    coordinator.use(Tag(ctx, "b"))
    coordinator.send("assign_id", ["p"], 0, {"participant_id": 0, "address": "p"})
    assert outbox.sent[-1].payload["trail"] == "ab"
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HandlerOverwriteWarning)
        coordinator.register(on_message("metrics"), lambda m: seen.append(m.payload["seen_by"]))
    coordinator.handle(Message("metrics", (COORDINATOR,), 0, {}, sender="p", id="p/0/1", course="course"))
    assert seen == [["a", "b"]]


def test_an_incoming_transform_may_refuse_a_message_and_it_leaves_no_trace():
    coordinator, _ = _coordinator()
    coordinator.use(Tag(PluginContext("course", 0, COORDINATOR)))
    late = Message(MODEL_UPDATE, (COORDINATOR,), 100, {}, sender="p", timestamp=5.0, id="p/0/9", course="course")
    with pytest.raises(RejectedMessage, match="round 100 is too far ahead"):
        coordinator.handle(late)
    assert coordinator.now == 0.0 and "p/0/9" not in coordinator._seen


def test_a_transform_may_not_change_the_envelope():
    class Redirect(Plugin):
        name = "redirect"

        def outgoing(self, worker, message):
            return Message(message.type, ("elsewhere",), message.round, message.payload, message.sender,
                           message.timestamp, message.id, message.course)

    coordinator, _ = _coordinator()
    coordinator.use(Redirect(PluginContext("course", 0, COORDINATOR)))
    with pytest.raises(FscoreError, match="redirect's outgoing transform changed the envelope"):
        coordinator.send("assign_id", ["p"], 0, {"participant_id": 0, "address": "p"})


def test_replacing_a_default_handler_warns_and_extending_it_does_not(examples):
    builder = CourseBuilder(load_config(ROOT / "examples" / "digits_norm_report.yaml"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, participants = builder.check_workers()
    (participant,) = participants.values()
    entry = participant.handlers.get(on_message(MODEL_PARAMETERS))
    assert entry.handler_name == "Participant.train_and_report + NormReport.report"
    assert entry.emits == {MODEL_UPDATE, "update_norm"}
    with pytest.warns(HandlerOverwriteWarning, match="overwrites Participant.train_and_report"):
        participant.register(on_message(MODEL_PARAMETERS), lambda m: None)


def test_a_plugins_randomness_is_its_own_stream_per_participant():
    def draws(index, name="tag"):
        plugin = Tag(PluginContext("c", 7, "participant", index))
        plugin.name = name
        return plugin.rng(3).random(4).tolist()
    assert draws(1) == draws(1)
    assert draws(1) != draws(2)
    other = Tag(PluginContext("c", 7, "participant", 1), "z")
    assert other.rng(3).random(4).tolist() != draws(1)  # another plug-in (label), another stream


def test_a_plugin_given_to_chosen_participants_makes_its_own_variant_in_the_check(examples):
    config = config_from_dict({"participants": 5, "plugins": [
        {"name": "model_poisoning", "participants": [1, 2], "options": {"kind": "scale"}}]})
    builder = CourseBuilder(config)
    assert builder.participant_variants() == {(): [0, 3, 4], (0,): [1, 2]}
    _, participants = builder.check_workers()
    assert list(participants) == ["participants 0, 3-4", "participants 1-2"]
    assert [p.label for p in participants["participants 1-2"].plugins] == ["model_poisoning"]


# -- the README's worked example ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_worked_example_clips_updates_reports_norms_and_replays(examples):
    config = load_config(ROOT / "examples" / "digits_norm_report.yaml", ["rounds=4", "participants=5"])
    result = run_standalone(config, progress=False)
    report = result.summary["plugins"]["norm_report"]
    assert report["reports"] == 4 * 5 and 0 < report["clipped"] <= 20
    assert report["mean_norm_before_clipping"] > report["max_norm"]
    assert result.summary["intake"]["handled"] > 0 and result.summary["dead_lettered"] == 0
    replayed = replay_course(result.log, config.course_id)
    assert replayed.verified and replayed.plugins == result.summary["plugins"]


def test_a_plugin_whose_message_has_no_handler_at_the_coordinator_fails_the_check(examples, tmp_path):
    import yaml

    raw = yaml.safe_load((ROOT / "examples" / "digits_norm_report.yaml").read_text())
    raw["plugins"][0]["role"] = "participant"  # the coordinator end is missing
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "check", str(path), "--graph", str(tmp_path / "g")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    assert ("emits 'update_norm' but the coordinator has no handler for 'update_norm'") in proc.stderr


def test_a_plugin_given_twice_and_groups_among_the_sampler_options_are_refused(example_config):
    with pytest.raises(ConfigError, match=r"plugins\[1\]\.name: plug-in model_poisoning is already given by "
                                          r"plugins\[0\]"):
        CourseBuilder(_course(example_config, ["plugins=[{name: model_poisoning, participants: [0], options: "
                                               "{kind: scale}}, {name: model_poisoning, participants: [1], "
                                               "options: {kind: sign_flip}}]"]))
    with pytest.raises(ConfigError, match=r"sampler_options\.groups: the number of groups is strategy\.groups"):
        CourseBuilder(_course(example_config, ["strategy.sampler=group", "strategy.sampler_options={groups: 3}"]))


def test_a_user_module_that_fails_to_import_is_one_line(tmp_path, monkeypatch, example_config):
    (tmp_path / "exploding.py").write_text("raise RuntimeError('no GPU here\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as err:
        CourseBuilder(_course(example_config, ["plugins=[{name: 'exploding:Thing'}]"]))
    assert str(err.value) == "plugins[0].name: cannot import 'exploding:Thing' (RuntimeError: no GPU here)"


def test_a_transform_may_not_move_a_message_in_time_or_round():
    class Shift(Plugin):
        name = "shift"

        def outgoing(self, worker, message):
            import dataclasses

            return dataclasses.replace(message, timestamp=message.timestamp + 1e6)

    coordinator, _ = _coordinator()
    coordinator.use(Shift(PluginContext("course", 0, COORDINATOR)))
    with pytest.raises(FscoreError, match="shift's outgoing transform changed the envelope"):
        coordinator.send("assign_id", ["p"], 0, {"participant_id": 0, "address": "p"})
