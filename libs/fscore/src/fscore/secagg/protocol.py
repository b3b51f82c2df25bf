"""One round of secure aggregation after Bonawitz et al. (CCS 2017), semi-honest setting, as pure objects.

The steps, with what travels (the coordinator only routes and sums):

0. **Advertise.** Each participant ``u`` sends two X25519 public keys: ``c`` to encrypt shares, ``s`` to
   agree pairwise masks.
1. **Share.** ``u`` draws a self-mask seed ``b_u`` and Shamir-shares ``b_u`` and its ``s`` secret key
   among the roster (``threshold``-of-n); each share is sealed (AES-GCM) for its holder under a key
   agreed with the holder's ``c`` key, so the coordinator that routes them cannot read them.
2. **Masked input.** ``y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)`` over the
   field (:mod:`fscore.secagg.field`), for every ``v`` that shared in step 1. A single ``y_u`` is
   uniform: it says nothing of ``x_u``.
3. **Unmask.** For each participant whose masked input arrived, the others reveal their share of its
   ``b``; for each that shared but sent no masked input (it dropped), their share of its ``s`` key.
   Never both for one participant. With ``threshold`` reveals the coordinator removes every self-mask
   and the pairwise masks the dropped left behind, and gets ``sum x_u`` and nothing else.

Up to ``n - threshold`` participants may drop after sharing (before or after their masked input) and
the sum still unmasks. The pairwise masks of two participants that both sent input cancel exactly.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fscore.secagg import shamir
from fscore.secagg.field import FixedPoint, P, add, mask, subtract

RandomBytes = Callable[[int], bytes]
_SECRET = 32  # bytes of a mask seed and of an X25519 private key


class SecAggError(Exception):
    """A step cannot go on: too few shares, a share that does not open, a participant asked for both secrets."""


@dataclass(frozen=True)
class Advertisement:
    address: str
    c_public: bytes  # 32 raw bytes: share encryption
    s_public: bytes  # 32 raw bytes: pairwise masks


def _raw(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _derive(secret: bytes, purpose: bytes, a: str, b: str) -> bytes:
    """32 bytes from an X25519 shared secret, bound to its purpose and to the (ordered) pair of addresses."""
    first, second = sorted((a, b))
    return HKDF(hashes.SHA256(), 32, salt=None,
                info=b"fscope secagg " + purpose + b"\x00" + first.encode() + b"\x00" + second.encode()
                ).derive(secret)


def pair_seed(own_s: X25519PrivateKey, own: str, other_s_public: bytes, other: str) -> bytes:
    """The seed of the mask ``own`` and ``other`` share; both compute the same one."""
    return _derive(own_s.exchange(X25519PublicKey.from_public_bytes(other_s_public)), b"mask", own, other)


def positions(roster: Sequence[Advertisement]) -> dict[str, int]:
    """Each participant's Shamir x coordinate: its rank in the roster, by address, from 1."""
    return {a.address: i for i, a in enumerate(sorted(roster, key=lambda a: a.address), 1)}


def _seal_key(own_c: X25519PrivateKey, own: str, other_c_public: bytes, other: str) -> bytes:
    return _derive(own_c.exchange(X25519PublicKey.from_public_bytes(other_c_public)), b"share", own, other)


def pack_share(share: shamir.Share) -> bytes:
    """A share as bytes (16 a value: each is below 2^127)."""
    return b"".join(v.to_bytes(16, "big") for v in share)


def unpack_share(data: bytes) -> shamir.Share:
    return tuple(int.from_bytes(data[i:i + 16], "big") for i in range(0, len(data), 16))


def _pack(share_s: shamir.Share, share_b: shamir.Share) -> bytes:
    return pack_share((*share_s, *share_b))


def _unpack(data: bytes) -> tuple[shamir.Share, shamir.Share]:
    values = unpack_share(data)
    half = len(values) // 2
    return values[:half], values[half:]


@dataclass
class SecAggParticipant:
    """One participant's side of a round."""

    address: str
    encoding: FixedPoint
    threshold: int
    random_bytes: RandomBytes = secrets.token_bytes
    _held: dict[str, tuple[shamir.Share, shamir.Share]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._c = X25519PrivateKey.from_private_bytes(self.random_bytes(_SECRET))
        self._s = X25519PrivateKey.from_private_bytes(self.random_bytes(_SECRET))
        self._b = self.random_bytes(_SECRET)
        self._roster: dict[str, Advertisement] = {}
        self._sharers: list[str] = []

    def advertise(self) -> Advertisement:
        return Advertisement(self.address, _public(self._c), _public(self._s))

    def share(self, roster: Sequence[Advertisement]) -> dict[str, bytes]:
        """Step 1: ``holder -> sealed share`` of ``b`` and of the ``s`` key, for every other participant."""
        self._roster = {a.address: a for a in roster}
        if self.address not in self._roster:
            raise SecAggError(f"{self.address} is not in the roster it was sent")
        xs = positions(roster)
        s_shares = shamir.split(_raw(self._s), list(xs.values()), self.threshold, self.random_bytes)
        b_shares = shamir.split(self._b, list(xs.values()), self.threshold, self.random_bytes)
        sealed = {}
        for holder, x in xs.items():
            if holder == self.address:
                self._held[self.address] = (s_shares[x], b_shares[x])
                continue
            key = _seal_key(self._c, self.address, self._roster[holder].c_public, holder)
            nonce = self.random_bytes(12)
            sealed[holder] = nonce + AESGCM(key).encrypt(nonce, _pack(s_shares[x], b_shares[x]),
                                                          f"{self.address}->{holder}".encode())
        return sealed

    def receive(self, sealed: Mapping[str, bytes]) -> None:
        """The shares the others sealed for this participant (``sender -> sealed share``)."""
        for sender, data in sealed.items():
            peer = self._roster.get(sender)
            if peer is None:
                raise SecAggError(f"a share from {sender!r}, who is not in the roster")
            key = _seal_key(self._c, self.address, peer.c_public, sender)
            try:
                plain = AESGCM(key).decrypt(data[:12], data[12:], f"{sender}->{self.address}".encode())
            except InvalidTag:
                raise SecAggError(f"the share from {sender!r} does not open: forged or altered") from None
            self._held[sender] = _unpack(plain)

    def masked_input(self, values: np.ndarray, sharers: Sequence[str]) -> np.ndarray:
        """Step 2: the masked, encoded ``values`` (flat), masked pairwise with every participant in ``sharers``."""
        self._sharers = sorted(sharers)
        y = add(self.encoding.encode(values.ravel()), mask(self._b, values.size))
        for other in self._sharers:
            if other == self.address:
                continue
            m = mask(pair_seed(self._s, self.address, self._roster[other].s_public, other), values.size)
            y = add(y, m) if self.address < other else subtract(y, m)
        return y

    def reveal(self, survivors: Sequence[str], dropped: Sequence[str]) -> dict[str, dict[str, shamir.Share]]:
        """Step 3: this participant's shares of the survivors' ``b`` and of the dropped participants' ``s`` keys."""
        both = set(survivors) & set(dropped)
        if both:
            raise SecAggError(f"asked for both secrets of {sorted(both)}: that would unmask their input")
        return {"b": {u: self._held[u][1] for u in survivors if u in self._held},
                "s": {v: self._held[v][0] for v in dropped if v in self._held}}


@dataclass
class SecAggServer:
    """The coordinator's side: it routes sealed shares it cannot open, and unmasks only the sum."""

    encoding: FixedPoint
    threshold: int

    def unmask(self, roster: Sequence[Advertisement], sharers: Sequence[str], masked: Mapping[str, np.ndarray],
               reveals: Mapping[str, Mapping[str, Mapping[str, shamir.Share]]]) -> np.ndarray:
        """``sum x_u`` over the participants in ``masked``, decoded; ``reveals`` is ``revealer -> its reveal``."""
        if len(reveals) < self.threshold:
            raise SecAggError(f"{len(reveals)} participants revealed shares; unmasking needs {self.threshold}")
        if not masked:
            raise SecAggError("no masked input arrived")
        adverts = {a.address: a for a in roster}
        xs = positions(roster)
        survivors, dropped = sorted(masked), sorted(set(sharers) - set(masked))
        size = next(iter(masked.values())).size
        for u, y in masked.items():
            if u not in adverts or y.dtype != np.uint64 or y.shape != (size,) or (y >= P).any():
                raise SecAggError(f"the masked input of {u!r} is not {size} field elements of a roster member")
        total = np.zeros(size, np.uint64)
        for u in survivors:
            total = add(total, masked[u])
        for u in survivors:
            b = self._recover(u, "b", reveals, xs)
            total = subtract(total, mask(b, size))
        for v in dropped:
            s_v = X25519PrivateKey.from_private_bytes(self._recover(v, "s", reveals, xs))
            for u in survivors:
                m = mask(pair_seed(s_v, v, adverts[u].s_public, u), size)
                total = subtract(total, m) if u < v else add(total, m)  # u added +m if u < v, else -m
        return self.encoding.decode(total)

    def _recover(self, whose: str, secret: str, reveals: Mapping[str, Mapping[str, Mapping[str, shamir.Share]]],
                 xs: Mapping[str, int]) -> bytes:
        shares = {xs[r]: rev[secret][whose] for r, rev in reveals.items() if whose in rev.get(secret, {})}
        if len(shares) < self.threshold:
            raise SecAggError(f"only {len(shares)} shares of {whose}'s {secret} were revealed; {self.threshold} "
                              "are needed")
        return shamir.combine(shares, self.threshold, _SECRET)
