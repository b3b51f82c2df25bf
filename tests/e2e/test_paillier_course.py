"""Paillier aggregation in a cross-silo course: the participants' accuracy is the plain course's, the
coordinator's log holds only zero placeholders and ciphertexts and its model never moves, replay verifies,
and a key file that does not parse is refused naming the key."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.replay import replay_course
from fscore.secagg.paillier import write_key
from fscore.simulation.runner import run_standalone

BASE = ["participants=3", "rounds=4", "trainer.local_epochs=1", "course_id=he", "model.name=logreg"]


def paillier(options: str) -> str:
    return f"plugins=[{{name: paillier, role: all, options: {{{options}}}}}]"


def test_the_participants_learn_as_in_the_plain_course_and_the_coordinator_sees_only_ciphertexts(example_config,
                                                                                                  tmp_path):
    write_key(tmp_path / "he.json", bits=1024)
    plain = run_standalone(load_config(example_config, BASE), progress=False)
    he = run_standalone(load_config(example_config, [*BASE, paillier(f"key_bits: 1024, key_file: {tmp_path}/he.json")]),
                        progress=False)
    assert abs(he.summary["final_metrics"]["clients.accuracy"] - plain.summary["final_metrics"]["clients.accuracy"]) \
        < 0.01
    assert "heldout.accuracy" not in he.summary["final_metrics"]  # the coordinator holds no model to evaluate
    for p, q in zip(he.participants, plain.participants, strict=True):
        for name, value in q.trainer.get_parameters().items():
            assert np.max(np.abs(p.trainer.get_parameters()[name] - value)) < 1e-3, name
    codec = he.coordinator.catalog.codec
    inbox = [codec.decode(r.value) for r in he.log.read("fscope.he.coordinator")]
    assert all(not np.any(t) for h, p in inbox if h.type == "model_update" for t in p["tensors"].values())
    assert sum(h.type == "he_update" for h, _ in inbox) == 3 * 4
    initial = CourseBuilder(load_config(example_config, BASE)).initial_params()
    assert all(np.array_equal(he.coordinator.params[k], v) for k, v in initial.items())  # it never learns a model
    report = replay_course(he.log, "he")
    assert report.verified, report.mismatches


def test_a_key_file_that_does_not_parse_is_refused_naming_the_key(example_config, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"^plugins\[0\]\.options\.key_file: .*bad.json is not a Paillier key file"):
        CourseBuilder(load_config(example_config, [*BASE, paillier(f"key_file: {tmp_path}/bad.json")]))
