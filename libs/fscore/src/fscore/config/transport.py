"""How services reach Kafka: the transport section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from fscore.config.sections import _Strict


class KafkaConfig(_Strict):
    """How services reach Kafka. Secrets are SecretStr: shown as ********** in logs and dumps."""

    bootstrap_servers: str = "127.0.0.1:19092"
    client: Literal["confluent", "kafka-python"] = "confluent"
    replication_factor: int = Field(1, ge=1)
    #: records larger than this are split into chunks; keep it under the broker's message.max.bytes (1 MiB)
    max_record_bytes: int = Field(900_000, ge=1024, le=50_000_000)
    poll_timeout_s: float = Field(0.2, gt=0)
    #: how long a service rides out an unreachable broker (mid-course) before it exits 3
    outage_limit_s: float = Field(300.0, gt=0)
    #: how long a service waits for the broker's cluster metadata at start before it exits 3
    connect_timeout_s: float = Field(10.0, gt=0)
    #: how soon the broker declares a silent coordinator dead, freeing its course for a restarted one (the
    #: broker's group.min.session.timeout.ms is 6 s by default)
    lease_session_timeout_s: float = Field(6.0, ge=1.0, le=300.0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username
                                                               and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username "
                             "and sasl_password")
        return self


class TransportConfig(_Strict):
    kind: Literal["embedded", "kafka"] = "embedded"
    topic_prefix: str = Field("fscope", pattern=r"^[A-Za-z0-9._-]+$")
    direct_partitions: int = Field(16, ge=1)
    kafka: KafkaConfig = KafkaConfig()


