"""``fscope-participant``: one participant process.

    fscope-participant serve [CONFIG] --index N [--set k=v ...]
    fscope-participant describe [CONFIG] --index N

It loads only its own shard (participant N of the course's split), joins the course over Kafka
and trains with its own backend. ``FSCOPE_PARTICIPANT_INDEX`` can replace ``--index``. Restarted
mid-course, it resumes from its committed offsets; the coordinator refuses a second update for
a round, so nothing is double-counted.
Exit codes: 0 finished, 1 error, 2 bad config, 3 Kafka unreachable, 4 stopped by a signal.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import structlog

from fscore.communicator import Communicator
from fscore.config import CourseConfig
from fscore.course import CourseBuilder, checked_builder, participant_address
from fscore.courselog import course_finished
from fscore.deployment import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_TRANSPORT,
    StopFlag,
    connect,
    new_incarnation,
    serve,
    service_config,
)
from fscore.errors import CompletenessError, ConfigError, TransportError
from fscore.log_setup import configure_logging
from fscore.message import PARTICIPANT
from fscore.participant import Participant
from fscore.worker import Outbox

log = structlog.get_logger("fscope.participant")


def build_participant(config_path: Path, index: int, overrides: list[str]) -> Participant:
    config = service_config(str(config_path), overrides)
    _check_index(config, index)
    return CourseBuilder(config).participant(index, Outbox(), alone=True)


def _check_index(config: CourseConfig, index: int) -> None:
    if not 0 <= index < config.participants:
        raise ConfigError(f"participant index {index} is outside 0..{config.participants - 1}")


def run(builder: CourseBuilder, index: int) -> int:
    config = builder.config
    address = participant_address(index)
    try:
        transport = connect(config, builder.topics)
        finished = course_finished(transport, builder.topics, builder.catalog)
    except TransportError as exc:
        log.error("kafka_unreachable", error=str(exc))
        return EXIT_TRANSPORT
    if finished is not None:
        log.info("course_already_finished", course=config.course_id, participant=address, **finished)
        transport.close()
        return EXIT_OK
    communicator = Communicator(transport, builder.topics, builder.catalog, address)
    participant = builder.participant(index, communicator, incarnation=new_incarnation(), alone=True)
    communicator.subscribe(PARTICIPANT)
    participant.log_handlers()
    log.info("serving", course=config.course_id, participant=address, train=len(participant.data.train),
             test=len(participant.data.test))
    participant.start()  # join_in; a restarted participant joins again and gets its id again
    transport.flush()
    code = serve(participant, communicator, done=lambda: participant.finished,
                 poll_timeout=config.transport.kafka.poll_timeout_s, stop=StopFlag())
    transport.close()
    if participant.refused:  # its model does not fit the course's agreed layout (the reason is logged)
        code = EXIT_CONFIG
    log.info("exiting", participant=address, code=code, rounds_trained=participant.rounds_trained,
             dead_lettered=communicator.dead_lettered, intake=communicator.intake.as_dict())
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fscope-participant")
    parser.add_argument("command", choices=["serve", "describe"])
    parser.add_argument("config", nargs="?", default=None, help="course config (default: $FSCOPE_CONFIG)")
    parser.add_argument("--index", type=int, default=None,
                        help="which participant (default: $FSCOPE_PARTICIPANT_INDEX)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    configure_logging(json=args.command == "serve")
    try:
        config = service_config(args.config, args.overrides)
        index = args.index if args.index is not None else int(os.environ.get("FSCOPE_PARTICIPANT_INDEX", "-1"))
        _check_index(config, index)
        builder = checked_builder(config)
    except (ConfigError, ValueError) as exc:
        print(f"fscope-participant: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CompletenessError as exc:
        log.error("course_incomplete", problems=exc.problems)
        print(f"fscope-participant: the course is incomplete: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "describe":
        participant = builder.participant(index, Outbox(), alone=True)
        print(f"{participant.address}: {len(participant.data.train)} train / {len(participant.data.test)} test "
              f"examples, backend {participant.trainer.backend}")
        for line in participant.handlers.describe():
            print(line)
        return EXIT_OK
    try:
        return run(builder, index)
    except TransportError as exc:  # the broker went away for longer than transport.kafka.outage_limit_s
        log.error("kafka_unreachable", error=str(exc))
        return EXIT_TRANSPORT
    except Exception:  # a bug, not bad input (that is dead-lettered): log it as JSON and exit non-zero
        log.exception("crashed")
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
