"""The Kafka client on confluent-kafka (librdkafka): the default."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import structlog
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential

from fscore.config import KafkaConfig
from fscore.errors import TransportError
from fscore.transport.base import Record, TopicSpec
from fscore.transport.kafka_common import GroupLease, KafkaClient, RawConsumer

log = structlog.get_logger("fscore.transport.confluent")
T = TypeVar("T")

_TRANSIENT = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                        KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.NOT_COORDINATOR,
                        KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
                        KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError._TRANSPORT,
                        KafkaError._ALL_BROKERS_DOWN, KafkaError._WAIT_COORD, KafkaError._RESOLVE})

# Consumer errors that retrying cannot cure; every other error event is transient and librdkafka recovers from it.
_PERMANENT = frozenset({
    KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._SSL, KafkaError.INVALID_CONFIG,
})


def confluent_settings(config: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings for ``config``, secrets included: never log this dict."""
    conf: dict[str, Any] = {"bootstrap.servers": config.bootstrap_servers,
                            "security.protocol": config.security_protocol}
    if config.sasl_mechanism:
        conf["sasl.mechanism"] = config.sasl_mechanism
        conf["sasl.username"] = config.sasl_username
        conf["sasl.password"] = config.sasl_password.get_secret_value() if config.sasl_password else None
    for key, value in (("ssl.ca.location", config.ssl_cafile), ("ssl.certificate.location", config.ssl_certfile),
                       ("ssl.key.location", config.ssl_keyfile)):
        if value is not None:
            conf[key] = str(value)
    if config.ssl_key_password is not None:
        conf["ssl.key.password"] = config.ssl_key_password.get_secret_value()
    return conf


def refusal(config: KafkaConfig, timeout: float = 3.0) -> str | None:
    """Why the broker refuses a connection with ``config`` (authentication, TLS), as librdkafka reports it; None if
    it does not. kafka-python only sees its socket closed, so its failures are explained with this."""
    reasons: list[str] = []
    admin = AdminClient({**confluent_settings(config), "error_cb": _noting(reasons), "logger": _SILENT})
    _metadata(admin, reasons, timeout)
    return reasons[-1] if reasons else None


def _noting(reasons: list[str]) -> Callable[[KafkaError], None]:
    """An ``error_cb`` that keeps the errors that mean the broker refuses us."""
    def noted(err: KafkaError) -> None:
        if err.code() in _REFUSED:
            reasons.append(err.str())
    return noted


def _metadata(admin: AdminClient, reasons: list[str], timeout: float) -> KafkaException | None:
    """None once the cluster answers within ``timeout``; else the last failure, at once if the broker refused us."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return None
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb: why the connection failed, if the broker said
            if reasons or time.monotonic() >= deadline:
                return exc


_REFUSED = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL})
_SILENT = logging.getLogger("fscore.transport.librdkafka")  # librdkafka's own log lines, not on stderr
_SILENT.propagate = False
_SILENT.addHandler(logging.NullHandler())


class ConfluentClient(KafkaClient):
    def __init__(self, config: KafkaConfig) -> None:
        self._base = confluent_settings(config)
        self._outage = config.outage_limit_s
        self._session_timeout = config.lease_session_timeout_s
        self._errors: list[str] = []
        # librdkafka's producer is not idempotent by default; fscope relies on it (no duplicates, order kept).
        # A record is retried for as long as a service rides out a broker outage, and no longer.
        self._producer = Producer({**self._base, "enable.idempotence": True, "acks": "all", "linger.ms": 2,
                                   "message.max.bytes": max(config.max_record_bytes + 64_000, 1_000_000),
                                   "message.timeout.ms": int(self._outage * 1000)})
        self._refusals: list[str] = []  # why the broker refused us (authentication, TLS), as librdkafka reports it
        self._admin = AdminClient({**self._base, "error_cb": _noting(self._refusals), "logger": _SILENT})

    def probe(self, timeout: float) -> None:
        """Cluster metadata within ``timeout``; a broker that refuses us (authentication, TLS) is told at once."""
        where = self._base["bootstrap.servers"]
        failed = _metadata(self._admin, self._refusals, timeout)
        if failed is None:
            return
        if self._refusals:  # reachable, but it will not let us in: say why, not "unreachable"
            raise TransportError(f"Kafka broker at {where} refused the connection "
                                 f"({self._base['security.protocol']}): {self._refusals[-1]}") from failed
        raise TransportError(f"Kafka broker unreachable at {where}: no cluster metadata within {timeout:g} s "
                             f"({failed.args[0]})") from failed

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def produce(self, topic: str, partition: int, value: bytes | memoryview, key: bytes | None,
                headers: Sequence[tuple[str, bytes]]) -> None:
        while True:
            try:
                self._producer.produce(topic, bytes(value) if isinstance(value, memoryview) else value, key,
                                       partition=partition, headers=list(headers), on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.1)  # the local queue is full: let deliveries drain
        self._producer.poll(0)

    def flush(self) -> None:
        remaining = self._producer.flush(self._outage + 5)
        if remaining:
            raise TransportError(f"{remaining} records not delivered within {self._outage:g} s "
                                 "(transport.kafka.outage_limit_s): is the broker down?")
        if self._errors:
            errors, self._errors = self._errors, []
            raise TransportError(f"delivery failed: {'; '.join(errors)}")

    def create_topics(self, specs: Sequence[TopicSpec], replication_factor: int) -> None:
        new = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=replication_factor,
                        config=dict(s.config)) for s in specs]
        for name, future in self._admin.create_topics(new, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    log.info("topic_left_to_the_coordinator", topic=name)  # ACLs: only it creates them
                elif code != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TransportError(f"cannot create topic {name!r}: {exc}") from exc

    def partitions(self, topic: str) -> int:
        meta = self._admin.list_topics(topic, timeout=30).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise TransportError(f"topic {topic!r} does not exist (create the course's topics first)")
        return len(meta.partitions)

    def end_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        return self._watermarks(topic, partitions, 1, "end")

    def start_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        return self._watermarks(topic, partitions, 0, "start")

    def _watermarks(self, topic: str, partitions: int, which: int, name: str) -> dict[int, int]:
        probe = Consumer({**self._base, "group.id": "fscope-watermarks", "enable.auto.commit": False})
        try:
            return _retrying(lambda: {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[which]
                                      for p in range(partitions)}, f"reading the {name} offsets of {topic!r}",
                             self._outage)
        finally:
            probe.close()

    def committed(self, group: str, topic: str, partition: int) -> int:
        probe = Consumer({**self._base, "group.id": group, "enable.auto.commit": False})
        try:
            offset = _retrying(lambda: probe.committed([TopicPartition(topic, partition)], timeout=10)[0].offset,
                               f"reading {group!r}'s committed offset on {topic!r}", self._outage)
        finally:
            probe.close()
        return max(offset, 0)  # librdkafka says OFFSET_INVALID (-1001) when there is none

    def leaders_ready(self, topic: str, partitions: int) -> bool:
        try:
            meta = self._admin.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException:
            return False
        return (meta is not None and meta.error is None and len(meta.partitions) >= partitions
                and all(p.leader >= 0 and p.error is None for p in meta.partitions.values()))

    def raw_consumer(self, group: str, assignment: list[tuple[str, int]],
                     start: Mapping[tuple[str, int], int]) -> RawConsumer:
        return _ConfluentConsumer(self._base, group, assignment, self._outage, start)

    def lease(self, group: str, topic: str) -> GroupLease:
        return _ConfluentLease(self._base, group, topic, self._session_timeout)

    @staticmethod
    def lease_for(config: KafkaConfig, group: str, topic: str) -> GroupLease:
        """A lease without a producer or admin client (for the kafka-python client)."""
        return _ConfluentLease(confluent_settings(config), group, topic, config.lease_session_timeout_s)

    def close(self) -> None:
        self._producer.flush(30)


def _transient(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException):
        return False
    err = exc.args[0]
    return not err.fatal() and (err.retriable() or err.code() in _TRANSIENT)


def _retrying(call: Callable[[], T], what: str, seconds: float = 60.0) -> T:
    """``call()``, retried while the broker answers with a transient error (tenacity: backoff from 0.2 s doubling
    to 5 s, so a broker outage is ridden out without flooding the log; given up after ``seconds``).

    A broker that has just started is still loading its group coordinator (NOT_COORDINATOR,
    COORDINATOR_LOAD_IN_PROGRESS), and a topic created a moment ago may not have a leader yet.
    """
    def note(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.info("kafka_transient_error_retrying", operation=what, error=str(error.args[0] if error else ""),
                 retry_in_s=state.next_action.sleep if state.next_action else None)

    retrying = Retrying(retry=retry_if_exception(_transient), stop=stop_after_delay(seconds),
                        wait=wait_exponential(multiplier=0.2, max=5.0), before_sleep=note, reraise=True)
    try:
        return retrying(call)
    except KafkaException as exc:
        raise TransportError(f"{what} failed: {exc.args[0]}") from exc


class _ConfluentConsumer(RawConsumer):
    def __init__(self, base: dict[str, Any], group: str, assignment: list[tuple[str, int]], outage: float,
                 start: Mapping[tuple[str, int], int]) -> None:
        self._outage = outage
        self._consumer = Consumer({**base, "group.id": group, "enable.auto.commit": False,
                                   "auto.offset.reset": "earliest", "enable.partition.eof": False})
        # Manual assignment: no group rebalances; the committed offsets of `group` are where reading resumes.
        self._consumer.assign([TopicPartition(t, p, start[(t, p)]) if (t, p) in start else TopicPartition(t, p)
                               for t, p in assignment])

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        out = []
        for msg in self._consumer.consume(num_messages=max_records, timeout=timeout):
            err = msg.error()
            if err is not None:
                if err.fatal() or err.code() in _PERMANENT:
                    raise TransportError(f"consume failed: {err}")
                # Transient (coordinator moving or still loading, a broker restarting): librdkafka retries itself.
                log.warning("kafka_consumer_transient_error", error=str(err))
                continue
            kind, millis = msg.timestamp()
            out.append(Record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value() or b"",
                              tuple((k, v or b"") for k, v in (msg.headers() or [])),
                              millis / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else 0.0))
        return out

    def commit(self, topic: str, partition: int, next_offset: int) -> None:
        _retrying(lambda: self._consumer.commit(offsets=[TopicPartition(topic, partition, next_offset)],
                                                asynchronous=False), f"committing {topic}[{partition}]@{next_offset}",
                  self._outage)

    def close(self) -> None:
        self._consumer.close()


class _ConfluentLease(GroupLease):
    def __init__(self, base: dict[str, Any], group: str, topic: str, session_timeout_s: float) -> None:
        # cooperative-sticky: a member that holds the partition keeps it when another joins
        self._consumer = Consumer({**base, "group.id": group, "enable.auto.commit": False,
                                   "partition.assignment.strategy": "cooperative-sticky",
                                   "session.timeout.ms": int(session_timeout_s * 1000), "heartbeat.interval.ms": 500,
                                   "auto.offset.reset": "latest", "enable.partition.eof": False})
        self._consumer.subscribe([topic])

    def poll(self) -> None:
        self._consumer.poll(0)  # serves the group protocol; what it reads of the topic is not needed

    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close()
