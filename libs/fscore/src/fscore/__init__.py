"""fscore: fscope's event-driven federated-learning core (after FederatedScope, PVLDB 2023).

Workers react to events with handlers; messages travel as Avro through a Transport. Framework
code (torch) is imported only by the trainers and model twins that need it.
"""

from fscore.conditions import Condition
from fscore.coordinator import Coordinator, CoursePlan
from fscore.events import START, Event, HandlerOverwriteWarning, on_condition, on_message
from fscore.message import Message, MessageCatalog
from fscore.participant import Participant
from fscore.worker import BaseWorker

__all__ = ["START", "BaseWorker", "Condition", "Coordinator", "CoursePlan", "Event", "HandlerOverwriteWarning",
           "Message", "MessageCatalog", "Participant", "on_condition", "on_message"]
