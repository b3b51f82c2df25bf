"""Joining (paper §3.2): admitting participants whose model fits the agreed layout, refusing the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import structlog

from fscore.content import check_join_numbers
from fscore.coordinator.state import CoordinatorState, CoursePlan, ParticipantInfo
from fscore.errors import RejectedMessage
from fscore.message import ASSIGN_ID, REFUSE, Message, MessageCatalog
from fstranslation import spec_problem
from fstranslation.layout import TensorSpec, layout_differences, layout_of

log = structlog.get_logger("fscore.coordinator")


class Joining:
    """The coordinator's join handler (a part of :class:`~fscore.coordinator.Coordinator`)."""

    state: CoordinatorState
    plan: CoursePlan
    catalog: MessageCatalog
    params: dict[str, np.ndarray]
    course: str
    send: Any

    def on_join_in(self, msg: Message) -> None:
        s = self.state
        p = msg.payload
        if p["address"] != msg.sender:
            raise RejectedMessage(f"join_in from {msg.sender!r} claims address {p['address']!r}")
        if s.phase == "finished":  # a participant process checks the meta topic for this before joining
            raise RejectedMessage(f"join_in from {msg.sender!r} after the course finished (round {s.round})")
        check_join_numbers(msg.sender, p)
        declared = self._declared_layout(p.get("layout", []))  # raises for a malformed one
        info = s.membership.participants.get(msg.sender)
        if info is None:
            known = len(s.membership.participants) + len(s.membership.refused) - (msg.sender in s.membership.refused)
            if known >= self.plan.participants:
                raise RejectedMessage(f"join_in from {msg.sender!r}: the course is full "
                                      f"({self.plan.participants} participants)")
            # none declared: trusted
            problems = layout_differences(declared, layout_of(self.params)) if declared else []
        s.membership.unresponsive.pop(msg.sender, None)  # heard from again
        if info is None:
            s.membership.refused.pop(msg.sender, None)  # a refused participant may come back with a model that fits
            if problems:
                self._refuse(msg.sender, p["backend"], problems)
                return
            # Once the course has started, a late joiner is admitted too: the next dispatch may sample it.
            info = ParticipantInfo(msg.sender, len(s.membership.participants), p["num_train_samples"],
                                   p["num_test_samples"], p["backend"])
            s.membership.participants[msg.sender] = info
            estimate = self._expected_response_time(p)
            if estimate is not None:
                s.membership.response_times[msg.sender] = estimate
            self.sampler.at(s.round, self.now)  # type: ignore[attr-defined]
            self.sampler.joined(msg.sender, num_samples=info.num_train_samples,  # type: ignore[attr-defined]
                                duration=estimate if estimate is not None else 0.0)
            log.debug("joined", course=self.course, participant=msg.sender, id=info.id, phase=s.phase)
        # A participant that joins again (e.g. after a restart) gets its id again.
        self.send(ASSIGN_ID, [msg.sender], s.round, {"participant_id": info.id, "address": msg.sender})

    def _declared_layout(self, declared: list[Mapping[str, Any]]) -> dict[str, TensorSpec]:
        """A participant's declared model layout; untrusted, so checked before anything is built from it."""
        layout = {}
        for d in declared:
            problem = spec_problem(d["name"], d["dtype"], d["shape"], self.catalog.limits)
            if problem is not None:
                raise RejectedMessage(f"join_in declares a malformed layout: {problem}")
            layout[d["name"]] = TensorSpec(tuple(d["shape"]), d["dtype"])
        return layout

    def _refuse(self, address: str, backend: str, problems: list[str]) -> None:
        """Refuse a participant whose model does not fit: it is told why and the course goes on without it."""
        reason = f"refused: {address} ({backend}) does not match the agreed layout: " + "; ".join(problems)
        self.state.membership.refused[address] = reason
        log.warning("participant_refused", course=self.course, participant=address, reason=reason)
        self.send(REFUSE, [address], 0, {"reason": reason})

    def _expected_response_time(self, join: Mapping[str, Any]) -> float | None:
        """A first guess from the device a participant reports: one pass over its data, the model both ways."""
        compute, bandwidth = join.get("compute_s_per_sample", 0.0), join.get("bandwidth_bytes_per_s", 0.0)
        if bandwidth <= 0:
            return None
        model_bytes = sum(int(t.nbytes) for t in self.params.values())
        return float(join["num_train_samples"] * compute + 2 * model_bytes / bandwidth)
