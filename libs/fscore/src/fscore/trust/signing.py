"""Signed records: who wrote a record is what its signature proves, not what its envelope claims.

A worker signs the exact bytes it publishes (the envelope and the payload, as encoded; in fact
their SHA-256, see :func:`signed_digest`) with its Ed25519 key, in two record headers:
``fscope.sig`` (the signature) and ``fscope.signer`` (the key's fingerprint). Chunks of a large
record all carry them, and the reassembled record is verified whole. A receiver checks a record
before decoding its payload (:class:`Verifier`): the claimed sender must be admitted, and its
admitted key must verify the signature. Because the envelope holds the course id, the round and
the message id, a signature cannot be moved to another course or message; a copy of a signed
record is caught by duplicate suppression (:class:`fscore.dedupe.SeenIds`).

Alarms are checked whether or not a course signs: an alarm is the coordinator's note to itself
through its inbox, so only an alarm signed by one of the coordinator's incarnations counts
(each incarnation's public key is on the meta topic, :mod:`fscore.courselog`).
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fscore.errors import Unauthenticated
from fscore.message import ALARM, COORDINATOR
from fscore.transport.base import Record
from fscore.trust.keys import KeyRing, fingerprint
from fstranslation import Header

SIGNATURE_HEADER = "fscope.sig"
SIGNER_HEADER = "fscope.signer"


class Signer:
    """Signs what one worker publishes."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.public_key = key.public_key()
        self._fingerprint = fingerprint(self.public_key).encode()

    def headers(self, value: bytes) -> tuple[tuple[str, bytes], ...]:
        return (SIGNATURE_HEADER, self.key.sign(signed_digest(value))), (SIGNER_HEADER, self._fingerprint)


def signed_digest(value: bytes) -> bytes:
    """What is signed: a domain tag and the SHA-256 of the record's bytes.

    Ed25519 hashes what it signs with SHA-512 twice (once to verify); hashing a large model once with
    SHA-256 first (hardware-accelerated here) makes signing a 4 MB record three times cheaper, and
    is as binding as long as SHA-256 is collision resistant.
    """
    return _DOMAIN + hashlib.sha256(value).digest()


_DOMAIN = b"fscope record signature v1\x00"


def _what(header: Header) -> str:
    return f"{header.type} from {header.sender!r} (id {header.id})"


class Verifier:
    """Whether a record was written by the sender it names; raises :class:`Unauthenticated` with the reason.

    ``keyring`` is None when the course does not sign: then only alarms are checked, against
    ``alarm_keys`` (coordinator incarnation -> its public key), which the coordinator fills as
    incarnations start.
    """

    def __init__(self, keyring: KeyRing | None,
                 alarm_keys: MutableMapping[str, Ed25519PublicKey | None] | None = None) -> None:
        self.keyring = keyring
        #: incarnation -> its key; None for an incarnation recorded before alarms were signed (taken unsigned)
        self.alarm_keys: MutableMapping[str, Ed25519PublicKey | None] = {} if alarm_keys is None else alarm_keys

    def check(self, record: Record, header: Header) -> None:
        if header.type == ALARM:
            self._check_alarm(record, header)
            return
        if self.keyring is None:
            return
        key = self.keyring.get(header.sender)
        if key is None:
            raise Unauthenticated(f"{_what(header)}: {header.sender!r} is not admitted to this course "
                                  f"(no admitted key)")
        self._verify(record, header, key)

    def _check_alarm(self, record: Record, header: Header) -> None:
        if header.sender != COORDINATOR:
            raise Unauthenticated(f"{_what(header)}: only the coordinator's own alarms count")
        parts = header.id.split("/")
        incarnation = parts[1] if len(parts) == 3 and parts[0] == COORDINATOR else None
        if incarnation not in self.alarm_keys:
            raise Unauthenticated(f"{_what(header)}: no incarnation of the coordinator has that id, so it did "
                                  "not write this alarm (forged)")
        key = self.alarm_keys[incarnation]
        if key is not None:
            self._verify(record, header, key)

    def _verify(self, record: Record, header: Header, key: Ed25519PublicKey) -> None:
        signature = record.header(SIGNATURE_HEADER)
        if signature is None:
            raise Unauthenticated(f"{_what(header)} is unsigned; this course takes signed messages only")
        signer = record.header(SIGNER_HEADER)
        owner = self.keyring.owner(signer.decode("ascii", "replace")) if signer and self.keyring else None
        if owner is not None and owner != header.sender:
            raise Unauthenticated(f"{_what(header)} is signed with the key admitted for {owner!r}: a key that does "
                                  f"not match the claimed sender")
        try:
            key.verify(signature, signed_digest(record.value))
        except InvalidSignature:
            raise Unauthenticated(f"{_what(header)}: its signature does not verify under {header.sender!r}'s key "
                                  "(forged, or altered after signing)") from None
