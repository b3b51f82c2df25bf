"""Client-wise configuration and personalization (paper §3.4, §4): what differs from one participant to another.

``participant_overrides`` maps a participant index (``7``) or an index range (``"0-24"``) to trainer keys
that participant uses instead of the ``trainer`` section's (lr, local_epochs or local_steps, batch_size,
optimizer, proximal_mu, backend ...) and to its ``task``. Over Kafka each participant process reads its
own entry from its own config. ``personalization`` names the algorithm (FedBN, Ditto, pFedMe, FedEM) a
course's participants train with (:mod:`fscore.personalization`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError

from fscore.config.sections import TrainerConfig, _Strict

#: trainer keys that stay course-wide: they say how participants differ, so they are not themselves per participant
_COURSE_WIDE = ("participant_backends", "adapters", "factory")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class PersonalizationConfig(_Strict):
    name: str = Field("none", min_length=1, description=(
        "none | fedbn | ditto | pfedme | fedem, a registered personalization, an entry point of group "
        "fscope.personalizations, or module:attr (a fscore.personalization.Personalization)"))
    options: dict[str, Any] = Field(default_factory=dict, description="the algorithm's options, e.g. ditto's lam")


def override_indices(key: int | str, participants: int) -> list[int]:
    """The participants ``key`` (``7`` or ``"0-24"``) names; a ValueError naming the key otherwise."""
    match = _RANGE.match(str(key).strip())
    if match is None:
        raise ValueError(f"participant_overrides.{key}: not a participant index or range like 0-24")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise ValueError(f"participant_overrides.{key}: the range runs backwards")
    if last >= participants:
        raise ValueError(f"participant_overrides.{key}: participant {last} does not exist (indices run from 0 "
                         f"to {participants - 1})")
    return list(range(first, last + 1))


def overrides_for(overrides: Mapping[int | str, Mapping[str, Any]], index: int, participants: int
                  ) -> dict[str, Any]:
    """The keys participant ``index`` overrides, entries applied in config order (a later one wins)."""
    merged: dict[str, Any] = {}
    for key, fields in overrides.items():
        if index in override_indices(key, participants):
            merged.update(fields)
    return merged


def check_overrides(overrides: Mapping[int | str, Mapping[str, Any]], trainer: TrainerConfig, participants: int,
                    tasks: frozenset[str] | None = None) -> None:
    """Refuse an override of a participant that does not exist, or of a key or value the trainer does not
    take; the message names the entry and the key: ``participant_overrides.0-4.lr: ...``."""
    for key, fields in overrides.items():
        override_indices(key, participants)
        if not isinstance(fields, Mapping):
            raise ValueError(f"participant_overrides.{key}: give a mapping of trainer keys, not {fields!r}")
        for name in fields:
            if name in _COURSE_WIDE:
                raise ValueError(f"participant_overrides.{key}.{name}: a course-wide trainer key; set it in trainer")
        trainer_fields = {k: v for k, v in fields.items() if k != "task"}
        if "task" in fields and not (isinstance(fields["task"], str) and fields["task"]):
            raise ValueError(f"participant_overrides.{key}.task: name a task, e.g. parity (got {fields['task']!r})")
        try:
            TrainerConfig.model_validate({**trainer.model_dump(), **trainer_fields})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown key (misspelled?)" if err["type"] == "extra_forbidden" else err["msg"]
            got = "" if err["type"] == "extra_forbidden" else f" (got {err.get('input')!r})"
            raise ValueError(f"participant_overrides.{key}.{where}: {msg}{got}") from None


def trainer_for(trainer: TrainerConfig, overrides: Mapping[int | str, Mapping[str, Any]], index: int,
                participants: int) -> TrainerConfig:
    """Participant ``index``'s trainer section: the course's, with its overrides applied."""
    fields = {k: v for k, v in overrides_for(overrides, index, participants).items() if k != "task"}
    if not fields:
        return trainer
    return TrainerConfig.model_validate({**trainer.model_dump(), **fields})
