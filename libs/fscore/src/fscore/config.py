"""Course configuration: pydantic models, read from YAML, with ``key=value`` overrides.

Validated once, at the edge; the core receives these typed objects, never dicts. Every error is
reported on one line naming the key, e.g. ``data.alpha: Input should be greater than 0 (got -1)``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from fscore.errors import ConfigError


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


class ModelConfig(_Strict):
    name: Literal["logreg", "mlp", "convnet2"] = "mlp"
    hidden: int = Field(64, ge=1)


class TrainerConfig(_Strict):
    backend: Literal["torch"] = "torch"
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    local_epochs: int = Field(1, ge=1)
    local_steps: int | None = Field(None, ge=1, description="if set, train this many batches instead of epochs")
    batch_size: int = Field(16, ge=1)


class AggregatorConfig(_Strict):
    name: str = "fedavg"

    @model_validator(mode="after")
    def _known(self) -> AggregatorConfig:
        from fscore.aggregators import aggregator_names

        if self.name not in aggregator_names():
            raise ValueError(f"unknown aggregator {self.name!r}; known: {', '.join(aggregator_names())}")
        return self


class EvaluationConfig(_Strict):
    every: int = Field(1, ge=1, description="evaluate after every N-th round (and after the last)")
    patience: int = Field(0, ge=0, description="stop after this many evaluations without improvement; 0 = never")
    min_delta: float = Field(0.0, ge=0)
    metric: Literal["accuracy", "loss"] = "accuracy"


class SimulationConfig(_Strict):
    """Virtual-time costs of the default device (FedScale-style: compute seconds per sample, bandwidth)."""

    compute_s_per_sample: float = Field(0.001, ge=0)
    bandwidth_bytes_per_s: float = Field(1.25e6, gt=0)
    progress: bool = True


class KafkaConfig(_Strict):
    """How services reach Kafka. Secrets are SecretStr: shown as ********** in logs and dumps."""

    bootstrap_servers: str = "127.0.0.1:19092"
    client: Literal["confluent", "kafka-python"] = "confluent"
    replication_factor: int = Field(1, ge=1)
    #: records larger than this are split into chunks; keep it under the broker's message.max.bytes (1 MiB)
    max_record_bytes: int = Field(900_000, ge=1024, le=50_000_000)
    poll_timeout_s: float = Field(0.2, gt=0)
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
    simulation: SimulationConfig = SimulationConfig()
    transport: TransportConfig = TransportConfig()
    message_types: list[MessageTypeConfig] = Field(default_factory=list)
    conditions: list[ConditionConfig] = Field(default_factory=list)
    handlers: list[HandlerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CourseConfig:
        if self.sample_size is not None and self.sample_size > self.participants:
            raise ValueError(f"sample_size ({self.sample_size}) exceeds participants ({self.participants})")
        return self

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the validated config: equal configs hash equal."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<config>"
        msg = err["msg"].removeprefix("Value error, ")
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
