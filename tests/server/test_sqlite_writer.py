"""The SQLite writer's own ways of writing: rows built beforehand (`prepare`), batches of several
requests concatenated into one transaction, multi-row statements under the bound-parameter limit,
texts stored once. Each gives the very rows a plain write of the same spans gives; the users kept
by deltas, and the sessions computed in SQL, equal a plain recount from the traces. (What every
store must do is in tests/store_contract/.)"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.json_values import from_json, to_json
from spanloom.server.store.sqlite import SqliteStore, statements, user_writes
from spanloom.server.store.sqlite.migrations import migrate
from spanloom.server.store.sqlite.rollups import write_batch
from spanloom.server.store.sqlite.span_rows import concatenate, prepare
from spanloom.server.store.trace_rollup import merge_labels, percentile
from spanloom.server.store.turn_previews import input_preview, output_preview

SESSIONS = st.sampled_from([None, "s1", "s2", "s3"])
USERS = st.sampled_from([None, "u1", "u2"])


@st.composite
def traces(draw: st.DrawFn) -> list[SpanRecord]:
    spans: list[SpanRecord] = []
    for trace_number in range(draw(st.integers(1, 5))):
        trace_id = f"{trace_number + 1:032x}"
        # A trace's spans are all of its project: the store sees to that before writing.
        project = draw(st.sampled_from(["p1", "p2"]))
        count = draw(st.integers(1, 4))
        has_root = draw(st.booleans()) or count == 1
        for index in range(count):
            parent = None if index == 0 else f"{draw(st.integers(1, index)):016x}"
            if index == 0 and not has_root:
                parent = "f" * 16  # the root never arrives
            start = draw(st.integers(0, 20)) * 1_000_000
            spans.append(
                SpanRecord(
                    trace_id=trace_id,
                    span_id=f"{index + 1:016x}",
                    parent_span_id=parent,
                    name=f"span-{index}",
                    project=project,
                    start_time_ns=start,
                    end_time_ns=start + draw(st.integers(0, 30)) * 1_000_000,
                    span_kind=draw(st.sampled_from(["LLM", "CHAIN", "TOOL"])),
                    session_id=draw(SESSIONS),
                    user_id=draw(USERS),
                    status_code=draw(st.sampled_from(["UNSET", "OK", "ERROR"])),
                    total_tokens=draw(st.one_of(st.none(), st.integers(0, 500))),
                    cost=draw(st.sampled_from([None, 0.1, 0.2, 0.3, 1e-7])),
                    input=draw(st.sampled_from([None, f"in-{trace_number}-{index}"])),
                    output=draw(st.sampled_from([None, f"out-{trace_number}-{index}"])),
                    tags=draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True)),
                    metadata=draw(
                        st.dictionaries(st.sampled_from(["k", "m"]), st.integers(0, 2), max_size=1)
                    ),
                    attributes={"x": index, "input.value": f"in-{trace_number}-{index}"},
                )
            )
    return spans


def _connection(directory: str) -> sqlite3.Connection:
    connection = sqlite3.connect(Path(directory) / "rollups.db", isolation_level=None)
    migrate(connection)
    return connection


def _write(connection: sqlite3.Connection, spans: list[SpanRecord], prepared: int = 0) -> None:
    """One transaction of `spans`: as they are (prepared=0), prepared as the ingest route does
    (1: rows and per-trace rollups built beforehand), or prepared in two halves and concatenated
    as the writer does with two waiting requests (2)."""
    batch: Any = spans
    if prepared == 1:
        batch = prepare(spans)
    elif prepared == 2:
        middle = len(spans) // 2
        batch = concatenate([prepare(spans[:middle]), prepare(spans[middle:])])
    connection.execute("BEGIN IMMEDIATE")
    write_batch(connection, batch)
    connection.execute("COMMIT")


def _rows(connection: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("traces", "sessions", "users")
    }


def _recounted_users(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return [
        tuple(user_writes.recount_user(connection, project, user_id) or ())
        for project, user_id in connection.execute(
            "SELECT DISTINCT project, user_id FROM traces WHERE user_id IS NOT NULL ORDER BY 1, 2"
        ).fetchall()
    ]


def _recounted_sessions(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Sessions as a plain Python recount of their traces (the store computes them in SQL)."""
    sessions = []
    for project, session_id in connection.execute(
        "SELECT DISTINCT project, session_id FROM traces WHERE session_id IS NOT NULL ORDER BY 1, 2"
    ).fetchall():
        rows = connection.execute(
            "SELECT project, user_id, start_ns, end_ns, total_tokens, cost_nanos, error_count, latency_ms,"
            " trace_id, has_input, has_output, tags, metadata FROM traces"
            " WHERE project = ? AND session_id = ? ORDER BY start_ns, trace_id",
            (project, session_id),
        ).fetchall()
        latencies = sorted(row[7] for row in rows)
        tags, metadata = merge_labels((json.loads(row[11]), json.loads(row[12])) for row in rows)
        nanos = sum(row[5] for row in rows)
        sessions.append(
            (
                project,
                session_id,
                next((row[1] for row in rows if row[1]), None),
                len(rows),
                rows[0][2],
                max(row[3] for row in rows),
                sum(row[4] for row in rows),
                nanos / 1e9,
                nanos,
                sum(row[6] > 0 for row in rows),
                percentile(latencies, 0.5),
                percentile(latencies, 0.95),
                next((row[8] for row in rows if row[9]), None),
                next((row[8] for row in reversed(rows) if row[10]), None),
                to_json(tags) if tags else "[]",
                to_json(metadata) if metadata else "{}",
                input_preview(_trace_text(connection, next((r[8] for r in rows if r[9]), None), "input")),
                output_preview(
                    _trace_text(connection, next((r[8] for r in reversed(rows) if r[10]), None), "output")
                ),
            )
        )
    return sessions


def _trace_text(connection: sqlite3.Connection, trace_id: str | None, column: str) -> str | None:
    """A trace's input or output (`column`), from the span holding it or the one it shares."""
    if trace_id is None:
        return None
    (span_id,) = connection.execute(
        f"SELECT {column}_span_id FROM traces WHERE trace_id = ?", (trace_id,)
    ).fetchone()
    text, shared = connection.execute(
        f"SELECT {column}, {column}_from FROM spans WHERE trace_id = ? AND span_id = ?", (trace_id, span_id)
    ).fetchone()
    if text is None and shared is not None:
        (text,) = connection.execute(
            f"SELECT {column} FROM spans WHERE trace_id = ? AND span_id = ?", (trace_id, shared)
        ).fetchone()
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spans=traces(), data=st.data())
def test_any_arrival_order_gives_the_rows_of_one_in_order_batch(spans: list[SpanRecord], data: st.DataObject):
    arrival = data.draw(st.permutations(spans))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrival)), max_size=4)))
    batches = [
        arrival[low:high] for low, high in zip([0, *cuts], [*cuts, len(arrival)], strict=True) if high > low
    ]
    retried = data.draw(st.lists(st.sampled_from(batches), max_size=2))
    with tempfile.TemporaryDirectory() as in_order, tempfile.TemporaryDirectory() as shuffled:
        expected_connection, connection = _connection(in_order), _connection(shuffled)
        _write(expected_connection, spans)
        for batch in [*batches, *retried]:
            _write(connection, batch, data.draw(st.sampled_from([0, 1, 2])))
        expected, actual = _rows(expected_connection), _rows(connection)
        assert actual == expected
        assert actual["users"] == _recounted_users(connection)
        assert actual["sessions"] == _recounted_sessions(connection)
        assert expected["users"] == _recounted_users(expected_connection)
        expected_connection.close()
        connection.close()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_from_json_reads_back_what_to_json_stored(value: Any):
    """The read path's fast parser gives what json.loads gives: integers past 64 bits stay exact
    (not floats), floats keep every digit, every character comes back."""
    text = to_json(value)
    assert repr(from_json(text)) == repr(json.loads(text))


def test_from_json_takes_what_the_fast_parser_refuses():
    assert from_json('"\\ud83d"') == json.loads('"\\ud83d"')  # a lone surrogate escape
    assert from_json('{"a": 1, "a": 2}') == {"a": 2}  # the last of repeated keys, as json.loads


def test_get_trace_returns_the_attributes_as_sent(tmp_path: Path):
    attributes = {
        "openinference.span.kind": "LLM",
        "input.value": "the question",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "the answer",
        "z": 1,
    }
    record = SpanRecord(
        trace_id="2" * 32,
        span_id="3" * 16,
        parent_span_id=None,
        name="chat",
        project="p",
        start_time_ns=0,
        end_time_ns=5,
        input="the question",
        output=attributes["llm.output_messages.0.message.content"],
        attributes=attributes,
    )
    store = SqliteStore(tmp_path / "attributes.db")
    try:
        store.insert_spans([record]).result(timeout=10)
        detail = store.get_trace("2" * 32)
        assert detail is not None
        assert list(detail.spans[0].attributes.items()) == list(attributes.items())
        stored = (
            sqlite3.connect(tmp_path / "attributes.db").execute("SELECT attributes FROM spans").fetchone()
        )
        assert "the answer" not in stored[0] and "the question" not in stored[0]  # stored once
    finally:
        store.close()


@pytest.mark.parametrize("parameter_limit", [None, 999])
def test_a_large_batch_with_duplicates_and_nanosecond_latencies(
    tmp_path: Path, parameter_limit: int | None, monkeypatch: pytest.MonkeyPatch
):
    """Rows go in as multi-row statements and rollups come back packed as text: a batch of an
    odd size over the rows-per-statement cap, a span repeated within it (the first copy wins),
    and latencies with every nanosecond digit all survive that exactly. Also under the bound
    parameter limit of SQLite before 3.32 (999), which caps the rows per statement lower: set on
    the connection where Python can (3.11+, and SQLite then refuses any statement over it), else
    by the SQLite version the store falls back on."""
    spans = [
        SpanRecord(
            trace_id=f"{index // 3 + 1:032x}",
            span_id=f"{index % 3 + 1:016x}",
            parent_span_id=None if index % 3 == 0 else f"{1:016x}",
            name=f"span-{index}",
            project="p",
            start_time_ns=1_700_000_000_123_456_789 + index,
            end_time_ns=1_700_000_000_123_456_789 + index + 987_654_321 + index * 7_777,
            session_id=f"session-{index % 41}",
            user_id=f"user-{index % 7}",
            total_tokens=index,
            cost=index * 1e-6,
        )
        for index in range(1_337)
    ]
    repeated = spans[500]
    spans.insert(900, dataclasses.replace(repeated, name="second copy"))
    connection = _connection(str(tmp_path))
    if parameter_limit is not None:
        if hasattr(connection, "setlimit"):  # Python 3.11+: SQLite itself enforces the lower limit
            connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, parameter_limit)
        else:  # Python 3.10 can neither read nor set the limit: the store goes by the version
            monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 0))
        assert statements.parameter_limit(connection) == parameter_limit
    _write(connection, spans)
    assert connection.execute("SELECT COUNT(*) FROM spans").fetchone() == (1_337,)
    assert connection.execute(
        "SELECT name FROM spans WHERE trace_id = ? AND span_id = ?", (repeated.trace_id, repeated.span_id)
    ).fetchone() == (repeated.name,)
    rows = _rows(connection)
    assert len(rows["traces"]) == 446
    assert rows["sessions"] == _recounted_sessions(connection)
    assert rows["users"] == _recounted_users(connection)
    latency = connection.execute("SELECT latency_ms FROM traces ORDER BY trace_id LIMIT 1").fetchone()[0]
    assert latency == 987_654_321 / 1e6
