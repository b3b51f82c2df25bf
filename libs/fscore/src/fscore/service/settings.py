"""A service's course config: a file plus overrides, from arguments or the environment (pydantic-settings).

One container image serves any course and participant: ``FSCOPE_CONFIG`` names the file,
``FSCOPE_SET`` holds ``;``-separated overrides, ``FSCOPE_PARTICIPANT_INDEX`` picks the participant,
and brokers and secrets come from their own variables (:class:`ServiceEnvironment`). Command-line
values win over ``FSCOPE_SET``; brokers and secrets are taken literally (a password is never parsed
as YAML) and win over both. Every error is one line naming the key or the variable.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from fscore.config import CourseConfig, load_config
from fscore.errors import ConfigError
from fscore.topics import CourseTopics
from fscore.transport.base import Transport

#: variable -> the config key it sets, literally
ENV_SETTINGS = {
    "KAFKA_BOOTSTRAP_SERVERS": "transport.kafka.bootstrap_servers",
    "FSCOPE_KAFKA_SASL_USERNAME": "transport.kafka.sasl_username",
    "FSCOPE_KAFKA_SASL_PASSWORD": "transport.kafka.sasl_password",
    "FSCOPE_KAFKA_SSL_KEY_PASSWORD": "transport.kafka.ssl_key_password",
}


class ServiceEnvironment(BaseSettings):
    """The environment a container sets instead of writing brokers or secrets into the course file."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", env_ignore_empty=True)

    config: str | None = Field(None, validation_alias="FSCOPE_CONFIG")
    overrides: str = Field("", validation_alias="FSCOPE_SET")
    participant_index: int | None = Field(None, validation_alias="FSCOPE_PARTICIPANT_INDEX")
    bootstrap_servers: str | None = Field(None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    sasl_username: str | None = Field(None, validation_alias="FSCOPE_KAFKA_SASL_USERNAME")
    sasl_password: SecretStr | None = Field(None, validation_alias="FSCOPE_KAFKA_SASL_PASSWORD")
    ssl_key_password: SecretStr | None = Field(None, validation_alias="FSCOPE_KAFKA_SSL_KEY_PASSWORD")

    @staticmethod
    def read() -> ServiceEnvironment:
        try:
            return ServiceEnvironment()
        except ValidationError as exc:
            err = exc.errors()[0]
            variable = ".".join(str(p) for p in err["loc"])
            shown = "" if "PASSWORD" in variable else f" (got {err.get('input')!r})"
            raise ConfigError(f"environment variable {variable}: {err['msg']}{shown}") from None

    def override_list(self) -> list[str]:
        return [o for o in self.overrides.split(";") if o.strip()]

    def literal_values(self) -> dict[str, Any]:
        """The brokers and secrets the environment sets, by config key, as plain strings."""
        out: dict[str, Any] = {}
        for variable, key in ENV_SETTINGS.items():
            field = next(name for name, f in type(self).model_fields.items() if f.validation_alias == variable)
            value = getattr(self, field)
            if value is not None:
                out[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out


def service_config(path: str | None, overrides: list[str]) -> CourseConfig:
    """The course config of a service: ``path`` (else ``FSCOPE_CONFIG``), ``FSCOPE_SET``, then ``overrides``,
    then the literal brokers and secrets of the environment."""
    env = ServiceEnvironment.read()
    path = path or env.config
    if not path:
        raise ConfigError("no course config: pass CONFIG or set FSCOPE_CONFIG")
    return load_config(path, [*env.override_list(), *overrides], env.literal_values())


def connect(config: CourseConfig, topics: CourseTopics, snapshots: bool = True) -> Transport:
    """The configured Kafka transport with the course's topics in place (created if missing); ``snapshots``:
    the snapshots topic too (the coordinator's; a participant never touches it)."""
    from fscore.transport.kafka_common import make_kafka_transport

    transport = make_kafka_transport(config.transport.kafka)
    transport.ensure_topics(topics.specs(snapshots))
    return transport

