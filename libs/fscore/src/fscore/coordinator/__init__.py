"""The coordinator (FL server): its state, conditions and handlers, one part per module.

    state.py        the state, in parts (membership, requests, update buffer, time budget, evaluation, progress)
    conditions.py   the condition-checking events, in precedence order
    joining.py      admitting and refusing participants
    alarms.py       the join deadline, time_up and reply deadlines (AlarmKind)
    evaluation.py   participant and held-out evaluation, early stopping
    coordinator.py  the worker: training, aggregation, finishing
"""

from fscore.coordinator.alarms import AlarmKind
from fscore.coordinator.coordinator import Coordinator, Evaluator
from fscore.coordinator.state import (
    Aggregation,
    CoordinatorState,
    CoursePlan,
    Evaluation,
    ParticipantInfo,
)

__all__ = ["Aggregation", "AlarmKind", "Coordinator", "CoordinatorState", "CoursePlan", "Evaluation", "Evaluator",
           "ParticipantInfo"]
