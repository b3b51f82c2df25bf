"""``fscope topics create`` lays out a course's topics as docs/architecture.md describes, on a real broker."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource

BIN = Path(sys.executable).parent


def test_topics_create_makes_the_course_layout_with_unlimited_retention(kafka_bootstrap, example_config):
    course = f"topics-{uuid.uuid4().hex[:8]}"
    args = [str(BIN / "fscope"), "topics", "create", str(example_config), "--set", f"course_id={course}",
            "--set", f"transport.kafka.bootstrap_servers={kafka_bootstrap}"]
    for _ in range(2):  # the second run finds everything in place and changes nothing
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = {kind: f"fscope.{course}.{kind}" for kind in ("coordinator", "broadcast", "direct", "dlq", "meta")}
    metadata = admin.list_topics(timeout=30).topics
    assert {kind: len(metadata[name].partitions) for kind, name in names.items()} == {
        "coordinator": 1, "broadcast": 1, "direct": 16, "dlq": 1, "meta": 1}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names.values()]
    for resource, future in admin.describe_configs(resources).items():
        configs = future.result()
        assert configs["retention.ms"].value == "-1", resource
        assert configs["cleanup.policy"].value == "delete", resource
    assert f"topics of course {course} are in place" in proc.stdout
