"""Text search (`q=`) on the session and trace lists: a case-insensitive substring of a session's
id, its user's id or any of its turns' input or output texts (for traces: the trace id, its name,
its input or output), taken literally, and only ever within what the query's project holds.

Each case pairs a query that must find something with one that must not, so a search that finds
too much (other spans' texts, stale texts, other projects) fails as surely as one that finds too
little (whole words only, case-sensitive, the first turn only).
"""

from __future__ import annotations

from contract_kit import T0, every, span, trace_id, write

from spanloom.server.store.base import ListQuery, Retention, Store


def sessions_found(store: Store, q: str, project: str | None = None) -> set[tuple[str, str]]:
    return {(s.project, s.session_id) for s in every(store.list_sessions, ListQuery(q=q, project=project))}


def traces_found(store: Store, q: str, project: str | None = None) -> set[str]:
    return {t.trace_id for t in every(store.list_traces, ListQuery(q=q, project=project))}


def turn(trace: int, session: str, input_text: str, output_text: str, **fields: object):
    return span(
        trace,
        1,
        start_ms=trace * 1000,
        session_id=session,
        user_id="u-search",
        input=input_text,
        output=output_text,
        **fields,
    )


def test_a_substring_is_found_anywhere_in_a_word_and_in_any_case(store: Store):
    write(
        store,
        [
            turn(1, "s-thermo", "Why is the Thermostat blinking?", "It reports OVERHEATING of the boiler."),
            turn(2, "s-other", "Where is my parcel?", "It left the depot this morning."),
        ],
    )
    for q in ("MOSTA", "thermostat", "ermostat blin", "overheat", "eATing of", "BOILER."):
        assert sessions_found(store, q) == {("p1", "s-thermo")}, q
        assert traces_found(store, q) == {trace_id(1)}, q
    assert sessions_found(store, "thermostats") == set()
    assert traces_found(store, "boiler!") == set()


def test_a_word_in_a_later_turns_output_finds_the_session_and_only_that_turn(store: Store):
    write(store, [turn(number, "s-long", f"question {number}", f"answer {number}") for number in range(1, 6)])
    write(store, [turn(9, "s-long", "question 9", "the refund was approved by Marguerite")])
    write(store, [turn(12, "s-long", "question 12", "answer 12")])  # neither its first nor its last turn
    write(store, [turn(20, "s-short", "question 20", "answer 20")])
    assert sessions_found(store, "marguerite") == {("p1", "s-long")}
    assert traces_found(store, "marguerite") == {trace_id(9)}
    assert sessions_found(store, "answer 20") == {("p1", "s-short")}


def test_the_turn_texts_follow_the_input_and_output_spans_as_spans_arrive(store: Store):
    # The root is late: a child stands in for it, and its texts are the turn's for now.
    child = span(
        1,
        2,
        parent=1,
        start_ms=5,
        session_id="s-late",
        input="provisional walrus question",
        output="provisional walrus answer",
    )
    write(store, [child])
    assert sessions_found(store, "walrus") == {("p1", "s-late")}
    assert traces_found(store, "walrus") == {trace_id(1)}
    assert traces_found(store, "giraffe") == set()
    root = span(
        1, 1, start_ms=0, session_id="s-late", input="the giraffe question", output="a giraffe answer"
    )
    write(store, [root])
    # The root's texts are the turn's now; the child's no longer are.
    assert sessions_found(store, "giraffe") == {("p1", "s-late")}
    assert traces_found(store, "GIRAFFE ANSWER") == {trace_id(1)}
    assert sessions_found(store, "walrus") == set()
    assert traces_found(store, "walrus") == set()


def test_a_retried_batch_neither_repeats_nor_loses_a_turn(store: Store):
    first = [turn(1, "s-retry", "ask about the narwhal", "narwhals have tusks")]
    second = [turn(2, "s-retry", "and the beluga?", "belugas are white")]
    write(store, first)
    write(store, second)
    write(store, first)  # a retry after the later batch
    write(store, second)
    for q, traces in (("narwhal", [trace_id(1)]), ("beluga", [trace_id(2)]), ("the", None)):
        found = [t.trace_id for t in every(store.list_traces, ListQuery(q=q))]
        assert found == (traces or [trace_id(2), trace_id(1)]), q
        assert [s.session_id for s in every(store.list_sessions, ListQuery(q=q))] == ["s-retry"], q


def test_queries_of_one_or_two_characters_are_substrings_too(store: Store):
    write(
        store,
        [
            turn(1, "s-1", "plain words", "a #hashtag here"),
            turn(2, "s-2", "more plain words", "an xQzy token"),
            turn(3, "s-3", "nothing special", "at all"),
        ],
    )
    assert traces_found(store, "#") == {trace_id(1)}
    assert traces_found(store, "qZ") == {trace_id(2)}
    assert sessions_found(store, "Qz") == {("p1", "s-2")}
    assert sessions_found(store, "#h") == {("p1", "s-1")}
    assert traces_found(store, "zz") == set()


def test_like_wildcards_and_the_escape_character_in_q_are_literal(store: Store):
    write(
        store,
        [
            turn(1, "s-pct", "is there a sale", "yes, 50% off today"),
            turn(2, "s-num", "is there a sale", "yes, 500 off today"),
            turn(3, "s-under", "which key", "use snake_case names"),
            turn(4, "s-space", "which key", "use snakeXcase names"),
            turn(5, "s-slash", "a path", "C:\\temp\\logs"),
            turn(6, "s-syntax", "a query", 'he typed "NEAR(x) AND y*" -z'),
        ],
    )
    assert sessions_found(store, "50% off") == {("p1", "s-pct")}
    assert traces_found(store, "0% o") == {trace_id(1)}
    assert traces_found(store, "%") == {trace_id(1)}
    assert sessions_found(store, "snake_case") == {("p1", "s-under")}
    assert traces_found(store, "e_c") == {trace_id(3)}
    assert traces_found(store, "_") == {trace_id(3)}
    assert traces_found(store, "\\temp") == {trace_id(5)}
    assert traces_found(store, "\\") == {trace_id(5)}
    assert traces_found(store, "C:\\t") == {trace_id(5)}
    # Quotes and what a full-text query syntax would read as operators are just characters too.
    assert sessions_found(store, '"NEAR(x) AND y*" -z') == {("p1", "s-syntax")}
    assert traces_found(store, 'd "n') == {trace_id(6)}
    assert traces_found(store, "NEAR(y") == set()


def test_another_projects_texts_are_never_found(store: Store):
    # The same session id in two projects: each finds its own turns' texts only.
    write(
        store,
        [
            turn(1, "s-same", "the apple question", "an apple answer", project="p1"),
            turn(2, "s-same", "the banana question", "a banana answer", project="p2"),
        ],
    )
    assert sessions_found(store, "banana") == {("p2", "s-same")}
    assert sessions_found(store, "apple") == {("p1", "s-same")}
    assert sessions_found(store, "banana", project="p1") == set()
    assert traces_found(store, "banana", project="p1") == set()
    assert traces_found(store, "banana", project="p2") == {trace_id(2)}
    assert sessions_found(store, "question", project="p1") == {("p1", "s-same")}


def test_deleted_turns_are_not_found_and_later_ones_are(store: Store):
    write(
        store, [span(1, 1, start_ms=0, session_id="s-old", input="ocelot question", output="ocelot answer")]
    )
    assert sessions_found(store, "ocelot") == {("p1", "s-old")}
    result = store.delete_expired(Retention(default_cutoff=T0 + 60_000_000_000)).result(timeout=30)
    assert result.sessions == 1
    write(
        store,
        [
            span(2, 1, start_ms=120_000, session_id="s-new", input="heron question", output="heron answer"),
            span(3, 1, start_ms=121_000, input="loose heron", output="no session"),
        ],
    )
    assert sessions_found(store, "ocelot") == set()
    assert traces_found(store, "ocelot") == set()
    assert sessions_found(store, "heron") == {("p1", "s-new")}
    assert traces_found(store, "heron") == {trace_id(2), trace_id(3)}
