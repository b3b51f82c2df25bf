"""Build a course's federation from its data config: who holds which examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fscore.config import DataConfig
from fscore.data.dataset import ClientData, Dataset, Federation
from fscore.data.sources import Digits, client_split, dataset_source


def load_digits_dataset() -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images; shipped with the package, no download)."""
    return Digits().load(DataConfig())


def build_federation(cfg: DataConfig, num_participants: int, seed: int) -> Federation:
    """The course's federation from its ``data.dataset`` source (:mod:`fscore.data.sources`), drawn from the seed,
    with each participant's feature skew applied (its own stream, so the split is the same with or without)."""
    federation = dataset_source(cfg).federation(cfg, num_participants, np.random.default_rng([seed, 0xDA7A]))
    if cfg.feature_skew is not None:
        from fscore.data.skew import skew_federation

        federation = skew_federation(federation, cfg.feature_skew, seed)
    return federation


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
    return client_split(Dataset(x, y), cfg.test_fraction, np.random.default_rng([seed, 0xDA7A, index]))
