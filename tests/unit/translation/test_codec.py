import io
import json
from pathlib import Path

import fastavro
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fstranslation import DecodeError, Header, TensorError, UnknownSchemaError, WireCodec, default_store
from fstranslation.schema_store import schema_fingerprint
from fstranslation.tensors import WIRE_DTYPES, avro_long, tensor_records

SCHEMAS = Path(__file__).parents[3] / "libs/translation/src/fstranslation/schemas"

codec = WireCodec()

headers = st.builds(
    Header,
    id=st.text(max_size=20), course=st.text(max_size=10), type=st.just("model_update"), sender=st.text(max_size=10),
    receivers=st.lists(st.text(max_size=8), max_size=4).map(tuple), round=st.integers(-(2**40), 2**40),
    timestamp=st.floats(allow_nan=False))
arrays = hnp.arrays(dtype=st.sampled_from(sorted(WIRE_DTYPES)).map(np.dtype),
                    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
tensor_maps = st.dictionaries(st.text(min_size=1, max_size=12), arrays, max_size=5)


def update_payload(tensors, n=3):
    return {"num_samples": n, "base_round": 1, "train_metrics": {"loss": 0.5}, "tensors": tensors}


@settings(max_examples=150, deadline=None)
@given(header=headers, tensors=tensor_maps)
def test_message_round_trips_bit_exactly(header, tensors):
    data = codec.encode(header, update_payload(tensors))
    got_header, payload = codec.decode(data)
    assert got_header == header
    assert list(payload["tensors"]) == list(tensors)
    for name, arr in tensors.items():
        got = payload["tensors"][name]
        assert got.dtype == arr.dtype.newbyteorder("<") and got.shape == arr.shape
        assert got.tobytes() == np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


@settings(max_examples=100, deadline=None)
@given(tensors=tensor_maps)
def test_zero_copy_framing_writes_the_same_bytes_as_fastavro(tensors):
    schema = codec.store.current("model_update")
    fast = codec.encode_payload("model_update", update_payload(tensors))
    plain = io.BytesIO()
    fastavro.schemaless_writer(plain, schema.parsed, update_payload(tensor_records(tensors)))
    assert fast == plain.getvalue()


@given(st.integers(-(2**63), 2**63 - 1))
def test_avro_long_matches_fastavro(n):
    ref = io.BytesIO()
    fastavro.schemaless_writer(ref, "long", n)
    assert avro_long(n) == ref.getvalue()


def test_records_decode_with_plain_fastavro_and_the_checked_in_schemas():
    """An auditor needs nothing but fastavro and the .avsc files to read the log."""
    data = codec.encode(Header("m1", "c", "model_update", "p1", ("coordinator",), 4, 2.5),
                        update_payload({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}))
    named = {}
    fastavro.parse_schema(json.loads((SCHEMAS / "tensor.avsc").read_text()), named_schemas=named)
    envelope_schema = fastavro.parse_schema(json.loads((SCHEMAS / "envelope.avsc").read_text()))
    assert data[:2] == b"\xc3\x01" and data[2:10] == schema_fingerprint(envelope_schema)
    envelope = fastavro.schemaless_reader(io.BytesIO(data[10:]), envelope_schema)
    update_schema = fastavro.parse_schema(json.loads((SCHEMAS / "model_update.avsc").read_text()),
                                          named_schemas=named)
    assert envelope["payload_fingerprint"] == schema_fingerprint(update_schema)
    payload = fastavro.schemaless_reader(io.BytesIO(envelope["payload"]), update_schema)
    t = payload["tensors"][0]
    assert (t["name"], t["dtype"], t["shape"]) == ("w", "float32", [2, 3])
    assert np.frombuffer(t["data"], "<f4").tolist() == [0, 1, 2, 3, 4, 5]


def test_big_endian_arrays_go_on_the_wire_little_endian():
    arr = np.arange(4, dtype=">i4")
    _, payload = codec.decode(codec.encode(Header("1", "c", "model_parameters", "s", ("r",), 0, 0.0),
                                           {"tensors": {"a": arr}}))
    assert payload["tensors"]["a"].dtype == np.dtype("<i4")
    assert payload["tensors"]["a"].tolist() == [0, 1, 2, 3]


def test_reader_with_newer_schema_reads_old_records():
    v1 = {"type": "record", "name": "Hint", "namespace": "test", "fields": [{"name": "text", "type": "string"}]}
    v2 = {**v1, "fields": [*v1["fields"], {"name": "priority", "type": "int", "default": 7}]}
    old_store = default_store()
    old_store.register("hint", v1)
    old_bytes = WireCodec(old_store).encode(Header("1", "c", "hint", "s", ("r",), 0, 0.0), {"text": "hi"})

    new_store = default_store()
    new_store.register("hint", v1)
    new_store.register("hint", v2)  # newest registration is the reader schema
    _, payload = WireCodec(new_store).decode(old_bytes)
    assert payload == {"text": "hi", "priority": 7}


def test_alarms_recorded_before_alarm_kinds_existed_still_decode():
    from fstranslation.schema_store import SchemaStore, load_schema_file

    old_store = SchemaStore()
    old_store.register("alarm", load_schema_file("alarm.v1.avsc"))
    old_bytes = WireCodec(old_store).encode(Header("1", "c", "alarm", "s", ("r",), 0, 0.0),
                                            {"budget": 3, "deadline": 15.0})
    _, payload = codec.decode(old_bytes)
    assert payload == {"budget": 3, "deadline": 15.0, "kind": "time_up"}


def test_custom_message_type_leaves_the_envelope_unchanged():
    store = default_store()
    store.register("hint", {"type": "record", "name": "Hint", "fields": [{"name": "text", "type": "string"}]})
    assert WireCodec(store).envelope_fingerprint == codec.envelope_fingerprint


GOOD = codec.encode(Header("m", "c", "metrics", "p", ("coordinator",), 1, 0.0),
                    {"split": "test", "num_samples": 3, "values": {"accuracy": 0.5}})


def test_garbage_is_refused_with_the_missing_marker_named():
    with pytest.raises(DecodeError, match="C3 01") as err:
        codec.decode(b"hello world")
    assert err.value.raw == b"hello world"


def test_unknown_payload_fingerprint_is_a_typed_error():
    store = default_store()
    store.register("hint", {"type": "record", "name": "Hint", "fields": [{"name": "text", "type": "string"}]})
    data = WireCodec(store).encode(Header("1", "c", "hint", "s", ("r",), 0, 0.0), {"text": "x"})
    with pytest.raises(UnknownSchemaError, match="no payload schema with fingerprint"):
        codec.decode(data)


def test_truncated_record_names_the_problem():
    with pytest.raises(DecodeError, match="truncated"):
        codec.decode(GOOD[:-3])


def test_corrupt_payload_names_schema_and_field():
    # Flip the payload's "num_samples" long into an overlong varint.
    _header, _writer, _bio, start = codec.decode_header(GOOD)
    body = bytearray(GOOD)
    split_len = 1 + len("test")
    body[start + split_len:] = b"\xff" * (len(GOOD) - start - split_len)
    with pytest.raises(DecodeError) as err:
        codec.decode(bytes(body))
    assert err.value.schema == "fscope.payload.Metrics"
    assert err.value.field == "num_samples"
    assert "num_samples" in str(err.value)


def test_tensor_with_wrong_byte_count_is_refused():
    schema = codec.store.current("model_parameters")
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema.parsed, {"tensors": [
        {"name": "fc.weight", "dtype": "float32", "shape": [2, 2], "data": b"\x00" * 12}]})
    with pytest.raises(TensorError, match=r"'fc.weight' of dtype float32 and shape \(2, 2\) needs 16 bytes"):
        codec.decode_payload("model_parameters", buf.getvalue())


def test_object_arrays_are_never_encoded():
    from fstranslation import EncodeError

    with pytest.raises(EncodeError, match="dtype object"):
        codec.encode_payload("model_parameters", {"tensors": {"x": np.array([{}], dtype=object)}})


def test_tensor_records_are_bounded_before_anything_is_allocated():
    from fstranslation import TensorError, TensorLimits
    from fstranslation.tensors import tensors_from_records

    def rec(shape, data=b"", dtype="float32"):
        return [{"name": "w", "dtype": dtype, "shape": shape, "data": data}]

    cases = {
        "70 dimensions; at most 8": rec([1] * 70, bytes(4)),
        "would need": rec([0, 2**40, 2**40]),
        "negative dimension": rec([-1, 3]),
        "'nosuch', which is not a wire dtype": rec([2], bytes(8), "nosuch"),
        "needs 12 bytes but carries 5": rec([3], bytes(5)),
    }
    for reason, records in cases.items():
        with pytest.raises(TensorError, match=reason):
            tensors_from_records(records, where="here")
    small = TensorLimits(max_bytes=1024)
    with pytest.raises(TensorError, match="limit is 1024"):
        tensors_from_records(rec([257]), where="here", limits=small)
    assert tensors_from_records(rec([256], bytes(1024)), where="here", limits=small)["w"].shape == (256,)
