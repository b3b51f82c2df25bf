"""What both Kafka clients share: chunking of large records, partition choice, reassembly, safe commits.

A client module supplies a :class:`KafkaClient` (produce one record, flush, create topics, count
partitions, open a raw consumer). Everything FL-agnostic but Kafka-specific lives here once, so
confluent-kafka and kafka-python behave the same and pass the same conformance suite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

import structlog
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from fscore.config import KafkaConfig
from fscore.errors import TransportError
from fscore.transport.base import Consumer, Lease, Record, TopicSpec, Transport, partition_for
from fscore.transport.chunking import ChunkError, Reassembler, split

log = structlog.get_logger("fscore.transport.kafka")


class RawConsumer(ABC):
    @abstractmethod
    def poll(self, max_records: int, timeout: float) -> list[Record]: ...

    @abstractmethod
    def commit(self, topic: str, partition: int, next_offset: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class KafkaClient(ABC):
    """The few operations fscope needs from a Kafka client library."""

    @abstractmethod
    def probe(self, timeout: float) -> None:
        """Raise :class:`TransportError` unless the cluster answers a metadata request within ``timeout``."""

    @abstractmethod
    def produce(self, topic: str, partition: int, value: bytes | memoryview, key: bytes | None,
                headers: Sequence[tuple[str, bytes]]) -> None: ...

    @abstractmethod
    def flush(self) -> None: ...

    @abstractmethod
    def create_topics(self, specs: Sequence[TopicSpec], replication_factor: int) -> None: ...

    @abstractmethod
    def partitions(self, topic: str) -> int: ...

    @abstractmethod
    def leaders_ready(self, topic: str, partitions: int) -> bool:
        """Whether the broker serves every partition of ``topic`` (each has a leader)."""

    @abstractmethod
    def end_offsets(self, topic: str, partitions: int) -> dict[int, int]: ...

    @abstractmethod
    def start_offsets(self, topic: str, partitions: int) -> dict[int, int]: ...

    @abstractmethod
    def committed(self, group: str, topic: str, partition: int) -> int: ...

    @abstractmethod
    def raw_consumer(self, group: str, assignment: list[tuple[str, int]],
                     start: Mapping[tuple[str, int], int]) -> RawConsumer:
        """A consumer of ``assignment``, from ``group``'s committed offsets, or ``start``'s where it names one."""

    @abstractmethod
    def lease(self, group: str, topic: str) -> Lease: ...

    @abstractmethod
    def close(self) -> None: ...


def wait_until(predicate: Callable[[], bool], seconds: float, interval: float = 0.1) -> bool:
    """Whether ``predicate()`` came true within ``seconds``, asking every ``interval`` seconds."""
    polling = Retrying(retry=retry_if_result(lambda ok: not ok), stop=stop_after_delay(seconds),
                       wait=wait_fixed(interval))
    try:
        return bool(polling(predicate))
    except RetryError:
        return False


class GroupLease(Lease):
    """:class:`Lease` over a consumer group; the client supplies ``poll`` (serves the group protocol) and
    ``assigned`` (whether this member has the partition)."""

    def acquire(self, timeout: float) -> bool:
        return wait_until(self.held, timeout) or self.held()

    def held(self) -> bool:
        self.poll()
        return self.assigned()

    @abstractmethod
    def poll(self) -> None: ...

    @abstractmethod
    def assigned(self) -> bool: ...


class KafkaTransport(Transport):
    def __init__(self, client: KafkaClient, config: KafkaConfig) -> None:
        self.client = client
        self.config = config
        self._partitions: dict[str, int] = {}

    def _partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = self.client.partitions(topic)
        return count

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create what is missing, then wait until the broker serves every partition.

        Producing to a partition the broker has not applied yet can lose records even with an
        idempotent producer: a first request fails NOT_LEADER_OR_FOLLOWER, a later one is appended,
        and the retry of the first is then out of sequence (KAFKA-15591).
        """
        self.client.create_topics(specs, self.config.replication_factor)
        for spec in specs:
            if not wait_until(lambda s=spec: self.client.leaders_ready(s.name, s.partitions), 60.0):
                raise TransportError(f"topic {spec.name!r} has partitions without a leader after 60 s (or does not "
                                     "exist, and this client's ACLs do not let it create it)")

    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        count = self._partition_count(topic)
        partition = partition_for(key, count) if key is not None else 0
        for chunk, chunk_headers in split(value, headers, self.config.max_record_bytes):
            self.client.produce(topic, partition, chunk, key, chunk_headers)

    def flush(self) -> None:
        self.client.flush()

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.client.end_offsets(topic, self._partition_count(topic))

    def start_offsets(self, topic: str) -> dict[int, int]:
        return self.client.start_offsets(topic, self._partition_count(topic))

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self.client.committed(group, topic, partition)

    def consumer(self, topics: Sequence[str], *, group: str, key: bytes | None = None,
                 start: Mapping[tuple[str, int], int] | None = None) -> KafkaConsumer:
        assignment = []
        for topic in topics:
            count = self._partition_count(topic)
            chosen = [partition_for(key, count)] if key is not None and count > 1 else range(count)
            assignment.extend((topic, p) for p in chosen)
        return KafkaConsumer(self.client.raw_consumer(group, assignment, start or {}), key,
                             {t: self._partitions[t] for t in topics})

    def lease(self, group: str, topic: str) -> Lease:
        return self.client.lease(group, topic)

    def close(self) -> None:
        self.client.close()


class KafkaConsumer(Consumer):
    def __init__(self, raw: RawConsumer, key: bytes | None, partitions: dict[str, int]) -> None:
        self._raw = raw
        self._key = key
        self._partitions = partitions
        self._reassembler = Reassembler()
        self.chunk_errors: list[ChunkError] = []

    def poll(self, max_records: int = 500, timeout: float = 0.0) -> list[Record]:
        out = []
        for record in self._raw.poll(max_records, timeout):
            if self._key is not None and self._partitions[record.topic] > 1 and record.key != self._key:
                continue  # another participant's record in our partition; the next commit covers it
            try:
                whole = self._reassembler.add(record)
            except ChunkError as exc:
                log.warning("chunk_dropped", topic=record.topic, partition=record.partition, offset=record.offset,
                            reason=str(exc))
                self.chunk_errors.append(exc)
                # Hand the broken tail to the worker's loop, which dead-letters what it cannot decode.
                whole = exc.record
            if whole is not None:
                out.append(whole)
        return out

    def commit(self, record: Record) -> None:
        self._raw.commit(record.topic, record.partition,
                         self._reassembler.safe_commit_offset(record.topic, record.partition, record.offset + 1))

    def close(self) -> None:
        self._raw.close()


def make_kafka_transport(config: KafkaConfig) -> KafkaTransport:
    """The configured client (confluent-kafka by default, kafka-python on request), once the cluster answers."""
    try:
        if config.client == "confluent":
            from fscore.transport.kafka_confluent import ConfluentClient

            client: KafkaClient = ConfluentClient(config)
        else:
            from fscore.transport.kafka_python import KafkaPythonClient

            client = KafkaPythonClient(config)
        client.probe(config.connect_timeout_s)  # an unreachable broker is told in seconds, as such
        return KafkaTransport(client, config)
    except TransportError:
        raise
    except ImportError as exc:
        raise TransportError(f"the {config.client} client is not installed ({exc}); "
                             "install fscope-core[kafka]") from exc
    except Exception as exc:  # client libraries raise their own types at construction
        refused = _refusal(config)
        if refused is not None:
            raise TransportError(f"Kafka broker at {config.bootstrap_servers} refused the connection "
                                 f"({config.security_protocol}): {refused}") from exc
        raise TransportError(f"Kafka broker unreachable at {config.bootstrap_servers} ({config.client} client: "
                             f"{type(exc).__name__}: {exc})") from exc


def _refusal(config: KafkaConfig) -> str | None:
    """kafka-python sees only a closed socket when the broker refuses it; librdkafka (the kafka extra installs it
    too) can say why: bad credentials, an untrusted certificate."""
    if config.security_protocol == "PLAINTEXT":
        return None
    try:
        from fscore.transport.kafka_confluent import refusal
    except ImportError:
        return None
    return refusal(config)
