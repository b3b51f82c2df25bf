"""(d) The cost of signed messages (issue 16): Ed25519 per message, and a whole course signed and not.

Baseline, side by side in the same run: the codec round-trip of the same message (encode, then
decode), the work every message costs anyway. Signing adds one Ed25519 signature by the sender
and one verification by each receiver, over the SHA-256 of the encoded bytes (so it grows with
the model at the speed of SHA-256).

The course rows run the same no-op-trainer course with ``trust.signing`` off and on, alternated
(A B A B ...), and report the median wall time and the added microseconds per message handled.

    python bench/signing.py [--participants 100] [--rounds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from harness import median_seconds, quiet_logs, report

from fscore.config import config_from_dict
from fscore.simulation.runner import run_standalone
from fscore.trainers.base import NoOpTrainer
from fscore.transport.base import Record
from fscore.trust import Signer, Verifier, derived_key
from fscore.trust.keys import KeyRing
from fstranslation import Header, WireCodec

MODELS = {"logreg on digits (650 parameters)": [(10, 64), (10,)],
          "MLP(64) on digits (4,810)": [(64, 64), (64,), (10, 64), (10,)],
          "1 M parameters (4 MB)": [(1000, 1000)]}


def per_message(shapes: list[tuple[int, ...]], n: int) -> dict:
    codec = WireCodec()
    tensors = {f"t{i}": np.random.default_rng(i).standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    header = Header("p0/0/1", "c", "model_update", "p0", ("coordinator",), 0, 0.0)
    payload = {"num_samples": 5, "base_round": 0, "train_metrics": {}, "tensors": tensors}
    value = codec.encode(header, payload)
    signer = Signer(derived_key(0, "p0"))
    verifier = Verifier(KeyRing({"p0": signer.public_key}))
    record = Record("t", 0, 0, b"p0", value, signer.headers(value))

    def roundtrip() -> None:
        for _ in range(n):
            codec.decode(codec.encode(header, payload))

    def sign() -> None:
        for _ in range(n):
            signer.headers(value)

    def verify() -> None:
        for _ in range(n):
            verifier.check(record, header)

    base, s, v = (median_seconds(f, repeat=5) / n for f in (roundtrip, sign, verify))
    return {"bytes": len(value), "codec_roundtrip_us": base * 1e6, "sign_us": s * 1e6, "verify_us": v * 1e6,
            "ratio_to_codec": (s + v) / base}


def course(participants: int, rounds: int, signing: bool) -> dict:
    return {"course_id": "signing", "participants": participants, "rounds": rounds, "seed": 0,
            "data": {"dataset": "synthetic", "heldout_fraction": 0.1, "test_fraction": 0.2,
                     "min_samples_per_participant": 2},
            "model": {"name": "logreg"}, "simulation": {"progress": False}, "trust": {"signing": signing}}


def timed_course(participants: int, rounds: int, signing: bool) -> tuple[float, int, str]:
    config = config_from_dict(course(participants, rounds, signing))
    t = time.perf_counter()
    result = run_standalone(config, progress=False, trainer=NoOpTrainer)
    wall = time.perf_counter() - t
    handled = len(result.coordinator._seen) + sum(len(p._seen) for p in result.participants)
    return wall, handled, result.summary["model_sha256"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    rows = [{"what": name, **per_message(shapes, 200 if "1 M" not in name else 10)} for name, shapes in MODELS.items()]
    report("signing_per_message", rows, "sign + verify (Ed25519 over the SHA-256 of the encoded record) against the "
                                        "codec round-trip of the same message; ratio_to_codec = (sign+verify) / codec")

    timed_course(10, 2, True)  # warm-up: imports and caches
    walls: dict[bool, list[float]] = {False: [], True: []}
    handled, shas = 0, set()
    for _ in range(args.repeat):
        for signing in (False, True):  # alternated, so drift hits both alike
            wall, handled, sha = timed_course(args.participants, args.rounds, signing)
            walls[signing].append(wall)
            shas.add(sha)
    assert len(shas) == 1, "signing changed the model"
    off, on = statistics.median(walls[False]), statistics.median(walls[True])
    report("signing_course", [
        {"run": f"{args.participants} participants x {args.rounds} rounds, NoOpTrainer, logreg", "signing": s,
         "messages": handled, "median_wall_s": w, "ratio_to_unsigned": w / off,
         "added_us_per_message": (w - off) / handled * 1e6}
        for s, w in (("off (baseline)", off), ("on", on))],
        f"median of {args.repeat} alternated runs each; same model sha256 both ways")


if __name__ == "__main__":
    main()
