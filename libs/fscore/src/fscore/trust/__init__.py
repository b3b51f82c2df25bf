"""Trust on the wire (issue 16): participant identity, admission and signed records.

    keys.py      Ed25519 key pairs, their files, and the ring of admitted public keys
    signing.py   signing what a worker publishes, verifying what it reads
    setup.py     a course's keys and verifiers, from its trust section
"""

from fscore.trust.keys import KeyRing, derived_key, fingerprint, load_private, public_line, write_pair
from fscore.trust.signing import SIGNATURE_HEADER, SIGNER_HEADER, Signer, Verifier

__all__ = ["SIGNATURE_HEADER", "SIGNER_HEADER", "KeyRing", "Signer", "Verifier", "derived_key", "fingerprint",
           "load_private", "public_line", "write_pair"]
