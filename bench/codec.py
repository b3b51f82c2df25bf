"""(a) Encoding and decoding a 100 MB model, against a plain memory copy of the same bytes.

Baseline: ``bytes(memoryview(buffer))`` — one allocation and one copy of 100 MB, what any
encoder must do at least once. fscope encodes a whole message (envelope + ModelUpdate payload
with 10 float32 tensors) and decodes it back to numpy arrays. Target: >= 0.5 of memcpy speed.

    python bench/codec.py [--mb 100]
"""

from __future__ import annotations

import argparse

import numpy as np
from harness import median_seconds, report

from fstranslation import Header, WireCodec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    n_tensors = 10
    per = args.mb * 1_000_000 // 4 // n_tensors
    rng = np.random.default_rng(0)
    tensors = {f"layer{i}.weight": rng.standard_normal(per, dtype=np.float32) for i in range(n_tensors)}
    flat = np.concatenate(list(tensors.values()))
    nbytes = flat.nbytes
    codec = WireCodec()
    header = Header("m", "bench", "model_update", "p", ("coordinator",), 1, 0.0)
    payload = {"num_samples": 1, "base_round": 0, "train_metrics": {}, "tensors": tensors}
    encoded = codec.encode(header, payload)
    decoded = codec.decode(encoded)[1]["tensors"]
    assert all(np.array_equal(decoded[k], v) for k, v in tensors.items())

    t_copy = median_seconds(lambda: bytes(memoryview(flat)))
    t_enc = median_seconds(lambda: codec.encode(header, payload))
    t_dec = median_seconds(lambda: codec.decode(encoded))
    gb = nbytes / 1e9
    rows = [
        {"operation": "memcpy (baseline)", "seconds": t_copy, "GB/s": gb / t_copy, "ratio_to_memcpy": 1.0},
        {"operation": "fscope encode", "seconds": t_enc, "GB/s": gb / t_enc, "ratio_to_memcpy": t_copy / t_enc},
        {"operation": "fscope decode", "seconds": t_dec, "GB/s": gb / t_dec, "ratio_to_memcpy": t_copy / t_dec},
    ]
    report("codec", rows, f"{nbytes / 1e6:.0f} MB model in {n_tensors} float32 tensors; median of 5 runs")


if __name__ == "__main__":
    main()
