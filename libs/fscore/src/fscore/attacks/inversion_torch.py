"""DLG and iDLG gradient inversion in torch (Zhu et al. 2019; Zhao et al. 2020): the optimisation itself.

Given the gradient a participant's single-example SGD step implies, find an input (and, for DLG, a soft
label) whose gradient on the same model matches it: minimise the squared distance between the two
gradients with L-BFGS, as both papers do. iDLG first reads the label off the last layer's gradient: with
cross-entropy the gradient of the output bias is softmax(z) - onehot(y), negative at the true label only
(without a bias, the row of the last weight matrix with the smallest sum, whose inputs are ReLU outputs).

Imported only when a gradient-inversion attack runs: it is an attacker's tool, and the coordinator
service imports no framework otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn


def idlg_label(gradient: Mapping[str, np.ndarray]) -> int:
    """The label of the example behind ``gradient``, read off the last layer (iDLG)."""
    names = list(gradient)
    last_weight = [n for n in names if gradient[n].ndim == 2][-1]
    bias = last_weight[: -len("weight")] + "bias"
    if bias in gradient:
        return int(np.argmin(gradient[bias]))
    return int(np.argmin(gradient[last_weight].sum(axis=1)))


def reconstruct(model: nn.Module, gradient: Mapping[str, np.ndarray], input_shape: tuple[int, ...],
                num_classes: int, label: int | None, rng: np.random.Generator, iterations: int = 50
                ) -> tuple[np.ndarray, int]:
    """(input, label) whose gradient on ``model`` is closest to ``gradient``; ``label`` None: learn it (DLG)."""
    torch.set_num_threads(1)  # tiny problems: threads only add overhead (and nondeterminism)
    model = model.double()
    params = [p for _, p in model.named_parameters()]
    target = [torch.from_numpy(np.asarray(gradient[n], dtype=np.float64)) for n, _ in model.named_parameters()]
    dummy_x = torch.from_numpy(rng.normal(0.0, 1.0, (1, *input_shape))).requires_grad_(True)
    dummy_y = torch.from_numpy(rng.normal(0.0, 1.0, (1, num_classes))).requires_grad_(True)
    fixed = None if label is None else torch.tensor([label])
    variables = [dummy_x] if fixed is not None else [dummy_x, dummy_y]
    optimizer = torch.optim.LBFGS(variables, lr=1.0, max_iter=20, history_size=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = model(dummy_x)
        if fixed is not None:
            loss = nn.functional.cross_entropy(logits, fixed)
        else:
            loss = torch.sum(-torch.softmax(dummy_y, -1) * torch.log_softmax(logits, -1))
        grads = torch.autograd.grad(loss, params, create_graph=True)
        distance = sum(((g - t) ** 2).sum() for g, t in zip(grads, target, strict=True))
        distance.backward()
        return distance

    for _ in range(iterations):
        optimizer.step(closure)
    found = label if label is not None else int(dummy_y.detach().argmax())
    return dummy_x.detach().numpy().reshape(input_shape), found
