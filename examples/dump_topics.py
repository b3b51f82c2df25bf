"""Dump a course's topics as JSON lines with plain Avro tools: confluent-kafka, fastavro and the .avsc files.

    python examples/dump_topics.py localhost:9092 my-course > course.jsonl

Each record value is an Avro single-object encoding of ``Envelope``: ``C3 01``, the 8-byte CRC-64-AVRO
fingerprint of the envelope schema, then the schemaless body. The envelope's ``payload`` is the schemaless
body of the schema whose fingerprint is ``payload_fingerprint``. A record above ``max_record_bytes`` is sent
as chunks with header ``fscope.chunk`` = ``id:index:count:sha256``: join them in order first.
"""

import argparse
import io
import json
import sys
from pathlib import Path

import fastavro
from confluent_kafka import Consumer, TopicPartition
from fastavro.schema import expand_schema, fingerprint, to_parsing_canonical_form

SCHEMAS = Path(__file__).parents[1] / "libs/translation/src/fstranslation/schemas"


def load_schemas(dirs):
    named, schemas = {}, {}
    fastavro.parse_schema(json.loads((SCHEMAS / "tensor.avsc").read_text()), named_schemas=named)
    for path in sorted(p for d in dirs for p in Path(d).glob("*.avsc") if p.name != "tensor.avsc"):
        parsed = fastavro.parse_schema(json.loads(path.read_text()), named_schemas=dict(named))
        schemas[fingerprint(to_parsing_canonical_form(expand_schema(parsed)), "CRC-64-AVRO")] = parsed
    return schemas


def decode(value, schemas):
    if value[:2] != b"\xc3\x01":
        raise ValueError(f"not Avro single-object encoding (starts {value[:2].hex()})")
    envelope_schema = schemas[value[2:10].hex()]  # after the C3 01 marker
    envelope = fastavro.schemaless_reader(io.BytesIO(value[10:]), envelope_schema)
    payload = fastavro.schemaless_reader(io.BytesIO(envelope.pop("payload")), schemas[envelope.pop(
        "payload_fingerprint").hex()])
    for tensor in payload.get("tensors", []):
        tensor["data"] = f"<{len(tensor['data'])} bytes>"
    return {**envelope, "payload": payload}


def records(consumer, topic):
    meta = consumer.list_topics(topic, timeout=30).topics[topic]
    parts = [TopicPartition(topic, p, 0) for p in sorted(meta.partitions)]
    ends = {p.partition: consumer.get_watermark_offsets(p, timeout=30)[1] for p in parts}
    consumer.assign(parts)
    chunks = {}
    # Read up to each end offset, not a count of records: transaction markers take offsets too.
    while any((end := ends[p.partition]) > 0 and p.offset < end for p in consumer.position(parts)):
        msg = consumer.poll(1)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"reading {topic}: {msg.error()}")
        marker = dict(msg.headers() or []).get("fscope.chunk")
        if marker is None:
            yield msg, msg.value()
            continue
        group, index, count, _ = marker.decode().split(":")
        chunks.setdefault(group, {})[int(index)] = msg.value()
        if len(chunks[group]) == int(count):
            yield msg, b"".join(v for _, v in sorted(chunks.pop(group).items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap"), parser.add_argument("course")
    parser.add_argument("--prefix", default="fscope")
    parser.add_argument("--schemas", action="append", default=[], help="more .avsc dirs (plug-in types)")
    args = parser.parse_args()
    schemas = load_schemas([SCHEMAS, *args.schemas])
    for kind in ("meta", "coordinator", "broadcast", "direct", "dlq"):
        topic = f"{args.prefix}.{args.course}.{kind}"
        consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "dump-topics",
                             "enable.auto.commit": False})
        for msg, value in records(consumer, topic):
            line = {"topic": topic, "partition": msg.partition(), "offset": msg.offset()}
            try:
                line["message"] = decode(value, schemas)
            except (ValueError, KeyError, EOFError, TypeError) as exc:  # e.g. garbage kept by the dlq
                line["undecodable"] = f"{type(exc).__name__}: {exc}"
            print(json.dumps(line, default=repr))
        consumer.close()


if __name__ == "__main__":
    main()
