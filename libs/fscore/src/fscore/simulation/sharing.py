"""When the participants of one standalone process may share one torch module (issue 19).

Sharing is safe when nothing of a participant lives in its module between messages: every participant
handler loads the received model in full before it trains or evaluates, so one module serves them all in turn,
and 10,000 participants hold one model rather than 10,000. What could keep something there: a
personalization, private parameters (``model.share``), a participant plug-in (attacks and DP are plug-ins), a
participant's user handler or condition, or a user's own model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fscore.message import PARTICIPANT


def unshareable_because(config: Any, plugins: Sequence[tuple[str, Any, Any]], private: bool) -> str | None:
    """Why participants may not share a module, naming the config key, or None (``private``: the model has
    parameters a participant keeps to itself)."""
    c = config
    if c.personalization.name != "none":
        return f"personalization.name: {c.personalization.name} keeps a participant's own state in its model"
    if private:
        return "model.share: private parameters live in each participant's model"
    for key, entry, _ in plugins:
        if entry.role in (PARTICIPANT, "all"):
            return f"{key}: plug-in {entry.name} runs on participants"
    for kind, hooks in (("conditions", c.conditions), ("handlers", c.handlers)):
        if any(h.role == PARTICIPANT for h in hooks):
            return f"{kind}: a participant's user {kind[:-1]} may use its model"
    if c.model.name == "custom" or c.model.builders:
        return "model.builders: a user's model may keep state of its own"
    return None
