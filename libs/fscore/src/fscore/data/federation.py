"""Build a course's federation from its data config: who holds which examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from fscore.config import DataConfig
from fscore.data.dataset import ClientData, Dataset, Federation
from fscore.data.splitters import dirichlet_split, iid_split, train_test_split
from fscore.data.synthetic import synthetic_devices


def load_digits_dataset() -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images; shipped with the package, no download)."""
    bunch = load_digits()
    return Dataset((bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64))


def build_federation(cfg: DataConfig, num_participants: int, seed: int) -> Federation:
    rng = np.random.default_rng([seed, 0xDA7A])
    if cfg.dataset == "digits":
        return _split_central(load_digits_dataset(), cfg, num_participants, rng, input_shape=(1, 8, 8))
    devices = synthetic_devices(num_participants, cfg.synthetic_alpha, cfg.synthetic_beta, rng,
                                dim=cfg.synthetic_dim, num_classes=cfg.synthetic_classes)
    clients, heldout_x, heldout_y = [], [], []
    for x, y in devices:
        # The synthetic data is federated by construction; the coordinator holds out a slice of each device.
        keep, held = train_test_split(len(y), cfg.heldout_fraction, rng)
        heldout_x.append(x[held])
        heldout_y.append(y[held])
        clients.append(_client(Dataset(x[keep], y[keep]), cfg.test_fraction, rng))
    heldout = Dataset(np.concatenate(heldout_x), np.concatenate(heldout_y))
    return Federation(clients, heldout, cfg.synthetic_dim, cfg.synthetic_classes, (cfg.synthetic_dim,))


def _split_central(data: Dataset, cfg: DataConfig, n: int, rng: np.random.Generator,
                   input_shape: tuple[int, ...]) -> Federation:
    pool_idx, heldout_idx = train_test_split(len(data), cfg.heldout_fraction, rng)
    pool = data.subset(pool_idx)
    if cfg.split == "iid":
        parts = iid_split(len(pool), n, rng)
    else:
        parts = dirichlet_split(pool.y, n, cfg.alpha, rng, min_size=cfg.min_samples_per_participant)
    clients = [_client(pool.subset(idx), cfg.test_fraction, rng) for idx in parts]
    num_classes = int(data.y.max()) + 1
    return Federation(clients, data.subset(heldout_idx), data.x.shape[1], num_classes, input_shape)


def load_local_shard(cfg: DataConfig, index: int, seed: int, num_features: int, num_classes: int) -> ClientData:
    """A participant's own examples from ``cfg.local_path``; nothing else of the course's data is read."""
    from fscore.errors import ConfigError

    path = Path(str(cfg.local_path).replace("{index}", str(index)))
    try:
        with np.load(path) as npz:
            x, y = npz["x"].astype(np.float32), npz["y"].astype(np.int64)
    except FileNotFoundError:
        raise ConfigError(f"data.local_path: participant {index}'s file {str(path)!r} not found") from None
    except (KeyError, ValueError, OSError) as exc:
        raise ConfigError(f"data.local_path: {str(path)!r} is not an .npz with arrays x and y ({exc})") from None
    x = x.reshape(len(x), -1)
    if x.shape[1] != num_features or len(y) != len(x) or (len(y) and not 0 <= y.min() <= y.max() < num_classes):
        raise ConfigError(f"data.local_path: {str(path)!r} holds x{tuple(x.shape)} and {len(y)} labels in "
                          f"[{y.min() if len(y) else '-'}, {y.max() if len(y) else '-'}]; the course expects "
                          f"{num_features} features per example and labels in [0, {num_classes - 1}]")
    return _client(Dataset(x, y), cfg.test_fraction, np.random.default_rng([seed, 0xDA7A, index]))


def _client(data: Dataset, test_fraction: float, rng: np.random.Generator) -> ClientData:
    train_idx, test_idx = train_test_split(len(data), test_fraction, rng)
    return ClientData(data.subset(train_idx), data.subset(test_idx))
