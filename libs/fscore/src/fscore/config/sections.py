"""The sections of a course config: pure pydantic data, validated field by field.

Checks that need a built object (an aggregator's options, a plug-in's) are not here: they run in
:mod:`fscore.validation` when the course is built, after user modules are imported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSkewConfig(_Strict):
    """Feature skew (paper §3.4): each participant's inputs pass through its own transform, drawn once from the
    course seed, so participants see the same labels in differently looking images (what FedBN corrects)."""

    rotation_deg: float = Field(0.0, ge=0, le=180, description="image rotation drawn from U(-r, r) degrees")
    intensity: tuple[float, float] = Field((1.0, 1.0), description="pixel scale drawn from U(lo, hi)")
    offset: float = Field(0.0, ge=0, description="pixel offset drawn from U(-o, o)")
    noise_std: float = Field(0.0, ge=0, description="std of seeded Gaussian noise added to every input")

    @model_validator(mode="after")
    def _ordered(self) -> FeatureSkewConfig:
        lo, hi = self.intensity
        if not 0 < lo <= hi:
            raise ValueError(f"intensity: give (lo, hi) with 0 < lo <= hi, not {self.intensity}")
        return self


class DataConfig(_Strict):
    dataset: str = Field("digits", min_length=1, description=(
        "digits | synthetic | leaf | cifar10 | npz | table (the last four read data.path), a registered dataset, "
        "an entry point of group fscope.datasets, or module:attr (a fscore.data.sources.DatasetSource)"))
    split: Literal["iid", "dirichlet", "classes", "natural", "sampled"] = Field("dirichlet", description=(
        "iid; dirichlet: label skew by Dir(alpha); classes: each participant holds classes_per_participant "
        "classes; natural: one participant per writer the dataset names (LEAF users, a client array or column); "
        "sampled: each participant draws samples_per_participant examples of the pool, so participants overlap "
        "(more participants than examples: 10,000 devices on digits)"))
    samples_per_participant: int = Field(8, ge=1, description=(
        "split sampled: examples each participant draws (without replacement) from the pool"))
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration; smaller is more label-skewed")
    classes_per_participant: int = Field(2, ge=1, description="split classes: how many classes each one holds")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of each participant's data for its local test")
    heldout_fraction: float = Field(0.2, gt=0, lt=1, description="share kept at the coordinator for evaluation")
    validation_fraction: float = Field(0.0, ge=0, lt=1, description=(
        "share of each participant's training examples kept back as its validation split (what fscope tune "
        "optimizes; evaluation.split=validation evaluates on it); 0 = none"))
    min_samples_per_participant: int = Field(4, ge=1)
    synthetic_alpha: float = Field(1.0, ge=0)
    synthetic_beta: float = Field(1.0, ge=0)
    synthetic_dim: int = Field(60, ge=1)
    synthetic_classes: int = Field(10, ge=2)
    feature_skew: FeatureSkewConfig | None = Field(None, description=(
        "per-participant input transforms (rotation, intensity, noise) drawn from the seed: feature skew"))
    path: str | None = Field(None, description=(
        "the file or directory of a dataset read from disk (leaf, cifar10, npz, table); nothing is downloaded"))
    client_key: str = Field("client", min_length=1, description=(
        "the .npz array or table column naming each example's owner (for split natural)"))
    label_key: str = Field("label", min_length=1, description="a table's label column")
    local_path: str | None = Field(None, description=(
        "a participant's own data instead of a shard: an .npz with arrays x and y laid out like `dataset`; "
        "{index} in the path is replaced by the participant's index"))


Backend = Literal["torch", "tensorflow"]
_HOOK = r"^[\w.]+:\w+$"  # module:function


class ParameterConfig(_Strict):
    """One parameter of a declared agreed layout, in torch's conventions (dense [out, in], conv OIHW)."""

    name: str = Field(min_length=1)
    shape: tuple[int, ...]
    dtype: Literal["float16", "float32", "float64", "int32", "int64"] = "float32"


class ModelConfig(_Strict):
    """The course's model, and so its agreed layout: a zoo model's, or one the config declares.

    A ``custom`` model declares its layout in ``layout``; each participant builds its model with the
    ``builders`` hook of its backend. A zoo model may declare its layout too, as a check.
    """

    name: Literal["logreg", "mlp", "mlp_bn", "convnet2", "custom"] = "mlp"
    hidden: int = Field(64, ge=1)
    share: list[str] = Field(["*"], min_length=1, description=(
        "glob patterns over the agreed parameter names: the parameters participants share. The others are "
        "private: they stay on the participant, on no topic and in no aggregate (e.g. [fc1.*] shares the body "
        "and keeps each participant's head)"))
    layout: list[ParameterConfig] | None = Field(None, description=(
        "the agreed layout, declared: required for a custom model; for a zoo model it must equal the zoo's"))
    builders: dict[Backend, str] = Field(default_factory=dict, description=(
        "backend -> module:function(ModelSpec) returning that backend's model (a torch nn.Module, a Keras "
        "model); replaces the zoo's twin"))
    init: str | None = Field(None, pattern=_HOOK, description=(
        "module:function(layout, rng) -> the initial global parameters (numpy); default: torch's "
        "U(+-1/sqrt(fan_in)) over the layout"))

    @model_validator(mode="after")
    def _custom_complete(self) -> ModelConfig:
        if self.name == "custom" and not self.layout:
            raise ValueError("model.layout: a custom model needs its agreed layout declared (name, shape, dtype of "
                             "every parameter)")
        names = [p.name for p in self.layout or []]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"model.layout: parameters {repeated} are declared more than once")
        bad = sorted(b for b, hook in self.builders.items() if not re.match(_HOOK, hook))
        if bad:
            raise ValueError(f"model.builders.{bad[0]}: {self.builders[bad[0]]!r} is not module:function")
        return self


class TrainerConfig(_Strict):
    backend: Backend = "torch"
    participant_backends: dict[int, Backend] = Field(default_factory=dict, description=(
        "a mixed course in one config: participant index -> backend, for those not on `backend`"))
    adapters: dict[Backend, str] = Field(default_factory=dict, description=(
        "backend -> module[:object] exposing to_wire/from_wire: a participant's own encode and decode between "
        "its model's parameters and the agreed layout, instead of the backend's adapter"))
    factory: str | None = Field(None, min_length=1, description=(
        "a registered trainer, an entry point of group fscope.trainers, or module:function; called as "
        "(ModelSpec, TrainerConfig, seed) -> Trainer: a trainer of your own, for every "
        "participant of this config (a process's own config over Kafka)"))
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    local_epochs: int = Field(1, ge=1)
    local_steps: int | None = Field(None, ge=1, description="if set, train this many batches instead of epochs")
    proximal_mu: float = Field(0.0, ge=0, description=(
        "FedProx (Li et al. 2020): add mu/2 x ||w - w_received||^2 to the local loss, so local training stays "
        "near the model it was sent; 0: plain local training"))
    batch_size: int = Field(16, ge=1)



class AggregatorConfig(_Strict):
    """``name`` picks an aggregator: a registered name, an entry point of group ``fscope.aggregators``, or
    ``module:attr``. Every other key is one of its options (``server_lr``, ``byzantine``, ``beta1``...);
    they are checked by building the aggregator when the course is built, so a rule a user registers
    gets the same checks as the built-in ones, and an error names the key."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = "fedavg"

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AttackConfig(_Strict):
    """Malicious participants for robustness experiments: they train, then send a poisoned update
    (see fscore.attacks). Over Kafka each participant process reads this from its own config."""

    kind: Literal["none", "sign_flip", "scale", "gaussian"] = "none"
    participants: list[int] = Field(default_factory=list, description="indices of the malicious participants")
    scale: float = Field(4.0, gt=0, description="sign_flip/scale: the factor on the update; gaussian: noise std")


class EvaluationConfig(_Strict):
    every: int = Field(1, ge=1, description="evaluate after every N-th round (and after the last)")
    patience: int = Field(0, ge=0, description="stop after this many evaluations without improvement; 0 = never")
    min_delta: float = Field(0.0, ge=0)
    metric: Literal["accuracy", "loss"] = "accuracy"
    target: float | None = Field(None, description="the metric value time-to-target is measured to (held-out "
                                                    "if the coordinator has a held-out set)")
    stop_at_target: bool = Field(False, description="finish the course once the target is reached")
    split: Literal["test", "validation"] = Field("test", description=(
        "the participants' split the model is evaluated on: test (metrics clients.*) or validation "
        "(validation.*, needs data.validation_fraction > 0; tuning trials use it)"))
    participants: bool | None = Field(None, description=(
        "whether rounds end with every participant evaluating the model on its test split while the coordinator "
        "waits (costing virtual time); default: only when the trigger is all_received"))

    @model_validator(mode="after")
    def _target_given(self) -> EvaluationConfig:
        if self.stop_at_target and self.target is None:
            raise ValueError("stop_at_target needs evaluation.target")
        return self


class SimulationConfig(_Strict):
    """Virtual-time costs of the participants' devices (FedScale-style: compute seconds per sample, bandwidth).

    ``devices: uniform`` gives every participant the median device; ``heavy_tailed`` draws each
    participant's compute and bandwidth from log-normals around the medians (docs/architecture.md,
    "Time"); ``file`` reads one profile per participant from ``device_file``.
    """

    devices: Literal["uniform", "heavy_tailed", "file"] = "uniform"
    batched: bool = Field(False, description=(
        "standalone: a cohort sent one model trains as one vectorized computation (batched matrix products over the "
        "participants' stacked parameters), each with its own data, batches and momentum; models equal the default "
        "path's to float rounding, not bit for bit"))
    workers: int = Field(1, ge=1, description=(
        "standalone: local training of a cohort sent one model runs in this many forked trainer processes (1 = in "
        "the runner's process); every training then runs on one intra-op thread, and models are bit for bit those "
        "of workers: 1 with simulation.threads: 1, whatever the number"))
    threads: int = Field(0, ge=0, description=(
        "torch's intra-op threads in a standalone run (0 = torch's default); the thread count changes a model's "
        "last bits, so runs compared bit for bit (tuning trials, --jobs) fix it"))
    compute_s_per_sample: float = Field(0.001, ge=0, description="the median device's compute seconds per sample")
    bandwidth_bytes_per_s: float = Field(1.25e6, gt=0, description="the median device's bandwidth")
    compute_sigma: float = Field(1.0, ge=0, description="heavy_tailed: log-normal sigma of compute time")
    bandwidth_sigma: float = Field(1.0, ge=0, description="heavy_tailed: log-normal sigma of bandwidth")
    device_file: Path | None = Field(None, description="file: a JSON list or CSV of per-participant profiles")
    pace: float = Field(0.0, ge=0, description=(
        "deployment only: a participant sleeps pace x its virtual compute and transfer time before replying, "
        "so slow devices are slow on the wall clock too"))
    progress: bool = True

    @model_validator(mode="after")
    def _file_given(self) -> SimulationConfig:
        if self.devices == "file" and self.device_file is None:
            raise ValueError("devices: file needs simulation.device_file")
        return self



class JoiningConfig(_Strict):
    """When the course starts: once every participant has answered its join (joined or was refused), or
    at a deadline with those who did. Later joiners are admitted as they come and may be sampled."""

    timeout_s: float | None = Field(None, gt=0, description=(
        "start this long after the coordinator started, with whoever joined by then (virtual seconds in "
        "simulation, wall-clock seconds in deployment); unset: wait for every participant"))
    min_participants: int = Field(1, ge=1, description="the deadline starts the course once this many joined")


class LimitsConfig(_Strict):
    """What a worker accepts from the wire (docs/architecture.md, "Untrusted input"). Bytes off a topic
    are untrusted; these bounds are checked before anything is allocated or aggregated."""

    #: the largest tensor a record may declare, in bytes (the rank is at most 8 in any case)
    max_tensor_bytes: int = Field(2**31, ge=1024)
    #: an update may claim at most this many times the training samples its sender declared at join
    max_samples_factor: float = Field(1.0, ge=1.0)



class HandlerConfig(_Strict):
    """A user handler: ``handler`` is ``module:function`` taking (worker, message)."""

    role: Literal["coordinator", "participant"]
    event: str = Field(pattern=r"^(start|message:\w+|condition:\w+)$")
    handler: str = Field(pattern=r"^[\w.]+:\w+$")
    emits: list[str] = Field(default_factory=list)


class ConditionConfig(_Strict):
    """A user condition: ``check`` is ``module:function`` taking the worker and returning a bool."""

    role: Literal["coordinator", "participant"]
    name: str = Field(pattern=r"^\w+$")
    check: str = Field(pattern=r"^[\w.]+:\w+$")
    watches: list[str] = Field(default_factory=list)


class MessageTypeConfig(_Strict):
    name: str = Field(pattern=r"^\w+$")
    receiver: Literal["coordinator", "participant"]
    schema_file: Path



class PluginConfig(_Strict):
    """A plug-in (paper §3.6) given to the coordinator, to every participant, or to chosen participants.

    ``name`` is a registered plug-in, an entry point of group ``fscope.plugins``, or ``module:attr``;
    ``options`` are checked against the plug-in's own ``Options`` when the course is built.
    """

    name: str = Field(min_length=1)
    role: Literal["coordinator", "participant", "all"] = Field("participant", description=(
        "who gets it: the coordinator, participants, or all workers (a plug-in with both ends of a message)"))
    participants: list[int] | None = Field(None, description=(
        "participant or all: the participants that get it (default: every participant)"))
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _chosen_participants(self) -> PluginConfig:
        if self.role == "coordinator" and self.participants is not None:
            raise ValueError("participants: a coordinator plug-in is not given to participants")
        return self

    def applies_to(self, role: str, index: int | None) -> bool:
        """Whether the worker of ``role`` (participant ``index``) gets this plug-in."""
        if self.role not in (role, "all"):
            return False
        return role == "coordinator" or self.participants is None or index in self.participants
