"""Batched local training for simulation (``simulation.batched``, issue 19): a cohort trains as one computation.

When the coordinator sends one model to many participants of this process, their local SGD runs together, over
parameters stacked along a participant axis (the zoo model's ``batched_forward``: batched matrix products, one
autograd pass for the whole cohort). Each participant keeps its own examples, its own
seeded batch order (the very batches :func:`fscore.trainers.base.batches` deals it) and its own momentum
buffer. The stack is ordered by number of steps, longest first, so a step trains only the participants still
stepping (a prefix of the stack, updated in place) and a finished one's parameters and buffer stop moving.
Short batches are masked: a padded example weighs nothing, and the per-sample losses are averaged over the
real examples, so each participant's gradient is the one its own mean loss gives. A participant's trained
parameters are read-only views of its slice of the stack, handed out as its update without another copy.

Nothing else changes: each participant still handles the ``model_parameters`` message, trains (taking its
prepared result, :meth:`TorchTrainer.train`), and sends its own ``model_update``; async strategies, virtual
time and replay see the same messages. The maths is the exact path's, summed in another order, so models
agree to float rounding, not bit for bit (tested within tolerance against the default path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
import torch

from fscore.trainers.base import TrainResult, batches, train_result
from fscore.trainers.torch_trainer import scalar_backward

log = structlog.get_logger("fscore.batched")


@dataclass
class Prepared:
    """A participant's local training for one round, done ahead with its cohort."""

    round: int
    start: dict[str, torch.Tensor]  # the model it trained from: taken only if the participant received this one
    trained: dict[str, np.ndarray]  # read-only views of its slice of the cohort's stack: its reply, as it is
    result: TrainResult
    rng: np.random.Generator  # its round stream after drawing its batches, as its own training leaves it

    def done(self) -> Prepared:
        return self

    def apply(self, trainer: Any) -> None:
        trainer.adopt(self.trained, lambda: self.rng)


def _read_only(stacks: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Read-only numpy views of the cohort's trained stacks: each participant's parameters are its slices of
    them, handed out as its update without another copy (:meth:`TorchTrainer.adopt`), and nothing may write
    into the stack behind them."""
    out = {}
    for name, tensor in stacks.items():
        view = tensor.numpy()
        view.flags.writeable = False
        out[name] = view
    return out


def refusal(config: Any, builder: Any) -> str | None:
    """Why ``simulation.batched`` cannot run this course (one line naming the key), or None."""
    if builder.unshareable_because is not None:
        return f"simulation.batched: participants cannot share one model ({builder.unshareable_because})"
    for i in range(config.participants):
        t = config.trainer_for(i)
        if config.backend_for(i) != "torch":
            return f"simulation.batched: participant {i} trains with {config.backend_for(i)}, not torch"
        if t.optimizer != "sgd":
            return f"simulation.batched: local optimizer {t.optimizer!r} is not batched (only sgd)"
        if t.proximal_mu:
            return "simulation.batched: trainer.proximal_mu (FedProx) is not batched"
        if t.factory is not None:
            return "simulation.batched: trainer.factory builds its own trainers"
    model = builder.backend_model("torch")
    if any(True for _ in model.buffers()):
        return (f"simulation.batched: model {config.model.name!r} has buffers (batch norm), which batched training "
                "does not carry")
    if not hasattr(type(model), "batched_forward"):
        return (f"simulation.batched: model {config.model.name!r} has no batched_forward (the zoo's logreg and mlp "
                "have one)")
    return None


class CohortTraining:
    """Trains a cohort's local rounds in one vectorized run and leaves each participant its result."""

    counted_as = "batched_trainings"  # the summary's key

    def __init__(self, participants: Mapping[str, Any]) -> None:
        self.participants = participants  # address -> Participant
        self.prepared = 0  # participant-rounds trained in batch, for the summary
        self._data: tuple[tuple[str, ...], torch.Tensor, torch.Tensor] | None = None

    def prepare(self, receivers: Sequence[str], round_: int, tensors: Mapping[str, np.ndarray]) -> None:
        """``tensors`` go to ``receivers`` for round ``round_``: train them all now, grouped by module and config."""
        groups: dict[tuple[int, str], list[Any]] = {}
        for address in receivers:
            worker = self.participants.get(address)
            trainer = getattr(worker, "trainer", None)
            if worker is None or getattr(trainer, "prepared", False) is False or worker.finished:
                continue
            groups.setdefault((id(trainer.model), trainer.cfg.model_dump_json()), []).append(worker)
        for group in groups.values():
            if len(group) > 1:
                try:
                    self._train(group, round_, tensors)
                except Exception as exc:  # noqa: BLE001 - runs inside the coordinator's handler: never its failure
                    # nothing was left on the trainers: each participant trains on its own, exactly, when its turn
                    # comes, and fails there (as a record of its own) if training itself fails
                    log.warning("batched_training_failed", round=round_, participants=len(group), error=repr(exc))

    def _train(self, group: list[Any], round_: int, tensors: Mapping[str, np.ndarray]) -> None:
        first = group[0].trainer
        model, cfg = first.model, first.cfg
        first.set_parameters(tensors)
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        names = list(start)
        # every participant's batches, drawn from its own round stream exactly as its trainer would draw them
        streams = [np.random.default_rng([*w.trainer.seed, round_]) for w in group]
        dealt = [list(batches(len(w.data.train), cfg, rng)) for w, rng in zip(group, streams, strict=True)]
        # longest training first: the participants still stepping at step t are then the first ones of the
        # stack, and each step trains that prefix alone, in place, with nothing to mask but short batches
        order = sorted(range(len(group)), key=lambda j: -len(dealt[j]))
        group, streams, dealt = [group[j] for j in order], [streams[j] for j in order], [dealt[j] for j in order]
        k, steps = len(group), len(dealt[0])
        stepping = [sum(len(d) > t for d in dealt) for t in range(steps)]
        width = max((len(b) for d in dealt for b in d), default=1)
        sizes = [len(w.data.train) for w in group]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        x_all, y_all = self._cohort_data(group)
        pad = np.minimum(offsets, max(len(y_all) - 1, 0))  # a padded slot holds the participant's own first example
        index = np.ascontiguousarray(np.broadcast_to(pad[None, :, None], (steps, k, width)))
        mask = np.zeros((steps, k, width), np.float32)
        for j, d in enumerate(dealt):
            for t, b in enumerate(d):
                index[t, j, :len(b)] = offsets[j] + b
                mask[t, j, :len(b)] = 1.0
        index_t, mask_t = torch.from_numpy(index), torch.from_numpy(mask)

        step_grad = _stacked_gradients(model)
        params = {n: start[n].unsqueeze(0).repeat(k, *([1] * start[n].dim())) for n in names}
        momentum: dict[str, torch.Tensor] = {}
        # accumulated in float64, as the exact path adds each batch's float32 figures to Python floats
        total_loss, total_square = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
        seen = torch.zeros(k, dtype=torch.int64)
        model.train()
        for t in range(steps):
            a = stepping[t]
            mb, at = mask_t[t, :a], index_t[t, :a]
            count = mb.sum(1)
            xb = x_all[at].reshape(a, width, *x_all.shape[1:])
            grads, losses = step_grad({n: params[n][:a] for n in names}, xb, y_all[at], mb)
            with torch.no_grad():
                total_loss[:a] += ((losses * mb).sum(1) / count).double() * count.double()
                total_square[:a] += (losses.square() * mb).sum(1).double()
                seen[:a] += count.long()
                for n in names:
                    p, g = params[n][:a], grads[n]
                    if cfg.weight_decay != 0:
                        g = g.add(p, alpha=cfg.weight_decay)
                    if cfg.momentum != 0:
                        if n not in momentum:  # the first step: torch's SGD starts the buffer at the gradient
                            g = momentum[n] = g.clone()
                        else:
                            g = momentum[n][:a].mul_(cfg.momentum).add_(g)
                    p.add_(g, alpha=-cfg.lr)
        seen_, loss_, square_ = seen.tolist(), total_loss.tolist(), total_square.tolist()
        trained = _read_only(params)
        for j, worker in enumerate(group):
            result = train_result(cfg, sizes[j], len(dealt[j]), seen_[j], loss_[j], square_[j])
            worker.trainer.prepared = Prepared(round_, start, {n: trained[n][j] for n in names}, result, streams[j])
        self.prepared += k

    def _cohort_data(self, group: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The cohort's examples end to end; kept while the same cohort comes back (every round, at full
        participation), since participants' data does not change during a course."""
        key = tuple(w.address for w in group)
        if self._data is None or self._data[0] != key:
            self._data = (key, torch.from_numpy(np.concatenate([w.data.train.x for w in group])),
                          torch.from_numpy(np.concatenate([w.data.train.y for w in group])))
        return self._data[1], self._data[2]


Gradients = Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor],
                     tuple[dict[str, torch.Tensor], torch.Tensor]]


def _stacked_gradients(model: torch.nn.Module) -> Gradients:
    """(stacked params, x [K, B, ...], y [K, B], mask [K, B]) -> (each participant's gradient of its own mean loss,
    stacked; per-example losses [K, B]).

    The model's ``batched_forward`` runs the K models as batched matrix products, and one backward pass of the
    sum of the K mean losses gives each its own gradient (their parameters are disjoint slices of the stack).
    This is plain autograd: ``torch.func.vmap`` would import torch's compiler (about 2 s) on its first call.
    """
    forward = type(model).batched_forward  # type: ignore[attr-defined]

    def by_products(params: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
                    mb: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        losses = torch.nn.functional.cross_entropy(forward(leaves, xb).flatten(0, 1), yb.flatten(), reduction="none")
        losses = losses.reshape(yb.shape)
        scalar_backward(((losses * mb).sum(1) / mb.sum(1).clamp(min=1.0)).sum())
        return {n: p.grad for n, p in leaves.items()}, losses.detach()

    return by_products
