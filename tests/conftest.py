"""Shared fixtures. Unit tests build workers with a list outbox; course tests run real courses."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture
def example_config() -> Path:
    return ROOT / "examples" / "digits_fedavg.yaml"
