"""Datasets from files on local disk (issue 18): LEAF JSON, CIFAR-10 python batches, .npz and CSV tables.

Each test writes small files in the real format (from scikit-learn's digits, or random CIFAR-shaped images),
runs a course on them standalone, and checks who holds what; bad files give one line naming the file and the
field.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.data.federation import load_digits_dataset
from fscore.errors import ConfigError
from fscore.simulation.runner import run_standalone

WRITERS = 12


def _config(*sets: str):
    from tests.conftest import ROOT

    return load_config(ROOT / "examples" / "digits_fedavg.yaml", ["rounds=2", "trainer.local_epochs=1", *sets])


def _writers() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits dealt to WRITERS writers, unevenly, the way a by-writer dataset comes."""
    digits = load_digits_dataset()
    rng = np.random.default_rng(3)
    owner = rng.choice(WRITERS, len(digits), p=rng.dirichlet(np.full(WRITERS, 2.0)))
    return digits.x, digits.y, np.array([f"f{w:04d}_{w * 7 % 13:02d}" for w in owner])


def _leaf(directory, split_into: int = 2):
    """LEAF's layout: several JSON files, each with users, num_samples and user_data."""
    x, y, owner = _writers()
    users = sorted(set(owner))
    directory.mkdir()
    for part in range(split_into):
        mine = users[part::split_into]
        doc = {"users": mine, "num_samples": [int((owner == u).sum()) for u in mine],
               "user_data": {u: {"x": x[owner == u].tolist(), "y": y[owner == u].tolist()} for u in mine}}
        (directory / f"all_data_{part}.json").write_text(json.dumps(doc))
    return directory, x, y, owner


def _holders(builder, x, owner) -> list[set[str]]:
    """Whose examples each participant holds (by looking each one up among the written examples)."""
    index = {row.tobytes(): w for row, w in zip(x.astype(np.float32), owner, strict=True)}
    return [{index[r.tobytes()] for part in (c.train, c.test) for r in part.x} for c in builder.federation.clients]


def test_a_leaf_directory_runs_a_course_with_one_participant_per_writer(tmp_path):
    from tests.conftest import ROOT

    path, x, _, owner = _leaf(tmp_path / "leaf")
    config = load_config(ROOT / "examples" / "leaf_natural.yaml", [
        f"data.path={path}", f"participants={WRITERS}", "rounds=2", "model.name=mlp"])
    builder = CourseBuilder(config)
    holders = _holders(builder, x, owner)
    assert all(len(h) == 1 for h in holders) and len(set().union(*holders)) == WRITERS
    assert builder.model_spec.input_shape == (1, 8, 8)  # 64 features: a square image
    summary = run_standalone(config, output_dir=tmp_path / "run", progress=False).summary
    assert summary["rounds"] == 2 and summary["final_metrics"]["heldout.accuracy"] > 0.3
    # summary.json says who holds what, and fscope report draws it
    sizes = sorted(p["train"] + p["test"] for p in summary["data"]["participants"])
    assert sum(sizes) + summary["data"]["heldout"] == len(x)
    assert sorted(sum(p["labels"]) for p in summary["data"]["participants"]) == sizes
    from fscore.report import write_report

    write_report([tmp_path / "run"], tmp_path / "report")
    assert (tmp_path / "report" / "data_partition.png").read_bytes()[:4] == b"\x89PNG"


def test_fewer_participants_than_writers_is_a_seeded_sample_and_too_many_is_refused(tmp_path):
    path, x, _, owner = _leaf(tmp_path / "leaf")
    sets = ["data.dataset=leaf", f"data.path={path}", "data.split=natural", "participants=5"]
    first = _holders(CourseBuilder(_config(*sets)), x, owner)
    assert first == _holders(CourseBuilder(_config(*sets)), x, owner) and all(len(h) == 1 for h in first)
    assert first != _holders(CourseBuilder(_config(*sets, "seed=1")), x, owner)
    with pytest.raises(ConfigError, match=rf"^participants: 13 participants, but .* has {WRITERS} writers"):
        CourseBuilder(_config(*sets[:3], "participants=13")).federation  # noqa: B018


def test_a_cifar_batch_and_an_npz_each_run_a_course(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (240, 3072), dtype=np.uint8)
    batch = tmp_path / "data_batch_1"
    with batch.open("wb") as f:  # as CIFAR-10's authors wrote theirs: a dict with bytes keys
        pickle.dump({b"batch_label": b"training batch 1 of 5", b"labels": rng.integers(0, 10, 240).tolist(),
                     b"data": images, b"filenames": [b"x.png"] * 240}, f, protocol=2)
    from tests.conftest import ROOT

    # the example, as a user with CIFAR-10 on disk runs it, with no code: ConvNet2 on 32x32x3
    config = load_config(ROOT / "examples" / "cifar10_files.yaml", [
        f"data.path={batch}", "data.split=iid", "participants=3", "rounds=2", "model.hidden=16"])
    assert CourseBuilder(config).model_spec.input_shape == (3, 32, 32)
    assert run_standalone(config, progress=False).summary["rounds"] == 2

    x, y, owner = _writers()
    npz = tmp_path / "digits.npz"
    np.savez(npz, x=x.reshape(-1, 8, 8), y=y, client=owner)
    config = _config("data.dataset=npz", f"data.path={npz}", "data.split=natural", "participants=6")
    holders = _holders(CourseBuilder(config), x, owner)
    assert all(len(h) == 1 for h in holders) and len(holders) == 6
    assert run_standalone(config, progress=False).summary["rounds"] == 2


def test_a_csv_table_with_a_client_column_runs_a_course_by_key(tmp_path):
    x, y, owner = _writers()
    table = tmp_path / "digits.csv"
    header = ["client", *(f"p{i}" for i in range(64)), "label"]
    table.write_text("\n".join([",".join(header), *(",".join([w, *(repr(float(v)) for v in row), str(c)])
                                                     for row, c, w in zip(x, y, owner, strict=True))]) + "\n")
    config = _config("data.dataset=table", f"data.path={table}", "data.split=natural", f"participants={WRITERS}")
    assert all(len(h) == 1 for h in _holders(CourseBuilder(config), x, owner))
    assert run_standalone(config, progress=False).summary["rounds"] == 2


def _refusal(sets) -> str:
    with pytest.raises(ConfigError) as info:
        CourseBuilder(_config(*sets)).federation  # noqa: B018
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_files_are_refused_in_one_line_naming_the_file_and_the_field(tmp_path):
    leaf = tmp_path / "leaf.json"
    leaf.write_text(json.dumps({"users": ["a"], "num_samples": [2]}))
    assert _refusal(["data.dataset=leaf", f"data.path={leaf}"]) == \
        f"data.path: {leaf}: no field 'user_data' (LEAF JSON has users, num_samples and user_data)"
    leaf.write_text(json.dumps({"users": ["a"], "num_samples": [2], "user_data": {"a": {"x": [[1, "b"]], "y": [0]}}}))
    assert f"{leaf}: user_data['a'].x is not numeric" in _refusal(["data.dataset=leaf", f"data.path={leaf}"])

    batch = tmp_path / "data_batch_1"
    batch.write_bytes(pickle.dumps({b"data": np.zeros((4, 1024), np.uint8), b"labels": [0, 1, 2, 3]}))
    assert _refusal(["data.dataset=cifar10", f"data.path={batch}"]) == \
        f"data.path: {batch}: data has shape [4, 1024], not (n, 3072): 32x32 pixels, 3 channels"

    class Evil:
        def __reduce__(self):
            return (print, ("a crafted batch ran code",))
    batch.write_bytes(pickle.dumps({b"data": Evil()}))
    assert "a CIFAR batch does not name builtins.print" in _refusal(["data.dataset=cifar10", f"data.path={batch}"])

    npz = tmp_path / "no_y.npz"
    np.savez(npz, x=np.zeros((5, 4)), client=np.arange(5))
    assert _refusal(["data.dataset=npz", f"data.path={npz}"]) == \
        f"data.path: {npz}: no array 'y' (it holds client, x)"

    table = tmp_path / "t.csv"
    table.write_text("client,a,label\nw1,0.5,1\nw2,oops,0\n")
    assert _refusal(["data.dataset=table", f"data.path={table}"]) == \
        f"data.path: {table}: line 3, column 'a': 'oops' is not a number"
    assert _refusal(["data.dataset=npz"]) == "data.path: dataset 'npz' reads a file; give data.path"
    assert _refusal(["data.dataset=npz", f"data.path={tmp_path / 'missing.npz'}"]) == \
        f"data.path: {tmp_path / 'missing.npz'} does not exist"
    assert _refusal(["data.split=natural"]).startswith("data.split: natural: dataset 'digits' has no natural")
