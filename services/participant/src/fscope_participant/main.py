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

from pathlib import Path

import click
import structlog

from fscore.cli import invoke
from fscore.communicator import Communicator
from fscore.config import CourseConfig
from fscore.course import CourseBuilder, checked_builder, participant_address
from fscore.courselog import course_finished
from fscore.errors import ConfigError, TransportError
from fscore.message import PARTICIPANT
from fscore.participant import Participant
from fscore.service import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_TRANSPORT,
    ServiceEnvironment,
    StopFlag,
    connect,
    new_incarnation,
    service_config,
)
from fscore.service import serve as serve_worker
from fscore.service.entry import config_options, start
from fscore.trust.setup import WorkerTrust, participant_trust
from fscore.worker import Outbox

log = structlog.get_logger("fscope.participant")


def build_participant(config_path: Path, index: int, overrides: list[str]) -> Participant:
    config = service_config(str(config_path), overrides)
    _check_index(config, index)
    return CourseBuilder(config).participant(index, Outbox(), alone=True)


def _check_index(config: CourseConfig, index: int) -> None:
    if not 0 <= index < config.participants:
        raise ConfigError(f"participant index {index} is outside 0..{config.participants - 1}")


def run(builder: CourseBuilder, index: int, trust: WorkerTrust) -> int:
    config = builder.config
    address = participant_address(index)
    try:
        transport = connect(config, builder.topics, snapshots=False)
        finished = course_finished(transport, builder.topics, builder.catalog, trust.verifier)
    except TransportError as exc:
        log.error("kafka_unreachable", error=str(exc))
        return EXIT_TRANSPORT
    if finished is not None:
        log.info("course_already_finished", course=config.course_id, participant=address, **finished)
        transport.close()
        return EXIT_OK
    communicator = Communicator(transport, builder.topics, builder.catalog, address, signer=trust.signer,
                                verifier=trust.verifier)
    participant = builder.participant(index, communicator, incarnation=new_incarnation(), alone=True)
    communicator.subscribe(PARTICIPANT)
    participant.log_handlers()
    log.info("serving", course=config.course_id, participant=address, train=len(participant.data.train),
             test=len(participant.data.test))
    participant.start()  # join_in; a restarted participant joins again and gets its id again
    transport.flush()
    code = serve_worker(participant, communicator, done=lambda: participant.finished,
                 poll_timeout=config.transport.kafka.poll_timeout_s, stop=StopFlag())
    transport.close()
    if participant.refused:  # its model does not fit the course's agreed layout (the reason is logged)
        code = EXIT_CONFIG
    log.info("exiting", participant=address, code=code, rounds_trained=participant.rounds_trained,
             dead_lettered=communicator.dead_lettered, intake=communicator.intake.as_dict())
    return code


@click.group(name="participant", help="One participant (FL client) as a service over Kafka.")
def cli() -> None:
    pass


def _prepared(config: str | None, overrides: tuple[str, ...], index: int | None) -> tuple[CourseBuilder, int]:
    course = service_config(config, list(overrides))
    if index is None:
        found = ServiceEnvironment.read().participant_index
        index = -1 if found is None else found
    _check_index(course, index)
    return checked_builder(course), index


def _with_trust(prepared: tuple[CourseBuilder, int]) -> tuple[CourseBuilder, int, WorkerTrust]:
    """The participant's keys, checked before Kafka is touched (a missing or foreign key is a config error)."""
    builder, index = prepared
    config = builder.config
    addresses = [participant_address(i) for i in range(config.participants)]
    return builder, index, participant_trust(config, participant_address(index), addresses, service=True)


index_option = click.option("--index", type=int, default=None,
                            help="which participant (default: $FSCOPE_PARTICIPANT_INDEX)")


@cli.command(help="take part in the course over Kafka until it finishes")
@config_options
@index_option
def serve(config: str | None, overrides: tuple[str, ...], index: int | None) -> int:
    return start("fscope-participant", json_logs=True,
                 prepare=lambda: _with_trust(_prepared(config, overrides, index)), act=lambda prepared: run(*prepared))


@cli.command(help="print this participant's shard and handlers, without touching Kafka")
@config_options
@index_option
def describe(config: str | None, overrides: tuple[str, ...], index: int | None) -> int:
    def show(prepared: tuple[CourseBuilder, int]) -> int:
        builder, i = prepared
        participant = builder.participant(i, Outbox(), alone=True)
        print(f"{participant.address}: {len(participant.data.train)} train / {len(participant.data.test)} test "
              f"examples, backend {participant.trainer.backend}")
        for line in participant.handlers.describe():
            print(line)
        return EXIT_OK
    return start("fscope-participant", json_logs=False, prepare=lambda: _prepared(config, overrides, index),
                 act=show)


def main(argv: list[str] | None = None) -> int:
    return invoke(cli, argv, "fscope-participant")


if __name__ == "__main__":
    raise SystemExit(main())
