"""FedBN (Li et al., ICLR 2021): BatchNorm parameters and statistics stay on each participant.

Under feature skew (paper §3.4: each participant's inputs look different) one set of normalisation
statistics fits nobody. FedBN aggregates every layer but the BatchNorm ones; each participant keeps its
own scale, shift, running mean and running variance. It is sharing and nothing else: the BatchNorm
tensors are private (:mod:`fscore.personalization.sharing`), so they are never sent, and FedBN sends
fewer bytes per round than FedAvg. It needs a model with BatchNorm layers (the zoo's ``mlp_bn``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fscore.personalization.base import Personalization


class FedBNOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: list[str] = Field(["bn*.*", "*.bn*.*"], min_length=1, description=(
        "glob patterns of the BatchNorm tensors kept local (the zoo names its BatchNorm layers bn<k>)"))


class FedBN(Personalization):
    name = "fedbn"
    Options = FedBNOptions
    complete_global = False  # the global model has no BatchNorm statistics of its own

    def private_patterns(self) -> list[str]:
        return list(self.options.layers)
