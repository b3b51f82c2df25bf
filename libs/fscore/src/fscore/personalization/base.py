"""The Personalization extension point: how a participant's trainer differs from plain FedAvg's.

A personalization says three things, none of which touches coordination code:

- which parameters stay private beyond ``model.share`` (:meth:`Personalization.private_patterns`: FedBN's
  BatchNorm layers);
- what the global model the coordinator aggregates looks like, given the shared part of the zoo's layout
  (:meth:`Personalization.global_layout`: FedEM's K components);
- the trainer each participant runs (:meth:`Personalization.trainer`): it exchanges the global layout
  with the coordinator, and its ``evaluate`` reports the participant's personalized model.

It is found like every extension (:mod:`fscore.registry`): registered here, an entry point of group
``fscope.personalizations``, or ``module:attr``. Its options are a pydantic model, checked before the
course starts. The coordinator builds one too (for the global layout), so this module and each
algorithm's module import no ML framework at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from fscore.config import TrainerConfig
from fscore.plugins import NoOptions
from fscore.registry import Registry
from fscore.trainers.base import Trainer
from fstranslation.layout import TensorSpec

Layout = Mapping[str, TensorSpec]


@dataclass(frozen=True)
class TrainerParts:
    """What a personalization builds a participant's trainer from.

    ``make(k, cfg=None)`` is a fresh trainer of the participant's own model in its backend (k=0 is the one
    plain FedAvg uses; every k has its own seed), with ``cfg`` instead of the participant's trainer section
    if given; ``base`` is trainer 0 as it exchanges the shared parameters
    (private ones already kept back); ``cfg`` is the participant's trainer section, overrides applied.
    """

    index: int
    backend: str
    cfg: TrainerConfig
    seed: tuple[int, ...]
    base: Trainer
    make: Callable[..., Trainer]


class Personalization:
    name: ClassVar[str] = "none"
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: the backends whose trainers it can wrap
    backends: ClassVar[frozenset[str]] = frozenset({"torch", "tensorflow"})
    #: whether the coordinator's global model is a whole model that its held-out set can evaluate
    complete_global: ClassVar[bool] = True
    #: whether its trainer works with private parameters (``model.share`` short of everything)
    private_parts: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        self.options = self.Options(**options)

    def private_patterns(self) -> list[str]:
        """Glob patterns of parameters kept private on top of those ``model.share`` leaves out."""
        return []

    def global_layout(self, shared: Layout) -> dict[str, TensorSpec]:
        """The coordinator's model, given the shared parameters of one participant's model."""
        return dict(shared)

    def trainer(self, parts: TrainerParts) -> Trainer:
        """The trainer participant ``parts.index`` runs; plain FedAvg's by default."""
        return parts.base


PERSONALIZATIONS: Registry[Personalization] = Registry("personalization", {
    "none": Personalization,
    "fedbn": "fscore.personalization.fedbn:FedBN",
    "ditto": "fscore.personalization.ditto:Ditto",
    "pfedme": "fscore.personalization.pfedme:PFedMe",
    "fedem": "fscore.personalization.fedem:FedEM",
})


def register_personalization(name: str, cls: type[Personalization] | str) -> None:
    PERSONALIZATIONS.register(name, cls)


def build_personalization(name: str, options: Mapping[str, Any]) -> Personalization:
    """The personalization ``name`` with ``options``; an error names ``personalization.options.<key>``."""
    built = PERSONALIZATIONS.build(name, dict(options), key="personalization.name",
                                   options_key="personalization.options")
    if not isinstance(built, Personalization):
        from fscore.errors import ConfigError

        raise ConfigError(f"personalization.name: {name!r} built {type(built).__name__}, not a "
                          "fscore.personalization.Personalization")
    return built
