"""`spanloom migrate FROM TO`: a whole store copied into another backend, with its counts checked."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from tests.chdb_kit import chdb_url

from spanloom.cli import cli
from spanloom.server.store.base import ListQuery, SpanRecord
from spanloom.server.store.evaluation_types import EvaluationInput
from spanloom.server.store.url import open_store

T0 = 1_760_000_000_000_000_000


def _span(trace: int, number: int, project: str, session: str | None, **fields: object) -> SpanRecord:
    start = T0 + trace * 1_000_000_000 + number * 1_000_000
    return SpanRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{trace * 100 + number:016x}",
        parent_span_id=None if number == 1 else f"{trace * 100 + 1:016x}",
        name=f"span-{number}",
        project=project,
        start_time_ns=start,
        end_time_ns=start + 5_000_000,
        session_id=session,
        user_id="alice" if session else None,
        input=f"question {trace}" if number == 1 else None,
        cost=0.001 * number,
        **fields,  # type: ignore[arg-type]
    )


def test_migrate_copies_every_span_result_and_rollup(tmp_path: Path):
    source_url = f"sqlite:///{tmp_path / 'spans.db'}"
    source = open_store(source_url)
    # The same session and user ids in two projects, a trace without a session, late spans.
    spans = [
        _span(trace, number, "shop" if trace % 2 else "support", f"s{trace % 3}" if trace != 7 else None)
        for trace in range(1, 30)
        for number in (1, 2, 3)
    ]
    source.insert_spans(spans).result(timeout=30)
    source.insert_evaluations(
        [
            *(
                EvaluationInput(name="helpful", source="api", trace_id=f"{trace:032x}", score=trace / 30)
                for trace in (1, 2, 7)
            ),
            # End users' feedback on a turn and on a session, a session evaluator's judgement.
            EvaluationInput(name="feedback", source="feedback", key="f1", score=-1, trace_id=f"{3:032x}"),
            EvaluationInput(
                name="feedback", source="feedback", key="f2", score=1, session_id="s1", project="shop"
            ),
            EvaluationInput(
                name="resolved",
                source="server",
                session_id="s2",
                project="shop",
                score=0,
                details={"turn": 2},
            ),
        ]
    ).result(timeout=30)
    source.end_session("shop", "s1", T0 + 10**12).result(timeout=30)
    source.mark_judged("shop", "s2", source.get_session("shop", "s2").summary.end_time_ns).result(timeout=30)
    expected_sessions = source.list_sessions(ListQuery(limit=100)).items
    expected_due = source.sessions_to_judge(2**63 - 1)
    expected_results = {key: source.get_session(*key).results for key in (("shop", "s1"), ("shop", "s2"))}
    source.close()

    destination_url = chdb_url(tmp_path)
    result = CliRunner().invoke(cli, ["migrate", source_url, destination_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "every count matches in 2 project(s)" in result.output
    assert "copied 6 evaluation results" in result.output

    destination = open_store(destination_url)
    try:
        assert destination.count_spans(ListQuery()) == len(spans)
        copied = destination.list_sessions(ListQuery(limit=100)).items
        assert copied == expected_sessions
        detail = destination.get_trace(f"{7:032x}")
        assert detail is not None and [r.score for r in detail.summary.evaluations] == [7 / 30]
        turn = destination.get_trace(f"{3:032x}")
        assert turn is not None and [(r.key, r.span_id) for r in turn.summary.evaluations] == [("f1", "")]
        for key, results in expected_results.items():
            session = destination.get_session(*key)
            assert session is not None and session.results == results
        assert destination.sessions_to_judge(2**63 - 1) == expected_due
    finally:
        destination.close()

    # Again over the full copy: nothing doubles.
    again = CliRunner().invoke(cli, ["migrate", source_url, destination_url], catch_exceptions=False)
    assert again.exit_code == 0 and "every count matches" in again.output


def test_migrate_fails_on_a_store_it_cannot_open(tmp_path: Path):
    result = CliRunner().invoke(cli, ["migrate", "mysql://x/y", f"sqlite:///{tmp_path / 'b.db'}"])
    assert result.exit_code != 0 and "not a store this spanloom can open" in result.output
