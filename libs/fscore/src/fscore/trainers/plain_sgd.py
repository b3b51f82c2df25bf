"""SGD for local training without torch.optim's start-up cost (issue 19).

Every ``torch.optim.Optimizer.step`` imports ``torch._dynamo`` (torch's compiler), which costs about 2 s of a
course's start-up, more than the whole default course trains, and is paid again by every participant process.
Local training here never compiles, so :class:`PlainSGD` does ``torch.optim.SGD``'s CPU update itself, op for
op as torch's single-tensor path does it (weight decay, then momentum with no dampening, then the step), so
the model is bit for bit what ``torch.optim.SGD`` gives (tested). Adam, and Opacus's private optimizers,
which wrap a real ``torch.optim.Optimizer``, still use torch.optim.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class PlainSGD:
    """``torch.optim.SGD(params, lr, momentum, weight_decay)`` for dense CPU tensors: ``zero_grad`` and ``step``."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """The update, a few ``torch._foreach_*`` calls over all parameters: on the CPU each runs the very
        per-tensor op torch.optim's loop would (so the same bits), without one Python round trip per tensor."""
        held = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not held:
            return
        params = [self.params[i] for i in held]
        grads = [p.grad for p in params]
        if self.weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum != 0:
            buffers = [self.buffers[i] for i in held]
            if any(b is None for b in buffers):  # the first step: torch.optim starts each buffer at its gradient
                for k, i in enumerate(held):
                    if buffers[k] is None:
                        buffers[k] = self.buffers[i] = grads[k].detach().clone()
                    else:
                        buffers[k].mul_(self.momentum).add_(grads[k], alpha=1.0)
            else:
                torch._foreach_mul_(buffers, self.momentum)
                torch._foreach_add_(buffers, grads, alpha=1.0)
            grads = buffers
        torch._foreach_add_(params, grads, alpha=-self.lr)
