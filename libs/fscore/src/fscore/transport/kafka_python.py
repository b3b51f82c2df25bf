"""The Kafka client on kafka-python: pure Python, no native library."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError
from kafka.structs import OffsetAndMetadata

from fscore.config import KafkaConfig
from fscore.errors import TransportError
from fscore.transport.base import Record, TopicSpec
from fscore.transport.kafka_common import GroupLease, KafkaClient, RawConsumer


def kafka_python_settings(config: KafkaConfig) -> dict[str, Any]:
    """kafka-python settings for ``config``, secrets included: never log this dict."""
    conf: dict[str, Any] = {"bootstrap_servers": config.bootstrap_servers.split(","),
                            "security_protocol": config.security_protocol}
    if config.sasl_mechanism:
        conf["sasl_mechanism"] = config.sasl_mechanism
        conf["sasl_plain_username"] = config.sasl_username
        conf["sasl_plain_password"] = config.sasl_password.get_secret_value() if config.sasl_password else None
    for key, value in (("ssl_cafile", config.ssl_cafile), ("ssl_certfile", config.ssl_certfile),
                       ("ssl_keyfile", config.ssl_keyfile)):
        if value is not None:
            conf[key] = str(value)
    if config.ssl_key_password is not None:
        conf["ssl_password"] = config.ssl_key_password.get_secret_value()
    return conf


def _if_known(cls: Any, **settings: Any) -> dict[str, Any]:
    """The settings this kafka-python version's ``cls`` knows (bootstrap_timeout_ms is new in 3.0)."""
    return {k: v for k, v in settings.items() if k in getattr(cls, "DEFAULT_CONFIG", {})}


class KafkaPythonClient(KafkaClient):
    def __init__(self, config: KafkaConfig) -> None:
        self._base = kafka_python_settings(config)
        self._outage = config.outage_limit_s
        self._config = config
        # kafka-python bootstraps while it is constructed: bound that by the connect timeout where it can be.
        boot = int(config.connect_timeout_s * 1000)
        self._producer = KafkaProducer(**self._base, **_if_known(KafkaProducer, bootstrap_timeout_ms=boot), acks="all",
                                       enable_idempotence=True, linger_ms=2,
                                       max_request_size=max(config.max_record_bytes + 64_000, 1_000_000),
                                       delivery_timeout_ms=int(max(self._outage, 31) * 1000))
        self._admin = KafkaAdminClient(**self._base, **_if_known(KafkaAdminClient, bootstrap_timeout_ms=boot))
        self._futures: list[Any] = []

    def probe(self, timeout: float) -> None:
        """kafka-python bootstraps from the brokers while it is constructed: nothing more to ask."""

    def produce(self, topic: str, partition: int, value: bytes | memoryview, key: bytes | None,
                headers: Sequence[tuple[str, bytes]]) -> None:
        self._futures.append(self._producer.send(topic, value=bytes(value), key=key, partition=partition,
                                                 headers=list(headers)))

    def flush(self) -> None:
        try:
            self._producer.flush(self._outage + 5)
        except KafkaError as exc:
            raise TransportError(f"records not delivered within {self._outage:g} s "
                                 f"(transport.kafka.outage_limit_s): {exc}") from exc
        futures, self._futures = self._futures, []
        errors = [str(f.exception) for f in futures if f.failed()]
        if errors:
            raise TransportError(f"delivery failed: {'; '.join(errors)}")

    def create_topics(self, specs: Sequence[TopicSpec], replication_factor: int) -> None:
        for spec in specs:
            try:
                self._admin.create_topics([NewTopic(spec.name, spec.partitions, replication_factor,
                                                    topic_configs=dict(spec.config))])
            except (TopicAlreadyExistsError, TopicAuthorizationFailedError):
                pass  # already there, or (ACLs) only the coordinator may create it: ensure_topics waits for it
            except KafkaError as exc:
                raise TransportError(f"cannot create topic {spec.name!r}: {exc}") from exc

    def partitions(self, topic: str) -> int:
        parts = self._producer.partitions_for(topic)
        if not parts:
            raise TransportError(f"topic {topic!r} does not exist (create the course's topics first)")
        return len(parts)

    def end_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        return self._offsets(topic, partitions, "end")

    def start_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        return self._offsets(topic, partitions, "beginning")

    def _offsets(self, topic: str, partitions: int, which: str) -> dict[int, int]:
        probe = KafkaConsumer(**self._base, enable_auto_commit=False)
        try:
            found = getattr(probe, f"{which}_offsets")([TopicPartition(topic, p) for p in range(partitions)])
        except KafkaError as exc:
            raise TransportError(f"cannot read the {which} offsets of {topic!r}: {exc}") from exc
        finally:
            probe.close()
        return {tp.partition: offset for tp, offset in found.items()}

    def committed(self, group: str, topic: str, partition: int) -> int:
        probe = KafkaConsumer(**self._base, group_id=group, enable_auto_commit=False)
        try:
            offset = probe.committed(TopicPartition(topic, partition))
        except KafkaError as exc:
            raise TransportError(f"cannot read {group!r}'s committed offset on {topic!r}: {exc}") from exc
        finally:
            probe.close()
        return offset or 0

    def leaders_ready(self, topic: str, partitions: int) -> bool:
        try:
            (described,) = self._admin.describe_topics([topic])
        except KafkaError:
            return False
        parts = described.get("partitions") or []
        return (described.get("error_code") == 0 and len(parts) >= partitions
                and all(p["error_code"] == 0 and p["leader_id"] >= 0 for p in parts))

    def raw_consumer(self, group: str, assignment: list[tuple[str, int]],
                     start: Mapping[tuple[str, int], int]) -> RawConsumer:
        return _KafkaPythonConsumer(self._base, group, assignment, start)

    def lease(self, group: str, topic: str) -> GroupLease:
        """The lease on librdkafka's group protocol, which the kafka extra installs too: kafka-python 3.0's
        subscribed consumer gets no assignment from a KRaft broker here ("No partition metadata"), so its
        own group protocol cannot hold a lease."""
        from fscore.transport.kafka_confluent import ConfluentClient

        return ConfluentClient.lease_for(self._config, group, topic)

    def close(self) -> None:
        self._producer.flush(30)
        self._producer.close()
        self._admin.close()


class _KafkaPythonConsumer(RawConsumer):
    def __init__(self, base: dict[str, Any], group: str, assignment: list[tuple[str, int]],
                 start: Mapping[tuple[str, int], int]) -> None:
        self._consumer = KafkaConsumer(**base, group_id=group, enable_auto_commit=False,
                                       auto_offset_reset="earliest", fetch_max_bytes=64 * 1024 * 1024)
        self._consumer.assign([TopicPartition(t, p) for t, p in assignment])
        for (t, p), offset in start.items():
            if (t, p) in assignment:
                self._consumer.seek(TopicPartition(t, p), offset)

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        out = [Record(m.topic, m.partition, m.offset, m.key, m.value or b"", tuple((k, v or b"") for k, v in m.headers),
                      max(m.timestamp, 0) / 1000)
               for msgs in batches.values() for m in msgs]
        out.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return out

    def commit(self, topic: str, partition: int, next_offset: int) -> None:
        self._consumer.commit({TopicPartition(topic, partition): OffsetAndMetadata(next_offset, "", -1)})

    def close(self) -> None:
        self._consumer.close()

