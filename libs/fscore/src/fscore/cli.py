"""The ``fscope`` command tree (click): run a course standalone, check its message flow, create its topics, replay
it, report on runs; and, from the installed services, ``fscope coordinator ...`` and ``fscope participant ...``.

The services add their command groups through the entry-point group ``fscope.commands``, so this package does not
import them (dependencies point from the services to fscore) and ``fscope --help`` does not load them. Exit codes:
0 done, 1 error or failed check, 2 bad config or usage, 3 Kafka unreachable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from fscore.errors import (
    CompletenessError,
    ConfigError,
    FscoreError,
    LogTruncated,
    SnapshotError,
    TransportError,
)
from fstranslation import LayoutError

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"])


def log_options(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--log-json", is_flag=True, help="JSON log lines instead of readable ones")(f)
        return click.option("--log-level", type=LOG_LEVELS, default=default, show_default=True)(f)
    return decorate


def course_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The arguments every command on one course takes: the config file and its ``--set`` overrides."""
    f = log_options("info")(f)
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="override a config key, e.g. --set data.alpha=0.1 (repeatable)")(f)
    return click.argument("config", type=click.Path(path_type=Path))(f)


class CommandTree(click.Group):
    """fscope's own commands, plus the groups installed packages declare under ``fscope.commands``, loaded only
    when they are named."""

    def _installed(self) -> dict[str, metadata.EntryPoint]:
        return {ep.name: ep for ep in metadata.entry_points(group="fscope.commands") if ep.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._installed()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        entry = self._installed().get(name)
        return entry.load() if entry is not None else None


def invoke(group: click.Command, argv: list[str] | None, prog: str) -> int:
    """Run a click command tree and return its exit code instead of exiting (``main(argv)`` stays testable)."""
    try:
        code = group.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    except click.ClickException as exc:  # a usage error: exit 2, as argparse did
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 1
    return code if isinstance(code, int) else 0


def _guarded(work: Callable[[], int]) -> int:
    """Today's errors as today's one-line messages and exit codes."""
    try:
        return work()
    except ConfigError as exc:
        print(f"fscope: config error: {exc}", file=sys.stderr)
        return 2
    except CompletenessError as exc:
        print("fscope: the course is incomplete:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except LogTruncated as exc:  # the broker answered: the course's log is incomplete, not unreachable
        print(f"fscope: log error: {exc}", file=sys.stderr)
        return 2
    except TransportError as exc:
        print(f"fscope: Kafka error: {exc}", file=sys.stderr)
        return 3
    except SnapshotError as exc:
        print(f"fscope: snapshot error: {exc}", file=sys.stderr)
        return 2
    except FscoreError as exc:
        print(f"fscope: error: {exc}", file=sys.stderr)
        return 1
    except LayoutError as exc:
        print(f"fscope: layout error: {exc}", file=sys.stderr)
        return 2


def _course(config: Path, overrides: tuple[str, ...], log_json: bool, log_level: str) -> Any:
    from fscore.config import load_config
    from fscore.log_setup import configure_logging

    configure_logging(json=log_json, level=log_level)
    return load_config(config, list(overrides))


@click.group(cls=CommandTree, name="fscope", help="Event-driven federated learning.")
def cli() -> None:
    pass


@cli.command(help="run a course standalone on the embedded log")
@course_options
@click.option("--output", type=click.Path(path_type=Path), default=Path("runs/latest"), show_default=True,
              help="directory for summary.json etc.")
@click.option("--no-progress", is_flag=True)
@click.option("--snapshot-every", type=int, default=None, metavar="N",
              help="write the course's snapshot to OUTPUT/snapshots every N rounds")
@click.option("--restore", type=click.Path(path_type=Path), default=None, metavar="SNAPSHOT",
              help="continue the course from this snapshot (--set rounds=M may extend it)")
def run(config: Path, overrides: tuple[str, ...], log_level: str, log_json: bool, output: Path,
        no_progress: bool, snapshot_every: int | None, restore: Path | None) -> int:
    args = SimpleNamespace(output=output, no_progress=no_progress, snapshot_every=snapshot_every, restore=restore)
    return _guarded(lambda: _run(_course(config, overrides, log_json, log_level), args))


@cli.command(help="tune a course's hyperparameters with Optuna (rs, sha, hyperband, bo); the fidelity is rounds")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a key of the base config")
@click.option("--space", type=click.Path(path_type=Path), required=True, help="the search space (YAML)")
@click.option("--method", type=click.Choice(["rs", "sha", "hyperband", "bo"]), default="rs", show_default=True)
@click.option("--budget", type=int, required=True, help="rounds trained over all trials")
@click.option("--trials", type=int, default=None, help="at most this many configurations")
@click.option("--min-rounds", type=int, default=None, help="the lowest fidelity (sha, hyperband)")
@click.option("--max-rounds", type=int, default=None, help="the full fidelity (default: the config's rounds)")
@click.option("--eta", type=int, default=3, show_default=True, help="reduction factor (sha, hyperband)")
@click.option("--objective", type=click.Choice(["loss", "accuracy"]), default="loss", show_default=True,
              help="the participants' validation metric")
@click.option("--jobs", type=int, default=1, show_default=True, help="rungs trained at once, each in a process")
@click.option("--batch", type=int, default=4, show_default=True, help="rungs scheduled together")
@click.option("--seed", type=int, default=0, show_default=True, help="seeds the search (not the course)")
@click.option("--storage", default=None, help="Optuna storage URL (default: a journal file in the output)")
@click.option("--study-name", default=None)
@click.option("--validation-fraction", type=float, default=None,
              help="participants' validation share (default: data.validation_fraction, else 0.2)")
@click.option("--fedex", is_flag=True, help="wrap the method around FedEx, which explores the trainer.* keys per "
              "participant inside each trial")
@click.option("--fedex-arms", type=int, default=3, show_default=True, help="FedEx's candidates per local key")
@click.option("--no-test", is_flag=True, help="do not train the chosen config again to report its test metrics")
@click.option("--output", type=click.Path(path_type=Path), default=Path("runs/tune"), show_default=True)
@click.option("--no-progress", is_flag=True)
@log_options("warning")
def tune(config: Path, overrides: tuple[str, ...], space: Path, output: Path, no_progress: bool, no_test: bool,
         log_level: str, log_json: bool, **settings: Any) -> int:
    return _guarded(lambda: _tune(config, list(overrides), space, output, no_progress, no_test, log_level,
                                  log_json, settings))


@cli.command(help="check a course's message flow; export the graph as DOT and PNG")
@course_options
@click.option("--graph", type=click.Path(path_type=Path), default=None,
              help="write GRAPH.dot and GRAPH.png (default: next to the config, as <name>.flow.*)")
def check(config: Path, overrides: tuple[str, ...], log_level: str, log_json: bool, graph: Path | None) -> int:
    args = SimpleNamespace(config=config, graph=graph)
    return _guarded(lambda: _check(_course(config, overrides, log_json, log_level), args))


@cli.command(help="create a course's Kafka topics (the coordinator also does this)")
@click.argument("action", type=click.Choice(["create"]))
@course_options
def topics(action: str, config: Path, overrides: tuple[str, ...], log_level: str, log_json: bool) -> int:
    return _guarded(lambda: _topics(_course(config, overrides, log_json, log_level)))


@cli.command(help="re-drive a fresh coordinator from a course's Kafka log; --verify checks it")
@click.option("--bootstrap-servers", required=True)
@click.option("--course", required=True, help="course id")
@click.option("--topic-prefix", default="fscope", show_default=True)
@click.option("--client", type=click.Choice(["confluent", "kafka-python"]), default="confluent", show_default=True)
@click.option("--verify", is_flag=True, help="exit 1 if any aggregated model differs from the log")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="write the rebuilt metrics.jsonl and summary.json")
@log_options("warning")
def replay(log_level: str, log_json: bool, **options: Any) -> int:
    from fscore.log_setup import configure_logging

    configure_logging(json=log_json, level=log_level)
    return _guarded(lambda: _replay(SimpleNamespace(**options)))


@cli.command(help="figures of one or more runs (PNG and a self-contained HTML page)")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR...")
@click.option("--output", type=click.Path(path_type=Path), default=Path("runs/report"), show_default=True)
@log_options("warning")
def report(runs: tuple[Path, ...], output: Path, log_level: str, log_json: bool) -> int:
    from fscore.log_setup import configure_logging

    configure_logging(json=log_json, level=log_level)
    return _guarded(lambda: _report(SimpleNamespace(runs=list(runs), output=output)))


@cli.group(help="Ed25519 identities of a course's workers (signed messages, admission)")
def keys() -> None:
    pass


@keys.command(help="write a key pair per address (ADDRESS.key, ADDRESS.pub) and DIR/admitted.pub with every public "
                   "key in DIR; give addresses, or --participants N for the coordinator and N participants")
@click.argument("addresses", nargs=-1)
@click.option("--out", "directory", type=click.Path(path_type=Path), required=True, help="directory for the keys")
@click.option("--participants", type=click.IntRange(min=1), default=None,
              help="also the coordinator and participant-00000 .. participant-(N-1)")
def generate(addresses: tuple[str, ...], directory: Path, participants: int | None) -> int:
    return _guarded(lambda: _generate(list(addresses), directory, participants))


def main(argv: list[str] | None = None) -> int:
    return invoke(cli, argv, "fscope")


def _generate(addresses: list[str], directory: Path, participants: int | None) -> int:
    from fscore.course import participant_address
    from fscore.message import COORDINATOR
    from fscore.trust import KeyRing, write_pair

    if participants is not None:
        addresses = [COORDINATOR, *(participant_address(i) for i in range(participants)), *addresses]
    if not addresses:
        raise ConfigError("keys generate: name the addresses, or give --participants N")
    for address in dict.fromkeys(addresses):
        private, _ = write_pair(directory, address)
        print(f"{address}: {private} (private, keep it on {address}'s machine), {private.with_suffix('.pub')}")
    lines = [line for pub in sorted(directory.glob("*.pub")) if pub.name != "admitted.pub"
             for line in pub.read_text().splitlines() if line.strip()]
    ring = KeyRing.parse(lines, str(directory))  # refuses a key admitted twice
    (directory / "admitted.pub").write_text("\n".join(ring.lines()) + "\n")
    print(f"{directory / 'admitted.pub'}: {len(ring)} admitted key(s); give it to every worker as trust.keys, and "
          f"each its own key as trust.private_key (e.g. {directory}/{{address}}.key)")
    return 0


def _run(config: object, args: Any) -> int:
    import json

    from fscore.simulation.runner import run_standalone

    restored = None
    if args.restore is not None:
        from fscore.snapshot import check_fits, read

        restored = read(args.restore)
        check_fits(restored, config, str(args.restore))  # type: ignore[arg-type]
    result = run_standalone(config, output_dir=args.output, progress=not args.no_progress,  # type: ignore[arg-type]
                            snapshot_every=args.snapshot_every, restore=restored)
    s = result.summary
    print(json.dumps({k: s[k] for k in ("course_id", "rounds", "finish_reason", "final_metrics", "virtual_time_s",
                                        "wall_time_s", "model_sha256")}, indent=2))
    print(f"wrote {args.output / 'summary.json'} and {args.output / 'metrics.jsonl'}")
    return 0


def _tune(config: Path, overrides: list[str], space_path: Path, output: Path, no_progress: bool, no_test: bool,
          log_level: str, log_json: bool, options: dict[str, Any]) -> int:
    import json

    from pydantic import ValidationError

    from fscore.log_setup import configure_logging
    from fscore.tune import SearchSpace, Tuner, TuneSettings

    configure_logging(json=log_json, level=log_level)
    try:
        settings = TuneSettings(**options, test=not no_test)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}") from None
    summary = Tuner(config, overrides, SearchSpace.load(space_path), settings, output).run(progress=not no_progress)
    print(json.dumps({k: summary[k] for k in ("method", "trials", "states", "rounds_trained", "best", "test")},
                     indent=2, default=str))
    files = ["tune.jsonl", "tune.json", "best_seen.png", *(["best.yaml"] if summary["best"] else [])]
    print(f"wrote {', '.join(str(output / f) for f in files)}")
    return 0


def _replay(args: Any) -> int:
    from fscore.config import KafkaConfig
    from fscore.replay import replay_course
    from fscore.transport.kafka_common import make_kafka_transport

    transport = make_kafka_transport(KafkaConfig(bootstrap_servers=args.bootstrap_servers, client=args.client))
    try:
        report = replay_course(transport, args.course, topic_prefix=args.topic_prefix, output_dir=args.output)
    finally:
        transport.close()
    print(f"replayed {report.inbox_records} inbox records of course {report.course} "
          f"({report.rejected} rejected, {report.undecodable} undecodable, as in the live run)")
    print(f"checked {report.checked} models against the log; final model sha256 {report.final_sha256}")
    if report.ignored:
        print(f"{len(report.ignored)} record(s) on the model topics were not the coordinator's sends and were not "
              f"checked (garbage, copies, other senders or courses); first: {report.ignored[0]}")
    if report.refused:
        print(f"{len(report.refused)} inbox record(s) refused, as by the live coordinator; first: {report.refused[0]}")
    if report.resent:
        print(f"{len(report.resent)} identical model(s) sent again after a coordinator restart: "
              f"{', '.join(report.resent)}")
    for mismatch in report.mismatches:
        print(f"MISMATCH: {mismatch}", file=sys.stderr)
    if args.output:
        print(f"rebuilt {args.output / 'metrics.jsonl'} ({len(report.history)} evaluations)")
    if args.verify and not report.verified:
        print("verification FAILED", file=sys.stderr)
        return 1
    if args.verify:
        print("verification passed: every aggregated model matches the recorded broadcast")
    return 0


def _report(args: Any) -> int:
    from fscore.report import write_report

    page = write_report(args.runs, args.output)
    print(f"wrote {page} and {', '.join(sorted(p.name for p in args.output.glob('*.png')))} in {args.output}")
    return 0


def _topics(config: object) -> int:
    from fscore.course import CourseBuilder
    from fscore.transport.kafka_common import make_kafka_transport

    kafka = config.transport.kafka  # type: ignore[attr-defined]
    specs = CourseBuilder(config).topics.specs()  # type: ignore[arg-type]
    transport = make_kafka_transport(kafka)
    try:
        transport.ensure_topics(specs)
        for spec in specs:
            ends = transport.end_offsets(spec.name)
            settings = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
            print(f"{spec.name}: {len(ends)} partition(s), {settings}, {sum(ends.values())} record(s)")
    finally:
        transport.close()
    print(f"topics of course {config.course_id} are in place on {kafka.bootstrap_servers}")  # type: ignore[attr-defined]
    return 0


def _check(config: object, args: Any) -> int:
    from fscore.course import CourseBuilder
    from fscore.flowgraph import check_variants

    builder = CourseBuilder(config)  # type: ignore[arg-type]
    coordinator, participants = builder.check_workers()
    for label, worker in [("coordinator", coordinator), *participants.items()]:
        plugins = f" (plug-ins: {', '.join(p.label for p in worker.plugins)})" if worker.plugins else ""
        print(f"{label} handlers{plugins}:")
        for line in worker.handlers.describe():
            print(f"  {line}")
    flow = check_variants(coordinator, participants, builder.catalog)
    stem = args.graph or args.config.with_suffix("").with_name(args.config.stem + ".flow")
    stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}.dot").write_text(flow.to_dot())
    flow.to_png(f"{stem}.png")
    print(f"message-flow graph: {stem}.dot, {stem}.png")
    flow.raise_for_problems()
    from fscore.privacy.report import planned_privacy

    for line in planned_privacy(config):  # type: ignore[arg-type]
        print(f"privacy: {line}")
    print(f"trust: {_trust_line(config)}")
    print(f"check passed for the coordinator and {len(participants)} participant configuration(s): every emitted "
          "message type has a handler, and finish is reachable from join_in")
    return 0


def _trust_line(config: Any) -> str:
    """What the services will sign with; the key files are read and checked now, as a service would."""
    from fscore.trust.setup import course_keyring

    trust = config.trust
    if not trust.signs(True):
        return "messages are not signed (trust.signing=false); only the coordinator's alarms are"
    if trust.keys is None and not trust.admitted:
        return ("the services sign every message, and will not start until keys are admitted: give trust.keys "
                "('fscope keys generate') or set trust.signing=false")
    ring = course_keyring(config, [], service=True)
    assert ring is not None
    return (f"the services sign every message; {len(ring)} key(s) admitted "
            f"({', '.join(sorted(ring.keys)[:4])}{', ...' if len(ring) > 4 else ''})")


if __name__ == "__main__":
    raise SystemExit(main())
