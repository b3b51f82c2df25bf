"""Shamir's t-of-n secret sharing of byte strings (Shamir 1979), over GF(2^127 - 1).

A secret is cut into 15-byte chunks, each the constant term of its own random polynomial of degree
``threshold - 1``; participant ``x`` (1, 2, ...) holds every polynomial's value at ``x``. Any
``threshold`` shares give the secret back by Lagrange interpolation at 0; fewer say nothing of it.
Randomness comes from the caller (``random_bytes``), so a simulation can seed it and a service can
use the operating system's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence

Q = (1 << 127) - 1  # prime
_CHUNK = 15  # bytes per field element (120 bits < 127)

Share = tuple[int, ...]  # one participant's values, one per chunk


def split(secret: bytes, xs: Sequence[int], threshold: int,
          random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> dict[int, Share]:
    """``x -> share`` for every ``x`` in ``xs``; any ``threshold`` of them recover ``secret``."""
    if not 1 <= threshold <= len(xs):
        raise ValueError(f"threshold {threshold} must be between 1 and the {len(xs)} shareholders")
    if len(set(xs)) != len(xs) or any(not 0 < x < Q for x in xs):
        raise ValueError("shareholders need distinct positive x coordinates")
    chunks = [int.from_bytes(secret[i:i + _CHUNK], "big") for i in range(0, len(secret), _CHUNK)]
    polys = [[c, *(int.from_bytes(random_bytes(16), "big") % Q for _ in range(threshold - 1))] for c in chunks]
    return {x: tuple(_evaluate(poly, x) for poly in polys) for x in xs}


def combine(shares: Mapping[int, Share], threshold: int, length: int) -> bytes:
    """The ``length``-byte secret from at least ``threshold`` shares (``x -> share``)."""
    if len(shares) < threshold:
        raise ValueError(f"{len(shares)} shares cannot recover a secret shared {threshold}-of-n")
    points = sorted(shares.items())[:threshold]
    out = b""
    sizes = [min(_CHUNK, length - i) for i in range(0, length, _CHUNK)]
    for k, size in enumerate(sizes):
        value = _interpolate_at_zero([(x, share[k]) for x, share in points])
        if value >= 1 << (8 * size):
            raise ValueError(f"the shares do not combine to a {length}-byte secret (wrong threshold, or altered)")
        out += value.to_bytes(size, "big")
    return out


def _evaluate(poly: list[int], x: int) -> int:
    acc = 0
    for coefficient in reversed(poly):
        acc = (acc * x + coefficient) % Q
    return acc


def _interpolate_at_zero(points: list[tuple[int, int]]) -> int:
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * -xj % Q
                den = den * (xi - xj) % Q
        total = (total + yi * num * pow(den, Q - 2, Q)) % Q
    return total
