"""Parallel local training for simulation (``simulation.workers``, issue 19): a cohort's SGD in N processes.

When the coordinator sends one model to several participants, the runner hands their local training to N
forked trainer processes, each holding the same participants (forked after the course is built, so nothing is
rebuilt or re-imported). Models go both ways as wire tensors: each tensor's little-endian C-order bytes, as a
``Tensor`` record's ``data`` carries them, with names, dtypes and shapes in a JSON head; nothing is pickled.

Each participant's training is the exact path, run elsewhere: its trainer loads the model it was sent, draws its
batches from its own round stream and trains with the same thread count, so the model it reports is bit for bit
the one it would have trained in the runner's process, and the course is the same whatever N is. The
participant still handles its ``model_parameters`` message in the runner (:meth:`TorchTrainer.train` takes the
result, with the round stream as training left it), so messages, virtual time, snapshots and replay are those
of a course without workers.

Only participants whose training depends on nothing but the model they receive, their data and their round
stream can train elsewhere: the participants that may share one module (:mod:`fscore.simulation.sharing`).
A failure in a trainer process is logged and the participant trains in the runner instead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import structlog

from fscore.content import check_finite
from fscore.errors import RejectedMessage
from fscore.trainers.base import TrainResult
from fstranslation.layout import layout_differences, layout_of
from fstranslation.tensors import wire_array

log = structlog.get_logger("fscore.workers")


def refusal(config: Any, builder: Any) -> str | None:
    """Why ``simulation.workers`` cannot run this course (one line naming the key), or None."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "simulation.workers: trainer processes are forked, and this platform cannot fork"
    if config.simulation.threads > 1:
        return ("simulation.workers: trainer processes train on one thread each (torch's OpenMP pool does not "
                f"survive a fork), so simulation.threads must be 0 or 1, not {config.simulation.threads}")
    if config.simulation.batched:
        return "simulation.workers: not with simulation.batched (a batched cohort already trains as one computation)"
    if builder.unshareable_because is not None:
        return ("simulation.workers: participants keep state of their own, which another process would not see "
                f"({builder.unshareable_because})")
    for i in range(config.participants):
        if config.backend_for(i) != "torch":
            return f"simulation.workers: participant {i} trains with {config.backend_for(i)}, not torch"
        if config.trainer_for(i).factory is not None:
            return "simulation.workers: trainer.factory builds its own trainers"
    return None


@dataclass
class Trained:
    """A participant's local training done in a trainer process: its wire model, result and round stream."""

    params: Mapping[str, np.ndarray]
    result: TrainResult
    rng_state: dict[str, Any]

    def apply(self, trainer: Any) -> None:
        trainer.adopt(self.params, functools.partial(_generator, self.rng_state))


def _generator(state: dict[str, Any]) -> np.random.Generator:
    bits = getattr(np.random, state["bit_generator"])()
    bits.state = state
    return np.random.Generator(bits)


def _pack(tensors: Mapping[str, np.ndarray]) -> tuple[list[list[Any]], bytes]:
    """Wire tensors as (names, dtypes and shapes for the JSON head; their bytes, one after another)."""
    arrays = {name: wire_array(name, value)[0] for name, value in tensors.items()}
    return ([[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()],
            b"".join(memoryview(a).cast("B") for a in arrays.values() if a.nbytes))


def _unpack(specs: list[list[Any]], body: bytes) -> dict[str, np.ndarray]:
    """Read-only numpy views over ``body`` for what :func:`_pack` packed."""
    out, offset = {}, 0
    for name, dtype, shape in specs:
        kind = np.dtype(dtype)
        count = math.prod(shape)
        out[name] = np.frombuffer(body, kind, count, offset).reshape(shape)
        offset += count * kind.itemsize
    if offset != len(body):
        raise ValueError(f"{len(body) - offset} bytes left over after the tensors")
    return out


@dataclass
class _Pending:
    """What a participant's trainer holds until it trains: the round and model the training in another process
    started from (:meth:`TorchTrainer.train` checks both), and which dealing of the pool it waits for."""

    pool: TrainingPool
    address: str
    round: int
    start: Mapping[str, Any]
    dealing: int

    def done(self) -> Trained | None:
        return self.pool.take(self.address, self.dealing)


@dataclass
class _Child:
    process: Any
    connection: Connection
    waiting: set[str] = field(default_factory=set)


class TrainingPool:
    """N forked trainer processes and the results they owe; one per standalone course."""

    counted_as = "parallel_trainings"  # the summary's key

    def __init__(self, participants: Mapping[str, Any], workers: int, threads: int) -> None:
        self.participants = participants  # address -> Participant
        self.prepared = 0  # participant-rounds trained in another process, for the summary
        self.broken: str | None = None
        self._dealing = 0  # which model the results answer: a result is only ever taken for its own dealing
        self._results: dict[str, Trained | None] = {}
        self._pending: list[Any] = []  # trainers holding a _Pending of the current dealing
        self._children: list[_Child] = []
        context = multiprocessing.get_context("fork")
        try:
            for i in range(workers):
                ours, theirs = context.Pipe()
                others = [c.connection for c in self._children] + [ours]  # ends the child must not hold
                process = context.Process(target=_serve, args=(theirs, others, participants, threads), daemon=True,
                                          name=f"fscope-trainer-{i}")
                process.start()
                theirs.close()
                self._children.append(_Child(process, ours))
        except BaseException:
            self.close()
            raise

    def prepare(self, receivers: Sequence[str], round_: int, tensors: Mapping[str, np.ndarray]) -> None:
        """``tensors`` go to ``receivers`` for round ``round_``: their trainings start now, dealt in turn to the
        trainer processes in the order the runner will let the participants handle them."""
        if self.broken is not None:
            return
        try:
            self._deal(receivers, round_, tensors)
        except Exception as exc:  # noqa: BLE001 - runs inside the coordinator's handler: never its failure
            self._break(f"dealing round {round_}: {exc!r}")

    def _deal(self, receivers: Sequence[str], round_: int, tensors: Mapping[str, np.ndarray]) -> None:
        self._drain()
        self._results.clear()
        for trainer in self._pending:  # a result nobody took answers an older model: never taken now
            if isinstance(trainer.prepared, _Pending):
                trainer.prepared = None
        self._pending = []
        self._dealing += 1
        if self.broken is not None:  # a reply that could not be read: children may still owe others, so no more jobs
            return
        order = [a for a in sorted(receivers) if self._eligible(a)]
        if len(order) < 2 or not self._fits(order[0], tensors):
            return
        from fstranslation.adapters import get_adapter

        start = get_adapter("torch").from_wire(tensors)  # copies: what the trainings start from
        specs, payload = _pack(tensors)
        for i, child in enumerate(self._children):
            share = order[i::len(self._children)]
            if share:
                child.connection.send_bytes(json.dumps({"dealing": self._dealing, "round": round_,
                                                        "participants": share, "tensors": specs}).encode())
                child.connection.send_bytes(payload)
                child.waiting.update(share)
        for address in order:
            trainer = self.participants[address].trainer
            trainer.prepared = _Pending(self, address, round_, start, self._dealing)
            self._pending.append(trainer)

    def _eligible(self, address: str) -> bool:
        worker = self.participants.get(address)
        return worker is not None and not worker.finished and hasattr(worker.trainer, "prepared")

    def _fits(self, address: str, tensors: Mapping[str, np.ndarray]) -> bool:
        """Whether the model fits the participants (layout, finite values): one that does not is refused by each
        participant when it handles it, and never reaches torch in a trainer process either."""
        if layout_differences(layout_of(tensors), self.participants[address].layout):
            return False
        try:
            check_finite("the model", tensors)
        except RejectedMessage:
            return False
        return True

    def take(self, address: str, dealing: int) -> Trained | None:
        """The training ``address`` was dealt in ``dealing`` (waiting for it), or None: train in this process."""
        if dealing != self._dealing:
            return None
        while address not in self._results and self.broken is None:
            child = next((c for c in self._children if address in c.waiting), None)
            if child is None:
                break
            self._receive(child)
        trained = self._results.pop(address, None)
        if trained is not None:
            self.prepared += 1
        return trained

    def _receive(self, child: _Child) -> None:
        """One reply from ``child``; a child that stopped, or a reply that cannot be read, breaks the pool."""
        try:
            # waits on the process too: a child that dies is noticed, whoever else holds its pipe
            ready = multiprocessing.connection.wait([child.connection, child.process.sentinel])
            if child.connection not in ready and not child.connection.poll():
                raise EOFError("the process ended")
            head = json.loads(child.connection.recv_bytes())
            body = child.connection.recv_bytes() if "error" not in head else b""
            address = head["address"]
            trained = None if "error" in head else Trained(
                _unpack(head["tensors"], body),
                TrainResult(head["num_samples"], head["metrics"], head["samples_processed"]), head["rng"])
        except Exception as exc:  # noqa: BLE001 - EOF, a broken pipe or a garbled reply: nothing more is trusted
            child.process.join(timeout=1)
            self._break(f"{child.process.name} (exit code {child.process.exitcode}): {exc!r}")
            return
        child.waiting.discard(address)
        if trained is None:
            log.warning("parallel_training_failed", participant=address, round=head.get("round"), error=head["error"])
        self._results[address] = trained

    def _drain(self) -> None:
        for child in self._children:
            while child.waiting and self.broken is None:
                self._receive(child)

    def _break(self, why: str) -> None:
        self.broken = why
        self._results.clear()
        log.error("trainer_process_lost", error=why, note="participants train in the runner's process from here")

    def close(self) -> None:
        """Stop the trainer processes: told to stop, their pipes closed (a child busy with a result nobody takes
        gets a broken pipe and leaves), then joined, or terminated if they do not leave."""
        for child in self._children:
            with contextlib.suppress(OSError):
                child.connection.send_bytes(b'{"stop": true}')
            child.connection.close()
        for child in self._children:
            child.process.join(timeout=5)
            if child.process.is_alive():
                child.process.terminate()
                child.process.join()


def _serve(connection: Connection, others: Sequence[Connection], participants: Mapping[str, Any],
           threads: int) -> None:
    """A trainer process: trains the participants it is dealt and sends each one's model back, until told to stop."""
    import torch

    for other in others:  # the runner's ends: held here, they would keep a pipe open after the runner is gone
        other.close()
    torch.set_num_threads(threads)
    code = 0
    try:
        while True:
            job = json.loads(connection.recv_bytes())
            if job.get("stop"):
                break
            body = connection.recv_bytes()
            try:
                tensors = _unpack(job["tensors"], body)
            except Exception as exc:  # noqa: BLE001 - every participant of the job is told, and trains in the runner
                tensors, why = None, repr(exc)
            for address in job["participants"]:
                worker = participants.get(address)
                if tensors is None or worker is None:
                    _reply_failure(connection, address, job["round"], why if tensors is None else "not a participant")
                    continue
                _train_one(connection, worker, address, job["round"], tensors)
    except (EOFError, OSError, KeyboardInterrupt):
        pass  # the runner is gone
    except BaseException:  # noqa: BLE001 - said on stderr; the runner sees the exit code and trains itself
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # never the runner's exit handlers or buffered files: they are the runner's


def _train_one(connection: Connection, worker: Any, address: str, round_: int,
               tensors: Mapping[str, np.ndarray]) -> None:
    """The participant's own training (Participant.train_and_report's), replied as JSON and wire tensors."""
    trainer = worker.trainer
    try:
        trainer.set_parameters(tensors)
        trainer.start_round(round_)
        result = trainer.train(worker.data.train)
        specs, body = _pack(trainer.get_parameters())
        head = {"address": address, "round": round_, "tensors": specs, "num_samples": result.num_samples,
                "metrics": {k: float(v) for k, v in result.metrics.items()},
                "samples_processed": result.samples_processed, "rng": trainer.rng.bit_generator.state}
    except Exception as exc:  # noqa: BLE001 - reported to the runner, which trains this participant itself
        _reply_failure(connection, address, round_, repr(exc))
        return
    connection.send_bytes(json.dumps(head).encode())
    connection.send_bytes(body)


def _reply_failure(connection: Connection, address: str, round_: int, why: str) -> None:
    connection.send_bytes(json.dumps({"address": address, "round": round_, "error": why}).encode())
