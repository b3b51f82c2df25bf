"""Security settings pass through to both Kafka clients; secrets never show in logs, dumps or errors."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from fscore.config import KafkaConfig, load_config
from fscore.errors import ConfigError
from fscore.service import service_config
from fscore.transport.kafka_confluent import confluent_settings
from fscore.transport.kafka_python import kafka_python_settings

SECRET = "s3cr3t-hunter2"
KEY_SECRET = "k3y-pa55"


def secure() -> KafkaConfig:
    return KafkaConfig(bootstrap_servers="b1:9093,b2:9093", security_protocol="SASL_SSL",
                       sasl_mechanism="SCRAM-SHA-512", sasl_username="fl-user", sasl_password=SECRET,
                       ssl_cafile="/etc/ca.pem",
                       ssl_certfile="/etc/client.pem", ssl_keyfile="/etc/client.key", ssl_key_password=KEY_SECRET)


def test_confluent_gets_librdkafka_names():
    conf = confluent_settings(secure())
    assert conf == {"bootstrap.servers": "b1:9093,b2:9093", "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "fl-user", "sasl.password": SECRET,
                    "ssl.ca.location": "/etc/ca.pem", "ssl.certificate.location": "/etc/client.pem",
                    "ssl.key.location": "/etc/client.key", "ssl.key.password": KEY_SECRET}


def test_kafka_python_gets_its_own_names():
    conf = kafka_python_settings(secure())
    assert conf == {"bootstrap_servers": ["b1:9093", "b2:9093"], "security_protocol": "SASL_SSL",
                    "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "fl-user",
                    "sasl_plain_password": SECRET, "ssl_cafile": "/etc/ca.pem", "ssl_certfile": "/etc/client.pem",
                    "ssl_keyfile": "/etc/client.key", "ssl_password": KEY_SECRET}


def test_secrets_are_redacted_in_repr_dumps_and_json_logs():
    config = secure()
    out = io.StringIO()
    logger = structlog.wrap_logger(structlog.PrintLogger(out), processors=[structlog.processors.JSONRenderer(
        default=str)])
    logger.info("connecting", kafka=config, dumped=config.model_dump(mode="json"))
    for text in (repr(config), str(config), config.model_dump_json(), json.dumps(config.model_dump(mode="json")),
                 out.getvalue()):
        assert SECRET not in text and KEY_SECRET not in text
        assert "**********" in text


def test_sasl_without_a_password_names_what_is_missing():
    with pytest.raises(ValueError, match="needs sasl_mechanism, sasl_username and sasl_password"):
        KafkaConfig(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u")


def test_a_bad_secret_is_named_but_never_echoed(tmp_path, example_config):
    with pytest.raises(ConfigError) as err:
        load_config(example_config, ["transport.kafka.sasl_password=[1, 2]"])
    assert "transport.kafka.sasl_password" in str(err.value) and "1, 2" not in str(err.value)


def test_containers_pass_brokers_and_secrets_through_the_environment(monkeypatch, example_config):
    monkeypatch.setenv("FSCOPE_CONFIG", str(example_config))
    monkeypatch.setenv("FSCOPE_SET", "transport.kind=kafka; transport.kafka.security_protocol=SASL_SSL; "
                                     "transport.kafka.sasl_mechanism=PLAIN")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("FSCOPE_KAFKA_SASL_USERNAME", "fl-user")
    monkeypatch.setenv("FSCOPE_KAFKA_SASL_PASSWORD", "0123")  # would be the number 123 if parsed as YAML
    config = service_config(None, ["rounds=3"])
    kafka = config.transport.kafka
    assert (config.rounds, config.transport.kind, kafka.bootstrap_servers) == (3, "kafka", "kafka:9092")
    assert kafka.sasl_password is not None and kafka.sasl_password.get_secret_value() == "0123"
    assert "0123" not in config.model_dump_json()


def test_a_service_without_a_config_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("FSCOPE_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="pass CONFIG or set FSCOPE_CONFIG"):
        service_config(None, [])
