"""A search space over course config keys (``fscope tune --space SPACE.yaml``), as Optuna distributions.

The file maps dotted config keys to one distribution each (the paper's §4.3: any hyperparameter of the course,
local or global, is a key of its config)::

    trainer.lr: {type: loguniform, low: 0.01, high: 0.5}
    trainer.local_epochs: {type: int, low: 1, high: 4}
    trainer.batch_size: {type: categorical, choices: [16, 32, 64]}
    aggregator.server_lr: {type: uniform, low: 0.5, high: 1.5}

Every key is checked against the course's config before a trial runs (a key that is not a config key, or a value
the config refuses, is one line naming it), and every range must hold a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fscore.errors import ConfigError

#: keys the tuner sets itself: the fidelity, the evaluation split, the course's identity
TUNER_KEYS = {
    "rounds": "rounds are the fidelity (--min-rounds, --max-rounds, --budget)",
    "seed": "the seed fixes the course's data and draws; every trial shares it (--seed seeds the search)",
    "course_id": "every trial is the same course with other hyperparameters",
    "evaluation.split": "trials are evaluated on the validation split, and the chosen config on the test split",
    "data.validation_fraction": "set it with --validation-fraction",
    "simulation.threads": "trials fix it (the base config's, else 1) so any process computes the same bits",
    "simulation.progress": "the tuner shows the progress",
}


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low: float
    high: float

    @model_validator(mode="after")
    def _not_empty(self) -> _Range:
        if not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} is not below high {self.high}")
        return self


class Uniform(_Range):
    type: Literal["uniform"]


class LogUniform(_Range):
    type: Literal["loguniform"]

    @model_validator(mode="after")
    def _positive(self) -> LogUniform:
        if self.low <= 0:
            raise ValueError(f"a log-uniform range needs low > 0, not {self.low}")
        return self


class IntRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _not_empty(self) -> IntRange:
        if not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} is not below high {self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log int range needs low >= 1 and step 1")
        return self


class Categorical(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["categorical"]
    choices: list[bool | int | float | str | None] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Categorical:
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise ValueError(f"choices repeat a value: {self.choices}")
        return self


Dimension = Annotated[Uniform | LogUniform | IntRange | Categorical, Field(discriminator="type")]


class _SpaceFile(BaseModel):
    dimensions: dict[str, Dimension]


def _draw(trial: Any, name: str, d: Any) -> Any:
    if isinstance(d, Categorical):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, IntRange):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(name, d.low, d.high, log=isinstance(d, LogUniform))


class SearchSpace:
    """Config key -> distribution, in the file's order (Optuna's samplers see the same order every run)."""

    def __init__(self, dimensions: dict[str, Any], source: str = "<space>") -> None:
        self.dimensions = dimensions
        self.source = source

    @classmethod
    def load(cls, path: Path) -> SearchSpace:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the search space ({exc})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
        return cls.parse(raw, str(path))

    @classmethod
    def parse(cls, raw: Any, source: str = "<space>") -> SearchSpace:
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(f"{source}: a search space maps config keys to distributions, e.g. "
                              "'trainer.lr: {type: loguniform, low: 0.01, high: 0.5}'")
        for key in raw:
            reason = TUNER_KEYS.get(str(key))
            if reason:
                raise ConfigError(f"{source}: {key}: the tuner sets this key itself ({reason})")
        try:
            parsed = _SpaceFile.model_validate({"dimensions": raw})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = [str(p) for p in err["loc"][1:] if p not in ("uniform", "loguniform", "int", "categorical")]
            key = loc[0] if loc else "<space>"
            where = ".".join(loc[1:])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
                msg = "give type: uniform | loguniform | int | categorical"
            elif err["type"] == "extra_forbidden":
                msg = "unknown field (misspelled?)"
            raise ConfigError(f"{source}: {key}{' ' + where if where else ''}: {msg}") from None
        return cls(dict(parsed.dimensions), source)

    def suggest(self, trial: Any, repeat: Mapping[str, int] | None = None) -> dict[str, Any]:
        """One trial's values, drawn by the study's sampler (an ``optuna.Trial``). A key in ``repeat`` gets that
        many values instead of one, as ``key#0``, ``key#1``, ...: FedEx's candidates (a categorical key with no
        more choices than that takes all of them)."""
        out: dict[str, Any] = {}
        for key, d in self.dimensions.items():
            count = (repeat or {}).get(key)
            if count is None:
                out[key] = _draw(trial, key, d)
            elif isinstance(d, Categorical) and len(d.choices) <= count:
                out.update({f"{key}#{j}": c for j, c in enumerate(d.choices)})
            else:
                out.update({f"{key}#{j}": _draw(trial, f"{key}#{j}", d) for j in range(count)})
        return out

    def corners(self) -> list[dict[str, Any]]:
        """Each key at each end of its range (every choice): what checking the keys against the config tries."""
        out = []
        for key, d in self.dimensions.items():
            values = d.choices if isinstance(d, Categorical) else [d.low, d.high]
            out.extend({key: v} for v in values)
        return out

    def check(self, build: Callable[[dict[str, Any]], Any]) -> None:
        """Build a course config with each key at each end of its range; a key the config does not have, or a
        value it refuses, is one line naming the key."""
        for values in self.corners():
            (key, value), = values.items()
            try:
                build(values)
            except ConfigError as exc:
                text = str(exc)
                _, _, detail = text.partition(": ")
                if "unknown key" in text:
                    raise ConfigError(f"{self.source}: {key}: not a config key ({detail or text})") from None
                raise ConfigError(f"{self.source}: {key}={value!r}: the course config refuses it "
                                  f"({detail or text})") from None
