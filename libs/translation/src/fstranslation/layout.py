"""The agreed parameter layout of a cross-backend course (paper §3.5).

Participants agree only on the messages: each parameter has a canonical name, shape and dtype
(torch's conventions: a dense weight is [out, in], a convolution kernel is OIHW, C-contiguous).
Every backend's adapter encodes its model into this layout before sending and decodes from it
on receipt; :func:`check_layout` says precisely where a model does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fstranslation.errors import LayoutError


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str = "float32"


Layout = Mapping[str, TensorSpec]


_DTYPE_NAMES: dict[np.dtype, str] = {}


def layout_of(params: Mapping[str, np.ndarray]) -> dict[str, TensorSpec]:
    return {name: TensorSpec(tuple(a.shape), _dtype_name(a.dtype)) for name, a in params.items()}


def _dtype_name(dtype: np.dtype) -> str:
    """``str(dtype)``, remembered: numpy builds the string anew on every call, and every message checks it."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


def layout_differences(got: Layout, agreed: Layout) -> list[str]:
    """Every way layout ``got`` differs from ``agreed``: missing, extra, wrong shape, wrong dtype."""
    problems = [f"missing parameter `{name}` (the layout expects shape {spec.shape}, {spec.dtype})"
                for name, spec in agreed.items() if name not in got]
    problems += [f"extra parameter `{name}` with shape {spec.shape} (not in the agreed layout)"
                 for name, spec in got.items() if name not in agreed]
    for name, spec in agreed.items():
        if name not in got:
            continue
        mine = got[name]
        if mine.shape != spec.shape:
            problems.append(f"parameter `{name}` has shape {mine.shape}; the agreed layout says {spec.shape}")
        elif mine.dtype != spec.dtype:
            problems.append(f"parameter `{name}` is {mine.dtype}; the agreed layout says {spec.dtype}")
    return problems


def layout_problems(params: Mapping[str, np.ndarray], layout: Layout) -> list[str]:
    """Every way ``params`` differs from ``layout``."""
    return layout_differences(layout_of(params), layout)


def check_layout(params: Mapping[str, np.ndarray], layout: Layout, who: str) -> None:
    """Raise :class:`LayoutError` naming every mismatch, so a participant can be refused with a clear reason."""
    problems = layout_problems(params, layout)
    if problems:
        raise LayoutError(f"{who} does not match the agreed layout: " + "; ".join(problems))
