"""The ``fscope`` command: run a course standalone, check its message flow, create its topics, replay it,
report on runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fscore.errors import CompletenessError, ConfigError, FscoreError, TransportError
from fstranslation import LayoutError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fscope", description="Event-driven federated learning.")
    sub = parser.add_subparsers(dest="command", required=True)

    def course_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", type=Path, help="course config (YAML)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set data.alpha=0.1 (repeatable)")
        p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        p.add_argument("--log-json", action="store_true", help="JSON log lines instead of readable ones")

    run = sub.add_parser("run", help="run a course standalone on the embedded log")
    course_args(run)
    run.add_argument("--output", type=Path, default=Path("runs/latest"), help="directory for summary.json etc.")
    run.add_argument("--no-progress", action="store_true")

    replay = sub.add_parser("replay", help="re-drive a fresh coordinator from a course's Kafka log; --verify checks it")
    replay.add_argument("--bootstrap-servers", required=True)
    replay.add_argument("--course", required=True, help="course id")
    replay.add_argument("--topic-prefix", default="fscope")
    replay.add_argument("--client", default="confluent", choices=["confluent", "kafka-python"])
    replay.add_argument("--verify", action="store_true", help="exit 1 if any aggregated model differs from the log")
    replay.add_argument("--output", type=Path, default=None, help="write the rebuilt metrics.jsonl and summary.json")
    replay.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    replay.add_argument("--log-json", action="store_true")

    report = sub.add_parser("report", help="figures of one or more runs (PNG and a self-contained HTML page)")
    report.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="directories with summary.json")
    report.add_argument("--output", type=Path, default=Path("runs/report"))
    report.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    report.add_argument("--log-json", action="store_true")

    topics = sub.add_parser("topics", help="create a course's Kafka topics (the coordinator also does this)")
    topics.add_argument("action", choices=["create"])
    course_args(topics)

    check = sub.add_parser("check", help="check a course's message flow; export the graph as DOT and PNG")
    course_args(check)
    check.add_argument("--graph", type=Path, default=None, help="write GRAPH.dot and GRAPH.png (default: next "
                                                               "to the config, as <name>.flow.*)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from fscore.log_setup import configure_logging

    configure_logging(json=args.log_json, level=args.log_level)
    try:
        if args.command == "replay":
            return _replay(args)
        if args.command == "report":
            return _report(args)
        from fscore.config import load_config

        config = load_config(args.config, args.overrides)
        if args.command == "run":
            return _run(config, args)
        if args.command == "topics":
            return _topics(config)
        return _check(config, args)
    except ConfigError as exc:
        print(f"fscope: config error: {exc}", file=sys.stderr)
        return 2
    except CompletenessError as exc:
        print("fscope: the course is incomplete:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except TransportError as exc:
        print(f"fscope: Kafka error: {exc}", file=sys.stderr)
        return 3
    except FscoreError as exc:
        print(f"fscope: error: {exc}", file=sys.stderr)
        return 1
    except LayoutError as exc:
        print(f"fscope: layout error: {exc}", file=sys.stderr)
        return 2


def _run(config: object, args: argparse.Namespace) -> int:
    import json

    from fscore.simulation.runner import run_standalone

    result = run_standalone(config, output_dir=args.output, progress=not args.no_progress)  # type: ignore[arg-type]
    s = result.summary
    print(json.dumps({k: s[k] for k in ("course_id", "rounds", "finish_reason", "final_metrics", "virtual_time_s",
                                        "wall_time_s", "model_sha256")}, indent=2))
    print(f"wrote {args.output / 'summary.json'} and {args.output / 'metrics.jsonl'}")
    return 0


def _replay(args: argparse.Namespace) -> int:
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


def _report(args: argparse.Namespace) -> int:
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


def _check(config: object, args: argparse.Namespace) -> int:
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
    print(f"check passed for the coordinator and {len(participants)} participant configuration(s): every emitted "
          "message type has a handler, and finish is reachable from join_in")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
