"""Checks of a course's sharing, tasks and personalization, run when the course is built (one line, naming the key)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fscore.config import CourseConfig
from fscore.data.tasks import build_task
from fscore.errors import ConfigError
from fscore.personalization.base import Layout, Personalization
from fscore.personalization.sharing import shared_names, unmatched


def check_sharing(config: CourseConfig, personalization: Personalization, full: Layout) -> list[str]:
    """The shared parameter names of the course model ``full``, once every pattern is known to match one."""
    names = list(full)
    share = config.model.share
    for i in unmatched(names, share):
        raise ConfigError(f"model.share[{i}]: pattern {share[i]!r} matches no parameter of model "
                          f"{config.model.name} ({', '.join(names)})")
    private = personalization.private_patterns()
    if private and len(unmatched(names, private)) == len(private):
        raise ConfigError(f"personalization.name: {personalization.name} keeps {private} local, but model "
                          f"{config.model.name} has no such parameter ({', '.join(names)}); FedBN needs BatchNorm "
                          "layers, e.g. model.name: mlp_bn")
    shared = shared_names(names, share, private)
    if not shared:
        raise ConfigError("model.share: no parameter is shared, so there is nothing to learn together")
    if not personalization.private_parts and len(shared) < len(names):
        raise ConfigError(f"model.share: {personalization.name} shares whole models; it cannot keep "
                          f"{sorted(set(names) - set(shared))} private")
    return shared


def check_participants(config: CourseConfig, personalization: Personalization, shared: Sequence[str],
                       layout_for: Callable[[int], Layout]) -> None:
    """Every participant's backend suits the personalization, its task exists, and it holds each shared
    parameter in the course model's shape (participants with another task differ only in private ones)."""
    for key, fields in config.participant_overrides.items():
        if "task" in fields:
            build_task(fields["task"], f"participant_overrides.{key}.task")
    tasks: dict[str, list[int]] = {}
    for index in range(config.participants):
        backend = config.backend_for(index)
        if backend not in personalization.backends:
            raise ConfigError(f"personalization.name: {personalization.name} trains "
                              f"{' or '.join(sorted(personalization.backends))} participants only; participant "
                              f"{index} is on {backend}")
        tasks.setdefault(config.task_for(index), []).append(index)
    if len(tasks) > 1 and config.model.name == "custom":
        raise ConfigError("participant_overrides: tasks with their own heads need a zoo model; a custom model's "
                          "layout is declared once for everyone")
    reference = layout_for(0)
    for task, indices in tasks.items():
        layout = layout_for(indices[0])
        for name in shared:
            if layout[name].shape != reference[name].shape:
                raise ConfigError(f"model.share: {name} is shared, but participants {_span(indices)} (task {task}) "
                                  f"hold it as {layout[name].shape} and participant 0 as {reference[name].shape}; "
                                  "keep it private (share only the body, e.g. model.share: [fc1.*])")


def _span(indices: Sequence[int]) -> str:
    return f"{indices[0]}-{indices[-1]}" if len(indices) > 1 and indices[-1] - indices[0] == len(indices) - 1 \
        else ", ".join(map(str, indices))

