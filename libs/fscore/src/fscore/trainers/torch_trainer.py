"""TorchTrainer: local SGD/Adam on a torch model, with seeded shuffling (no global RNG)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fscore.config import TrainerConfig
from fscore.data.dataset import Dataset
from fscore.trainers.base import EvalResult, Trainer, TrainResult, batches, train_result
from fscore.trainers.plain_sgd import PlainSGD
from fstranslation.adapters import BackendAdapter, get_adapter

_adapter = get_adapter("torch")

#: what a privatizer returns: the model and optimizer to train with, and what undoes the wrapping afterwards
Privatized = tuple[nn.Module, torch.optim.Optimizer, Callable[[], None]]


_ENGINE = getattr(getattr(torch.autograd, "Variable", None), "_execution_engine", None)
_ONE = torch.ones(())


def scalar_backward(loss: torch.Tensor) -> None:
    """``loss.backward()`` for a plain scalar tensor, handed to torch's autograd engine directly: the same engine
    call ``Tensor.backward`` ends in, seeded with the same 1.0, so the same gradients bit for bit, without about
    40 us of Python argument checks a step (a tenth of a small model's step, issue 19). Anything else (a tensor
    subclass, a torch without the engine object) goes through ``loss.backward()``."""
    if _ENGINE is None or type(loss) is not torch.Tensor or loss.dim() != 0 or loss.dtype != _ONE.dtype:
        loss.backward()
        return
    _ENGINE.run_backward((loss,), (_ONE,), False, False, (), allow_unreachable=True, accumulate_grad=True)


class TorchTrainer(Trainer):
    backend = "torch"

    def __init__(self, model: nn.Module, cfg: TrainerConfig, seed: Sequence[int],
                 adapter: BackendAdapter | None = None) -> None:
        self.model = model
        self.adapter = adapter or _adapter  # a participant's own encode/decode for a custom model
        self.cfg = cfg
        self.seed = tuple(seed)
        self._rng: np.random.Generator | None = np.random.default_rng(self.seed)
        self._rng_factory: Callable[[], np.random.Generator] | None = None
        #: the wire model a training done elsewhere left (simulation.workers): what get_parameters returns until the
        #: model is loaded or trained again
        self._reply: Mapping[str, np.ndarray] | None = None
        self.loss_fn = nn.CrossEntropyLoss()
        #: where the proximal term pulls (wire form): the model training starts from when None (FedProx),
        #: another model when set (Ditto's personal model is pulled towards the global one)
        self.anchor: Mapping[str, np.ndarray] | None = None
        #: one weight per training example, or None: FedEM weighs each example by its component's responsibility
        self.sample_weights: np.ndarray | None = None
        #: turns (model, optimizer, round) into the pair local training uses and a function that undoes it, or None:
        #: DP-SGD (fscore.privacy.dpsgd) puts Opacus's per-example clipping and noise here
        self.privatizer: Callable[[nn.Module, torch.optim.Optimizer, int], Privatized] | None = None
        self.round = 0
        #: this round's training, done ahead (simulation.batched: fscore.simulation.batched; simulation.workers:
        #: fscore.simulation.workers); it has ``round``, ``start`` and ``done()``, which gives what to ``apply``
        self.prepared: Any = None
        #: whether other participants' trainers train the same module (fscore.course: models_shareable)
        self.shared_module = False

    @property
    def rng(self) -> np.random.Generator:
        """This round's training stream; made on first use (a training done elsewhere brings its own)."""
        if self._rng is None:
            assert self._rng_factory is not None
            self._rng, self._rng_factory = self._rng_factory(), None
        return self._rng

    @rng.setter
    def rng(self, value: np.random.Generator) -> None:
        self._rng, self._rng_factory = value, None

    def defer_rng(self, factory: Callable[[], np.random.Generator]) -> None:
        self._rng, self._rng_factory = None, factory

    def start_round(self, round_: int) -> None:
        self.defer_rng(functools.partial(np.random.default_rng, [*self.seed, round_]))
        self.round = round_

    def snapshot_state(self) -> dict[str, Any]:
        """What a course snapshot keeps (fscore.snapshot, which copies the arrays): every weight and buffer, and the
        training stream."""
        return {"weights": {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()},
                "rng": self.rng, "round": self.round, "anchor": self.anchor, "sample_weights": self.sample_weights}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in state["weights"].items()}, strict=True)
        self._reply = None
        self.rng, self.round = state["rng"], state["round"]
        self.anchor, self.sample_weights = state["anchor"], state["sample_weights"]

    def adopt(self, params: Mapping[str, np.ndarray], rng: Callable[[], np.random.Generator]) -> None:
        """Take a training done elsewhere (simulation.workers): its trained wire model, which the next
        :meth:`get_parameters` hands out as it is (read-only arrays, not copied again), and its round stream."""
        self.set_parameters(params)
        self.defer_rng(rng)
        self._reply = params

    def get_parameters(self) -> dict[str, np.ndarray]:
        reply, self._reply = self._reply, None
        if reply is not None:  # handed out once: the trainer does not keep a model per idle participant
            return dict(reply)
        views = self._views()  # the state dict's own arrays, when it holds parameters only (no state_dict() call)
        params = dict(views) if views is not None else self.adapter.to_wire(self.model.state_dict())
        if self.shared_module:  # views of a module the next participant trains: a copy keeps this one's model
            return {k: np.array(v, copy=True) for k, v in params.items()}
        return params

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        self._reply = None
        views = self._views()
        if views is not None and params.keys() == views.keys() and all(
                views[k].shape == v.shape and views[k].dtype == v.dtype for k, v in params.items()):
            for k, v in params.items():  # the same bits load_state_dict would copy, without its two copies
                np.copyto(views[k], v)
            return
        self.model.load_state_dict(self.adapter.from_wire(params), strict=True)

    def _views(self) -> dict[str, np.ndarray] | None:
        """Writable numpy views of the model's parameters, when a wire model can be copied straight into them: the
        torch adapter's own names, no buffers (batch norm loads through its own hook), no privatizer wrapping."""
        if self.adapter is not _adapter or self.privatizer is not None:
            return None
        first = next(self.model.parameters(), None)
        cached = self.__dict__.get("_param_views")
        # rebuilt when the model, or the storage of its parameters (param.data = ..., .to()), changes
        if cached is None or cached[0] is not self.model or cached[1] != (first.data_ptr() if first is not None else 0):
            params = list(self.model.named_parameters())
            plain = all(p.device.type == "cpu" for _, p in params) and not any(True for _ in self.model.buffers())
            views = {n: p.detach().numpy() for n, p in params} if plain else None
            cached = self._param_views = (self.model, first.data_ptr() if first is not None else 0, views)
        return cached[2]

    def _optimizer(self) -> torch.optim.Optimizer | PlainSGD:
        """torch.optim's Adam, or SGD; :class:`PlainSGD` (the same update, bit for bit) unless a privatizer
        (Opacus) needs a real torch.optim.Optimizer to wrap."""
        cfg = self.cfg
        if cfg.optimizer == "adam":
            return torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        if self.privatizer is None:
            return PlainSGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)

    def train(self, data: Dataset) -> TrainResult:
        self._reply = None
        prepared, self.prepared = self.prepared, None
        if prepared is not None and prepared.round == self.round and self._holds(prepared.start):
            done = prepared.done()  # None: it could not be trained ahead, so it is trained here
            if done is not None:
                done.apply(self)
                return done.result
        x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
        model, opt, undo = self.model, self._optimizer(), None
        if self.privatizer is not None:
            model, opt, undo = self.privatizer(self.model, opt, self.round)
        try:
            return self._train(data, x, y, model, opt)
        finally:
            if undo is not None:
                undo()

    def _train(self, data: Dataset, x: torch.Tensor, y: torch.Tensor, model: nn.Module,
               opt: torch.optim.Optimizer | PlainSGD) -> TrainResult:
        self.model.train()
        mu = self.cfg.proximal_mu
        anchor = self._anchor() if mu else []
        weights = None if self.sample_weights is None else torch.from_numpy(self.sample_weights.astype(np.float32))
        steps, seen, total_loss, total_square = 0, 0, 0.0, 0.0
        for batch in batches(len(data), self.cfg, self.rng):
            idx = torch.from_numpy(batch)
            opt.zero_grad()
            losses = nn.functional.cross_entropy(model(x[idx]), y[idx], reduction="none")
            loss = losses.mean() if weights is None else (losses * weights[idx]).mean()
            total_square += float(losses.detach().square().sum())
            if mu:  # FedProx's proximal term; the reported loss stays the task loss
                proximal = sum(((p - a) ** 2).sum() for p, a in zip(self.model.parameters(), anchor, strict=True))
                scalar_backward(loss + mu / 2 * proximal)
            else:
                scalar_backward(loss)
            opt.step()
            total_loss += loss.item() * len(idx)
            seen += len(idx)
            steps += 1
        return train_result(self.cfg, len(data), steps, seen, total_loss, total_square)

    def _holds(self, params: Mapping[str, torch.Tensor]) -> bool:
        """Whether the model holds exactly ``params`` (what a prepared training started from)."""
        return all(torch.equal(p, params[name]) for name, p in self.model.named_parameters())

    def _anchor(self) -> list[torch.Tensor]:
        if self.anchor is None:
            return [p.detach().clone() for p in self.model.parameters()]
        state = self.adapter.from_wire(self.anchor)
        return [state[name].detach() for name, _ in self.model.named_parameters()]

    @torch.no_grad()
    def evaluate(self, data: Dataset) -> EvalResult:
        if len(data) == 0:
            return EvalResult(0, {})
        self.model.eval()
        logits = self.model(torch.from_numpy(data.x))
        y = torch.from_numpy(data.y)
        loss = float(self.loss_fn(logits, y))
        acc = float((logits.argmax(1) == y).float().mean())
        return EvalResult(len(data), {"accuracy": acc, "loss": loss})


class TorchEvaluator:
    """Evaluates a global model on the coordinator's held-out set (the coordinator stays framework-free)."""

    def __init__(self, model: nn.Module, data: Dataset, adapter: BackendAdapter | None = None) -> None:
        self.model = model
        self.adapter = adapter or _adapter
        self.data = data
        self.loss_fn = nn.CrossEntropyLoss()

    @torch.no_grad()
    def __call__(self, params: Mapping[str, np.ndarray]) -> dict[str, float]:
        self.model.load_state_dict(self.adapter.from_wire(params), strict=True)
        self.model.eval()
        logits = self.model(torch.from_numpy(self.data.x))
        y = torch.from_numpy(self.data.y)
        return {"accuracy": float((logits.argmax(1) == y).float().mean()), "loss": float(self.loss_fn(logits, y))}
