"""Updates as vectors over a prime field, and masks drawn from a seed (Bonawitz et al. 2017, §4).

A real update is fixed-point encoded: each value in ``[-bound, bound]`` is scaled by
``2**precision``, rounded, and taken mod ``P = 2**61 - 1`` (a Mersenne prime, so sums of two
elements fit in uint64 and reduction is cheap). Masks are uniform over the field, drawn from a
32-byte seed with ChaCha20 (``cryptography``), so a masked value is itself uniform whatever the
update: one masked update says nothing of the update behind it. Sums of up to ``n`` encoded
updates decode exactly as long as ``n * bound * 2**precision < P / 2``; :class:`FixedPoint` refuses
a course that could overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

P = (1 << 61) - 1  # the field's prime modulus
_P = np.uint64(P)


@dataclass(frozen=True)
class FixedPoint:
    """The encoding of real values as field elements: ``bound`` is the largest magnitude, ``precision`` the
    number of fractional bits. ``participants`` bounds how many encoded values are ever summed."""

    bound: float
    precision: int
    participants: int

    def __post_init__(self) -> None:
        if self.bound <= 0:
            raise ValueError(f"bound must be positive, not {self.bound}")
        if not 0 <= self.precision <= 52:
            raise ValueError(f"precision must be 0..52 fractional bits, not {self.precision}")
        if self.participants * self.bound * 2.0 ** self.precision >= P / 2:
            raise ValueError(f"{self.participants} participants x bound {self.bound} x 2^{self.precision} would "
                             f"overflow the field (2^61 - 1): lower the precision or the bound")

    @property
    def resolution(self) -> float:
        """The largest rounding error of one encoded value."""
        return 0.5 / 2.0 ** self.precision

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Field elements (uint64) of ``values``, clipped to ``[-bound, bound]``."""
        values = np.asarray(values, np.float64)
        if not np.isfinite(values).all():
            raise ValueError("a value to encode is NaN or infinite")
        clipped = np.clip(values, -self.bound, self.bound)
        scaled = np.rint(clipped * 2.0 ** self.precision).astype(np.int64)
        return np.where(scaled < 0, scaled + P, scaled).astype(np.uint64)

    def decode(self, elements: np.ndarray) -> np.ndarray:
        """Real values of field elements; those above P/2 are negative."""
        signed = elements.astype(np.int64)
        signed = np.where(elements > _P // np.uint64(2), signed - P, signed)
        return signed.astype(np.float64) / 2.0 ** self.precision


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a + b) % _P  # both < 2^61: the sum fits in uint64


def subtract(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a + (_P - b)) % _P


def mask(seed: bytes, size: int) -> np.ndarray:
    """``size`` field elements, uniform, from a 32-byte ``seed`` (ChaCha20 keystream, 61-bit samples with
    rejection of the one value not below P)."""
    if len(seed) != 32:
        raise ValueError(f"a mask seed has 32 bytes, not {len(seed)}")
    out = np.empty(0, np.uint64)
    counter = 0
    while out.size < size:
        want = size - out.size
        nonce = bytes(4) + counter.to_bytes(12, "little")  # ChaCha20's block counter (first 4 bytes) starts at 0
        stream = Cipher(algorithms.ChaCha20(seed, nonce), mode=None).encryptor().update(bytes(8 * (want + 8)))
        draws = np.frombuffer(stream, np.uint64) & _P
        out = np.concatenate([out, draws[draws < _P]])
        counter += 1
    return out[:size]
