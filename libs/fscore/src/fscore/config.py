"""Course configuration: pydantic models, read from YAML, with ``key=value`` overrides.

Validated once, at the edge; the core receives these typed objects, never dicts. Every error is
reported on one line naming the key, e.g. ``data.alpha: Input should be greater than 0 (got -1)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from fscore.errors import ConfigError

if TYPE_CHECKING:
    from fscore.aggregators import Aggregator
    from fscore.samplers import Sampler


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    dataset: Literal["digits", "synthetic"] = "digits"
    split: Literal["iid", "dirichlet"] = "dirichlet"
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration; smaller is more label-skewed")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of each participant's data for its local test")
    heldout_fraction: float = Field(0.2, gt=0, lt=1, description="share kept at the coordinator for evaluation")
    min_samples_per_participant: int = Field(4, ge=1)
    synthetic_alpha: float = Field(1.0, ge=0)
    synthetic_beta: float = Field(1.0, ge=0)
    synthetic_dim: int = Field(60, ge=1)
    synthetic_classes: int = Field(10, ge=2)
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

    name: Literal["logreg", "mlp", "convnet2", "custom"] = "mlp"
    hidden: int = Field(64, ge=1)
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
    factory: str | None = Field(None, pattern=_HOOK, description=(
        "module:function(ModelSpec, TrainerConfig, seed) -> Trainer: a trainer of your own, for every "
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


def _option_error(section: str, plugin: str, exc: ValidationError) -> str:
    """An option a plug-in's validate_call refused, as ``section.key: why``."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "unexpected_keyword_argument":
        return f"{section}.{key}: {plugin} has no option {key!r}"
    return f"{section}.{key}: {err['msg']} (got {err.get('input')!r})"


class AggregatorConfig(_Strict):
    """``name`` picks a registered aggregator; every other key is one of its options (``server_lr``,
    ``byzantine``, ``beta1``...). The options are checked by building the aggregator, so a rule a user
    registers gets the same checks as the built-in ones, and an error names the key."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = "fedavg"

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self) -> Aggregator:
        from fscore.aggregators import make_aggregator

        return make_aggregator(self.name, **self.options())

    @model_validator(mode="after")
    def _buildable(self) -> AggregatorConfig:
        from fscore.aggregators import aggregator_names

        if self.name not in aggregator_names():
            known = ", ".join(aggregator_names())
            raise ValueError(f"aggregator.name: unknown aggregator {self.name!r}; known: {known}")
        try:
            self.build()
        except ValidationError as exc:
            raise ValueError(_option_error("aggregator", self.name, exc)) from None
        except (TypeError, ValueError) as exc:  # a check across options names its key: "byzantine: ..."
            named = re.match(r"^(\w+): ", str(exc))
            where = f"aggregator.{named.group(1)}" if named else "aggregator"
            text = str(exc)[named.end():] if named else str(exc)
            raise ValueError(f"{where}: {self.name}: {text}") from None
        return self


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


STRATEGY_NAMES = ("sync_vanilla", "sync_os", "async_goal_aggr_unif", "async_goal_rece_unif",
                  "async_time_aggr_unif", "async_goal_aggr_group", "custom")

#: The paper's named strategies (§5.3.1): Async-<event>-<broadcast manner>-<sampler>. Keys left unset in a
#: strategy config take the preset's value; keys set explicitly win.
STRATEGY_PRESETS: dict[str, dict[str, Any]] = {
    "sync_vanilla": {"trigger": "all_received", "broadcast": "after_aggregating", "sampler": "uniform",
                     "staleness_toleration": 0},
    "sync_os": {"trigger": "goal_achieved", "broadcast": "after_aggregating", "sampler": "uniform",
                "staleness_toleration": 0, "overselection": 1.3},
    "async_goal_aggr_unif": {"trigger": "goal_achieved", "broadcast": "after_aggregating", "sampler": "uniform"},
    "async_goal_rece_unif": {"trigger": "goal_achieved", "broadcast": "after_receiving", "sampler": "uniform"},
    "async_time_aggr_unif": {"trigger": "time_up", "broadcast": "after_aggregating", "sampler": "uniform"},
    "async_goal_aggr_group": {"trigger": "goal_achieved", "broadcast": "after_aggregating", "sampler": "group"},
    "custom": {},
}
_STRATEGY_DEFAULTS: dict[str, Any] = {"trigger": "all_received", "broadcast": "after_aggregating",
                                      "sampler": "uniform", "staleness_toleration": 10, "overselection": 1.0}


class StrategyConfig(_Strict):
    """How the coordinator triggers aggregation, broadcasts and samples (paper §3.3).

    ``sample_size`` (top level) is the concurrency: how many participants train at once. Sync
    strategies (toleration 0, after_aggregating) send each round's model to a fresh cohort of
    ceil(sample_size x overselection) idle participants; async ones keep sample_size participants busy.
    """

    name: Literal["sync_vanilla", "sync_os", "async_goal_aggr_unif", "async_goal_rece_unif",
                  "async_time_aggr_unif", "async_goal_aggr_group", "custom"] = "sync_vanilla"
    trigger: Literal["all_received", "goal_achieved", "time_up"] | None = None
    broadcast: Literal["after_aggregating", "after_receiving"] | None = None
    sampler: str | None = Field(None, description="uniform | responsiveness | group, or a registered sampler")
    min_received: int | None = Field(None, ge=1, description="goal_achieved: aggregate once this many updates "
                                                             "are buffered (default: half the sample size)")
    min_received_rate: float | None = Field(None, gt=0, le=1, description="goal_achieved: k as a share of the "
                                                                          "sample size")
    time_budget_s: float | None = Field(None, gt=0, description="time_up: seconds per round (virtual in "
                                                                "simulation, wall-clock in deployment)")
    overselection: float | None = Field(None, ge=1.0, description="sync_os: sample this many times the sample "
                                                                  "size, aggregate the first sample_size")
    staleness_toleration: int | None = Field(None, ge=0, description="drop updates staler than this many rounds")
    reply_timeout_s: float | None = Field(None, gt=0, description=(
        "give up on a participant that has not answered a model or an evaluation request this long after it "
        "was sent: the round goes on without it, its late reply is dead-lettered, and it is not sampled again "
        "until it is heard from (virtual seconds in simulation, wall-clock in deployment); unset: wait for ever"))
    staleness_discount: Literal["polynomial", "constant", "hinge"] = "polynomial"
    discount_exponent: float = Field(0.5, ge=0, description="polynomial: weight (1+s)^-a; hinge: the slope a")
    discount_hinge: int = Field(4, ge=0, description="hinge: staleness up to this is not discounted")
    groups: int = Field(5, ge=1, description="group sampler: number of responsiveness bins")
    sampler_options: dict[str, Any] = Field(default_factory=dict, description=(
        "options of the sampler beyond groups, e.g. oort's {alpha: 2, epsilon: 0.9}"))

    @model_validator(mode="after")
    def _known_sampler(self) -> StrategyConfig:
        from fscore.samplers import sampler_names

        if self.sampler is not None and self.sampler not in sampler_names():
            raise ValueError(f"strategy.sampler: unknown sampler {self.sampler!r}; known: {', '.join(sampler_names())}")
        self.build_sampler()  # refuse options the sampler does not take, naming the key
        return self

    def build_sampler(self) -> Sampler:
        from fscore.samplers import make_sampler

        name = self.setting("sampler")
        try:
            return make_sampler(name, groups=self.groups, **self.sampler_options)
        except ValidationError as exc:
            raise ValueError(_option_error("strategy.sampler_options", name, exc)) from None
        except TypeError:
            options = ", ".join(sorted(self.sampler_options))
            raise ValueError(f"strategy.sampler_options: sampler {name} takes no options (got {options})") from None

    def setting(self, key: str) -> Any:
        """The effective value of ``key``: explicit, else the preset's, else the default."""
        explicit = getattr(self, key)
        if explicit is not None:
            return explicit
        return STRATEGY_PRESETS[self.name].get(key, _STRATEGY_DEFAULTS.get(key))


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


class KafkaConfig(_Strict):
    """How services reach Kafka. Secrets are SecretStr: shown as ********** in logs and dumps."""

    bootstrap_servers: str = "127.0.0.1:19092"
    client: Literal["confluent", "kafka-python"] = "confluent"
    replication_factor: int = Field(1, ge=1)
    #: records larger than this are split into chunks; keep it under the broker's message.max.bytes (1 MiB)
    max_record_bytes: int = Field(900_000, ge=1024, le=50_000_000)
    poll_timeout_s: float = Field(0.2, gt=0)
    #: how long a service rides out an unreachable broker (mid-course) before it exits 3
    outage_limit_s: float = Field(300.0, gt=0)
    #: how long a service waits for the broker's cluster metadata at start before it exits 3
    connect_timeout_s: float = Field(10.0, gt=0)
    #: how soon the broker declares a silent coordinator dead, freeing its course for a restarted one (the
    #: broker's group.min.session.timeout.ms is 6 s by default)
    lease_session_timeout_s: float = Field(6.0, ge=1.0, le=300.0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username
                                                               and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username "
                             "and sasl_password")
        return self


class TransportConfig(_Strict):
    kind: Literal["embedded", "kafka"] = "embedded"
    topic_prefix: str = Field("fscope", pattern=r"^[A-Za-z0-9._-]+$")
    direct_partitions: int = Field(16, ge=1)
    kafka: KafkaConfig = KafkaConfig()


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


class CourseConfig(_Strict):
    course_id: str = Field("course", pattern=r"^[A-Za-z0-9._-]+$")
    seed: int = 0
    participants: int = Field(10, ge=1)
    sample_size: int | None = Field(None, ge=1, description="participants per round; all when unset")
    rounds: int = Field(30, ge=1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    trainer: TrainerConfig = TrainerConfig()
    aggregator: AggregatorConfig = AggregatorConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    attack: AttackConfig = AttackConfig()
    simulation: SimulationConfig = SimulationConfig()
    strategy: StrategyConfig = StrategyConfig()
    joining: JoiningConfig = JoiningConfig()
    limits: LimitsConfig = LimitsConfig()
    transport: TransportConfig = TransportConfig()
    message_types: list[MessageTypeConfig] = Field(default_factory=list)
    conditions: list[ConditionConfig] = Field(default_factory=list)
    handlers: list[HandlerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CourseConfig:
        if self.sample_size is not None and self.sample_size > self.participants:
            raise ValueError(f"sample_size ({self.sample_size}) exceeds participants ({self.participants})")
        _check_strategy(self.strategy, self.sample_size or self.participants, self.participants)
        _check_aggregator(self.aggregator, self.strategy, self.sample_size or self.participants)
        if self.joining.min_participants > self.participants:
            raise ValueError(f"joining.min_participants: {self.joining.min_participants} exceeds participants "
                             f"({self.participants})")
        for key, indices in (("trainer.participant_backends", self.trainer.participant_backends),
                             ("attack.participants", self.attack.participants)):
            outside = sorted(i for i in indices if not 0 <= i < self.participants)
            if outside:
                raise ValueError(f"{key}: participants {outside} do not exist (indices run from 0 "
                                 f"to {self.participants - 1})")
        if self.attack.kind != "none" and not self.attack.participants:
            raise ValueError(f"attack.participants: attack {self.attack.kind!r} names no malicious participant")
        return self

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the validated config: equal configs hash equal."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _check_strategy(strategy: StrategyConfig, sample_size: int, participants: int) -> None:
    """Refuse, before the course starts, a strategy that cannot work; the message names the key."""
    trigger = strategy.setting("trigger")
    if trigger == "goal_achieved" and strategy.min_received is not None and strategy.min_received > sample_size:
        raise ValueError(f"strategy.min_received: goal_achieved waits for {strategy.min_received} updates, but only "
                         f"sample_size={sample_size} participants train at once, so the goal is never achieved")
    if trigger == "time_up" and strategy.setting("time_budget_s") is None:
        raise ValueError(f"strategy.time_budget_s: strategy {strategy.name} (trigger time_up) needs a time budget "
                         "in seconds")
    cohort = math.ceil(sample_size * strategy.setting("overselection"))
    if cohort > participants:
        raise ValueError(f"strategy.overselection: {strategy.setting('overselection')} x sample_size {sample_size} "
                         f"asks for {cohort} participants, but the course has {participants}")
    if strategy.setting("broadcast") == "after_receiving" and trigger == "all_received":
        raise ValueError("strategy.broadcast: after_receiving sends a new model as soon as an update arrives, so "
                         "all_received (nobody left training) would never hold; use goal_achieved or time_up")
    if strategy.setting("broadcast") == "after_receiving" and strategy.setting("staleness_toleration") == 0:
        raise ValueError("strategy.staleness_toleration: after_receiving broadcasts while others still train, so "
                         "a toleration of 0 would drop nearly every update; use after_aggregating or toleration >= 1")


def _check_aggregator(aggregator: AggregatorConfig, strategy: StrategyConfig, sample_size: int) -> None:
    """Refuse a rule that needs more updates than the strategy aggregates at a time (Krum's 2f+3)."""
    from fscore.strategy import Strategy

    needed = aggregator.build().min_updates
    resolved = Strategy.from_config(strategy, sample_size)
    if resolved.trigger == "time_up" or needed <= 1:
        return  # time_up aggregates whatever came in time; too few then keeps the model (documented)
    fewest, key = (resolved.goal, "strategy.min_received") if resolved.trigger == "goal_achieved" else \
        (sample_size, "sample_size")
    if fewest < needed:
        raise ValueError(f"aggregator: {aggregator.name} with these options needs at least {needed} updates per "
                         f"aggregation, but the strategy aggregates {fewest} ({key})")


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<config>"
        msg = err["msg"].removeprefix("Value error, ")
        named = re.match(r"^([\w.]+): ", msg)
        if named and (key == "<config>" or named.group(1).startswith(key + ".")):  # a check naming its own key
            key, msg = named.group(1), msg[named.end():]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        elif "password" in key:
            msg = f"{msg} (value hidden: it is a secret)"
        elif err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        parts.append(f"{key}: {msg}")
    return "; ".join(parts)


def parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key=value, e.g. data.alpha=0.5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc.problem})") from exc
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str], values: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """``overrides`` are ``key=value`` texts with YAML values; ``values`` are dotted keys with literal values."""
    data = json.loads(json.dumps(raw))  # deep copy of plain YAML data
    settings = [(*parse_override(text), text) for text in overrides]
    settings += [(key.split("."), value, key) for key, value in (values or {}).items()]
    for path, value, text in settings:
        node = data
        for i, part in enumerate(path[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[: i + 1])} is not a section")
            node = nxt
        node[path[-1]] = value
    return data


def config_from_dict(raw: dict[str, Any], overrides: list[str] | None = None, *,
                     source: str = "<dict>", values: Mapping[str, Any] | None = None) -> CourseConfig:
    data = apply_overrides(raw, overrides or [], values)
    try:
        return CourseConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_format_errors(exc)}") from None


def load_config(path: str | Path, overrides: list[str] | None = None,
                values: Mapping[str, Any] | None = None) -> CourseConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a course config must be a mapping of keys, not {type(raw).__name__}")
    config = config_from_dict(raw, overrides, source=str(path), values=values)
    _resolve_paths(config, path.parent)
    return config


def _resolve_paths(config: CourseConfig, base: Path) -> None:
    for mt in config.message_types:
        resolved = mt.schema_file if mt.schema_file.is_absolute() else base / mt.schema_file
        if not resolved.is_file():
            raise ConfigError(f"message_types[{mt.name}].schema_file: file {str(resolved)!r} not found")
        object.__setattr__(mt, "schema_file", resolved)
    device_file = config.simulation.device_file
    if device_file is not None and not device_file.is_absolute():
        object.__setattr__(config.simulation, "device_file", base / device_file)
