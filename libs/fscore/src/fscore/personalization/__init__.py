"""Personalization (paper §3.4 and §5.2, Figure 11): participants whose models differ from the global one.

    base.py      the Personalization extension point and its registry
    sharing.py   shared and private parameters: what a participant sends, and what never leaves it
    fedbn.py     FedBN: BatchNorm parameters and statistics stay local
    ditto.py     Ditto: a personal model pulled towards the global one
    pfedme.py    pFedMe: the Moreau-envelope personal model
    fedem.py     FedEM: K shared components, mixture weights kept by each participant

Every algorithm is a trainer wrapper (and, for FedEM, a global layout): the coordinator and the
participant run their usual handlers, and none of them branches on the algorithm.
"""

from fscore.personalization.base import (
    PERSONALIZATIONS,
    Personalization,
    TrainerParts,
    build_personalization,
    register_personalization,
)
from fscore.personalization.sharing import SharedPart, private_names, shared_names

__all__ = ["PERSONALIZATIONS", "Personalization", "SharedPart", "TrainerParts", "build_personalization",
           "private_names", "register_personalization", "shared_names"]
