"""The virtual network of a standalone course: delivers coordinator-bound messages in virtual-time order.

Participants run one after another in simulation, so the order in which they publish says
nothing about when their replies would arrive. The network holds every message bound for the
coordinator (participants' replies and the coordinator's own time_up alarms) and the runner
releases them one at a time, earliest first (sender, then sending order, break ties): a
discrete-event simulation. Whatever the coordinator does on a released message is stamped with
that message's time, so nothing still held can be earlier than what was released, and the
coordinator handles messages in timestamp order (paper §5.3.1). Its inbox is a log a deployment
could have produced, which is what replay reads.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from fscore.transport.base import Consumer, TopicSpec, Transport
from fstranslation import WireCodec

_Held = tuple[float, str, int, bytes, bytes | None, tuple[tuple[str, bytes], ...]]


class VirtualNetwork(Transport):
    def __init__(self, log: Transport, codec: WireCodec, held_topic: str) -> None:
        self._log = log
        self._codec = codec
        self._held_topic = held_topic
        self._in_flight: list[_Held] = []
        self._sent = 0

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        self._log.ensure_topics(specs)

    def publish(self, topic: str, value: bytes, *, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        if topic != self._held_topic:
            self._log.publish(topic, value, key=key, headers=headers)
            return
        header = self._codec.decode_header(value)[0]
        self._sent += 1
        heapq.heappush(self._in_flight, (header.timestamp, header.sender, self._sent, value, key, tuple(headers)))

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def held(self) -> tuple[list[_Held], int]:
        """What is in flight, in delivery order, and how many messages were held so far (a snapshot's part)."""
        return sorted(self._in_flight), self._sent

    def hold(self, in_flight: list[_Held], sent: int) -> None:
        """Put back what a snapshot held in flight (:meth:`held`): it is delivered as it would have been."""
        self._in_flight = list(in_flight)
        heapq.heapify(self._in_flight)
        self._sent = sent

    def release_next(self) -> bool:
        """Deliver the earliest message in flight; False when nothing is in flight."""
        if not self._in_flight:
            return False
        _, _, _, value, key, headers = heapq.heappop(self._in_flight)
        self._log.publish(self._held_topic, value, key=key, headers=headers)
        return True

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._log.end_offsets(topic)

    def start_offsets(self, topic: str) -> dict[int, int]:
        return self._log.start_offsets(topic)

    def committed(self, group: str, topic: str, partition: int) -> int:
        return self._log.committed(group, topic, partition)

    def consumer(self, topics: Sequence[str], *, group: str, key: bytes | None = None,
                 start: Mapping[tuple[str, int], int] | None = None) -> Consumer:
        return self._log.consumer(topics, group=group, key=key, start=start)
