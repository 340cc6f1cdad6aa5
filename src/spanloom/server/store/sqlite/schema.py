"""The schema, one text per version: a file at version N has run V1..VN in order (migrations.py).

Never edit a version that has shipped: append a new one. Version 1 is spanloom 0.1.0's; version 2
keys sessions, users and their aggregates by (project, id), as a session id is only unique inside
its project.

Times are INTEGER nanoseconds since the epoch. Large text columns (input, output, attributes)
come last in each table: SQLite reads a row's columns in order and stops at the last one a
query needs, so aggregates over the small leading columns never touch overflow pages.
"""

from __future__ import annotations

# Version 1 (spanloom 0.1.0).
V1 = """
CREATE TABLE spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    project TEXT NOT NULL,
    session_id TEXT,
    user_id TEXT,
    name TEXT NOT NULL,
    otel_kind TEXT NOT NULL,
    span_kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    model TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    cost REAL,
    has_input INTEGER NOT NULL,
    has_output INTEGER NOT NULL,
    -- The attribute each of input/output was read from, and its position, when that attribute
    -- was left out of `attributes` (it held the very same text): get_trace puts it back there.
    input_key TEXT,
    input_at INTEGER,
    output_key TEXT,
    output_at INTEGER,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    input TEXT,
    output TEXT,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    resource TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
-- No index on span_id alone: evaluation results that name a span by its id alone (POST
-- /api/evaluations without trace_id) are rare, and resolve by scanning the compact primary-key
-- index (it holds span_id), while a global span_id index costs every ingest commit ~10% (its
-- random keys dirty index pages all over). Results with a trace_id use the primary key.

-- cost_nanos: the cost in integer nano-USD. Session and user totals add and subtract these, so
-- a total kept by deltas is exact and equals a recount whatever the arrival order (float sums
-- would drift). `labeled`: the trace has tags or metadata.
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    session_id TEXT,
    user_id TEXT,
    root_span_id TEXT,
    name TEXT NOT NULL,
    span_kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_nanos INTEGER NOT NULL,
    status TEXT NOT NULL,
    has_input INTEGER NOT NULL,
    has_output INTEGER NOT NULL,
    labeled INTEGER NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    -- The spans whose input/output are the trace's: the texts are read from those spans, not
    -- copied here (a copy was a fifth of all bytes written on ingest).
    input_span_id TEXT,
    output_span_id TEXT
);
-- Covering: a session's rollup is recounted from this index alone (no trace row is read), and
-- a session's turns come out in order.
CREATE INDEX traces_by_session ON traces (
    session_id, start_ns, trace_id, end_ns, latency_ms, user_id, project, total_tokens, cost_nanos,
    error_count, has_input, has_output, labeled
);
CREATE INDEX traces_by_user ON traces (user_id, start_ns);
CREATE INDEX traces_by_start ON traces (start_ns, trace_id);
CREATE INDEX traces_by_project ON traces (project, start_ns);

-- first_input_trace / last_output_trace: the traces whose input/output are the session's first
-- input and last output. The texts are read from those traces, not copied: a session row stays
-- a few hundred bytes however long the texts, and rewriting it as turns arrive stays cheap.
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    user_id TEXT,
    trace_count INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_nanos INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    latency_p50_ms REAL NOT NULL,
    latency_p95_ms REAL NOT NULL,
    first_input_trace TEXT,
    last_output_trace TEXT,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX sessions_by_start ON sessions (start_ns, session_id);
CREATE INDEX sessions_by_end ON sessions (end_ns, session_id);
CREATE INDEX sessions_by_user ON sessions (user_id, start_ns);

-- first_trace_id: with first_seen_ns, the key of the trace whose project the user takes.
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    session_count INTEGER NOT NULL,
    trace_count INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_nanos INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    first_trace_id TEXT NOT NULL
);
CREATE INDEX users_by_last_seen ON users (last_seen_ns, user_id);

-- Evaluation results: one per (span, name, source): the same key again replaces it. `passed` is
-- evaluation_types.evaluation_passed(score, label, source), stored so aggregates never re-derive
-- it. A result's session and user are those of its trace *now* (read through traces), so a trace moving to
-- another session carries its results along.
CREATE TABLE evaluations (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    project TEXT NOT NULL,
    score REAL,
    label TEXT,
    passed INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    explanation TEXT,
    PRIMARY KEY (trace_id, span_id, name, source)
);
CREATE INDEX evaluations_by_project ON evaluations (project, name);

-- Per-session and per-user aggregates, kept in the writer's transaction so lists can sort by
-- them (sort=eval:NAME). Sessions are recounted from their traces' results (a session has few
-- turns), users change by deltas. score_micros: the score sum in integer millionths, exact under
-- add/subtract in any order, and mean_score = score_micros / 1e6 / scored (NULL when none scored).
-- worst_*: a session's lowest result, recounted with it (users find theirs at read time).
CREATE TABLE session_evaluations (
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    score_micros INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    mean_score REAL,
    worst_trace_id TEXT,
    worst_span_id TEXT,
    PRIMARY KEY (session_id, name)
);
CREATE INDEX session_evaluations_by_mean ON session_evaluations (name, mean_score, session_id);

CREATE TABLE user_evaluations (
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    score_micros INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    mean_score REAL,
    PRIMARY KEY (user_id, name)
);
CREATE INDEX user_evaluations_by_mean ON user_evaluations (name, mean_score, user_id);
"""


# Version 2. The rollup tables are dropped and created again with their new keys; migrations.py
# then rebuilds their rows from the traces, per project, with the writer's own recount code.
V2 = """
-- Every span is of its trace's project: a trace belongs to the project that first stored it.
UPDATE spans SET project = (SELECT t.project FROM traces t WHERE t.trace_id = spans.trace_id)
WHERE project <> (SELECT t.project FROM traces t WHERE t.trace_id = spans.trace_id);
UPDATE evaluations SET project = (SELECT t.project FROM traces t WHERE t.trace_id = evaluations.trace_id)
WHERE project <> (SELECT t.project FROM traces t WHERE t.trace_id = evaluations.trace_id);

DROP INDEX traces_by_session;
DROP INDEX traces_by_user;
DROP INDEX traces_by_project;
-- Covering: a session's rollup is recounted from this index alone (no trace row is read), and
-- a session's turns come out in order.
CREATE INDEX traces_by_session ON traces (
    project, session_id, start_ns, trace_id, end_ns, latency_ms, user_id, total_tokens, cost_nanos,
    error_count, has_input, has_output, labeled
);
CREATE INDEX traces_by_user ON traces (project, user_id, start_ns);
CREATE INDEX traces_by_project ON traces (project, start_ns, trace_id);
-- list_spans' order within a project: stored spans paged by start time without a sort. Times
-- mostly grow, so new entries land at the index's end and cost ingest little.
CREATE INDEX spans_by_start ON spans (project, start_ns, trace_id, span_id);

DROP TABLE sessions;
-- first_input_trace / last_output_trace: the traces whose input/output are the session's first
-- input and last output. The texts are read from those traces, not copied: a session row stays
-- a few hundred bytes however long the texts, and rewriting it as turns arrive stays cheap.
CREATE TABLE sessions (
    project TEXT NOT NULL,
    session_id TEXT NOT NULL,
    user_id TEXT,
    trace_count INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_nanos INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    latency_p50_ms REAL NOT NULL,
    latency_p95_ms REAL NOT NULL,
    first_input_trace TEXT,
    last_output_trace TEXT,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (project, session_id)
);
-- Lists page in (sort column, project, id) order: across projects, and within one.
CREATE INDEX sessions_by_start ON sessions (start_ns, project, session_id);
CREATE INDEX sessions_by_end ON sessions (end_ns, project, session_id);
CREATE INDEX sessions_in_project ON sessions (project, start_ns, session_id);
CREATE INDEX sessions_by_user ON sessions (project, user_id, start_ns);
-- Finding the projects an id exists in (a link or an API call without project=).
CREATE INDEX sessions_by_id ON sessions (session_id);

DROP TABLE users;
CREATE TABLE users (
    project TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_count INTEGER NOT NULL,
    trace_count INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_nanos INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (project, user_id)
);
CREATE INDEX users_by_last_seen ON users (last_seen_ns, project, user_id);
CREATE INDEX users_in_project ON users (project, last_seen_ns, user_id);
CREATE INDEX users_by_id ON users (user_id);

DROP TABLE session_evaluations;
CREATE TABLE session_evaluations (
    project TEXT NOT NULL,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    result_count INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    score_micros INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    mean_score REAL,
    worst_trace_id TEXT,
    worst_span_id TEXT,
    PRIMARY KEY (project, session_id, name)
);
CREATE INDEX session_evaluations_by_mean ON session_evaluations (name, mean_score, project, session_id);

DROP TABLE user_evaluations;
CREATE TABLE user_evaluations (
    project TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    result_count INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    score_micros INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    mean_score REAL,
    PRIMARY KEY (project, user_id, name)
);
CREATE INDEX user_evaluations_by_mean ON user_evaluations (name, mean_score, project, user_id);
"""

# Version 3. Each project's figures kept like the other rollups, so the project list reads no
# spans; the writer adds each transaction's changes (project_writes.py).
V3 = """
CREATE TABLE projects (
    project TEXT PRIMARY KEY,
    span_count INTEGER NOT NULL,
    trace_count INTEGER NOT NULL,
    session_count INTEGER NOT NULL,
    user_count INTEGER NOT NULL,
    first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL
);
-- Retention finds the traces without a session that ended before a cutoff (sessions go whole,
-- by sessions_by_end): only such traces are in this index.
CREATE INDEX traces_without_session ON traces (end_ns, project) WHERE session_id IS NULL;
"""

# Version 4. A long text that several spans of one trace carry (an agent's answer is its model
# call's answer, a tool's input its caller's) is stored once: the other spans name the span that
# holds it (span_rows.share_texts).
V4 = """
ALTER TABLE spans ADD COLUMN input_from TEXT;
ALTER TABLE spans ADD COLUMN output_from TEXT;

-- Every sort key of every list has an index in its order (then the row's key): a page reads
-- its rows and stops, whatever the sort. Filtered lists use them too, or a filter's own index,
-- as the statistics the writer keeps (store.py, PRAGMA optimize) tell the planner.
CREATE INDEX sessions_by_turns ON sessions (trace_count, project, session_id);
CREATE INDEX sessions_by_tokens ON sessions (total_tokens, project, session_id);
CREATE INDEX sessions_by_cost ON sessions (cost, project, session_id);
CREATE INDEX sessions_by_latency ON sessions (latency_p50_ms, project, session_id);
CREATE INDEX sessions_by_errors ON sessions (error_count, project, session_id);
CREATE INDEX users_by_first_seen ON users (first_seen_ns, project, user_id);
CREATE INDEX users_by_sessions ON users (session_count, project, user_id);
CREATE INDEX users_by_traces ON users (trace_count, project, user_id);
CREATE INDEX users_by_tokens ON users (total_tokens, project, user_id);
CREATE INDEX users_by_cost ON users (cost, project, user_id);
CREATE INDEX users_by_errors ON users (error_count, project, user_id);
CREATE INDEX users_by_error_rate ON users ((error_count * 1.0 / MAX(trace_count, 1)), project, user_id);
CREATE INDEX traces_by_latency ON traces (latency_ms, trace_id);
CREATE INDEX traces_by_tokens ON traces (total_tokens, trace_id);
CREATE INDEX traces_by_cost ON traces (cost, trace_id);
CREATE INDEX traces_by_errors ON traces (error_count, trace_id);
CREATE INDEX traces_by_spans ON traces (span_count, trace_id);
"""

# Version 5. Conversations judged as conversations: results on a whole session (session
# evaluators, end users' feedback on a session), several results of one name and source on one
# target told apart by a key (each feedback's id), feedback on a whole turn (span_id ''), and
# marks that say a session was ended and up to which turn its evaluators have judged it.
V5 = """
CREATE TABLE evaluations_v5 (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    result_key TEXT NOT NULL,
    project TEXT NOT NULL,
    score REAL,
    label TEXT,
    passed INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    explanation TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id, name, source, result_key)
);
INSERT INTO evaluations_v5 (trace_id, span_id, name, source, result_key, project, score, label, passed,
    time_ns, explanation, details)
SELECT trace_id, span_id, name, source, '', project, score, label, passed, time_ns, explanation, '{}'
FROM evaluations;
DROP TABLE evaluations;
ALTER TABLE evaluations_v5 RENAME TO evaluations;
CREATE INDEX evaluations_by_project ON evaluations (project, name);

CREATE TABLE session_results (
    project TEXT NOT NULL,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    result_key TEXT NOT NULL,
    score REAL,
    label TEXT,
    passed INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    explanation TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (project, session_id, name, source, result_key)
);

-- ended_ns: when the session was ended (the end call, or the end of a span marked
-- session.ended). A turn after it reopens the session. judged_end_ns: the session's end_ns when
-- its session evaluators last judged it. A new turn makes it due again.
CREATE TABLE session_marks (
    project TEXT NOT NULL,
    session_id TEXT NOT NULL,
    ended_ns INTEGER,
    judged_end_ns INTEGER,
    PRIMARY KEY (project, session_id)
);
"""

# Version 6: the sessions that replay a session, found through an index rather than a scan of the
# project's sessions (every session page asks). Partial: only sessions with a replay_of have an
# entry. json_valid first: json_extract raises on a malformed text, and an index expression that
# raises would fail the write of that row.
REPLAY_OF_EXPRESSION = "CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$.replay_of') END"
V6 = f"""
CREATE INDEX sessions_by_replay_of ON sessions (project, ({REPLAY_OF_EXPRESSION}))
WHERE ({REPLAY_OF_EXPRESSION}) IS NOT NULL;
"""

# Version 7. The project overview's trends (trend_reads.py) read a project's turns by start time
# with what they chart: covering, so no trace row is read (at 100,000 spans the row lookups were
# most of the overview's time).
V7 = """
CREATE INDEX traces_for_trends ON traces (project, start_ns, latency_ms, error_count, cost_nanos);
"""

# Version 8. Text search (`q=`) over the turns' texts without reading every text: an index of the
# trigrams of each trace's input and output (search_index.py keeps it, search_terms.py asks it),
# filled by the store's indexer thread, off the ingest path. Contentless and without positions
# or sizes (detail=none, columnsize=0): it stores no text, only which traces hold each trigram.
# `turn_text_pending` notes the traces the indexer has still to (re)index: `indexed` when the
# trace has an entry, made from the texts of the spans the note names (its row names others now).
V8 = """
CREATE VIRTUAL TABLE turn_text_index USING fts5(
    input, output, tokenize = 'trigram', content = '', detail = none, columnsize = 0
);
CREATE TABLE turn_text_pending (
    trace_rowid INTEGER PRIMARY KEY,
    indexed INTEGER NOT NULL,
    input_span_id TEXT,
    output_span_id TEXT
);
"""

# Version 9. The trends' covering index and the project's traces by start time were two indexes
# with the same leading key (project, start_ns): every trace written went into both. One index
# now serves both reads: a project's traces in (start, trace id) order, as lists page them, and
# what the trends chart of each turn, so no trace row is read. An A/B of the writer
# (benchmarks/ingest_indexes.py) measured the second index at ~250 bytes of WAL per span (2% of
# what a span's commit appends) and ~1% of the writer's instructions.
V9 = """
DROP INDEX traces_for_trends;
DROP INDEX traces_by_project;
CREATE INDEX traces_by_project ON traces (project, start_ns, trace_id, latency_ms, error_count, cost_nanos);
"""

# Version 10. Less disk per span (issue 19): what a span's row held twice is held once.
# `lifted`: the attributes left out of `attributes` because a typed column holds their value
# exactly, with their positions (column_attributes.py). `resource_key`: the span's resource, kept
# once in `resources` (resource_rows.py); `resource` is then ''. Rows written before keep both
# NULL and their attributes and resource whole, and read as before.
V10 = """
ALTER TABLE spans ADD COLUMN lifted BLOB;
ALTER TABLE spans ADD COLUMN resource_key INTEGER;
CREATE TABLE resources (
    resource_key INTEGER PRIMARY KEY,
    resource TEXT NOT NULL
);
"""

# Version 11. What the sessions list shows of a session's first input and last output
# (turn_previews.py), kept on its row so that a list page reads no span (issue 19). The data step
# fills them in for the sessions written before (migrations.py).
V11 = """
ALTER TABLE sessions ADD COLUMN first_input_preview TEXT;
ALTER TABLE sessions ADD COLUMN last_output_preview TEXT;
"""

# Version 12. The traces list sorts by latency, tokens, cost, errors and span count at read time
# again (a top-N sort over the list's rows; by project it reads traces_by_project, which covers
# latency, errors and cost). Their indexes were keyed by random values, so each commit rewrote
# pages all over five indexes: on the ingest benchmark (100,000 spans, two senders) they were
# ~9 µs of the server's ~130 µs CPU per span and 6% of its rate, against the 0.1.0 figures issue
# 13 holds ingest to. Sorting at read time costs 42 ms for a page of all 353,000 traces of a
# 1,000,000-span store, 18 ms within one project: the pages' budget is 100 ms. Sessions and
# users keep their sort indexes: one row per conversation or person, they cost ingest ~1%.
V12 = """
DROP INDEX IF EXISTS traces_by_latency;
DROP INDEX IF EXISTS traces_by_tokens;
DROP INDEX IF EXISTS traces_by_cost;
DROP INDEX IF EXISTS traces_by_errors;
DROP INDEX IF EXISTS traces_by_spans;
"""
