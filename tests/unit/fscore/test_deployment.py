"""A restarted coordinator's wall-clock alarms resume their countdowns instead of starting over."""

from __future__ import annotations

import numpy as np

from fscore.aggregators import FedAvg
from fscore.communicator import Communicator
from fscore.config import StrategyConfig
from fscore.coordinator import Coordinator, CoursePlan
from fscore.message import COORDINATOR, Message, MessageCatalog
from fscore.samplers import make_sampler
from fscore.service import WallAlarm, recover
from fscore.strategy import Strategy
from fscore.topics import CourseTopics
from fscore.transport import EmbeddedLog

from .helpers import ListOutbox


def wall_coordinator(catalog: MessageCatalog, **strategy) -> tuple[Coordinator, ListOutbox]:
    outbox = ListOutbox()
    c = Coordinator(COORDINATOR, "c", catalog, outbox, plan=CoursePlan(2, 5, 2),
                    initial_params={"w": np.zeros(3, np.float32)}, aggregator=FedAvg(),
                    sampler=make_sampler("uniform"), rng=np.random.default_rng(0),
                    strategy=Strategy.from_config(StrategyConfig(**strategy), 2), clock="wall")
    return c, outbox


def test_a_restarted_coordinator_resumes_its_reply_countdown_from_the_records_times():
    catalog, log, topics = MessageCatalog(), EmbeddedLog(), CourseTopics("fscope", "c")
    log.ensure_topics(topics.specs())
    for i in range(2):  # the first incarnation handled both joins (and sent the models) before it died
        Communicator(log, topics, catalog, f"p{i}").send(Message(
            "join_in", (COORDINATOR,), 0, {"address": f"p{i}", "num_train_samples": 1, "num_test_samples": 1,
                                           "backend": "numpy"}, sender=f"p{i}", id=f"p{i}/t/{i}", course="c"))
    handled = log.consumer([topics.coordinator], group=COORDINATOR)
    records = handled.poll(max_records=10)
    handled.commit(records[-1])
    written = records[-1].timestamp
    assert written > 0

    c, outbox = wall_coordinator(catalog, name="sync_vanilla", reply_timeout_s=10.0)
    now = [written + 9.0]  # the restart comes 9 s after the models went out
    alarm = WallAlarm(c, clock=lambda: now[0])
    assert recover(c, log, topics, catalog, observe=alarm.observe_record) == 2
    assert c.state.requests.dispatch == 1 and not outbox.sent  # what recovery re-did was sent already
    alarm()
    assert not outbox.of_type("alarm")
    now[0] = written + 10.0  # 10 s after the dispatch, not 10 s after the restart
    alarm()
    (rung,) = outbox.of_type("alarm")
    assert rung.payload["kind"] == "reply" and rung.payload["budget"] == 1


def test_the_join_deadline_counts_from_the_courses_first_start():
    catalog = MessageCatalog()
    c, outbox = wall_coordinator(catalog)
    c.plan = CoursePlan(2, 5, 2, join_timeout_s=5.0)
    now = [103.0]
    alarm = WallAlarm(c, clock=lambda: now[0], started=100.0)
    alarm()
    assert not outbox.of_type("alarm")
    now[0] = 105.0
    alarm()
    assert [m.payload["kind"] for m in outbox.of_type("alarm")] == ["join"]


def test_the_manifest_is_the_first_on_the_meta_topic_and_garbage_there_is_skipped():
    from fscore.config import CourseConfig
    from fscore.courselog import course_finished, first_manifest, publish_finished, publish_manifest

    catalog, log, topics = MessageCatalog(), EmbeddedLog(), CourseTopics("fscope", "c")
    log.ensure_topics(topics.specs())
    assert first_manifest(log, topics, catalog) is None
    log.publish(topics.meta, b"garbage on the meta topic")
    publish_manifest(log, topics, catalog, CourseConfig(course_id="other"), "x")  # another course's
    publish_manifest(log, topics, catalog, CourseConfig(course_id="c", rounds=3), "a")
    written = list(log.read(topics.meta))[-1].timestamp
    publish_manifest(log, topics, catalog, CourseConfig(course_id="c", rounds=9), "b")
    config, at = first_manifest(log, topics, catalog)
    assert config.rounds == 3 and at == written
    assert course_finished(log, topics, catalog) is None
    publish_finished(log, topics, catalog, "c", "max_rounds_reached", 3, "ab")
    assert course_finished(log, topics, catalog)["rounds"] == 3


def test_a_coordinator_without_progress_names_whom_it_waits_for_once_a_minute():
    from structlog.testing import capture_logs

    catalog = MessageCatalog()
    c, _ = wall_coordinator(catalog, name="sync_vanilla")
    now = [1000.0]
    alarm = WallAlarm(c, clock=lambda: now[0])
    for i in range(2):
        c.handle(Message("join_in", (COORDINATOR,), 0, {"address": f"p{i}", "num_train_samples": 1,
                                                         "num_test_samples": 1, "backend": "numpy"},
                         sender=f"p{i}", id=f"p{i}/t/{i}", course="c"))
    with capture_logs() as logs:
        alarm()
        now[0] += 59
        alarm()
        assert not [e for e in logs if e["event"] == "waiting"]
        now[0] += 2
        alarm()
        now[0] += 30
        alarm()
        now[0] += 31
        alarm()
    waiting = [e for e in logs if e["event"] == "waiting"]
    assert len(waiting) == 2 and waiting[0]["no_update"] == ["p0", "p1"]
    assert "strategy.reply_timeout_s" in waiting[0]["hint"]


def test_a_crash_is_logged_as_json_with_its_traceback(capsys):
    import json

    import structlog

    from fscore.log_setup import configure_logging

    configure_logging(json=True)
    try:
        try:
            raise ValueError("a bug")
        except ValueError:
            structlog.get_logger("t").exception("crashed")
    finally:
        structlog.reset_defaults()
    (line,) = capsys.readouterr().err.strip().splitlines()
    record = json.loads(line)
    assert record["event"] == "crashed"
    (exc,) = record["exception"]
    assert exc["exc_type"] == "ValueError" and exc["exc_value"] == "a bug" and exc["frames"]
