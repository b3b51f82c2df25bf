"""Transports: the embedded log for simulation; Kafka clients for deployment."""

from fscore.transport.base import Consumer, Record, TopicSpec, Transport, partition_for
from fscore.transport.embedded import EmbeddedConsumer, EmbeddedLog

__all__ = ["Consumer", "EmbeddedConsumer", "EmbeddedLog", "Record", "TopicSpec", "Transport", "partition_for"]
