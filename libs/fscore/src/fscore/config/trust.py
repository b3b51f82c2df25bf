"""Who may speak in a course: the trust section (participant identity and admission, issue 16)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from fscore.config.sections import _Strict


class TrustConfig(_Strict):
    """Signed messages and the admitted keys.

    Every message is signed (Ed25519) over its envelope and payload bytes, and a receiver handles
    only what an admitted key signed for the sender it claims. ``signing`` left unset means on for
    the Kafka services and off in standalone simulation, where every worker is in one process.
    """

    signing: bool | None = Field(None, description="sign and verify every message; unset: on for the Kafka "
                                                   "services, off in standalone simulation")
    keys: Path | None = Field(None, description="file of admitted public keys, one 'ed25519 <base64> <address>' "
                                                "line each (fscope keys generate writes it)")
    admitted: list[str] = Field(default_factory=list, description="admitted public key lines, inline")
    private_key: str | None = Field(None, description="this worker's private key file (PEM); '{address}' is "
                                                      "replaced by the worker's address")

    def signs(self, service: bool) -> bool:
        """Whether the course's workers sign and verify: as set, else on for services only."""
        return service if self.signing is None else self.signing
