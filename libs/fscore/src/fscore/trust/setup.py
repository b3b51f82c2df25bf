"""A course's trust, from its ``trust`` section: the admitted keys, and each worker's signer and verifier.

Everything here runs before a service touches Kafka, so a missing or unparsable key file, a course
that admits no coordinator, or a private key that is not the one admitted for its worker is refused
in one line naming the key (:class:`~fscore.errors.ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fscore.config import CourseConfig
from fscore.errors import ConfigError
from fscore.message import COORDINATOR
from fscore.trust.keys import KeyRing, derived_key, load_private, raw_public
from fscore.trust.signing import Signer, Verifier


def course_keyring(config: CourseConfig, addresses: list[str], *, service: bool) -> KeyRing | None:
    """The admitted keys when the course signs, else None.

    They are ``trust.admitted`` and the lines of ``trust.keys``. A standalone simulation that signs
    without naming keys makes one per worker from the seed (:func:`~fscore.trust.keys.derived_key`);
    a service must be given them.
    """
    trust = config.trust
    if not trust.signs(service):
        return None
    lines = list(trust.admitted)
    source = "trust.admitted"
    if trust.keys is not None:
        try:
            lines += trust.keys.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"trust.keys: cannot read {trust.keys}: {getattr(exc, 'strerror', None) or exc}"
                              ) from None
        source = f"trust.keys ({trust.keys})" if not trust.admitted else "trust.admitted and trust.keys"
    if not lines:
        if service:
            raise ConfigError("trust.keys: signing is on (the default for the Kafka services) but no key is "
                              "admitted; write keys with 'fscope keys generate' or set trust.signing=false")
        return KeyRing.of_private({a: derived_key(config.seed, a) for a in [COORDINATOR, *addresses]})
    ring = KeyRing.parse(lines, source)
    if COORDINATOR not in ring:
        raise ConfigError(f"{source.split(' ')[0]}: no key is admitted for the coordinator (address "
                          f"{COORDINATOR!r}), so no participant could trust its models")
    return ring


def private_key(config: CourseConfig, address: str, ring: KeyRing, *, service: bool) -> Ed25519PrivateKey:
    """``address``'s signing key: ``trust.private_key`` (``{address}`` filled in), else one from the seed
    in standalone simulation; it must be the key the course admits for ``address``."""
    template = config.trust.private_key
    if template is None:
        if service:
            raise ConfigError(f"trust.private_key: signing is on and {address} has no private key file "
                              "(e.g. --set trust.private_key=keys/{address}.key)")
        key = derived_key(config.seed, address)
        path = None
    else:
        path = Path(template.replace("{address}", address))
        key = load_private(path)
    admitted = ring.get(address)
    if admitted is None:
        raise ConfigError(f"trust.keys: {address} is not admitted to the course (no key for it)")
    if raw_public(admitted) != raw_public(key.public_key()):
        raise ConfigError(f"trust.private_key: {path or 'the derived key'} is not the key admitted for {address}")
    return key


@dataclass
class WorkerTrust:
    """What one worker signs with and checks with."""

    signer: Signer | None
    verifier: Verifier | None
    ring: KeyRing | None

    @property
    def public_key(self) -> Ed25519PublicKey | None:
        return self.signer.public_key if self.signer is not None else None


def participant_trust(config: CourseConfig, address: str, addresses: list[str], *, service: bool) -> WorkerTrust:
    """A participant signs and verifies when the course signs; otherwise it does neither."""
    ring = course_keyring(config, addresses, service=service)
    if ring is None:
        return WorkerTrust(None, None, None)
    return WorkerTrust(Signer(private_key(config, address, ring, service=service)), Verifier(ring), ring)


def coordinator_trust(config: CourseConfig, addresses: list[str], incarnation: str, *, service: bool
                      ) -> WorkerTrust:
    """The coordinator always signs: with its admitted key in a signed course, else with a key of this
    incarnation alone (random in a service, from the seed in simulation), which only its alarms need.

    The verifier knows this incarnation's public key; a restarted coordinator adds its predecessors'
    from the meta topic (:func:`fscore.courselog.coordinator_keys`).
    """
    ring = course_keyring(config, addresses, service=service)
    if ring is not None:
        key = private_key(config, COORDINATOR, ring, service=service)
    elif service:
        key = Ed25519PrivateKey.generate()
    else:
        key = derived_key(config.seed, f"{COORDINATOR}/{incarnation}")
    return WorkerTrust(Signer(key), Verifier(ring, {incarnation: key.public_key()}), ring)


def replay_verifier(admitted: list[str], incarnation_keys: dict[str, Ed25519PublicKey | None], source: str
                    ) -> Verifier:
    """The verifier of a recorded course: the admitted keys its manifest records, and its incarnations' keys."""
    return Verifier(KeyRing.parse(admitted, source) if admitted else None, dict(incarnation_keys))
