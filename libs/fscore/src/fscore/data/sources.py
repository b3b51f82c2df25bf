"""Where a course's examples come from (config ``data.dataset``): the dataset extension point.

A :class:`DatasetSource` says what one example looks like (its input shape and the number of
classes, which fix the model's layout without loading anything) and how the course's participants
get their examples. Most datasets are held in one place and split by ``data.split``
(:class:`CentralDataset`: implement ``load``); some are federated by construction (Synthetic(alpha, beta)).
A new one is found like every extension (:mod:`fscore.registry`): registered here, named as
``module:attr``, or declared by a package under the entry-point group ``fscope.datasets``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fscore.config import DataConfig
from fscore.data.dataset import ClientData, Dataset, Federation
from fscore.data.splitters import classes_split, dirichlet_split, iid_split, sampled_split, train_test_split
from fscore.interfaces import RequiredMethods, abstract
from fscore.registry import Registry


class DatasetSource(RequiredMethods):
    required = ("shape", "federation")

    @abstract
    def shape(self, cfg: DataConfig) -> tuple[tuple[int, ...], int]:
        """(input shape of one example, number of classes)."""
        raise NotImplementedError

    @abstract
    def federation(self, cfg: DataConfig, participants: int, rng: np.random.Generator) -> Federation:
        """Every participant's examples and the coordinator's held-out set, drawn with ``rng`` only."""
        raise NotImplementedError


class CentralDataset(DatasetSource):
    """A dataset held in one place: a held-out share for the coordinator, the rest split by ``data.split``."""

    input_shape: ClassVar[tuple[int, ...]] = ()
    num_classes: ClassVar[int] = 0

    @abstract
    def load(self, cfg: DataConfig) -> Dataset:
        """Every example, ``x`` flattened to (n, prod(input_shape)) float32 and ``y`` int64 labels."""
        raise NotImplementedError

    def shape(self, cfg: DataConfig) -> tuple[tuple[int, ...], int]:
        return self.input_shape, self.num_classes

    def federation(self, cfg: DataConfig, participants: int, rng: np.random.Generator) -> Federation:
        data = self.load(cfg)
        pool_idx, heldout_idx = train_test_split(len(data), cfg.heldout_fraction, rng)
        pool = data.subset(pool_idx)
        if cfg.split == "natural":
            from fscore.data.splitters import SplitError

            raise SplitError("data.split", f"natural: dataset {cfg.dataset!r} has no natural partition (leaf, npz "
                                           "and table datasets may)")
        if cfg.split == "iid":
            parts = iid_split(len(pool), participants, rng)
        elif cfg.split == "sampled":
            parts = sampled_split(len(pool), participants, cfg.samples_per_participant, rng)
        elif cfg.split == "classes":
            parts = classes_split(pool.y, participants, cfg.classes_per_participant, rng)
        else:
            parts = dirichlet_split(pool.y, participants, cfg.alpha, rng, min_size=cfg.min_samples_per_participant)
        clients = [client_split(pool.subset(idx), cfg.test_fraction, rng) for idx in parts]
        _, classes = self.shape(cfg)
        return Federation(clients, data.subset(heldout_idx), data.x.shape[1], classes, self.shape(cfg)[0])


class Digits(CentralDataset):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images; shipped with the package, no download)."""

    input_shape = (1, 8, 8)
    num_classes = 10

    def load(self, cfg: DataConfig) -> Dataset:
        data, target = _bundled_digits()
        return Dataset((data / 16.0).astype(np.float32), target.astype(np.int64))


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits file, read without importing scikit-learn (and the scipy it loads: about a second
    of a course's start-up, issue 19); the same arrays ``sklearn.datasets.load_digits`` returns (tested)."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():  # another layout: let scikit-learn find it
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target
    with gzip.open(path, "rt", encoding="utf-8") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


class Synthetic(DatasetSource):
    """FedProx's Synthetic(alpha, beta) (Li et al. 2020): federated by construction; the coordinator holds out a slice
    of each device."""

    def shape(self, cfg: DataConfig) -> tuple[tuple[int, ...], int]:
        return (cfg.synthetic_dim,), cfg.synthetic_classes

    def federation(self, cfg: DataConfig, participants: int, rng: np.random.Generator) -> Federation:
        from fscore.data.synthetic import synthetic_devices

        devices = synthetic_devices(participants, cfg.synthetic_alpha, cfg.synthetic_beta, rng,
                                    dim=cfg.synthetic_dim, num_classes=cfg.synthetic_classes)
        clients, heldout_x, heldout_y = [], [], []
        for x, y in devices:
            keep, held = train_test_split(len(y), cfg.heldout_fraction, rng)
            heldout_x.append(x[held])
            heldout_y.append(y[held])
            clients.append(client_split(Dataset(x[keep], y[keep]), cfg.test_fraction, rng))
        heldout = Dataset(np.concatenate(heldout_x), np.concatenate(heldout_y))
        return Federation(clients, heldout, cfg.synthetic_dim, cfg.synthetic_classes, (cfg.synthetic_dim,))


def client_split(data: Dataset, test_fraction: float, rng: np.random.Generator) -> ClientData:
    train_idx, test_idx = train_test_split(len(data), test_fraction, rng)
    return ClientData(data.subset(train_idx), data.subset(test_idx))


#: dataset factories, called with no arguments
DATASETS: Registry[DatasetSource] = Registry("dataset", {
    "digits": Digits, "synthetic": Synthetic, "leaf": "fscore.data.files:Leaf", "cifar10": "fscore.data.files:Cifar10",
    "npz": "fscore.data.files:Npz", "table": "fscore.data.files:Table"})


def register_dataset(name: str, source: type[DatasetSource] | str) -> None:
    DATASETS.register(name, source)


def dataset_source(cfg: DataConfig) -> DatasetSource:
    """The source ``data.dataset`` names; an error names the key."""
    source = DATASETS.build(cfg.dataset, {}, key="data.dataset", options_key="data")
    if not isinstance(source, DatasetSource):
        from fscore.errors import ConfigError

        raise ConfigError(f"data.dataset: {cfg.dataset!r} built {type(source).__name__}, not a DatasetSource")
    return source
