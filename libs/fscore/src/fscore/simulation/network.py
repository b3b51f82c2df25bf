"""The virtual network of a standalone course: delivers participants' replies in virtual-time order.

Participants run one after another in simulation, so the order in which they publish says
nothing about when their replies would arrive. The network holds what they send to the
coordinator and appends it to the coordinator's inbox sorted by virtual timestamp (sender as the
tie-break), so the coordinator handles messages in timestamp order (paper §5.3.1) and its inbox
is a log a deployment could have produced.
"""

from __future__ import annotations

from collections.abc import Sequence

from fscore.transport.base import Consumer, TopicSpec, Transport
from fstranslation import WireCodec


class VirtualNetwork(Transport):
    def __init__(self, log: Transport, codec: WireCodec, held_topic: str) -> None:
        self._log = log
        self._codec = codec
        self._held_topic = held_topic
        self._in_flight: list[tuple[float, str, int, bytes, bytes | None, tuple[tuple[str, bytes], ...]]] = []

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        self._log.ensure_topics(specs)

    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        if topic != self._held_topic:
            self._log.publish(topic, value, key=key, headers=headers)
            return
        header = self._codec.decode_header(value)[0]
        self._in_flight.append((header.timestamp, header.sender, len(self._in_flight), value, key, tuple(headers)))

    def release(self) -> int:
        """Append everything in flight, earliest first; returns how many records were released."""
        batch, self._in_flight = sorted(self._in_flight), []
        for _, _, _, value, key, headers in batch:
            self._log.publish(self._held_topic, value, key=key, headers=headers)
        return len(batch)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._log.end_offsets(topic)

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self._log.committed(group, topic, partition)

    def consumer(self, topics: Sequence[str], *, group: str, key: bytes | None = None) -> Consumer:
        return self._log.consumer(topics, group=group, key=key)
