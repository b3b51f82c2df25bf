"""Builds a course's workers from its config: the one place that turns config into objects.

The standalone runner and the services both build their workers here, so a config runs the
same in simulation and in deployment; only the transport and the clock differ.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np

from fscore.conditions import Condition
from fscore.config import CourseConfig, TrainerConfig
from fscore.coordinator import Aggregation, Coordinator, CoursePlan, Evaluation, Evaluator
from fscore.data.dataset import ClientData, Dataset, Federation
from fscore.data.sources import dataset_source
from fscore.data.tasks import build_task
from fscore.errors import ConfigError
from fscore.events import Event
from fscore.flowgraph import FlowGraph, check_variants
from fscore.message import COORDINATOR, PARTICIPANT, MessageCatalog
from fscore.models.zoo import ModelSpec, batchnorm_constants, init_params, zoo_layout
from fscore.participant import Participant
from fscore.personalization import SharedPart, TrainerParts, build_personalization
from fscore.personalization.checks import check_participants, check_sharing
from fscore.plugins import Plugin, PluginContext
from fscore.registry import resolve_path
from fscore.samplers import sampling_stream
from fscore.simulation.device import DeviceProfile, device_profiles
from fscore.strategy import Strategy
from fscore.topics import CourseTopics
from fscore.trainers.base import TRAINERS, NoOpTrainer, Trainer
from fscore.validation import build_aggregator, build_plugin, build_sampler, plugin_class, validate_course
from fscore.worker import BaseWorker, Outbox
from fstranslation import TensorLimits
from fstranslation.adapters import BackendAdapter
from fstranslation.layout import TensorSpec, layout_differences, layout_problems

# Distinct streams of randomness, so adding draws to one never shifts another.
_STREAM_INIT, _STREAM_TRAINER, _STREAM_DEVICES = 1, 3, 4  # 2: fscore.samplers.SAMPLER_STREAM
_STREAM_PRIVATE = 7  # a participant's private parameters' start (6 is the plug-ins')
_STREAM_VALIDATION = 8  # which of a participant's training examples are its validation split


def participant_address(index: int) -> str:
    return f"participant-{index:05d}"


class CourseBuilder:
    """Building a course imports its extensions (plug-ins, aggregator, sampler: :mod:`fscore.registry`),
    registers the message types they bring, and validates what needs them (:mod:`fscore.validation`):
    a config that cannot run is refused here, before any worker exists, with one line naming the key."""

    def __init__(self, config: CourseConfig) -> None:
        self.config = config
        self.catalog = MessageCatalog(limits=TensorLimits(max_bytes=config.limits.max_tensor_bytes))
        for mt in config.message_types:
            self.catalog.register(mt.name, mt.receiver, json.loads(mt.schema_file.read_text()))
        #: every plug-in of the course: (config key, its entry, its class)
        self.plugins = [(key, entry, plugin_class(key, entry)) for key, entry in config.plugin_entries()]
        for cls in dict.fromkeys(cls for _, _, cls in self.plugins):
            for mt in cls.message_types():
                self.catalog.register(mt.name, mt.receiver, mt.schema)
        validate_course(config, self.plugins)
        self.personalization = build_personalization(config.personalization.name, config.personalization.options)
        #: the parameters participants exchange (model.share, less what the personalization keeps local)
        self.shared = check_sharing(config, self.personalization, self.model_layout)
        check_participants(config, self.personalization, self.shared, self.layout_for)
        self.topics = CourseTopics(config.transport.topic_prefix, config.course_id,
                                   config.transport.direct_partitions)

    @cached_property
    def federation(self) -> Federation:
        return self._build_federation()

    def _build_federation(self) -> Federation:
        from fscore.data.federation import build_federation
        from fscore.data.splitters import SplitError

        try:
            return build_federation(self.config.data, self.config.participants, self.config.seed)
        except SplitError as exc:
            raise ConfigError(f"{exc.key}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"data: {exc}") from None

    @cached_property
    def model_spec(self) -> ModelSpec:
        shape, classes = dataset_source(self.config.data).shape(self.config.data)
        try:
            return ModelSpec(self.config.model.name, shape, classes, self.config.model.hidden)
        except ValueError as exc:
            raise ConfigError(f"model.name: {exc}") from None

    @cached_property
    def model_layout(self) -> dict[str, TensorSpec]:
        """The course's whole model: declared in ``model.layout``, or the zoo model's."""
        model = self.config.model
        declared = {p.name: TensorSpec(p.shape, p.dtype) for p in model.layout or []}
        if model.name == "custom":
            return declared
        zoo = zoo_layout(self.model_spec)
        problems = layout_differences(declared, zoo) if declared else []
        if problems:
            raise ConfigError(f"model.layout: the declared layout is not the zoo's {model.name}: "
                              + "; ".join(problems))
        return zoo

    @cached_property
    def agreed_layout(self) -> dict[str, TensorSpec]:
        """The global model every participant exchanges with the coordinator: the shared parameters of the
        course model, laid out by the personalization (FedEM: K components); all of it by default."""
        return self.personalization.global_layout({n: self.model_layout[n] for n in self.shared})

    @property
    def global_is_complete(self) -> bool:
        """Whether the global model is a whole model, which a held-out set can evaluate."""
        return self.personalization.complete_global and len(self.shared) == len(self.model_layout)

    def spec_for(self, index: int) -> ModelSpec:
        """Participant ``index``'s model: the course's, with its task's number of classes."""
        task = self.config.task_for(index)
        if task == "default":
            return self.model_spec
        classes = build_task(task, "participant_overrides.task").num_classes(self.model_spec.num_classes)
        return dataclasses.replace(self.model_spec, num_classes=classes)

    def layout_for(self, index: int) -> dict[str, TensorSpec]:
        """Participant ``index``'s whole model (its task's head included)."""
        return self.model_layout if self.config.task_for(index) == "default" else zoo_layout(self.spec_for(index))

    def initial_params(self) -> dict[str, np.ndarray]:
        """The initial global model; a ``model.init`` hook must return exactly the agreed layout."""
        rng = np.random.default_rng([self.config.seed, _STREAM_INIT])
        hook = self.config.model.init
        if hook is None:
            return init_params(self.agreed_layout, rng, batchnorm_constants(list(self.agreed_layout)))
        params = {k: np.asarray(v) for k, v in resolve_path(hook, "model.init")(self.agreed_layout, rng).items()}
        problems = layout_problems(params, self.agreed_layout)
        if problems:
            raise ConfigError(f"model.init: {hook} returned parameters that do not match the agreed layout: "
                              + "; ".join(problems))
        return params

    def plan(self) -> CoursePlan:
        c = self.config
        e = c.evaluation
        return CoursePlan(c.participants, c.rounds, c.sample_size, e.every, e.patience, e.min_delta, e.metric,
                          e.target, e.stop_at_target, c.joining.timeout_s, c.joining.min_participants,
                          c.limits.max_samples_factor,
                          client_metrics="validation" if e.split == "validation" else "clients",
                          private=tuple(sorted({n for i in range(c.participants) for n in self.layout_for(i)}
                                               - set(self.shared))))

    def strategy(self) -> Strategy:
        c = self.config
        return Strategy.from_config(c.strategy, c.sample_size or c.participants, c.evaluation.participants)

    def coordinator(self, outbox: Outbox, *, evaluator: Evaluator | None = None,
                    on_evaluation: Callable[[Evaluation], None] | None = None,
                    on_aggregation: Callable[[Aggregation], None] | None = None, clock: str = "virtual",
                    incarnation: str = "0") -> Coordinator:
        """The coordinator. ``clock``: "virtual" in simulation and replay, "wall" in a deployed service."""
        c = self.config
        strategy = self.strategy()
        worker = Coordinator(COORDINATOR, c.course_id, self.catalog, outbox, plan=self.plan(),
                             initial_params=self.initial_params(), aggregator=build_aggregator(c),
                             sampler=build_sampler(c.strategy), rng=sampling_stream(c.seed), evaluator=evaluator,
                             on_evaluation=on_evaluation, on_aggregation=on_aggregation, strategy=strategy,
                             clock=clock, incarnation=incarnation)
        return self._customise(worker, None)

    def device_profile(self, index: int) -> DeviceProfile:
        """Participant ``index``'s device, drawn from the course seed so every process agrees on it."""
        return self._device_profiles[index]

    @cached_property
    def _device_profiles(self) -> list[DeviceProfile]:
        return device_profiles(self.config.simulation, self.config.participants,
                               np.random.default_rng([self.config.seed, _STREAM_DEVICES]))

    def participant(self, index: int, outbox: Outbox, *, trainer: Trainer | None = None,
                    profile: DeviceProfile | None = None, incarnation: str = "0", alone: bool = False,
                    data: ClientData | None = None) -> Participant:
        """Participant ``index``. ``alone``: the only worker of this process, which then keeps only its own data."""
        c = self.config
        sim = c.simulation
        worker = Participant(participant_address(index), c.course_id, self.catalog, outbox,
                             trainer=trainer or self.trainer(index),
                             data=data or self.participant_data(index, alone=alone),
                             profile=profile or self.device_profile(index), pace=sim.pace if alone else 0.0,
                             incarnation=incarnation, layout=self.agreed_layout)
        return self._customise(worker, index)

    def participant_data(self, index: int, *, alone: bool = False) -> ClientData:
        """Participant ``index``'s examples: its own file when ``data.local_path`` is set, else its shard.

        ``alone``: recompute the split from the seed and keep only this shard, so a participant
        process holds no other participant's examples. A standalone run shares one split instead.
        """
        task = self.config.task_for(index)
        relabel = (lambda d: d) if task == "default" else build_task(task, "participant_overrides.task").apply
        if self.config.data.local_path is None:
            shard = (self._build_federation() if alone else self.federation).clients[index]
        else:
            from fscore.data.federation import load_local_shard

            spec = self.model_spec  # the layout comes from the config, so the course's dataset is never loaded
            shard = load_local_shard(self.config.data, index, self.config.seed, int(np.prod(spec.input_shape)),
                                     spec.num_classes)
        return relabel(self._evaluation_split(shard, index))

    def _evaluation_split(self, shard: ClientData, index: int) -> ClientData:
        """With ``data.validation_fraction``, a seeded share of the participant's training examples is kept back
        as its validation split (its own stream: the train/test split is the same with or without); with
        ``evaluation.split=validation`` the participant evaluates on it instead of its test split (§4.3: tuning
        optimizes validation metrics, and the test split is looked at once, for the chosen config)."""
        c = self.config
        if c.data.validation_fraction == 0:
            return shard
        from fscore.data.splitters import train_test_split

        rng = np.random.default_rng([c.seed, _STREAM_VALIDATION, index])
        train_idx, validation_idx = train_test_split(len(shard.train), c.data.validation_fraction, rng)
        validation = shard.train.subset(validation_idx)
        return ClientData(shard.train.subset(train_idx), validation if c.evaluation.split == "validation"
                          else shard.test, validation)

    def backend(self, index: int) -> str:
        return self.config.backend_for(index)

    def trainer(self, index: int) -> Trainer:
        """Participant ``index``'s trainer, in its own backend; all backends exchange the agreed layout.

        The backend's trainer (:meth:`base_trainer`) keeps the private parameters back (``model.share``:
        :class:`~fscore.personalization.SharedPart`), and the personalization wraps it (Ditto's personal model).
        """
        cfg = self.config.trainer_for(index)
        base = self.base_trainer(index, cfg)
        full = self.layout_for(index)
        if len(self.shared) < len(full):
            rng = np.random.default_rng([self.config.seed, _STREAM_PRIVATE, index])
            base = SharedPart(base, self.shared, init_params(full, rng, batchnorm_constants(list(full))))
        parts = TrainerParts(index, self.backend(index), cfg, (self.config.seed, _STREAM_TRAINER, index), base,
                             lambda k, other=None: self.base_trainer(index, other or cfg, k))
        return self.personalization.trainer(parts)

    def base_trainer(self, index: int, cfg: TrainerConfig, copy: int = 0) -> Trainer:
        """A fresh trainer of participant ``index``'s whole model; ``copy`` k > 0 gets a seed of its own.

        Hooks, in order: ``trainer.factory`` builds the whole trainer; else the backend's trainer wraps
        ``model.builders[backend]`` (or the zoo's twin) and encodes with ``trainer.adapters[backend]``
        (or the backend's adapter).
        """
        seed = (self.config.seed, _STREAM_TRAINER, index, *((copy,) if copy else ()))
        spec = self.spec_for(index)
        if cfg.factory is not None:
            trainer = TRAINERS.resolve(cfg.factory, "trainer.factory")(spec, cfg, seed)
            if not isinstance(trainer, Trainer):
                raise ConfigError(f"trainer.factory: {cfg.factory} returned {type(trainer).__name__}, not a Trainer")
            return trainer
        backend = self.backend(index)
        shared = copy == 0 and backend == "torch" and self.models_shareable
        model = self._shared_torch_model(spec) if shared else self.backend_model(backend, spec)
        adapter = self._adapter(backend)
        if backend == "tensorflow":
            from fscore.trainers.keras_trainer import KerasTrainer

            return KerasTrainer(model, cfg, seed=seed, adapter=adapter)
        from fscore.trainers.torch_trainer import TorchTrainer

        trainer = TorchTrainer(model, cfg, seed=seed, adapter=adapter)
        trainer.shared_module = shared
        return trainer

    @property
    def models_shareable(self) -> bool:
        """Whether the participants of one process may train one torch module in turn (issue 19: 10,000
        participants hold no 10,000 models); see :func:`fscore.simulation.sharing.unshareable_because`."""
        return self.unshareable_because is None

    @cached_property
    def unshareable_because(self) -> str | None:
        from fscore.simulation.sharing import unshareable_because

        return unshareable_because(self.config, self.plugins, len(self.shared) < len(self.model_layout))

    def _shared_torch_model(self, spec: ModelSpec) -> Any:
        """One torch module per model spec for the participants of this process (see :attr:`models_shareable`)."""
        models = self.__dict__.setdefault("_torch_models", {})
        if spec not in models:
            models[spec] = self.backend_model("torch", spec)
        return models[spec]

    def backend_model(self, backend: str, spec: ModelSpec | None = None) -> Any:
        """A fresh model in ``backend`` (of ``spec``, default the course's): the config's builder hook, else the
        zoo's twin."""
        spec = spec or self.model_spec
        if backend == "tensorflow":
            import fscore.trainers.keras_trainer  # noqa: F401  (before any hook imports TensorFlow: see there)
        hook = self.config.model.builders.get(backend)  # type: ignore[call-overload]
        if hook is not None:
            return resolve_path(hook, f"model.builders.{backend}")(spec)
        if self.config.model.name == "custom":
            raise ConfigError(f"model.builders.{backend}: a custom model needs a {backend} builder "
                              "(module:function taking a ModelSpec) for participants on that backend")
        if backend == "tensorflow":
            from fscore.models.keras_zoo import build_keras_model

            return build_keras_model(spec)
        from fscore.models.torch_zoo import build_torch_model

        return build_torch_model(spec)

    def _adapter(self, backend: str) -> BackendAdapter | None:
        hook = self.config.trainer.adapters.get(backend)  # type: ignore[call-overload]
        if hook is None:
            return None
        where = f"trainer.adapters.{backend}"
        adapter = resolve_path(hook, where)
        missing = [f for f in ("to_wire", "from_wire") if not callable(getattr(adapter, f, None))]
        if missing:
            raise ConfigError(f"{where}: {hook} has no {' or '.join(missing)}")
        return adapter

    def heldout_evaluator(self) -> Evaluator | None:
        """The standalone coordinator's held-out evaluation, on the course's torch model (none without one, or
        when the global model is not a whole model: private parameters, FedEM's components)."""
        model = self.config.model
        if not self.global_is_complete or (model.name == "custom" and "torch" not in model.builders):
            return None
        from fscore.trainers.torch_trainer import TorchEvaluator

        return TorchEvaluator(self.backend_model("torch"), self.federation.heldout, self._adapter("torch"))

    def numpy_evaluator(self) -> Evaluator | None:
        """A framework-free held-out evaluator for the coordinator service (logreg and MLP only)."""
        from fscore.models.numpy_forward import NumpyEvaluator

        if not self.global_is_complete:
            return None
        return NumpyEvaluator.for_spec(self.model_spec, self.federation.heldout)

    def plugins_for(self, role: str, index: int | None) -> list[Plugin]:
        """Fresh instances of the plug-ins the worker of ``role`` (participant ``index``) is given, in config order."""
        context = PluginContext(self.config.course_id, self.config.seed, role, index,  # type: ignore[arg-type]
                                self.config)
        return [build_plugin(key, entry, cls, context) for key, entry, cls in self.plugins
                if entry.applies_to(role, index)]

    def participant_variants(self) -> dict[tuple[int, ...], list[int]]:
        """Participants grouped by the plug-ins they are given (by position among the course's plug-ins): each
        group has one handler set, so checking one member checks them all."""
        variants: dict[tuple[int, ...], list[int]] = {}
        for index in range(self.config.participants):
            given = tuple(i for i, (_, entry, _) in enumerate(self.plugins) if entry.applies_to(PARTICIPANT, index))
            variants.setdefault(given, []).append(index)
        return variants

    def check_workers(self) -> tuple[Coordinator, dict[str, Participant]]:
        """The coordinator and one participant of every variant, as built for the course but with no data and a
        no-op trainer (no framework is imported): what the completeness check and ``describe`` look at."""
        outbox, empty = Outbox(), self._no_data()
        participants = {_indices_label(indices): self.participant(indices[0], outbox, trainer=NoOpTrainer(),
                                                                  data=empty, profile=DeviceProfile())
                        for indices in self.participant_variants().values()}
        return self.coordinator(outbox), participants

    def flow_graph(self) -> FlowGraph:
        """The course's message-flow graph over every participant variant (paper §3.2, completeness)."""
        coordinator, participants = self.check_workers()
        return check_variants(coordinator, participants, self.catalog)

    def _no_data(self) -> ClientData:
        shape = self.model_spec.input_shape
        none = Dataset(np.zeros((0, *shape), np.float32), np.zeros(0, np.int64))
        return ClientData(none, none)

    def _customise(self, worker: BaseWorker, index: int | None) -> Any:
        """Give a worker its plug-ins, then the config's user conditions and handlers of its role."""
        for plugin in self.plugins_for(worker.role, index):
            worker.use(plugin)
        for cond in self.config.conditions:
            if cond.role == worker.role:
                check = resolve_path(cond.check, f"conditions[{cond.name}].check")
                worker.add_condition(Condition.of(cond.name, check, cond.watches))
        for i, h in enumerate(self.config.handlers):
            if h.role == worker.role:
                func = resolve_path(h.handler, f"handlers[{i}].handler")
                worker.register(Event.parse(h.event), functools.partial(func, worker), h.emits)
        return worker


def checked_builder(config: CourseConfig) -> CourseBuilder:
    """The course's builder, once its extensions are imported and its message flow is complete over every
    participant configuration. The services call this before touching Kafka: a broken course is refused
    (ConfigError, CompletenessError) by every process, not discovered mid-course."""
    builder = CourseBuilder(config)
    builder.flow_graph().raise_for_problems()
    return builder


def _indices_label(indices: list[int]) -> str:
    """``participants 0-3, 7`` for a group of participant indices."""
    runs: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return f"participant{'s' if len(indices) > 1 else ''} {', '.join(runs)}"
