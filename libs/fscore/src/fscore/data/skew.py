"""Feature skew (paper §3.4, heterogeneity): each participant's inputs pass through its own seeded transform.

Participant i draws once a rotation angle, a pixel scale and offset, and then noise for every example. Its
train and test examples share the transform, as one device's camera shapes everything it records; the
coordinator's held-out set is left as it is. This is the setting FedBN (Li et al. 2021) is made for: the
label distribution is the same everywhere, the feature statistics are not.
"""

from __future__ import annotations

import numpy as np

from fscore.config.sections import FeatureSkewConfig
from fscore.data.dataset import ClientData, Dataset, Federation

_STREAM_SKEW = 0x5CE3


def skew_federation(federation: Federation, cfg: FeatureSkewConfig, seed: int) -> Federation:
    """``federation`` with participant i's inputs transformed by its own draw of ``cfg`` (stream [seed, skew, i])."""
    clients = []
    for index, client in enumerate(federation.clients):
        rng = np.random.default_rng([seed, _STREAM_SKEW, index])
        angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
        scale = rng.uniform(*cfg.intensity)
        offset = rng.uniform(-cfg.offset, cfg.offset)
        transform = _Transform(federation.input_shape, angle, scale, offset, cfg.noise_std, rng)
        clients.append(ClientData(transform(client.train), transform(client.test)))
    return Federation(clients, federation.heldout, federation.num_features, federation.num_classes,
                      federation.input_shape)


class _Transform:
    def __init__(self, shape: tuple[int, ...], angle: float, scale: float, offset: float, noise: float,
                 rng: np.random.Generator) -> None:
        self.shape, self.angle, self.scale, self.offset, self.noise, self.rng = shape, angle, scale, offset, noise, rng

    def __call__(self, data: Dataset) -> Dataset:
        x = data.x.reshape(len(data), *self.shape).astype(np.float64)
        if self.angle:
            from scipy.ndimage import rotate

            x = rotate(x, self.angle, axes=(-2, -1), reshape=False, order=1, mode="constant")
        x = x * self.scale + self.offset
        if self.noise:
            x = x + self.rng.normal(0.0, self.noise, x.shape)
        return Dataset(x.reshape(len(data), -1).astype(np.float32), data.y)


def check_skew(cfg: FeatureSkewConfig, input_shape: tuple[int, ...]) -> str | None:
    """Why ``cfg`` cannot apply to inputs of ``input_shape``, or None."""
    if cfg.rotation_deg and len(input_shape) < 2:
        return f"rotation_deg: the dataset's inputs have shape {input_shape}, not images; rotation needs (C, H, W)"
    return None
