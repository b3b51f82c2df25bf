"""Datasets from files on local disk (issue 18): LEAF JSON, CIFAR-10 binary batches, .npz and CSV tables.

Each test writes small files in the real format (from scikit-learn's digits, or random CIFAR-shaped images),
runs a course on them standalone, and checks who holds what; bad files give one line naming the file and the
field.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.data.federation import load_digits_dataset
from fscore.data.files import read_cifar10
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


def _cifar_batch(path, labels, images):
    """CIFAR-10's binary version, byte for byte: per image a label byte, then 1024 R, 1024 G, 1024 B."""
    labels, images = np.asarray(labels, np.uint8), np.asarray(images, np.uint8)
    path.write_bytes(b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, images, strict=True)))
    return path


def test_cifar_binary_batches_are_read_as_the_format_defines(tmp_path):
    rng = np.random.default_rng(1)
    directory = tmp_path / "cifar-10-batches-bin"  # as CIFAR-10's authors ship it, with its text files
    directory.mkdir()
    (directory / "batches.meta.txt").write_text("airplane\nautomobile\nbird\n")
    (directory / "readme.html").write_text("<html></html>")
    written = {}
    for name, n in [("test_batch.bin", 2), ("data_batch_2.bin", 3), ("data_batch_1.bin", 5)]:
        written[name] = rng.integers(0, 10, n), rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        _cifar_batch(directory / name, *written[name])
    found = read_cifar10(directory)
    order = ["data_batch_1.bin", "data_batch_2.bin", "test_batch.bin"]  # by name, as the python reader took them
    assert found.input_shape == (3, 32, 32) and found.owners is None
    assert found.data.x.dtype == np.float32 and found.data.x.shape == (10, 3072)
    assert found.data.y.dtype == np.int64
    np.testing.assert_array_equal(found.data.y, np.concatenate([written[n][0] for n in order]))
    np.testing.assert_array_equal(found.data.x, np.concatenate([written[n][1] for n in order]).astype(np.float32) / 255)
    assert found.data.x.min() >= 0.0 and found.data.x.max() <= 1.0

    # the layout: one label byte, then the red plane, the green, the blue, each row-major 32x32
    record = bytearray(3073)
    record[0] = 7
    record[1 + 0 * 1024 + 0 * 32 + 0] = 255  # red, row 0, column 0
    record[1 + 1 * 1024 + 1 * 32 + 2] = 255  # green, row 1, column 2
    record[1 + 2 * 1024 + 31 * 32 + 31] = 51  # blue, row 31, column 31
    one = tmp_path / "data_batch_9.bin"
    one.write_bytes(bytes(record))
    found = read_cifar10(one)  # one batch file, not a directory
    image = found.data.x.reshape(-1, 3, 32, 32)[0]
    assert found.data.y.tolist() == [7] and np.count_nonzero(image) == 3
    assert image[0, 0, 0] == 1.0 and image[1, 1, 2] == 1.0 and image[2, 31, 31] == np.float32(51) / 255


def test_a_cifar_batch_and_an_npz_each_run_a_course(tmp_path):
    rng = np.random.default_rng(0)
    batch = _cifar_batch(tmp_path / "data_batch_1.bin", rng.integers(0, 10, 240),
                         rng.integers(0, 256, (240, 3072), dtype=np.uint8))
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

    good = _cifar_batch(tmp_path / "data_batch_1.bin", [0, 1], np.zeros((2, 3072), np.uint8)).read_bytes()
    truncated = tmp_path / "data_batch_2.bin"
    truncated.write_bytes(good[:-1])  # a download cut short
    assert _refusal(["data.dataset=cifar10", f"data.path={truncated}"]) == \
        f"data.path: {truncated}: 6145 bytes is not a whole number of 3073-byte records (1 label byte, 3072 " \
        f"pixel bytes): truncated, or not a CIFAR-10 binary batch"
    ten = _cifar_batch(tmp_path / "data_batch_3.bin", [0, 10, 255], np.zeros((3, 3072), np.uint8))
    assert _refusal(["data.dataset=cifar10", f"data.path={ten}"]) == \
        f"data.path: {ten}: record 1 has label 10; CIFAR-10's labels are 0..9 (2 records out of range)"
    empty = tmp_path / "data_batch_4.bin"
    empty.write_bytes(b"")
    assert _refusal(["data.dataset=cifar10", f"data.path={empty}"]) == \
        f"data.path: {empty}: empty, not a CIFAR-10 binary batch (records of 3073 bytes: 1 label byte, 3072 " \
        f"pixel bytes)"
    python = tmp_path / "cifar-10-batches-py"  # the python version: pickles, never read
    python.mkdir()
    (python / "data_batch_1").write_bytes(b"\x80\x02}q\x00.")  # a pickled empty dict, protocol 2
    assert _refusal(["data.dataset=cifar10", f"data.path={python}"]) == \
        f"data.path: {python}: no data_batch_*.bin or test_batch.bin file (CIFAR-10's binary version, " \
        f"cifar-10-batches-bin; the python version's pickles are not read)"
    assert _refusal(["data.dataset=cifar10", f"data.path={python / 'data_batch_1'}"]) == \
        f"data.path: {python / 'data_batch_1'}: a pickle (CIFAR-10's python version), which is not read; give " \
        f"the binary version, cifar-10-batches-bin"

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
