"""``fscope-coordinator``: the coordinator process.

Today it builds the course's coordinator from a config (without importing torch or TensorFlow)
and reports its handlers. Running it against Kafka is issue #3: until the Kafka transport exists,
``serve`` refuses with exit code 3 instead of pretending.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fscore.config import load_config
from fscore.coordinator import Coordinator
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.worker import Outbox

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


def build_coordinator(config_path: Path, overrides: list[str]) -> Coordinator:
    builder = CourseBuilder(load_config(config_path, overrides))
    return builder.coordinator(Outbox())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fscope-coordinator")
    parser.add_argument("command", choices=["describe", "serve"])
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        coordinator = build_coordinator(args.config, args.overrides)
    except ConfigError as exc:
        print(f"fscope-coordinator: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "describe":
        for line in coordinator.handlers.describe():
            print(line)
        return 0
    print("fscope-coordinator: serving over Kafka is not implemented yet (issue #3)", file=sys.stderr)
    return EXIT_UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main())
