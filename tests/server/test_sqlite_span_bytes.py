"""What a SQLite span row holds once (schema 10): attributes a typed column reproduces, the
resource, the usual moved-text keys, deflated attributes, short texts shared within a trace. Each
is checked in the file (the bytes are not there twice) and through the store (every span reads
back as it was sent: the same keys, values, types and order)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanloom.server.ingest.decode import decode_protobuf
from spanloom.server.ingest.normalize import normalize_request
from spanloom.server.pricing import load_price_table
from spanloom.server.store.base import SpanRecord
from spanloom.server.store.column_attributes import lift_attributes, restore_lifted
from spanloom.server.store.sqlite import SqliteStore, resource_rows, span_rows
from spanloom.server.store.sqlite.moved_keys import decode_key, encode_key
from spanloom.server.store.sqlite.packed_json import PACK_MIN, pack, unpack
from spanloom.server.store.sqlite.rollups import write_batch

TRACE = "ab" * 16


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def _otlp_spans(spans: list[tuple[int, dict[str, Any]]], resource: dict[str, Any]) -> list[SpanRecord]:
    """Records as ingest makes them from a real OTLP request: (span number, attributes) each."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(KeyValue(key=k, value=_any(v)) for k, v in resource.items())
    scope = resource_spans.scope_spans.add()
    for number, attributes in spans:
        scope.spans.add(
            trace_id=bytes.fromhex(TRACE),
            span_id=number.to_bytes(8, "big"),
            parent_span_id=b"" if number == 1 else (1).to_bytes(8, "big"),
            name=f"span-{number}",
            start_time_unix_nano=1_700_000_000_000_000_000 + number,
            end_time_unix_nano=1_700_000_000_000_000_000 + 10 * number,
            attributes=[KeyValue(key=k, value=_any(v)) for k, v in attributes.items()],
        )
    body = request.SerializeToString()
    return normalize_request(decode_protobuf(body), load_price_table(None)).spans


def _stored(path: Path, sql: str, *parameters: Any) -> list[tuple]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql, parameters).fetchall()


def _write_and_read(path: Path, records: list[SpanRecord]) -> list[SpanRecord]:
    store = SqliteStore(path, index_text=False)
    try:
        store.insert_spans(records).result(timeout=30)
        detail = store.get_trace(TRACE)
        assert detail is not None
        return detail.spans
    finally:
        store.close()


def _items(attributes: dict[str, Any]) -> list[tuple[str, type, Any]]:
    return [(key, type(value), value) for key, value in attributes.items()]


def test_attributes_the_columns_hold_are_stored_once_and_read_back_as_sent(tmp_path: Path):
    llm = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "session.id": "s1",
        "user.id": "u1",
        "llm.token_count.prompt": 12,
        "llm.token_count.completion": 30,
        "llm.token_count.total": 42,
        "gen_ai.conversation.id": "s1",
        "temperature": 0.5,
        "input.value": "what is the refund policy?",
    }
    # Values a column does not reproduce exactly stay in the attributes: the id with spaces
    # (its column holds "s2"), a count sent as text, a kind in lower case, a bool.
    odd = {
        "session.id": " s2 ",
        "llm.token_count.prompt": "12",
        "openinference.span.kind": "tool",
        "llm.token_count.total": True,
        "user.id": "u2",
    }
    sent = _otlp_spans([(1, llm), (2, odd)], {"service.name": "shop", "project.name": "p"})
    read = _write_and_read(tmp_path / "s.db", sent)
    assert [_items(span.attributes) for span in read] == [_items(span.attributes) for span in sent]
    assert [span.resource for span in read] == [{"service.name": "shop", "project.name": "p"}] * 2
    (first, first_lifted), (second, second_lifted) = _stored(
        tmp_path / "s.db", "SELECT attributes, lifted FROM spans ORDER BY span_id"
    )
    for key in ("session.id", "user.id", "openinference.span.kind", "llm.model_name", "token_count", "s1"):
        assert key not in first
    assert len(first_lifted) == 2 * 8  # eight attributes lifted, a byte pair each
    assert second == (
        '{"session.id":" s2 ","llm.token_count.prompt":"12","openinference.span.kind":"tool",'
        '"llm.token_count.total":true}'
    )
    assert second_lifted == bytes((1, 4))  # user.id, at position 4


def test_lifting_keeps_the_callers_dict_and_positions_past_a_byte():
    span = SpanRecord(
        trace_id=TRACE, span_id="1" * 16, parent_span_id=None, name="n", project="p", start_time_ns=0,
        end_time_ns=0, session_id="s", user_id="u",
    )  # fmt: skip
    attributes = {f"k{index}": index for index in range(300)}
    attributes["session.id"] = "s"  # at 300: past what a byte holds, so it stays
    attributes = {"user.id": "u", **attributes}
    original = dict(attributes)
    kept, lifted = lift_attributes(attributes, span)
    assert attributes == original
    assert lifted == bytes((1, 0)) and "session.id" in kept and "user.id" not in kept
    assert list(restore_lifted(kept, lifted, span).items()) == list(original.items())
    assert lift_attributes({"a": 1}, span) == ({"a": 1}, None)


def test_a_resource_is_stored_once_and_a_taken_key_keeps_the_resource_in_the_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "r.db"
    first = _otlp_spans([(1, {}), (2, {})], {"service.name": "a"})
    second = _otlp_spans([(3, {})], {"service.name": "b"})
    # Every resource gets the same key: the second finds it taken by the first's text.
    monkeypatch.setattr("spanloom.server.store.sqlite.span_rows.resource_key", lambda text: 7)
    store = SqliteStore(path, index_text=False)
    try:
        store.insert_spans(first).result(timeout=30)
        store.insert_spans(second).result(timeout=30)
        detail = store.get_trace(TRACE)
        assert detail is not None
        resources = [span.resource for span in detail.spans]
        assert resources == [{"service.name": "a"}] * 2 + [{"service.name": "b"}]
    finally:
        store.close()
    assert _stored(path, "SELECT resource_key, resource FROM resources") == [(7, '{"service.name":"a"}')]
    assert _stored(path, "SELECT resource_key, resource FROM spans ORDER BY span_id") == [
        (7, ""),
        (7, ""),
        (None, '{"service.name":"b"}'),
    ]


def test_resources_sharing_a_key_in_one_transaction_each_read_back_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Within one request, and across requests the writer takes in one transaction."""
    monkeypatch.setattr("spanloom.server.store.sqlite.span_rows.resource_key", lambda text: 7)
    one_request = _otlp_spans([(1, {})], {"service.name": "a"}) + _otlp_spans(
        [(2, {})], {"service.name": "b"}
    )
    assert [span.resource for span in one_request] == [{"service.name": "a"}, {"service.name": "b"}]
    first, second = (
        span_rows.prepare(_otlp_spans([(number, {})], {"service.name": name}))
        for number, name in ((3, "c"), (4, "a"))
    )
    path = tmp_path / "k.db"
    store = SqliteStore(path, index_text=False)
    try:
        store.insert_spans(one_request).result(timeout=30)
    finally:
        store.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("BEGIN IMMEDIATE")
        write_batch(connection, span_rows.concatenate([first, second]))
        connection.execute("COMMIT")
    store = SqliteStore(path, index_text=False)
    try:
        detail = store.get_trace(TRACE)
        assert detail is not None
        assert [span.resource["service.name"] for span in detail.spans] == ["a", "b", "c", "a"]
    finally:
        store.close()
    # "c" finds the key taken in the file, "a" in its transaction (by "c"): both keep their own.
    assert _stored(path, "SELECT resource_key FROM spans ORDER BY span_id") == [
        (7,),
        (None,),
        (None,),
        (None,),
    ]


def test_resource_keys_fit_four_bytes():
    keys = {resource_rows.resource_key(f'{{"service.name":"s{index}"}}') for index in range(1000)}
    assert len(keys) == 1000 and all(0 <= key < 2**31 for key in keys)


@pytest.mark.parametrize(
    ("key", "column", "stored"),
    [
        ("input.value", "input", None),
        ("output.value", "output", None),
        ("output.value", "input", "output.value"),
        ("llm.input_messages.1.message.content", "input", b"\x01\x01"),
        ("llm.output_messages.0.message.content", "output", b"\x02\x00"),
        ("llm.input_messages.01.message.content", "input", "llm.input_messages.01.message.content"),
        ("llm.input_messages.256.message.content", "input", "llm.input_messages.256.message.content"),
        ("llm.input_messages.٣.message.content", "input", "llm.input_messages.٣.message.content"),
        ("llm.input_messages..message.content", "input", "llm.input_messages..message.content"),
        ("gen_ai.prompt.0.content", "input", "gen_ai.prompt.0.content"),
    ],
)
def test_moved_text_keys_are_coded_only_when_they_come_back_the_same(
    key: str, column: str, stored: str | bytes | None
):
    assert encode_key(key, column) == stored
    assert decode_key(encode_key(key, column), column) == key


def test_long_attributes_are_deflated_and_read_back(tmp_path: Path):
    history = {f"llm.input_messages.{n}.message.role": "user" for n in range(20)}
    sent = _otlp_spans([(1, {"a": "x", **history}), (2, {"a": "x"})], {"service.name": "s"})
    read = _write_and_read(tmp_path / "p.db", sent)
    assert [_items(span.attributes) for span in read] == [_items(span.attributes) for span in sent]
    (long, long_type), (_, short_type) = _stored(
        tmp_path / "p.db", "SELECT attributes, typeof(attributes) FROM spans ORDER BY span_id"
    )
    assert (long_type, short_type) == ("blob", "text")
    assert len(long) < len('"llm.input_messages.10.message.role":"user",') * 20 / 3
    assert pack("[]") == "[]" and unpack("[]") == []
    incompressible = '"' + "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(PACK_MIN)) + '"'
    assert unpack(pack(incompressible)) == incompressible[1:-1]


def test_a_short_text_several_spans_carry_is_stored_once(tmp_path: Path):
    question = "What does the refund policy say?"  # 32 characters: the shortest shared
    assert len(question) == 32
    sent = _otlp_spans(
        [(n, {"input.value": question, "output.value": f"answer {n}"}) for n in (1, 2, 3)],
        {"service.name": "s"},
    )
    read = _write_and_read(tmp_path / "t.db", sent)
    assert [span.input for span in read] == [question] * 3
    assert [_items(span.attributes) for span in read] == [_items(span.attributes) for span in sent]
    assert _stored(tmp_path / "t.db", "SELECT input, input_from FROM spans ORDER BY span_id") == [
        (question, None),
        (None, "0000000000000001"),
        (None, "0000000000000001"),
    ]
