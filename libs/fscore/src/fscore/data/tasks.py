"""Learning goals (paper §3.4.2, multiple learning goals): what a participant predicts from its examples.

Participants of one course may learn different tasks on the same kind of input: some classify the digit,
others its parity. Each task has its own number of classes, so its own head; participants share the body
(``model.share``) and keep their heads private. A task is found like every extension: registered here,
named as ``module:attr``, or declared under the entry-point group ``fscope.tasks``.
"""

from __future__ import annotations

import numpy as np

from fscore.data.dataset import ClientData, Dataset
from fscore.registry import Registry


class Task:
    """The dataset's own labels (``default``); a subclass maps them to another goal."""

    def num_classes(self, dataset_classes: int) -> int:
        return dataset_classes

    def relabel(self, y: np.ndarray) -> np.ndarray:
        return y

    def apply(self, data: ClientData) -> ClientData:
        def relabelled(d: Dataset) -> Dataset:
            return Dataset(d.x, self.relabel(d.y))

        return ClientData(relabelled(data.train), relabelled(data.test),
                          None if data.validation is None else relabelled(data.validation))


class Parity(Task):
    """Whether the label is even or odd: for digits, the digit's parity."""

    def num_classes(self, dataset_classes: int) -> int:
        return 2

    def relabel(self, y: np.ndarray) -> np.ndarray:
        return (y % 2).astype(np.int64)


TASKS: Registry[Task] = Registry("task", {"default": Task, "parity": Parity})


def register_task(name: str, task: type[Task] | str) -> None:
    TASKS.register(name, task)


def build_task(name: str, key: str) -> Task:
    task = TASKS.build(name, {}, key=key, options_key=key)
    if not isinstance(task, Task):
        from fscore.errors import ConfigError

        raise ConfigError(f"{key}: {name!r} built {type(task).__name__}, not a fscore.data.tasks.Task")
    return task
