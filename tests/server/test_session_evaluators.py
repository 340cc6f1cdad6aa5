"""Session evaluators on a real server: each built-in flags a crafted conversation and passes
another; sessions are judged once ended or idle (a fake clock moves time), judged again after a
new turn reopens them (ended by the API, a span or spanloom.end_session()); results show in
GET /api/sessions/{id} and on the session page, sort and filter the lists and add
up per user; what they find in `spanloom demo`; `spanloom evaluators add --scope session` and
`spanloom eval run --scope session`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _server_kit import BASE_TIME_NS, run_server, wait_for
from _session_kit import (
    HOUR_MS,
    PROJECT,
    FakeClock,
    full_pass,
    post_conversation,
    results,
    runner,
    session_server,
    wait_for_results,
)
from click.testing import CliRunner

import spanloom
from spanloom.cli import cli
from spanloom.demo import FRUSTRATED, build_conversations
from spanloom.server.evaluators.config import EvaluatorConfig, load_configs, save_configs


def ask(*questions: str, errors: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"question": question, "answer": f"Here is what I found about {question[:20]}", "error": i in errors}
        for i, question in enumerate(questions)
    ]


CASES = {
    # kind: (options, a conversation it must flag and the turns it points at (numbered from 1, as
    # the pages show them), one it must pass)
    "resolved": (
        {},
        ask("Where is my parcel?", "It says delivered but I have nothing", errors=(1,)),
        [2],
        ask("Where is my parcel?", "Great, thanks for checking the tracking"),
    ),
    "repeated_question": (
        {"threshold": 0.85},
        ask("How do I change my delivery address?", "ok", "How do I change my delivery address??"),
        [1, 3],
        ask("How do I change my delivery address?", "And can I change the delivery date too?"),
    ),
    "frustration": (
        {},
        ask("My invoice is wrong", "This is useless, let me talk to a human"),
        [2],
        ask("My invoice is wrong", "Thank you, the corrected invoice arrived"),
    ),
    "error_streak": (
        {"n": 2},
        ask(
            "first question here", "second question here", "third question here", "fourth one", errors=(1, 2)
        ),
        [2, 3],
        ask("first question here", "second question here", "third question here", errors=(0, 2)),
    ),
    "turns_over": (
        {"n": 3},
        ask("one question", "two questions", "three questions", "four questions"),
        [4],
        ask("one question", "two questions", "three questions"),
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_builtin_flags_one_conversation_and_passes_another(tmp_path: Path, kind: str):
    options, flagged, pointed, fine = CASES[kind]
    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)  # the conversations below are long idle
    config = EvaluatorConfig(kind, kind, PROJECT, options, scope="session")
    with session_server(tmp_path, config, clock=clock) as server:
        flagged_ids = post_conversation(server, "flagged", flagged)
        post_conversation(server, "fine", fine)
        bad = wait_for_results(server, "flagged", {kind})[kind]
        good = wait_for_results(server, "fine", {kind})[kind]
    assert (bad["label"], bad["score"], bad["passed"], bad["details"]["turns"]) == (
        "fail",
        0.0,
        False,
        pointed,
    )
    assert bad["details"]["trace_ids"] == [flagged_ids[number - 1] for number in pointed]
    assert (good["label"], good["score"], good["passed"], good["details"]["turns"]) == ("pass", 1.0, True, [])
    assert bad["explanation"] and good["explanation"]
    assert bad["session_id"] == "flagged" and bad["trace_id"] is None and bad["details"]["kind"] == kind


def test_frustration_reads_end_user_feedback(tmp_path: Path):
    clock = FakeClock()  # the conversations are active until the clock moves
    config = EvaluatorConfig("frustrated", "frustration", "*", scope="session")
    with session_server(tmp_path, config, clock=clock) as server:
        polite = ask("Can I pay by card?", "And by bank transfer?")
        disliked_ids = post_conversation(server, "thumbs", polite)
        liked_ids = post_conversation(server, "liked", polite)
        for trace_id, score in ((disliked_ids[1], -1), (liked_ids[0], 1)):
            answer = server.client.post(
                "/api/feedback",
                json={"trace_id": trace_id, "score": score, "comment": "said so", "project": PROJECT},
            )
            assert answer.status_code == 200, answer.text
        clock.set_ms(HOUR_MS)
        disliked = wait_for_results(server, "thumbs", {"frustrated"})["frustrated"]
        liked = wait_for_results(server, "liked", {"frustrated"})["frustrated"]
    assert disliked["label"] == "fail" and disliked["details"]["turns"] == [2]
    assert "negative feedback on turn 2" in disliked["explanation"]
    assert liked["label"] == "pass"


def test_sessions_are_judged_once_idle_or_ended_and_again_after_a_new_turn(tmp_path: Path):
    clock = FakeClock()
    configs = [
        EvaluatorConfig("long", "turns_over", PROJECT, {"n": 2}, scope="session"),
        EvaluatorConfig("again", "repeated_question", "*", scope="session"),
    ]
    with session_server(tmp_path, *configs, clock=clock) as server:
        post_conversation(server, "talk", ask("How do I export my data?", "Which formats are there?"))
        post_conversation(server, "bye", ask("Is there a student discount?", "thanks, bye"), start_ms=10_000)
        # "bye" ends with a span marked session.ended: ended at once, idle or not.
        post_conversation(
            server, "bye", [{"question": "bye", "extra": {"session.ended": True}}], start_ms=200_000
        )
        clock.set_ms(200_000 + 60_000)  # a minute after the last turn: both are active
        assert runner(server).clock is clock
        bye = wait_for_results(server, "bye", {"long", "again"})
        assert bye["long"]["label"] == "fail" and "3 turns, over 2" in bye["long"]["explanation"]
        full_pass(server)
        assert results(server, "talk") == {}  # active: not judged yet
        clock.set_ms(200_000 + 31 * 60_000)  # 31 minutes later: idle
        talk = wait_for_results(server, "talk", {"long", "again"})
        assert (talk["long"]["label"], talk["again"]["label"]) == ("pass", "pass")
        judged_at = talk["again"]["time"]
        full_pass(server)
        assert results(server, "talk")["again"]["time"] == judged_at  # judged once, not every pass

        # A new turn reopens it: active again, so nothing changes until it is idle again.
        later = 2 * HOUR_MS
        post_conversation(server, "talk", ask("How do I export my data??"), start_ms=later)
        clock.set_ms(later + 60_000)
        full_pass(server)
        assert results(server, "talk")["again"]["label"] == "pass"
        clock.set_ms(later + 31 * 60_000)

        def rejudged() -> dict[str, Any] | None:
            found = results(server, "talk")
            return found if found["again"]["label"] == "fail" else None

        talk = wait_for(rejudged, what="the reopened session judged again")
        assert talk["again"]["details"]["turns"] == [1, 3] and talk["long"]["label"] == "fail"
        # The same name replaced the earlier result: one of each.
        detail = server.get_json("/api/sessions/talk", project=PROJECT)
        assert sorted(r["name"] for r in detail["results"]) == ["again", "long"]


def test_ending_through_the_api_judges_and_a_turn_after_it_reopens(tmp_path: Path):
    clock = FakeClock()
    config = EvaluatorConfig("long", "turns_over", PROJECT, {"n": 1}, scope="session")
    with session_server(tmp_path, config, clock=clock) as server:
        post_conversation(server, "api-end", ask("a first question"))
        full_pass(server)
        assert results(server, "api-end") == {}  # active at the fake clock
        ended = server.client.post("/api/sessions/api-end/end", params={"project": PROJECT})
        assert ended.status_code == 200
        first = wait_for_results(server, "api-end", {"long"})["long"]
        assert first["label"] == "pass"
        # The end was marked at the real now: a turn must end after it to reopen the session.
        now_ms = (time.time_ns() - BASE_TIME_NS) / 1e6 + 1000
        post_conversation(server, "api-end", ask("one more question please"), start_ms=now_ms)
        assert server.get_json("/api/sessions/api-end", project=PROJECT)["status"] != "ended"
        clock.set_ms(now_ms + HOUR_MS)

        def rejudged() -> dict[str, Any] | None:
            found = results(server, "api-end")["long"]
            return found if found["label"] == "fail" else None

        assert "2 turns, over 1" in wait_for(rejudged, what="the reopened session judged")["explanation"]


def test_the_session_page_shows_a_result_with_links_to_its_turns(tmp_path: Path):
    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)
    config = EvaluatorConfig("again", "repeated_question", PROJECT, scope="session")
    with session_server(tmp_path, config, clock=clock) as server:
        questions = ("How do I reset my password?", "ok", "How do I reset my password??")
        trace_ids = post_conversation(server, "reset", ask(*questions))
        wait_for_results(server, "reset", {"again"})
        # Two turns a page: turn 1 is on this page, turn 3 on the next one, reached by its trace.
        page = server.get("/sessions/reset", project=PROJECT, limit=2)
    assert page.status_code == 200
    shown = page.text.split('class="session-results"')[1].split("</section>")[0]
    assert 'data-eval="again"' in shown and "turn 3 repeats turn 1" in shown
    assert 'href="#turn-1">1</a>' in shown and f'href="/traces/{trace_ids[2]}">3</a>' in shown


def test_end_session_from_the_sdk_judges_the_conversation(tmp_path: Path):
    clock = FakeClock()  # the conversation is active until it is ended
    config = EvaluatorConfig("long", "turns_over", PROJECT, {"n": 1}, scope="session")
    with session_server(tmp_path, config, clock=clock) as server:
        post_conversation(server, "sdk-end", ask("a first question", "a second question"))
        full_pass(server)
        assert results(server, "sdk-end") == {}
        provider = spanloom.register(
            project_name=PROJECT,
            endpoint=server.traces_endpoint,
            batch=False,
            set_global_tracer_provider=False,
        )
        try:
            assert spanloom.end_session("sdk-end")
            assert spanloom.flush_feedback(10)
        finally:
            provider.shutdown()
        long = wait_for_results(server, "sdk-end", {"long"})["long"]
    assert long["label"] == "fail" and "2 turns, over 1" in long["explanation"]


def test_the_demo_gives_the_session_evaluators_something_to_find(tmp_path: Path):
    # An hour after the demo's turns: the conversations it did not end are idle too.
    clock = FakeClock(time.time_ns() + HOUR_MS * 10**6)
    kinds = {"repeated_question", "frustration", "resolved"}
    configs = [EvaluatorConfig(kind, kind, "demo", scope="session") for kind in sorted(kinds)]
    conversations = build_conversations(sessions=12, users=5)
    with session_server(tmp_path, *configs, clock=clock) as server:
        sent = CliRunner().invoke(cli, ["demo", "--endpoint", server.traces_endpoint, "--sessions", "12"])
        assert sent.exit_code == 0, sent.output
        found = {
            c.session_id: wait_for_results(server, c.session_id, kinds, project="demo") for c in conversations
        }
    annoyed = next(c for c in conversations if c.turns[-1].question == FRUSTRATED)
    verdicts = found[annoyed.session_id]
    assert verdicts["repeated_question"]["details"]["turns"] == [1, 2]
    assert verdicts["frustration"]["label"] == verdicts["resolved"]["label"] == "fail", verdicts
    # The demo draws its follow-ups at random, so another conversation may repeat one too.
    repeating = {c.session_id for c in conversations if len({t.question for t in c.turns}) < len(c.turns)}
    flagged = {sid for sid, v in found.items() if v["repeated_question"]["label"] == "fail"}
    assert annoyed.session_id in flagged and flagged == repeating and len(flagged) < len(conversations)


def test_results_sort_and_filter_lists_and_add_up_per_user(tmp_path: Path):
    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)
    config = EvaluatorConfig("done", "resolved", "*", scope="session")
    with session_server(tmp_path, config, clock=clock) as server:
        post_conversation(server, "s-ok", ask("What is the refund policy?"), user="ann")
        post_conversation(server, "s-bad", ask("What is the refund policy?", errors=(0,)), user="ann")
        post_conversation(server, "s-other", ask("Do you ship abroad?"), user="bob")
        for session_id in ("s-ok", "s-bad", "s-other"):
            wait_for_results(server, session_id, {"done"})
        ascending = server.get_json("/api/sessions", sort="eval:done", order="asc")["items"]
        assert ascending[0]["session_id"] == "s-bad"
        assert ascending[0]["evaluations"]["done"] == {"count": 1, "mean_score": 0.0, "pass_rate": 0.0}
        descending = server.get_json("/api/sessions", sort="eval:done", order="desc")["items"]
        assert descending[-1]["session_id"] == "s-bad"
        idle = server.get_json("/api/sessions", status="idle")["items"]
        assert {s["session_id"] for s in idle} == {"s-ok", "s-bad", "s-other"}
        ann = server.get_json("/api/users/ann", project=PROJECT)
        assert ann["evaluations"]["done"] == {"count": 2, "mean_score": 0.5, "pass_rate": 0.5}
        users = server.get_json("/api/users", sort="eval:done", order="asc")["items"]
        assert [u["user_id"] for u in users] == ["ann", "bob"]
        summary = server.get_json("/api/evaluations/summary", group_by="session", name="done")["items"]
        assert (summary[0]["session_id"], summary[0]["pass_rate"]) == ("s-bad", 0.0)


def test_projects_without_session_evaluators_do_not_hold_up_the_others(tmp_path: Path):
    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)
    config = EvaluatorConfig("done", "resolved", "shop", scope="session")
    with session_server(tmp_path, config, clock=clock) as server:
        # More unjudged sessions of another project than a batch holds, older than shop's.
        for number in range(60):
            post_conversation(server, f"other-{number}", ask("hello there friend"), project="elsewhere")
        post_conversation(server, "mine", ask("Where is my order?"), project="shop", start_ms=HOUR_MS)
        assert wait_for_results(server, "mine", {"done"}, project="shop")["done"]["label"] == "pass"
        assert results(server, "other-0", project="elsewhere") == {}


def test_the_evaluators_file_is_read_again_when_it_changes(tmp_path: Path):
    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)
    with session_server(tmp_path, clock=clock) as server:
        post_conversation(server, "later", ask("What does the premium plan include?"))
        full_pass(server)
        assert results(server, "later") == {}  # nothing configured: nothing judged, nothing marked
        file = server.settings.evaluators_path
        save_configs(file, [EvaluatorConfig("long", "turns_over", "*", {"n": 5}, scope="session")])
        assert wait_for_results(server, "later", {"long"})["long"]["label"] == "pass"


def test_cli_adds_lists_and_refuses_session_evaluators(tmp_path: Path):
    file = tmp_path / "evaluators.json"
    common = ["evaluators", "add", "--file", str(file)]
    cli_runner = CliRunner()
    added = cli_runner.invoke(cli, [*common, "done", "--scope", "session", "--kind", "resolved"])
    assert added.exit_code == 0, added.output
    added = cli_runner.invoke(
        cli,
        [*common, "calm", "--scope", "session", "--kind", "frustration", "--project", "shop",
         "--option", 'phrases=["refund now", "manager"]'],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert load_configs(file)[1].options == {"phrases": ["refund now", "manager"]}
    listed = cli_runner.invoke(cli, ["evaluators", "list", "--file", str(file)])
    assert "*\tdone\tsession\tresolved\t-" in listed.output
    assert 'shop\tcalm\tsession\tfrustration\t-\tphrases=["refund now", "manager"]' in listed.output
    refusals = {
        "unknown evaluator kind": ["x", "--scope", "session", "--kind", "sentiment"],
        "latency is a span evaluator": ["x", "--scope", "session", "--kind", "latency"],
        "resolved is a session evaluator": ["x", "--kind", "resolved"],
        "--span-kind is for span evaluators": [
            "x",
            "--scope",
            "session",
            "--kind",
            "resolved",
            "--span-kind",
            "LLM",
        ],
        "'n' must be a whole number": [
            "x",
            "--scope",
            "session",
            "--kind",
            "error_streak",
            "--option",
            "n=-2",
        ],
        "needs a 'rubric'": ["x", "--scope", "session", "--kind", "llm_judge"],
    }
    for message, arguments in refusals.items():
        refused = cli_runner.invoke(cli, [*common, *arguments])
        assert refused.exit_code == 2 and message in refused.output, (message, refused.output)
    assert [c.name for c in load_configs(file)] == ["done", "calm"]  # nothing refused was saved


def test_eval_run_judges_stored_sessions_that_are_done(tmp_path: Path):
    db = tmp_path / "stored.db"
    with run_server(db) as server:  # no session evaluator yet: the server judges nothing
        post_conversation(server, "old-bad", ask("Can I get an invoice?", errors=(0,)))
        post_conversation(server, "old-good", ask("Can I get an invoice?"))
        now_ms = (time.time_ns() - BASE_TIME_NS) / 1e6
        post_conversation(server, "live", ask("Is anyone there?"), start_ms=now_ms)  # active
    file = tmp_path / "evaluators.json"
    save_configs(
        file,
        [
            EvaluatorConfig("done", "resolved", "*", scope="session"),
            EvaluatorConfig("streak", "error_streak", PROJECT, {"n": 1}, scope="session"),
            EvaluatorConfig("fast", "latency", "*", {"threshold_ms": 10}),
        ],
    )
    common = ["--db", str(db), "--file", str(file)]
    ran = CliRunner().invoke(cli, ["eval", "run", "--scope", "session", "--project", PROJECT, *common])
    assert ran.exit_code == 0, ran.output
    assert "judged 2 sessions of project 'support', wrote 4 results; left out 1 active sessions" in ran.output
    only = CliRunner().invoke(cli, ["eval", "run", "--scope", "session", "--evaluator", "done", *common])
    assert only.exit_code == 0 and "wrote 2 results" in only.output
    missing = CliRunner().invoke(cli, ["eval", "run", "--scope", "session", "--evaluator", "fast", *common])
    assert missing.exit_code == 2 and "no session evaluator 'fast'" in missing.output
    wrong_scope = CliRunner().invoke(
        cli, ["eval", "run", "--project", PROJECT, "--evaluator", "done", *common]
    )
    assert (
        wrong_scope.exit_code == 2
        and "is a session evaluator: run it with --scope session" in wrong_scope.output
    )
    with run_server(db) as server:
        assert {name: r["label"] for name, r in results(server, "old-bad").items()} == {
            "done": "fail",
            "streak": "fail",
        }
        assert results(server, "old-good")["done"]["label"] == "pass"
        assert results(server, "live") == {}
        # Judged as of their last turn: the server's runner finds nothing due among them.
        due = {session for _, session, _ in server.store.sessions_to_judge(time.time_ns(), 100)}
        assert due == {"live"}
