"""fscore.snapshot.state: plain-data capture of workers' parts, restored into freshly built objects."""

from __future__ import annotations

import json
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest

from fscore.aggregators.fedopt import FedOpt
from fscore.coordinator.state import CoordinatorState, Evaluation, ParticipantInfo
from fscore.dedupe import SeenIds
from fscore.intake import IntakeCounts, Outcome
from fscore.snapshot import SnapshotError, State, capture, restore


@dataclass
class Holder:
    """Stands for a worker's part: a fresh one is what the config builds, the captured one what ran."""

    state: CoordinatorState = field(default_factory=CoordinatorState)
    values: dict = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(1))
    on_event: object = print  # wired by the course: never captured


def _through_json(state: State) -> State:
    return State(json.loads(json.dumps(state.tree)), state.tensors)


def test_values_of_every_kind_come_back_equal_and_of_their_type():
    ran = Holder()
    ran.state.round = 7
    ran.state.membership.participants["p"] = ParticipantInfo("p", 0, 10, 2, "torch")
    ran.state.history.append(Evaluation(7, 1.5, {"accuracy": 0.25}, ("p",), {"p": {"loss": float("inf")}}))
    ran.values = {"t": (1, "a", None), "ints": {3: 4}, "arr": np.arange(6, dtype=np.float32).reshape(2, 3),
                  "f16": np.float16(0.5), "set": {"x", "y"}, "od": OrderedDict(b=1, a=2), "c": Counter("aab"),
                  "dd": defaultdict(list, {"k": [1]}), "bytes": b"\x00\xff", "big": 2**100, "neg0": -0.0,
                  "counts": IntakeCounts({Outcome.HANDLED: 3})}
    ran.rng.random(5)
    fresh = Holder()
    restore(fresh, _through_json(capture(ran, "holder")), "holder")
    assert fresh.state == ran.state and fresh.state.history[0].clients["p"]["loss"] == float("inf")
    assert fresh.values["arr"].dtype == np.float32 and np.array_equal(fresh.values["arr"], ran.values["arr"])
    assert fresh.values["arr"].flags.writeable
    assert type(fresh.values["f16"]) is np.float16 and fresh.values["f16"] == np.float16(0.5)
    for key in ("t", "ints", "set", "od", "c", "bytes", "big"):
        assert fresh.values[key] == ran.values[key] and type(fresh.values[key]) is type(ran.values[key]), key
    assert fresh.values["dd"]["new"] == [] and str(fresh.values["neg0"]) == "-0.0"
    assert type(fresh.values["counts"]) is IntakeCounts and fresh.values["counts"][Outcome.HANDLED] == 3
    assert fresh.rng.random() == ran.rng.random()  # the stream goes on where it was
    assert fresh.on_event is print


def test_components_are_restored_in_place_with_their_moments():
    ran, fresh = FedOpt("adam"), FedOpt("adam")
    ran.m, ran.v = {"w": np.ones(3)}, {"w": np.full(3, 2.0)}
    restore(fresh, capture(ran, "aggregator"), "aggregator")
    assert np.array_equal(fresh.m["w"], ran.m["w"]) and np.array_equal(fresh.v["w"], ran.v["w"])


def test_bounded_id_memory_survives():
    ran, fresh = SeenIds(capacity=3), SeenIds(capacity=3)
    for i in range(5):
        ran.add(f"p/0/{i}", f"t/0/{i}")
    restore(fresh, capture(ran, "seen"), "seen")
    assert fresh.lookup("p/0/4") == "t/0/4" and fresh.lookup("p/0/0") == ran.lookup("p/0/0")


class Opaque:
    def __init__(self) -> None:
        self.lock = __import__("threading").Lock()


def test_state_it_cannot_keep_is_refused_naming_where_it_is():
    with pytest.raises(SnapshotError, match=r"holder\.values\['x'\].*cannot be kept"):
        capture(Holder(values={"x": Opaque()}), "holder")
    with pytest.raises(SnapshotError, match="dtype object"):
        capture(Holder(values={"x": np.array([object()])}), "holder")


def test_a_snapshot_naming_a_class_it_may_not_build_is_refused():
    state = capture(Holder(values={"e": Evaluation(1, 0.0, {}, ())}), "holder")
    text = json.dumps(state.tree).replace("fscore.coordinator.state:Evaluation", "subprocess:Popen")
    with pytest.raises(SnapshotError, match="subprocess:Popen"):
        restore(Holder(), State(json.loads(text), state.tensors), "holder")


def test_a_state_restored_into_another_kind_of_object_is_refused():
    with pytest.raises(SnapshotError, match=r"where this course has a .*FedOpt"):
        restore(FedOpt("adam"), capture(Holder(), "holder"), "aggregator")


@pytest.mark.parametrize("node", [
    {"t": "enum", "cls": "os:system", "v": "echo owned"},
    {"t": "map", "cls": "fscore.service.loop:new_incarnation", "v": []},
    {"t": "obj", "cls": "this:s", "v": {}},
    {"t": "tensor", "i": -1},
    {"t": "tensor", "i": True},
    {"t": "scalar", "i": 0},
    {"t": "bytes", "v": "!!!"},
    {"t": "map", "v": [1, 2]},
    {"t": "map"},
    {"t": "map", "default": "os", "v": []},
    {"t": "set", "v": [[1]]},
    {"t": "rng", "v": {"t": "map", "v": [["bit_generator", "PCG64"]]}},
    {"no": "kind"},
], ids=lambda n: json.dumps(n)[:40])
def test_a_crafted_tree_is_refused_and_runs_nothing(node, capfd):
    state = capture(Holder(values={"x": np.zeros(3)}), "holder")
    state.tree["v"]["values"]["v"][0][1] = node
    with pytest.raises(SnapshotError, match=r"holder"):
        restore(Holder(), state, "holder")
    assert "owned" not in capfd.readouterr().out


def test_a_crafted_tree_cannot_set_what_the_course_wires():
    for name in ("on_event", "__dict__", "nonexistent"):
        state = capture(Holder(), "holder")
        state.tree["v"][name] = 1
        with pytest.raises(SnapshotError, match=f"sets '{name}'"):
            restore(Holder(), state, "holder")


def test_state_hidden_from_attributes_is_refused_not_dropped():
    import random

    with pytest.raises(SnapshotError, match=r"holder\.values\['r'\].*random:Random"):
        capture(Holder(values={"r": random.Random(1)}), "holder")
