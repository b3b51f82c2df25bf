"""Errors raised by fscore.

Hierarchy::

    FscoreError                   root of every fscore error
    ├── ConfigError               a course config is invalid; the message names the key
    ├── CompletenessError         the message-flow graph of a course is broken (missing handler, unreachable finish)
    ├── UndeclaredEmitError       a handler sent a message type it did not declare
    ├── RejectedMessage           a decoded message is invalid for the worker's state (unknown sender,
    │                             wrong round, wrong tensor shape); it is dead-lettered and the worker goes on
    │   └── ReplayedMessage       a copy of a message already handled, from another place in the log
    ├── Unauthenticated           a record is not signed by the sender it claims (or is an alarm the
    │                             coordinator did not write); it is dead-lettered before its payload is read
    ├── CourseStalled             a standalone course has no message in flight and is not finished
    ├── TransportError            the transport failed to publish or consume
    │   └── LogTruncated          records a reader needs were deleted from the log (retention, DeleteRecords)
    └── SnapshotError             a snapshot cannot be written or restored
"""

from __future__ import annotations


class FscoreError(Exception):
    """Root of every error raised by fscore."""


class ConfigError(FscoreError):
    """Always one line: a message from a library (YAML, pydantic, a user's module) may span several."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class CompletenessError(FscoreError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UndeclaredEmitError(FscoreError):
    pass


class RejectedMessage(FscoreError):
    pass


class ReplayedMessage(RejectedMessage):
    pass


class Unauthenticated(FscoreError):
    pass


class CourseStalled(FscoreError):
    pass


class TransportError(FscoreError):
    pass


class LogTruncated(TransportError):
    """The records a reader needs are gone: a topic now starts after the offset it must read from. Kafka would
    silently start at the earliest record left; a course rebuilt from part of its inbox would be wrong."""


class SnapshotError(FscoreError):
    """A snapshot cannot be written or restored: corrupt, from another course or schema, or state it cannot keep."""
