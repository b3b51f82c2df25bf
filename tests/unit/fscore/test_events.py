import pytest

from fscore.errors import RejectedMessage, UndeclaredEmitError
from fscore.events import Event, HandlerOverwriteWarning, HandlerRegistry, on_message
from fscore.message import MessageCatalog
from fscore.participant import Participant
from fscore.trainers.base import NoOpTrainer
from fscore.worker import BaseWorker

from .helpers import ListOutbox


class Echo(BaseWorker):
    role = "coordinator"

    def install_default_handlers(self) -> None:
        self.register(on_message("join_in"), self.on_join, emits=["assign_id"])
        self.seen = 0

    def on_join(self, msg):
        self.seen += 1
        self.send("assign_id", [msg.sender], 0, {"participant_id": 1, "address": msg.sender})


def join(msg_id="p/1"):
    from fscore.message import Message

    return Message("join_in", ("coordinator",), 0, {"address": "p"}, sender="p", id=msg_id, course="c")


def test_second_handler_for_an_event_overwrites_and_warns_naming_both():
    registry = HandlerRegistry("w")

    def first(msg): ...

    def second(msg): ...

    registry.register(on_message("x"), first)
    with pytest.warns(HandlerOverwriteWarning, match="handler .*second for message:x overwrites .*first"):
        registry.register(on_message("x"), second)
    assert registry.get(on_message("x")).handler is second


def test_duplicate_delivery_changes_nothing():
    worker = Echo("coordinator", "c", MessageCatalog(), outbox := ListOutbox())
    assert worker.handle(join()) is True
    assert worker.handle(join()) is False
    assert worker.seen == 1 and len(outbox.sent) == 1


def test_message_without_handler_is_rejected_not_crashed():
    worker = Echo("coordinator", "c", MessageCatalog(), ListOutbox())
    from fscore.message import Message

    with pytest.raises(RejectedMessage, match="no handler for message type 'metrics'"):
        worker.handle(Message("metrics", ("coordinator",), 0, {}, sender="p", id="p/0/9", course="c"))


def test_handler_cannot_send_a_type_it_did_not_declare():
    class Liar(Echo):
        def install_default_handlers(self) -> None:
            self.seen = 0
            self.register(on_message("join_in"), self.on_join, emits=[])

    worker = Liar("coordinator", "c", MessageCatalog(), ListOutbox())
    with pytest.raises(UndeclaredEmitError, match="sent 'assign_id' but declares emits"):
        worker.handle(join())


def test_handlers_in_effect_are_logged_at_start(capsys):
    import structlog

    with structlog.testing.capture_logs() as logs:
        Participant("p0", "c", MessageCatalog(), ListOutbox(), trainer=NoOpTrainer(), data=None).log_handlers()
    (entry,) = [e for e in logs if e["event"] == "handlers_in_effect"]
    assert "message:model_parameters -> Participant.train_and_report emits [model_update]" in entry["handlers"]


def test_event_parse_round_trips():
    for text in ("start", "message:join_in", "condition:all_received"):
        assert str(Event.parse(text)) == text
    with pytest.raises(ValueError):
        Event.parse("message:")
