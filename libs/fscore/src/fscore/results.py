"""What a course leaves behind: ``metrics.jsonl`` (one line per evaluation) and ``summary.json``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fscore.coordinator import Evaluation
from fscore.message import MODEL_PARAMETERS
from fstranslation import WireCodec


def model_sha256(params: Mapping[str, np.ndarray], codec: WireCodec) -> str:
    """sha256 of the model's Avro encoding: the same bytes replay verification compares."""
    return hashlib.sha256(codec.encode_payload(MODEL_PARAMETERS, {"tensors": params})).hexdigest()


def evaluation_row(evaluation: Evaluation, wall_time: float) -> dict[str, Any]:
    return {"round": evaluation.round, "virtual_time": evaluation.virtual_time, "wall_time": round(wall_time, 4),
            **evaluation.metrics, "num_aggregated": len(evaluation.aggregated),
            "aggregated": list(evaluation.aggregated)}


@dataclass
class RunWriter:
    directory: Path | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / "metrics.jsonl").write_text("")

    def evaluation(self, evaluation: Evaluation, wall_time: float) -> None:
        row = evaluation_row(evaluation, wall_time)
        self.rows.append(row)
        if self.directory is not None:
            with (self.directory / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")

    def summary(self, summary: dict[str, Any]) -> None:
        if self.directory is not None:
            (self.directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
