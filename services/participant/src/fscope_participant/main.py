"""``fscope-participant``: one participant process.

Today it builds participant INDEX of a course from a config, loading only that participant's
shard, and reports its handlers and data. Serving over Kafka is issue #3: until then ``serve``
refuses with exit code 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.errors import ConfigError
from fscore.participant import Participant
from fscore.worker import Outbox

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


def build_participant(config_path: Path, index: int, overrides: list[str]) -> Participant:
    config = load_config(config_path, overrides)
    if not 0 <= index < config.participants:
        raise ConfigError(f"participant index {index} is outside 0..{config.participants - 1}")
    return CourseBuilder(config).participant(index, Outbox())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fscope-participant")
    parser.add_argument("command", choices=["describe", "serve"])
    parser.add_argument("config", type=Path)
    parser.add_argument("--index", type=int, required=True, help="which participant of the course this is")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        participant = build_participant(args.config, args.index, args.overrides)
    except ConfigError as exc:
        print(f"fscope-participant: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "describe":
        print(f"{participant.address}: {len(participant.data.train)} train / {len(participant.data.test)} test "
              f"examples, backend {participant.trainer.backend}")
        for line in participant.handlers.describe():
            print(line)
        return 0
    print("fscope-participant: serving over Kafka is not implemented yet (issue #3)", file=sys.stderr)
    return EXIT_UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main())
