import numpy as np

from fscore.aggregators import FedAvg
from fscore.communicator import Communicator
from fscore.coordinator import Coordinator, CoursePlan
from fscore.driver import pump
from fscore.message import Message, MessageCatalog
from fscore.samplers import UniformSampler
from fscore.topics import CourseTopics
from fscore.transport import EmbeddedLog

PARAMS = {"w": np.zeros(3, np.float32)}


def setup():
    catalog = MessageCatalog()
    topics = CourseTopics("t", "c")
    log = EmbeddedLog()
    log.ensure_topics(topics.specs())
    comm = Communicator(log, topics, catalog, "coordinator")
    coordinator = Coordinator("coordinator", "c", catalog, comm, plan=CoursePlan(2, 1), initial_params=PARAMS,
                              aggregator=FedAvg(), sampler=UniformSampler(), rng=np.random.default_rng(0))
    comm.subscribe("coordinator")
    return log, topics, comm, coordinator


def send_join(comm_of_participant, name):
    comm_of_participant.send(Message("join_in", ("coordinator",), 0, {
        "address": name, "num_train_samples": 1, "num_test_samples": 1, "backend": "numpy"}, sender=name,
        id=f"{name}/1", course="c"))


def test_garbage_and_invalid_records_are_dead_lettered_and_the_worker_goes_on():
    log, topics, comm, coordinator = setup()
    catalog = comm.catalog
    p = Communicator(log, topics, catalog, "p1")
    send_join(p, "p1")
    log.publish(topics.coordinator, b"\x00garbage")  # undecodable
    p.send(Message("model_update", ("coordinator",), 0, {  # decodes, but from a participant that never joined
        "num_samples": 1, "base_round": 0, "train_metrics": {}, "tensors": PARAMS}, sender="ghost", id="ghost/0/1",
        course="c"))
    send_join(Communicator(log, topics, catalog, "p2"), "p2")
    handled = pump(coordinator, comm)
    assert handled == 3  # two joins and the rejected update; the garbage never reached a handler
    assert set(coordinator.state.membership.participants) == {"p1", "p2"}
    assert coordinator.state.phase == "training"  # the course went on
    dlq = list(log.read(topics.dlq))
    assert dlq[0].value == b"\x00garbage"
    reasons = [r.header("fscope.reason").decode() for r in dlq]
    assert "C3 01" in reasons[0]
    assert "unknown sender 'ghost'" in reasons[1]
    assert dlq[1].header("fscope.source") == f"{topics.coordinator}/0/2".encode()
    # Every record, good or bad, was committed: a restart would not see them again.
    assert log.committed("coordinator", topics.coordinator, 0) == 4


def test_broadcast_is_decoded_once_for_many_participants():
    from fscore.intake import DecodeCache

    log, topics, comm, _ = setup()
    cache = DecodeCache()
    comms = [Communicator(log, topics, comm.catalog, f"p{i}", cache=cache) for i in range(3)]
    for c in comms:
        c.subscribe("participant")
    comm.send(Message("model_parameters", ("p0", "p2"), 0, {"tensors": PARAMS}, sender="coordinator", id="c/1",
                      course="c"))
    got = [[m for r in c.records() if (m := c.decode(r)) is not None] for c in comms]
    assert [len(g) for g in got] == [1, 0, 1]
    assert got[0][0] is got[2][0]  # one decoded object shared
