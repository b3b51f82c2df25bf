"""Checks on the content of untrusted messages (docs/architecture.md, "Untrusted input").

Decoding bounds what a record may declare; these checks refuse well-formed content that would poison
a worker: a NaN that turns the global model into NaN, a sample count that outweighs everyone else, a
time that would move the virtual clock backwards or to infinity. Each raises
:class:`~fscore.errors.RejectedMessage` naming the field, before the message touches any state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fscore.errors import RejectedMessage
from fscore.message import Message


def check_join_numbers(sender: str, join: Mapping[str, Any]) -> None:
    """A join's counts and device figures feed sampling and response-time estimates: they must be sane."""
    for key in ("num_train_samples", "num_test_samples"):
        if join[key] < 0:
            raise RejectedMessage(f"join_in from {sender!r}: {key} is {join[key]}")
    for key in ("compute_s_per_sample", "bandwidth_bytes_per_s"):
        value = join.get(key, 0.0)
        if not (math.isfinite(value) and value >= 0):
            raise RejectedMessage(f"join_in from {sender!r}: {key} is {value}, not a finite number >= 0")


def check_finite(what: str, tensors: Mapping[str, np.ndarray], values: Mapping[str, float] | None = None) -> None:
    """One NaN or infinity in an update turns the global model into NaN; refuse it at the door."""
    for name, t in tensors.items():
        if t.dtype.kind == "f" and not np.isfinite(t).all():
            bad = int(t.size - np.count_nonzero(np.isfinite(t)))
            raise RejectedMessage(f"{what}: tensor `{name}` has {bad} non-finite values (NaN or infinity)")
    for key, value in (values or {}).items():
        if not math.isfinite(value):
            raise RejectedMessage(f"{what}: metric {key!r} is {value}")


def check_after(msg: Message, asked_at: float | None, what: str) -> None:
    """A reply is stamped no earlier than the request it answers (its virtual time only moves forward)."""
    if asked_at is not None and msg.timestamp < asked_at:
        raise RejectedMessage(f"{msg.type} from {msg.sender!r} (id {msg.id}) is stamped {msg.timestamp}, before "
                              f"{what} was sent ({asked_at})")


def nbytes(tensors: Mapping[str, np.ndarray]) -> int:
    """The bytes a model's tensors hold (what travels, and what virtual time charges for)."""
    return sum(int(t.nbytes) for t in tensors.values())
