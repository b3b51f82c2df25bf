"""Paillier homomorphic encryption for a cross-silo course (paper §4.1), as a plug-in pair (``phe``).

The participants share a Paillier key pair; the coordinator has neither key, only the public modulus
that comes with each encrypted update. Each round a participant encrypts ``num_samples x its model``
in fixed point, packed many values to a ciphertext (BatchCrypt-style slots wide enough that the sum of
every participant's slot cannot carry into the next), and its ``model_update`` carries zeros. The
coordinator multiplies the ciphertexts (which adds the plaintexts) and broadcasts the encrypted sum
with the total sample count (``he_aggregate``); each participant decrypts it into the next global
model, which replaces the coordinator's stand-in in every later ``model_parameters``, ``evaluate``
and ``finish``. So the coordinator never learns an update or a model after the first: it keeps the
initial one, sends it as a stand-in, and has no held-out evaluation (participants' metrics only).

The key comes from ``key_file`` (JSON ``{"p": ..., "q": ...}``, written by :func:`write_key`), or in
standalone simulation from the course seed (anyone who knows the seed knows it). Encryption draws
its randomness from the operating system; the decrypted sums are exact integers, so models are the
same in every run and the log replays.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from phe import paillier
from phe.util import is_prime
from pydantic import BaseModel, ConfigDict, Field

from fscore.aggregators.base import Aggregator, ClientUpdate, Params
from fscore.conditions import Condition
from fscore.errors import RejectedMessage
from fscore.events import on_condition, on_message
from fscore.message import COORDINATOR, EVALUATE, FINISH, MODEL_PARAMETERS, MODEL_UPDATE, PARTICIPANT, Message
from fscore.plugins import MessageType, Plugin, PluginContext, replace_payload
from fscore.secagg.plugin import _check_course, _flat, _record, _unflat, gate_all_received
from fscore.worker import BaseWorker

HE_UPDATE, HE_AGGREGATE = "he_update", "he_aggregate"
_MODELS = (MODEL_PARAMETERS, EVALUATE, FINISH)


class PaillierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_bits: int = Field(2048, ge=512, le=4096, description="the modulus' bits (2048 or more outside tests)")
    key_file: Path | None = Field(None, description="the participants' shared key (JSON p, q); unset: from the "
                                                    "course seed, for simulation only")
    bound: float = Field(1e5, gt=0, description="the largest |num_samples x parameter|")
    precision: int = Field(16, ge=0, le=40, description="fractional bits of the fixed-point encoding")


def write_key(path: Path, bits: int = 2048) -> None:
    """A fresh key pair for a course's participants (keep the file among them)."""
    _, private = paillier.generate_paillier_keypair(n_length=bits)
    path.write_text(json.dumps({"p": str(private.p), "q": str(private.q)}))
    path.chmod(0o600)


@functools.lru_cache(maxsize=8)
def _seeded_primes(seed: int, bits: int) -> tuple[int, int]:
    """The simulation's key from the seed; every participant of a process derives the same, so once."""
    rng = random.Random(f"fscope-paillier/{seed}")
    return _seeded_prime(rng, bits // 2), _seeded_prime(rng, bits // 2)


def _seeded_prime(rng: random.Random, bits: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if is_prime(candidate):
            return candidate


class Slots:
    """Fixed-point values packed into plaintexts: ``width`` bits a slot, ``per`` slots a plaintext."""

    def __init__(self, bound: float, precision: int, participants: int, modulus_bits: int) -> None:
        self.scale = 2 ** precision
        self.bits = math.ceil(math.log2(bound * self.scale)) + 1  # one value, offset to be non-negative
        self.width = self.bits + math.ceil(math.log2(participants + 1))  # a sum of every participant's
        self.per = (modulus_bits - 2) // self.width
        if self.per < 1:
            raise ValueError(f"precision: a slot of {self.width} bits does not fit a {modulus_bits}-bit modulus")
        self.offset = 1 << (self.bits - 1)

    def pack(self, values: np.ndarray) -> list[int]:
        q = np.clip(np.rint(values * self.scale), -(self.offset - 1), self.offset - 1).astype(np.int64)
        out = []
        for start in range(0, len(q), self.per):
            m = 0
            for i, v in enumerate(q[start:start + self.per].tolist()):
                m |= (v + self.offset) << (self.width * i)
            out.append(m)
        return out

    def unpack(self, plaintexts: Sequence[int], size: int, count: int) -> np.ndarray:
        """The sums of ``count`` packed vectors of ``size`` values."""
        mask, values = (1 << self.width) - 1, []
        for m in plaintexts:
            values += [((m >> (self.width * i)) & mask) - count * self.offset for i in range(self.per)]
        return np.asarray(values[:size], np.float64) / self.scale


class PaillierAggregation(Plugin):
    snapshot_refusal = "its Paillier keys are not snapshot state yet"
    name = "paillier"
    roles = frozenset({COORDINATOR, PARTICIPANT})
    Options = PaillierOptions

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        config, o = context.config, self.options
        participants = config.participants if config is not None else 2
        if config is not None:
            _check_course(config, "Paillier aggregation")
        self.slots = Slots(o.bound, o.precision, participants, o.key_bits)
        self.private: paillier.PaillierPrivateKey | None = None
        if context.role == PARTICIPANT:
            self.private = self._key(context.seed)
        self.rounds: list[dict[str, Any]] = []

    def _key(self, seed: int) -> paillier.PaillierPrivateKey:
        o = self.options
        if o.key_file is not None:
            try:
                data = json.loads(o.key_file.read_text())
                p, q = int(data["p"]), int(data["q"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"key_file: {o.key_file} is not a Paillier key file ({exc})") from None
        else:
            p, q = _seeded_primes(seed, o.key_bits)
        return paillier.PaillierPrivateKey(paillier.PaillierPublicKey(p * q), p, q)

    @classmethod
    def message_types(cls) -> Sequence[MessageType]:
        ciphertexts = {"type": "array", "items": "bytes"}
        update = [{"name": "modulus", "type": "bytes"}, {"name": "ciphertexts", "type": ciphertexts}]
        return (MessageType(HE_UPDATE, COORDINATOR, _record("HEUpdate", update)),
                MessageType(HE_AGGREGATE, PARTICIPANT, _record("HEAggregate", [
                    {"name": "ciphertexts", "type": ciphertexts}, {"name": "total_samples", "type": "long"},
                    {"name": "count", "type": "long"}])))

    def install(self, worker: BaseWorker) -> None:
        self.worker = worker
        if worker.role == PARTICIPANT:
            self.inputs: dict[int, np.ndarray] = {}
            self.models: dict[int, dict[str, np.ndarray]] = {}
            worker.extend(on_message(MODEL_PARAMETERS), self.encrypt, emits=[HE_UPDATE])
            worker.register(on_message(HE_AGGREGATE), self.decrypt)
            return
        worker.evaluator = None  # type: ignore[attr-defined]  # it holds no model to evaluate
        worker.aggregator = _Blind()  # type: ignore[attr-defined]
        self.updates: dict[int, dict[str, Mapping[str, Any]]] = {}
        self.summed: set[int] = set()
        gate_all_received(worker, lambda w: not w.state.buffer.updates or w.state.round in self.summed, {HE_UPDATE})
        worker.add_condition(Condition.of("he_sum_due", self.sum_due, {HE_UPDATE, MODEL_UPDATE}))
        worker.register(on_condition("he_sum_due"), self.send_sum, emits=[HE_AGGREGATE])
        worker.register(on_message(HE_UPDATE), self.collect)

    # -- participants ----------------------------------------------------------------------

    def incoming(self, worker: BaseWorker, message: Message) -> Message:
        if worker.role == PARTICIPANT and message.type in _MODELS and message.round in self.models:
            return replace_payload(message, tensors=self.models[message.round])
        return message

    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        if worker.role != PARTICIPANT or message.type != MODEL_UPDATE:
            return message
        trained = message.payload["tensors"]
        self.inputs[message.round] = message.payload["num_samples"] * _flat(trained)
        return replace_payload(message, tensors={k: np.zeros_like(v) for k, v in trained.items()})

    def encrypt(self, msg: Message) -> None:
        values = self.inputs.pop(msg.round, None)
        if values is None:
            return
        public = self.private.public_key  # type: ignore[union-attr]
        ciphertexts = [public.raw_encrypt(m) for m in self.slots.pack(values)]  # already reduced mod n^2
        self.worker.send(HE_UPDATE, [COORDINATOR], msg.round, {
            "modulus": _bytes(public.n), "ciphertexts": [_bytes(c) for c in ciphertexts]})

    def decrypt(self, msg: Message) -> None:
        """The next global model: the decrypted sum over the total samples (it replaces the coordinator's stand-in)."""
        private = self.private
        assert private is not None
        sums = [private.raw_decrypt(int.from_bytes(c, "big")) for c in msg.payload["ciphertexts"]]
        template = self.worker.trainer.get_parameters()  # type: ignore[attr-defined]  # names, shapes, dtypes
        flat = self.slots.unpack(sums, sum(v.size for v in template.values()), msg.payload["count"])
        self.models = {msg.round + 1: _unflat(flat / msg.payload["total_samples"], template)}

    # -- the coordinator -------------------------------------------------------------------

    def collect(self, msg: Message) -> None:
        s = self.worker.state  # type: ignore[attr-defined]
        if msg.round != s.round or s.phase != "training":
            raise RejectedMessage(f"{msg.type} from {msg.sender!r} is for round {msg.round}, but the course is at "
                                  f"round {s.round} ({s.phase})")
        got = self.updates.setdefault(msg.round, {})
        if msg.sender in got:
            raise RejectedMessage(f"a second {msg.type} from {msg.sender!r} in round {msg.round}")
        moduli = {bytes(u["modulus"]) for u in got.values()} | {bytes(msg.payload["modulus"])}
        if len(moduli) > 1:
            raise RejectedMessage(f"{msg.type} from {msg.sender!r} is encrypted under another key than the others")
        got[msg.sender] = msg.payload
        self.updates = {msg.round: got}

    def sum_due(self, worker: Any) -> bool:
        s = worker.state
        if s.phase != "training" or s.requests.busy or not s.buffer.updates or s.round in self.summed:
            return False
        got = self.updates.get(s.round, {})
        return all(u.sender in got for u in s.buffer.updates)

    def send_sum(self, _: Message | None = None) -> None:
        s = self.worker.state  # type: ignore[attr-defined]
        senders = sorted({u.sender for u in s.buffer.updates})
        got = self.updates[s.round]
        n = int.from_bytes(got[senders[0]]["modulus"], "big")
        n_squared = n * n
        lengths = {len(got[a]["ciphertexts"]) for a in senders}
        if len(lengths) != 1:
            raise RejectedMessage(f"round {s.round}'s encrypted updates have different lengths: {sorted(lengths)}")
        total = [1] * lengths.pop()
        for a in senders:
            total = [t * int.from_bytes(c, "big") % n_squared for t, c in zip(total, got[a]["ciphertexts"],
                                                                               strict=True)]
        self.summed = {s.round}
        samples = sum(u.num_samples for u in s.buffer.updates)
        self.rounds.append({"round": s.round, "senders": len(senders), "ciphertexts": len(total)})
        self.worker.send(HE_AGGREGATE, list(s.membership.participants), s.round,
                         {"ciphertexts": [_bytes(t) for t in total], "total_samples": samples, "count": len(senders)})

    def summary(self) -> dict[str, Any]:
        return {"rounds": self.rounds} if self.rounds else {}


def _bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


class _Blind(Aggregator):
    """The coordinator's aggregator under Paillier: it cannot see the sum, so its model stays what it was."""

    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in global_params.items()}
