"""(e) Round latency of a 10-participant course over Kafka, against the same course standalone.

The same workers, config and seed run twice in this process: once on the embedded log
(``run_standalone``), once with every message going through a real broker (each worker with its
own Kafka consumer, all sharing one producer). Both do the same real torch training, so the
difference is what the broker costs per round. Workers take turns on one thread here; as
separate processes the participants would also train in parallel.

    python bench/kafka_round.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from broker import kafka_bootstrap
from harness import quiet_logs, report

from fscore.communicator import Communicator
from fscore.config import load_config
from fscore.course import CourseBuilder, participant_address
from fscore.driver import pump
from fscore.message import COORDINATOR, PARTICIPANT
from fscore.results import model_sha256
from fscore.simulation.runner import run_standalone
from fscore.transport.kafka_common import make_kafka_transport

EXAMPLE = Path(__file__).parents[1] / "examples" / "digits_fedavg.yaml"


def kafka_course(config) -> tuple[float, str]:
    started = time.perf_counter()  # set-up included, as in run_standalone's wall time
    builder = CourseBuilder(config)
    transport = make_kafka_transport(config.transport.kafka)
    transport.ensure_topics(builder.topics.specs())
    coord_comm = Communicator(transport, builder.topics, builder.catalog, COORDINATOR)
    coordinator = builder.coordinator(coord_comm, evaluator=builder.numpy_evaluator())
    coord_comm.subscribe(COORDINATOR)
    workers = [(coordinator, coord_comm)]
    for i in range(config.participants):
        comm = Communicator(transport, builder.topics, builder.catalog, participant_address(i))
        workers.append((builder.participant(i, comm), comm))
        comm.subscribe(PARTICIPANT)
    for participant, _ in workers[1:]:
        participant.start()
    transport.flush()
    while not all(w.finished for w, _ in workers):
        for worker, comm in workers:
            pump(worker, comm, timeout=0.0)
    elapsed = time.perf_counter() - started
    transport.close()
    return elapsed, model_sha256(coordinator.params, builder.catalog.codec)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    quiet_logs()
    with kafka_bootstrap() as bootstrap:
        sets = [f"rounds={args.rounds}", "participants=10", f"course_id=bench-{uuid.uuid4().hex[:8]}"]
        run_standalone(load_config(EXAMPLE, ["rounds=1"]), progress=False)  # warm-up: imports, data, torch
        started = time.perf_counter()
        standalone = run_standalone(load_config(EXAMPLE, sets), progress=False)
        t_standalone = time.perf_counter() - started
        t_kafka, sha = kafka_course(load_config(EXAMPLE, [*sets, "transport.kind=kafka",
                                                          f"transport.kafka.bootstrap_servers={bootstrap}"]))
    assert sha == standalone.summary["model_sha256"], "the Kafka course must train the same model"
    per_std, per_kafka = t_standalone / args.rounds, t_kafka / args.rounds
    report("kafka_round", [
        {"mode": "standalone, embedded log (baseline)", "s/round": per_std, "ratio": 1.0},
        {"mode": "over Kafka, one broker", "s/round": per_kafka, "ratio": per_kafka / per_std},
    ], f"digits MLP, 10 participants, {args.rounds} rounds with evaluation every round; same model sha256 "
       "in both modes; set-up included in both; ratio = Kafka round time / standalone round time")


if __name__ == "__main__":
    main()
