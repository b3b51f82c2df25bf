from fscore.transport import EmbeddedLog, TopicSpec, partition_for


def _log():
    log = EmbeddedLog()
    log.ensure_topics([TopicSpec("t", 1), TopicSpec("d", 4)])
    return log


def test_records_get_increasing_offsets_and_replay_from_zero():
    log = _log()
    for i in range(5):
        log.publish("t", f"v{i}".encode())
    assert [r.offset for r in log.read("t")] == [0, 1, 2, 3, 4]
    assert [r.value for r in log.read("t", start=3)] == [b"v3", b"v4"]


def test_each_group_keeps_its_own_position_and_resumes_from_commits():
    log = _log()
    for i in range(3):
        log.publish("t", bytes([i]))
    a = log.consumer(["t"], group="a")
    first = a.poll(max_records=2)
    assert [r.offset for r in first] == [0, 1]
    a.commit(first[0])
    assert [r.offset for r in log.consumer(["t"], group="b").poll()] == [0, 1, 2]
    # A restarted consumer of group a resumes after the last commit, not after what it had polled.
    assert [r.offset for r in log.consumer(["t"], group="a").poll()] == [1, 2]


def test_keyed_consumer_reads_only_its_partition_and_key():
    log = _log()
    keys = [f"p{i}".encode() for i in range(12)]
    for k in keys:
        log.publish("d", k, key=k)
    for k in keys:
        got = log.consumer(["d"], group=k.decode(), key=k).poll()
        assert [r.value for r in got] == [k]
        assert got[0].partition == partition_for(k, 4)
