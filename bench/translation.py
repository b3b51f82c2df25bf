"""(e) Translating a model between TensorFlow/Keras and the agreed layout, against memcpy in the same run.

The Keras adapter renames and transposes (Dense [in, out] -> [out, in], Conv2D HWIO -> OIHW),
which costs a strided copy of every kernel. Baseline: ``np.copyto`` of the same number of bytes,
contiguous. Models: a ConvNet2 sized for FEMNIST (28x28 inputs, 62 classes, a 2048-unit dense
layer: 6.6 M parameters, 26 MB) and a 100 MB model (ten dense kernels of 2.5 M float32 each).
Both directions: Keras -> agreed (encode, before sending) and agreed -> Keras (decode, on receipt).

    python bench/translation.py
"""

from __future__ import annotations

import numpy as np
from harness import median_seconds, report

from fscore.models.zoo import ModelSpec, init_params, zoo_layout
from fstranslation.adapters import get_adapter

keras = get_adapter("tensorflow")


def models() -> dict[str, dict[str, np.ndarray]]:
    convnet2 = init_params(zoo_layout(ModelSpec("convnet2", (1, 28, 28), 62, hidden=2048)), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    big = {f"layer{i}.weight": rng.standard_normal((2000, 1250), dtype=np.float32) for i in range(10)}
    big |= {f"layer{i}.bias": np.zeros(2000, np.float32) for i in range(10)}
    return {"ConvNet2 (FEMNIST size)": convnet2, "100 MB dense": big}


def main() -> None:
    rows = []
    for label, agreed in models().items():
        as_keras = keras.from_wire(agreed)
        back = keras.to_wire(as_keras)
        assert all(back[k].tobytes() == v.tobytes() for k, v in agreed.items())  # bit-exact round trip
        nbytes = sum(a.nbytes for a in agreed.values())
        flat = np.concatenate([a.reshape(-1) for a in agreed.values()])
        target = np.empty_like(flat)
        t_copy = median_seconds(lambda: np.copyto(target, flat))  # noqa: B023
        for direction, fn in (("keras -> agreed", lambda: keras.to_wire(as_keras)),  # noqa: B023
                              ("agreed -> keras", lambda: keras.from_wire(agreed))):  # noqa: B023
            t = median_seconds(fn)
            rows.append({"model": label, "MB": round(nbytes / 1e6, 1), "direction": direction,
                         "memcpy_GB_s": round(nbytes / t_copy / 1e9, 2), "adapter_GB_s": round(nbytes / t / 1e9, 2),
                         "ratio_to_memcpy": round(t_copy / t, 2)})
    report("translation", rows, notes="throughput of the Keras adapter (rename + transpose copy) against np.copyto "
                                      "of the same bytes in the same run; ratio = memcpy time / adapter time")


if __name__ == "__main__":
    main()
