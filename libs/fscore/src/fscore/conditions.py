"""Condition-checking events (paper §3.2): predicates over a worker's state.

A worker evaluates its conditions after every message it handles and fires the handler of each
one that holds. ``watches`` names the message types whose handling can make the condition hold;
the completeness check draws its edges from it. Adding a condition (e.g. performance_drop) is
one ``Condition`` plus one handler registration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Condition:
    name: str
    check: Callable[[Any], bool]
    watches: frozenset[str]

    @staticmethod
    def of(name: str, check: Callable[[Any], bool], watches: Iterable[str]) -> Condition:
        return Condition(name, check, frozenset(watches))

    def holds(self, worker: Any) -> bool:
        return bool(self.check(worker))
