"""The topics of one course (docs/architecture.md, "Topics of a course")."""

from __future__ import annotations

from dataclasses import dataclass

from fscore.transport.base import TopicSpec


@dataclass(frozen=True)
class CourseTopics:
    prefix: str
    course: str
    direct_partitions: int = 16

    @property
    def coordinator(self) -> str:
        """Single partition: its total order is the coordinator's event log."""
        return f"{self.prefix}.{self.course}.coordinator"

    @property
    def broadcast(self) -> str:
        """A message for many participants is written once and read by all."""
        return f"{self.prefix}.{self.course}.broadcast"

    @property
    def direct(self) -> str:
        """Point-to-point messages, keyed (and partitioned) by receiver."""
        return f"{self.prefix}.{self.course}.direct"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.{self.course}.dlq"

    @property
    def meta(self) -> str:
        """The course manifest (config and seed) that replay rebuilds the coordinator from."""
        return f"{self.prefix}.{self.course}.meta"

    @property
    def snapshots(self) -> str:
        """The coordinator's snapshots (each an Avro container); the meta topic holds a signed pointer to each,
        so the meta topic stays small however large the model."""
        return f"{self.prefix}.{self.course}.snapshots"

    def specs(self, snapshots: bool = True) -> list[TopicSpec]:
        """The course's topics; without the snapshots topic for a participant, which never touches it (and whose
        user's ACLs need not mention it)."""
        return [TopicSpec(self.coordinator, 1), TopicSpec(self.broadcast, 1),
                TopicSpec(self.direct, self.direct_partitions), TopicSpec(self.dlq, 1), TopicSpec(self.meta, 1),
                *([TopicSpec(self.snapshots, 1)] if snapshots else [])]
