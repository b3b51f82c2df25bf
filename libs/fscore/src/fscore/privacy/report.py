"""What a course's DP plug-ins spend, for ``summary.json`` (after the course) and ``fscope check`` (before it).

A plug-in takes part in accounting by saying what it protects and what it spends (duck-typed, so a user's
DP plug-in joins in by defining the same two things):

- ``protects = "participant"``: each participant's own releases (client-side noise, NbAFL's uplink), or
  ``protects = "example"``: each of its training examples (DP-SGD). ``spends(releases, train_samples)``
  gives the :class:`~fscore.privacy.accounting.Spend` list of a participant that sent ``releases``
  updates. A participant's releases are bounded by the models it was sent to train, which the
  coordinator counts (so the figure is the same standalone, as a service and in replay).
- ``protects = "course"``: a coordinator mechanism on the aggregate (central DP); ``spends(aggregations)``.

Several participant-level plug-ins of one participant compose, at the smallest of their δ.
"""

from __future__ import annotations

from typing import Any

from fscore.config import CourseConfig
from fscore.message import COORDINATOR, PARTICIPANT
from fscore.plugins import Plugin, PluginContext
from fscore.privacy.accounting import Spend, epsilon, finite_or_none


def _accountable(config: CourseConfig) -> list[tuple[str, Any, Plugin]]:
    """(key, entry, one instance) of every plug-in that spends privacy; participant ones built for the first
    participant they apply to (what they spend does not depend on which)."""
    from fscore.validation import build_plugin, plugin_class

    found = []
    for key, entry in config.plugin_entries():
        cls = plugin_class(key, entry)
        if not hasattr(cls, "spends") or getattr(cls, "protects", None) not in (*UNITS, "course"):
            continue
        if cls.protects == "course":
            if entry.role in ("coordinator", "all"):
                found.append((key, entry, build_plugin(key, entry, cls, PluginContext(
                    config.course_id, config.seed, COORDINATOR, None, config))))
            continue
        first = next((i for i in range(config.participants) if entry.applies_to(PARTICIPANT, i)), None)
        if first is not None:
            found.append((key, entry, build_plugin(key, entry, cls, PluginContext(
                config.course_id, config.seed, PARTICIPANT, first, config))))
    return found


#: what a participant-side mechanism protects: a participant's whole update, or each of its examples (DP-SGD);
#: the two are different guarantees, so each is composed and reported on its own
UNITS = {"participant": "participants", "example": "examples"}


def privacy_summary(config: CourseConfig, releases: dict[str, int], train_samples: dict[str, int],
                    aggregations: int) -> dict[str, Any] | None:
    """ε per participant (from its releases) and of the course's central mechanisms; None without DP."""
    found = _accountable(config)
    if not found:
        return None
    out: dict[str, Any] = {}
    for unit, key in UNITS.items():
        mechanisms = [(entry, p) for _, entry, p in found if p.protects == unit]
        if mechanisms:
            out[key] = _per_participant(config, mechanisms, releases, train_samples)
    central = {p.label: {"epsilon": finite_or_none(epsilon(p.spends(aggregations), p.delta)), "delta": p.delta,
                         "aggregations": aggregations, "spends": [s.as_dict() for s in p.spends(aggregations)]}
               for _, _, p in found if p.protects == "course"}
    return {**out, **({"central": central} if central else {})}


def _per_participant(config: CourseConfig, mechanisms: list[tuple[Any, Plugin]], releases: dict[str, int],
                     train_samples: dict[str, int]) -> dict[str, Any]:
    from fscore.course import participant_address

    participants: dict[str, Any] = {}
    for index in range(config.participants):
        address = participant_address(index)
        mine = [p for entry, p in mechanisms if entry.applies_to(PARTICIPANT, index)]
        count, examples = releases.get(address, 0), train_samples.get(address, 0)
        if not mine:
            participants[address] = {"epsilon": None, "releases": count, "protected": False}
            continue
        spends: list[Spend] = [s for p in mine for s in p.spends(count, examples)]
        delta = min(p.delta for p in mine)
        participants[address] = {"epsilon": finite_or_none(epsilon(spends, delta)), "delta": delta,
                                 "releases": count, "protected": True, "by": [p.label for p in mine],
                                 "spends": [s.as_dict() for s in spends]}
    protected = [v["epsilon"] for v in participants.values() if v["protected"]]
    finite = [e for e in protected if e is not None]
    return {"by_participant": participants, "protected": len(protected),
            "unprotected": config.participants - len(protected),
            "epsilon_max": max(finite) if len(finite) == len(protected) and finite else None,
            "epsilon_mean": sum(finite) / len(finite) if finite else None}


def planned_privacy(config: CourseConfig) -> list[str]:
    """One line per DP plug-in: the ε it will spend if the course runs all its rounds (``fscope check``)."""
    lines = []
    for key, entry, p in _accountable(config):
        if p.protects == "course":
            spent = epsilon(p.spends(config.rounds), p.delta)
            lines.append(f"{key} {p.label}: noise multiplier {p.noise_multiplier:.4g}, sampling "
                         f"{p.spends(1)[0].sampling:.3g}; the course spends ε={spent:.4g} at δ={p.delta:g} over "
                         f"{config.rounds} rounds")
            continue
        who = [i for i in range(config.participants) if entry.applies_to(PARTICIPANT, i)]
        spent = epsilon(p.spends(config.rounds, 0), p.delta)
        per = "each of its examples" if p.protects == "example" else "its updates"
        lines.append(f"{key} {p.label} on {len(who)} of {config.participants} participants: noise multiplier "
                     f"{p.noise_multiplier:.4g}; a participant that trains in all {config.rounds} rounds spends "
                     f"ε={spent:.4g} at δ={p.delta:g} on {per}")
    return lines
