"""``GET /api/sessions/compare``: two sessions of one project side by side, a page of turns at a time.

A router of its own, included before the main API routes so the path is not read as the session
"compare". Both ids are read in one project: ``project=``, else the one readable project holding
session `a` (as the session detail route resolves an id); `b` must be in it too. An id the
caller may not read answers exactly like an unknown one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from spanloom.server.api import serialize
from spanloom.server.api.json_body import json_response
from spanloom.server.api.routes import project_of
from spanloom.server.api.store_dependency import get_store
from spanloom.server.compare_params import CompareParams
from spanloom.server.errors import HttpError
from spanloom.server.session_compare import Comparison, Delta, Missing, ResultPair, TurnPair, load_comparison
from spanloom.server.store.base import SessionDetail, Store
from spanloom.server.store.evaluation_types import EvaluationRecord

router = APIRouter(prefix="/api", tags=["api"])


def delta_json(figures: Delta) -> dict[str, Any]:
    return {"a": figures.a, "b": figures.b, "delta": figures.delta, "direction": figures.direction}


def _result(record: EvaluationRecord | None) -> dict[str, Any] | None:
    return None if record is None else serialize.evaluation_json(record)


def result_pair_json(pair: ResultPair) -> dict[str, Any]:
    return {
        "name": pair.name,
        "source": pair.source,
        "a": _result(pair.a),
        "b": _result(pair.b),
        "change": pair.change,
    }


def turn_pair_json(pair: TurnPair) -> dict[str, Any]:
    def side(turn: Any, number: int | None, feedback: list[EvaluationRecord]) -> dict[str, Any] | None:
        if turn is None:
            return None
        return {
            "number": number,
            **serialize.turn_json(turn),
            "feedback": [serialize.evaluation_json(record) for record in feedback],
        }

    return {
        "position": pair.position,
        "a": side(pair.a, pair.a_number, pair.a_feedback),
        "b": side(pair.b, pair.b_number, pair.b_feedback),
        "input_differs": pair.input_differs,
        "output_differs": pair.output_differs,
        "latency_ms": delta_json(pair.latency_ms),
        "total_tokens": delta_json(pair.total_tokens),
        "cost": delta_json(pair.cost),
        "error_count": delta_json(pair.error_count),
        "evaluations": [result_pair_json(result) for result in pair.evaluations],
        "regressed": pair.regressed,
    }


def _session(detail: SessionDetail, idle_before_ns: int) -> dict[str, Any]:
    return {
        **serialize.session_json(detail.summary, idle_before_ns),
        "results": [serialize.evaluation_json(result) for result in detail.results],
        "turns_offset": detail.first_turn_index,
    }


def comparison_json(comparison: Comparison, idle_before_ns: int) -> dict[str, Any]:
    next_page = comparison.next_page
    return {
        "a": _session(comparison.a, idle_before_ns),
        "b": _session(comparison.b, idle_before_ns),
        "limit": comparison.limit,
        "turns": [turn_pair_json(pair) for pair in comparison.turns],
        "totals": {total.name: delta_json(total.figures) for total in comparison.totals},
        "evaluation_summary": {
            score.name: {
                "a": None if score.a is None else serialize.aggregate_json(score.a),
                "b": None if score.b is None else serialize.aggregate_json(score.b),
                "headline": delta_json(score.figures),
                "headline_is": "mean_score" if score.by_score else "pass_rate",
            }
            for score in comparison.scores
        },
        "session_results": [result_pair_json(pair) for pair in comparison.session_results],
        "next": None
        if next_page is None
        else {"a_cursor": next_page.a_cursor, "b_cursor": next_page.b_cursor},
    }


@router.get(
    "/sessions/compare",
    summary="Two sessions side by side, turn by turn, with what differs",
    description=(
        "Turn i of `a` beside turn i of `b`, `limit` turns of each per page (default 25, at most"
        " 100): texts, latency, tokens, cost, errors and evaluation results, each pair with its"
        " delta (b - a) and `direction` (better, worse, same); results paired by name and source"
        " with their `change` (regressed: passed in a and failed in b). `totals` and"
        " `evaluation_summary` cover the whole sessions. `next` holds the cursors of the next page"
        " (`end` for a side with no turns left). Both sessions are read in one project."
    ),
    responses={409: {"description": "Without `project`, session `a` exists in several projects (listed)"}},
    response_model=dict[str, Any],
)
def compare_sessions(
    request: Request, params: Annotated[CompareParams, Query()], store: Store = Depends(get_store)
) -> Response:
    if params.a is None or params.b is None:
        raise HttpError(400, "bad_parameter", "a and b: both session ids are required")
    first = params.a
    chosen = project_of(request, "session", first, params.project, lambda: store.find_session_projects(first))
    found = load_comparison(store, chosen, params)
    if isinstance(found, Missing):
        raise HttpError(404, "not_found", f"no session {found.session_id!r}")
    return json_response(comparison_json(found, request.app.state.settings.idle_before_ns()))
