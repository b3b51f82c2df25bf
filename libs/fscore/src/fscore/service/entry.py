"""What both services' command lines share: their arguments, and one mapping of failures to exit codes.

    fscope-coordinator serve|describe [CONFIG] [--set k=v ...]        (also: fscope coordinator ...)
    fscope-participant serve|describe [CONFIG] --index N [--set ...]  (also: fscope participant ...)

Exit codes: 0 finished, 1 error (a bug), 2 bad config or a broken course, 3 Kafka unreachable,
4 stopped by a signal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import structlog

from fscore.errors import CompletenessError, ConfigError, TransportError
from fscore.log_setup import configure_logging
from fscore.service.loop import EXIT_CONFIG, EXIT_ERROR, EXIT_TRANSPORT

log = structlog.get_logger("fscore.service")

T = TypeVar("T")


def config_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="override a config key (repeatable); after $FSCOPE_SET")(f)
    return click.argument("config", required=False, default=None)(f)


def start(prog: str, *, json_logs: bool, prepare: Callable[[], T], act: Callable[[T], int]) -> int:
    """``prepare()`` (config, extensions, flow check: nothing touches Kafka), then ``act``; every failure is
    logged or printed in one line and becomes its exit code."""
    configure_logging(json=json_logs)
    try:
        prepared = prepare()
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CompletenessError as exc:
        log.error("course_incomplete", problems=exc.problems)
        print(f"{prog}: the course is incomplete: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return act(prepared)
    except TransportError as exc:  # the broker went away for longer than transport.kafka.outage_limit_s
        log.error("kafka_unreachable", error=str(exc))
        return EXIT_TRANSPORT
    except Exception:  # a bug, not bad input (that is dead-lettered): log it as JSON and exit non-zero
        log.exception("crashed")
        return EXIT_ERROR
