"""schemathesis against ``/openapi.json`` of a real server on loopback: every operation, valid and
invalid inputs (positive and negative generation), with a key. No 5xx; responses conform to the
schema and content types it declares. The default budget is small; ``-m slow`` runs longer."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from _server_kit import RunningServer, make_request, make_turn, run_server
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

KEY = "schemathesis-admin-key-0123456789"
SHADOWED_SESSION_IDS = ("compare", "export")  # GET /api/sessions/{these} are other routes
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
FAST_EXAMPLES = int(os.environ.get("SPANLOOM_SCHEMATHESIS_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("schemathesis")
    keys = directory / "keys.json"
    keys.write_text(json.dumps({"keys": [{"key": KEY, "role": "admin", "projects": "*"}]}))
    with run_server(directory / "st.db", keys_file=keys) as running:
        for turn in range(3):  # something to find, so not every answer is an empty list
            _, spans = make_turn(f"session-{turn}", f"user-{turn}", turn * 1000.0)
            assert (
                running.post_spans(make_request(spans), {"Authorization": f"Bearer {KEY}"}).status_code == 200
            )
        yield running


def _run(server: RunningServer, examples: int) -> Counter[str]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    figures: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} >= {
        "/v1/traces",
        "/api/sessions",
        "/api/traces/{trace_id}",
    }
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                # The schema says these ids are not this route's: the request reaches another one
                # (negative generation may still send them, as values the schema excludes).
                assume(
                    case.path != "/api/sessions/{session_id}"
                    or (case.path_parameters or {}).get("session_id") not in SHADOWED_SESSION_IDS
                )
                response = case.call_and_validate(
                    base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS
                )
                figures[f"{case.method} {case.path} {response.status_code}"] += 1
                figures["cases"] += 1

            try:
                check()
            except Unsatisfiable:
                # Nothing to make invalid (an operation without parameters or body).
                assert mode is GenerationMode.NEGATIVE, operation.path
                figures["no_negative_cases"] += 1
    return figures


def _check(figures: Counter[str]) -> None:
    assert figures["cases"] > 0
    assert not any(key.endswith((" 500", " 502", " 503")) for key in figures), figures


def test_every_api_operation_conforms(server: RunningServer):
    figures = _run(server, FAST_EXAMPLES)
    print(f"\nschemathesis: {figures['cases']} cases; {dict(sorted(figures.items()))}")
    _check(figures)


@pytest.mark.slow
def test_every_api_operation_conforms_long_run(server: RunningServer):
    figures = _run(server, 300)
    print(f"\nschemathesis (slow): {figures['cases']} cases")
    _check(figures)


def test_the_schema_says_which_session_ids_are_other_routes(server: RunningServer):
    """A session called `export` or `compare` is shadowed by those routes: the schema says so."""
    schema = server.client.get("/openapi.json").json()
    [parameter] = [
        parameter
        for parameter in schema["paths"]["/api/sessions/{session_id}"]["get"]["parameters"]
        if parameter["name"] == "session_id"
    ]
    assert parameter["schema"]["not"] == {"enum": list(SHADOWED_SESSION_IDS)}
    assert {f"/api/sessions/{name}" for name in SHADOWED_SESSION_IDS} <= set(schema["paths"])
