"""GET /api/sessions/export against a real server, with conversations made through the SDK (the
OpenAI instrumentor over a faked API, tool calls and all): each format read back (json, the csv
module, pyarrow) equals what GET /api/sessions and GET /api/sessions/{id} show; per turn; the
chat dataset validated against the OpenAI SDK's own message types; masked fields stay masked; a
key scoped to one project exports only it; filters apply; bad parameters answer 400.

The export reads a few sessions per page here (SESSION_PAGE and the turn budgets are lowered), so
every answer crosses page and group boundaries."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import openai
import pyarrow.parquet as pq
import pytest
from _server_kit import RunningServer, run_server, wait_for
from click.testing import CliRunner
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter
from tests.instrumentation.fakes import FakeAPI, chat_completion, http_library, json_response

import spanloom
from spanloom import TraceConfig, using_attributes
from spanloom.cli import cli
from spanloom.instrumentation.openai import OpenAIInstrumentor
from spanloom.server.api.export import routes as export_routes
from spanloom.server.api.export.rows import SESSION_COLUMNS, TURN_COLUMNS, Column

ADMIN = "export-admin-key-0123456789ab"
INGEST = "export-ingest-key-0123456789a"
SHOP_READ = "export-shop-read-key-01234567"
SECRET = "card 4111-SECRET-9999"
OPENAI_HTTP = http_library(openai)
MESSAGE = TypeAdapter(ChatCompletionMessageParam)
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
TOOL_CALL = {
    "id": "call_abc",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _weather_session(client: openai.OpenAI, tracer: Any) -> None:
    @tracer.tool
    def get_weather(city: str) -> str:
        return f"sunny, 21C in {city}"

    @tracer.agent
    def answer(messages: list[dict[str, Any]]) -> str:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
        message = reply.choices[0].message
        if message.tool_calls:
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": get_weather("Paris")})
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
            )
            message = reply.choices[0].message
        messages.append({"role": "assistant", "content": message.content})
        return message.content or ""

    history: list[dict[str, Any]] = [{"role": "system", "content": "You are a weather bot."}]
    with using_attributes(session_id="weather", user_id="alice", metadata={"plan": "pro"}, tags=["beta"]):
        history.append({"role": "user", "content": "Weather in Paris?"})
        answer(history)
        history.append({"role": "user", "content": "And tomorrow?"})
        answer(history)


def _plain_sessions(tracer: Any, count: int) -> None:
    @tracer.chain
    def reply(question: str) -> str:
        return f"echo: {question}"

    @tracer.chain
    def broken(question: str) -> str:
        raise RuntimeError("the model is down")

    for number in range(count):
        with using_attributes(session_id=f"plain-{number}", user_id="bob" if number % 2 else "carol"):
            for turn in range(1 + number % 3):
                reply(f'question {turn} of session {number}, with a comma, a "quote"\nand a newline')
    with using_attributes(session_id="broken", user_id="bob"), pytest.raises(RuntimeError):
        broken("will this fail?")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("export")
    keys = directory / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"key": ADMIN, "role": "admin", "projects": "*"},
                    {"key": INGEST, "role": "ingest", "projects": "*"},
                    {"key": SHOP_READ, "role": "read", "projects": ["shop"]},
                ]
            }
        )
    )
    api = FakeAPI()
    client = openai.OpenAI(
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=OPENAI_HTTP.Client(transport=OPENAI_HTTP.MockTransport(api)),
    )
    with run_server(directory / "export.db", keys_file=keys, backend=store_backend) as server:
        shop = spanloom.register(
            project_name="shop",
            endpoint=server.traces_endpoint,
            headers=bearer(INGEST),
            batch=False,
            set_global_tracer_provider=False,
        )
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=shop)
        api.reply(
            json_response(
                chat_completion(None, message={"tool_calls": [TOOL_CALL]}, finish_reason="tool_calls")
            ),
            json_response(chat_completion("It is sunny in Paris.")),
            json_response(chat_completion("Rain tomorrow.")),
        )
        tracer = spanloom.get_tracer("app", tracer_provider=shop)
        _weather_session(client, tracer)
        _plain_sessions(tracer, 7)
        instrumentor.uninstrument()
        shop.shutdown()
        # Another project, whose app masks every input and output.
        masked_config = TraceConfig(hide_inputs=True, hide_outputs=True)
        masked = spanloom.register(
            project_name="masked",
            endpoint=server.traces_endpoint,
            headers=bearer(INGEST),
            batch=False,
            set_global_tracer_provider=False,
            config=masked_config,
        )
        instrumentor.instrument(tracer_provider=masked, config=masked_config)
        api.reply(json_response(chat_completion(f"Noted your {SECRET}.")))
        with using_attributes(session_id="secret", user_id="dana"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"My {SECRET}"}]
            )
        instrumentor.uninstrument()
        masked.shutdown()
        client.close()
        wait_for(
            lambda: (
                len(_api_sessions(server, project="shop")) == 9
                and len(_api_sessions(server, project="masked")) == 1
            ),
            what="the sessions to be stored",
        )
        yield server


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_routes, "SESSION_PAGE", 2)
    monkeypatch.setattr(export_routes, "TURN_BUDGET", 3)
    monkeypatch.setattr(export_routes, "SPANS_TURN_BUDGET", 1)


def _api_sessions(server: RunningServer, key: str = ADMIN, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = server.client.get(
            "/api/sessions", params={**params, "limit": 3, "cursor": cursor}, headers=bearer(key)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _api_turns(server: RunningServer, session: dict[str, Any]) -> list[dict[str, Any]]:
    detail = server.client.get(
        f"/api/sessions/{session['session_id']}",
        params={"project": session["project"], "limit": 500},
        headers=bearer(ADMIN),
    ).json()
    return [
        {
            "session_id": session["session_id"],
            "project": session["project"],
            "user_id": session["user_id"],
            "turn": number,
            **turn,
        }
        for number, turn in enumerate(detail["turns"], start=1)
    ]


def _export(server: RunningServer, key: str = ADMIN, **params: Any) -> bytes:
    with server.client.stream("GET", "/api/sessions/export", params=params, headers=bearer(key)) as response:
        body = response.read()
    assert response.status_code == 200, body
    return body


def _jsonl(body: bytes) -> list[dict[str, Any]]:
    assert body.endswith(b"\n") or not body
    return [json.loads(line) for line in body.splitlines()]


def _typed(columns: tuple[Column, ...], row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row with the types of its columns back: what the API showed."""
    typed: dict[str, Any] = {}
    for column in columns:
        text = row[column.name]
        if text == "":
            typed[column.name] = None
        elif column.type == "integer":
            typed[column.name] = int(text)
        elif column.type == "number":
            typed[column.name] = float(text)
        elif column.type == "boolean":
            assert text in ("true", "false"), text
            typed[column.name] = text == "true"
        elif column.type == "json":
            typed[column.name] = json.loads(text)
        else:
            typed[column.name] = text
    return typed


def _parquet_rows(body: bytes, columns: tuple[Column, ...]) -> list[dict[str, Any]]:
    table = pq.read_table(io.BytesIO(body))
    assert table.column_names == [column.name for column in columns]
    rows = table.to_pylist()
    for row in rows:
        for column in columns:
            value = row[column.name]
            if column.type == "json" and value is not None:
                row[column.name] = json.loads(value)
            elif column.type == "time" and value is not None:
                row[column.name] = value.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return rows


def test_columns_are_the_api_members():
    session = {"session_id", "user_id", "project", "status", "trace_count", "first_input", "last_output"}
    assert session <= {column.name for column in SESSION_COLUMNS}
    assert {"turn", "trace_id", "input", "output", "latency_ms", "evaluations"} <= {
        c.name for c in TURN_COLUMNS
    }


def test_jsonl_equals_the_sessions_list(exported: RunningServer):
    api = _api_sessions(exported, project="shop")
    assert len(api) == 9
    assert _jsonl(_export(exported, project="shop", format="jsonl")) == api
    ordered = _api_sessions(exported, project="shop", sort="turns", order="asc")
    assert _jsonl(_export(exported, project="shop", sort="turns", order="asc")) == ordered
    assert _jsonl(_export(exported, project="shop", limit=4)) == api[:4]


def test_csv_read_back_equals_the_sessions_list(exported: RunningServer):
    body = _export(exported, project="shop", format="csv").decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [_typed(SESSION_COLUMNS, row) for row in rows] == _api_sessions(exported, project="shop")
    assert any("\n" in (row["first_input"] or "") for row in rows)  # a text with a newline survived


def test_parquet_read_back_equals_the_sessions_list(exported: RunningServer):
    body = _export(exported, project="shop", format="parquet")
    schema = pq.read_schema(io.BytesIO(body))
    assert str(schema.field("start_time").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("total_tokens").type) == "int64"
    assert _parquet_rows(body, SESSION_COLUMNS) == _api_sessions(exported, project="shop")


@pytest.mark.parametrize("export_format", ["jsonl", "csv", "parquet"])
def test_per_turn_equals_each_sessions_turns(exported: RunningServer, export_format: str):
    sessions = _api_sessions(exported, project="shop")
    wanted = [turn for session in sessions for turn in _api_turns(exported, session)]
    assert len(wanted) == sum(session["trace_count"] for session in sessions) > len(sessions)
    body = _export(exported, project="shop", per="turn", format=export_format)
    if export_format == "jsonl":
        rows = _jsonl(body)
    elif export_format == "csv":
        rows = [_typed(TURN_COLUMNS, row) for row in csv.DictReader(io.StringIO(body.decode()))]
    else:
        rows = _parquet_rows(body, TURN_COLUMNS)
    assert rows == wanted


def _example(examples: list[dict[str, Any]], session_id: str) -> dict[str, Any]:
    (found,) = [example for example in examples if example["metadata"]["session_id"] == session_id]
    return found


def _validate(example: dict[str, Any]) -> None:
    """Each message is one of the OpenAI SDK's chat message types, and every tool call is
    answered by a tool message with its id (and no tool message answers nothing)."""
    assert set(example) == {"messages", "metadata"}
    calls: list[str] = []
    for message in example["messages"]:
        MESSAGE.validate_python(message)
        assert message["role"] in ("system", "developer", "user", "assistant", "tool")
        calls += [call["id"] for call in message.get("tool_calls", ())]
    answers = [message["tool_call_id"] for message in example["messages"] if message["role"] == "tool"]
    assert sorted(answers) == sorted(calls)
    assert len(set(calls)) == len(calls)


def test_dataset_is_the_conversation_in_the_openai_chat_format(exported: RunningServer):
    examples = _jsonl(_export(exported, project="shop", **{"as": "dataset"}))
    assert len(examples) == 9
    for example in examples:
        _validate(example)
    weather = _example(examples, "weather")
    assert weather["metadata"] == {"session_id": "weather", "project": "shop", "user_id": "alice"}
    assert weather["messages"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "sunny, 21C in Paris"},
        {"role": "assistant", "content": "It is sunny in Paris."},
        {"role": "user", "content": "And tomorrow?"},
        {"role": "assistant", "content": "Rain tomorrow."},
    ]
    # Turns without an LLM call: their input and output text.
    plain = _example(examples, "plain-2")
    assert [message["role"] for message in plain["messages"]] == ["user", "assistant"] * 3
    assert plain["messages"][0]["content"].startswith("question 0 of session 2")


@pytest.mark.parametrize("export_format", ["csv", "parquet"])
def test_dataset_in_the_tabular_formats_holds_the_same_examples(exported: RunningServer, export_format: str):
    wanted = _jsonl(_export(exported, project="shop", **{"as": "dataset"}))
    body = _export(exported, project="shop", format=export_format, **{"as": "dataset"})
    if export_format == "csv":
        rows = [
            {"messages": json.loads(row["messages"]), "metadata": json.loads(row["metadata"])}
            for row in csv.DictReader(io.StringIO(body.decode()))
        ]
    else:
        rows = [
            {"messages": json.loads(row["messages"]), "metadata": json.loads(row["metadata"])}
            for row in pq.read_table(io.BytesIO(body)).to_pylist()
        ]
    assert rows == wanted


def test_masked_fields_stay_masked(exported: RunningServer):
    for params in ({"as": "dataset"}, {"per": "turn"}, {}):
        for export_format in ("jsonl", "csv"):
            body = _export(exported, project="masked", format=export_format, **params)
            assert SECRET.encode() not in body and b"4111" not in body, params
    (example,) = _jsonl(_export(exported, project="masked", **{"as": "dataset"}))
    _validate(example)
    assert example["messages"] == [
        {"role": "user", "content": spanloom.REDACTED_VALUE},
        {"role": "assistant", "content": spanloom.REDACTED_VALUE},
    ]


def test_a_scoped_key_exports_only_its_project(exported: RunningServer):
    other = exported.client.get(
        "/api/sessions/export", params={"project": "masked"}, headers=bearer(SHOP_READ)
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    # Without project=, the key's project is the one exported.
    rows = _jsonl(_export(exported, key=SHOP_READ))
    assert {row["project"] for row in rows} == {"shop"} and len(rows) == 9
    examples = _jsonl(_export(exported, key=SHOP_READ, **{"as": "dataset"}))
    assert {example["metadata"]["project"] for example in examples} == {"shop"}
    assert exported.client.get("/api/sessions/export").status_code == 401


@pytest.mark.parametrize(
    "filters",
    [
        {"user_id": "bob"},
        {"has_error": "true"},
        {"metadata.plan": "pro"},
        {"tag": "beta"},
        {"q": "session 3"},
    ],
)
def test_filters_apply_as_in_the_list(exported: RunningServer, filters: dict[str, str]):
    wanted = _api_sessions(exported, project="shop", **filters)
    assert 0 < len(wanted) < 9
    assert _jsonl(_export(exported, project="shop", **filters)) == wanted
    turns = _jsonl(_export(exported, project="shop", per="turn", **filters))
    assert {row["session_id"] for row in turns} == {session["session_id"] for session in wanted}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"format": "xml"}, "format"),
        ({"per": "span"}, "per"),
        ({"as": "table"}, "as"),
        ({"as": "dataset", "per": "turn"}, "per=turn"),
        ({"sort": "nope"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_bad_parameters_answer_400_naming_them(exported: RunningServer, params: dict[str, str], named: str):
    response = exported.client.get("/api/sessions/export", params=params, headers=bearer(ADMIN))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_parameter" and named in error["message"], error


def test_parquet_without_pyarrow_answers_501_naming_the_extra(
    exported: RunningServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    response = exported.client.get(
        "/api/sessions/export", params={"format": "parquet"}, headers=bearer(ADMIN)
    )
    assert response.status_code == 501
    assert "spanloom[parquet]" in response.json()["error"]["message"]
    # The other formats do not need it.
    assert _jsonl(_export(exported, project="shop", limit=1))


def test_headers_name_the_type_and_a_file(exported: RunningServer):
    for export_format, media in (
        ("jsonl", "application/x-ndjson"),
        ("csv", "text/csv"),
        ("parquet", "parquet"),
    ):
        with exported.client.stream(
            "GET",
            "/api/sessions/export",
            params={"project": "shop", "format": export_format},
            headers=bearer(ADMIN),
        ) as response:
            assert media in response.headers["content-type"]
            assert (
                response.headers["content-disposition"]
                == f'attachment; filename="shop-sessions.{export_format}"'
            )


def test_times_are_the_lists_times(exported: RunningServer):
    (session,) = _api_sessions(exported, project="shop", user_id="alice")
    (row,) = pq.read_table(
        io.BytesIO(_export(exported, project="shop", user_id="alice", format="parquet"))
    ).to_pylist()
    assert row["start_time"] == datetime.fromisoformat(session["start_time"].replace("Z", "+00:00"))


def test_an_empty_export_is_a_valid_file(exported: RunningServer, tmp_path: Path):
    assert _export(exported, project="shop", user_id="nobody") == b""
    body = _export(exported, project="shop", user_id="nobody", format="csv").decode()
    assert body.splitlines() == [",".join(column.name for column in SESSION_COLUMNS)]
    table = pq.read_table(io.BytesIO(_export(exported, project="shop", user_id="nobody", format="parquet")))
    assert table.num_rows == 0 and table.column_names == [column.name for column in SESSION_COLUMNS]


def _cli(exported: RunningServer, *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["export", "sessions", "--server", exported.url, "--api-key", ADMIN, *args]
    )


def test_the_cli_writes_what_the_api_sends(exported: RunningServer, tmp_path: Path):
    out = tmp_path / "sessions.parquet"
    result = _cli(exported, "--project", "shop", "--format", "parquet", "--has-error", "--out", str(out))
    assert result.exit_code == 0, result.output
    wanted = _api_sessions(exported, project="shop", has_error="true")
    assert _parquet_rows(out.read_bytes(), SESSION_COLUMNS) == wanted
    dataset = tmp_path / "dataset.jsonl"
    result = _cli(
        exported, "--project", "shop", "--as", "dataset", "--metadata", "plan=pro", "--out", str(dataset)
    )
    assert result.exit_code == 0, result.output
    assert "exported 1 examples" in result.output
    (example,) = _jsonl(dataset.read_bytes())
    assert example["metadata"]["session_id"] == "weather"


def test_the_cli_goes_where_register_sends_by_default(exported: RunningServer, tmp_path: Path):
    # The fixture's last register() named this server (with an ingest key, which cannot read).
    out = tmp_path / "turns.csv"
    args = ["export", "sessions", "--project", "shop", "--per", "turn", "--format", "csv", "--out", str(out)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and "403" in refused.output
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
    result = CliRunner().invoke(cli, [*args, "--api-key", ADMIN])
    assert result.exit_code == 0, result.output
    rows = [_typed(TURN_COLUMNS, row) for row in csv.DictReader(io.StringIO(out.read_text()))]
    assert rows == [t for s in _api_sessions(exported, project="shop") for t in _api_turns(exported, s)]


def test_the_cli_says_what_the_server_refused(exported: RunningServer, tmp_path: Path):
    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "sessions",
            "--server",
            exported.url,
            "--api-key",
            ADMIN,
            "--sort",
            "nope",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1
    assert "400" in result.output and "sort: expected one of" in result.output
    assert list(tmp_path.iterdir()) == []
