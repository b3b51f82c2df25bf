"""Ed25519 identities: key pairs, their files, and the ring of admitted public keys.

A public key travels as one line, like an OpenSSH ``authorized_keys`` entry::

    ed25519 <base64 of the 32 raw bytes> <address>

so an admission file is these lines, one per admitted worker (the coordinator's included), and a
course manifest records the same lines. Private keys are PKCS#8 PEM files, written mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fscore.errors import ConfigError

KIND = "ed25519"


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 8 bytes of the sha256 of its raw bytes, in hex."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_line(key: Ed25519PublicKey, address: str) -> str:
    return f"{KIND} {base64.b64encode(raw_public(key)).decode()} {address}"


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def derived_key(seed: int, address: str) -> Ed25519PrivateKey:
    """A key made from the course seed: for standalone simulation only, where every worker is one process.

    Anyone who knows the seed knows it, so a service never uses one.
    """
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"fscope-key/{seed}/{address}".encode()).digest())


def load_private(path: Path, key: str = "trust.private_key") -> Ed25519PrivateKey:
    """The private key in ``path``; a missing or unreadable file is a one-line :class:`ConfigError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{key}: {path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{key}: {path} holds a {type(loaded).__name__}, not an Ed25519 key")
    return loaded


def write_pair(directory: Path, address: str) -> tuple[Path, str]:
    """Make a key pair for ``address``: ``<address>.key`` (private, 0600) and ``<address>.pub`` in ``directory``."""
    key = Ed25519PrivateKey.generate()
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / f"{address}.key"
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(key))
    line = public_line(key.public_key(), address)
    (directory / f"{address}.pub").write_text(line + "\n")
    return private, line


@dataclass(frozen=True)
class KeyRing:
    """The admitted public keys of a course, by the address each is admitted for."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_owners", {fingerprint(k): a for a, k in self.keys.items()})

    def get(self, address: str) -> Ed25519PublicKey | None:
        return self.keys.get(address)

    def owner(self, key_fingerprint: str) -> str | None:
        """The address a key is admitted for, by its fingerprint."""
        return self._owners.get(key_fingerprint)  # type: ignore[attr-defined]

    def lines(self) -> list[str]:
        return [public_line(k, a) for a, k in sorted(self.keys.items())]

    def __contains__(self, address: object) -> bool:
        return address in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def parse(cls, lines: Iterable[str], source: str) -> KeyRing:
        """Admitted keys from ``ed25519 <base64> <address>`` lines; blank lines and ``#`` comments are skipped.

        Every error names ``source`` and the line: a malformed line, a key that does not decode, an
        address admitted twice, or one key admitted for two addresses.
        """
        keys: dict[str, Ed25519PublicKey] = {}
        owners: dict[bytes, str] = {}
        for n, raw in enumerate(lines, 1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split()
            if len(parts) != 3 or parts[0] != KIND:
                raise ConfigError(f"{source}, line {n}: expected '{KIND} <base64 key> <address>', got {text[:60]!r}")
            try:
                raw_key = base64.b64decode(parts[1], validate=True)
                key = Ed25519PublicKey.from_public_bytes(raw_key)
            except (binascii.Error, ValueError) as exc:
                raise ConfigError(f"{source}, line {n}: the key of {parts[2]!r} is not a 32-byte base64 Ed25519 "
                                  f"public key ({exc})") from None
            address = parts[2]
            if address in keys:
                raise ConfigError(f"{source}, line {n}: {address!r} is admitted twice")
            if raw_key in owners:
                raise ConfigError(f"{source}, line {n}: the key of {address!r} is already admitted for "
                                  f"{owners[raw_key]!r}; one key, one identity")
            keys[address], owners[raw_key] = key, address
        return cls(keys)

    @classmethod
    def of_private(cls, keys: Mapping[str, Ed25519PrivateKey]) -> KeyRing:
        return cls({a: k.public_key() for a, k in keys.items()})
