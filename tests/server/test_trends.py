"""The trends API and the overview page: numbers equal to what the spans and results say, hour
and day buckets, project scoping, escaping; the page's charts carry the API's numbers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from _server_kit import BASE_TIME_NS, RunningServer, make_request, make_turn, run_server
from test_auth import INGEST, P1_READ, bearer, write_keys

from spanloom.server.store.trend_types import DAY_NS, HOUR_NS

H0 = BASE_TIME_NS // HOUR_NS * HOUR_NS + HOUR_NS  # a whole hour after the kit's base time
MINUTE_MS = 60_000
OFFSET_MS = (H0 - BASE_TIME_NS) / 1e6
PROJECT = 'p1 <b>&"x'  # a name that must stay text everywhere
# (session, user, minutes after H0, latency ms, error)
TURNS = (
    ("s1", "u1", 5, 100, False),
    ("s1", "u1", 10, 300, True),
    ("s2", "u2", 20, 200, False),
    ("s3", "u1", 130, 1000, False),
)


def _seconds(ns: int) -> str:
    return str(ns / 1e9)


@pytest.fixture(scope="module")
def filled(
    tmp_path_factory: pytest.TempPathFactory, store_backend: str
) -> Iterator[tuple[RunningServer, list[str]]]:
    directory = tmp_path_factory.mktemp("trends")
    with run_server(directory / "trends.db", backend=store_backend) as server:
        trace_ids = []
        for session, user, minutes, latency, error in TURNS:
            trace_id, spans = make_turn(
                session, user, OFFSET_MS + minutes * MINUTE_MS, duration_ms=latency, error=error
            )
            response = server.post_spans(make_request(spans, {"project.name": PROJECT}))
            assert response.status_code == 200, response.text
            trace_ids.append(trace_id.hex())
        # Another project's turn in the same hour: never counted in PROJECT's trends.
        _, spans = make_turn("s1", "u1", OFFSET_MS + 6 * MINUTE_MS, duration_ms=9000, error=True)
        assert server.post_spans(make_request(spans, {"project.name": "other"})).status_code == 200
        feedback = [
            {"trace_id": trace_ids[0], "score": 1, "project": PROJECT},
            {"trace_id": trace_ids[1], "score": -1, "project": PROJECT},
            {"trace_id": trace_ids[3], "score": -1, "project": PROJECT},
        ]
        assert server.client.post("/api/feedback", json=feedback).status_code == 200
        evaluations = [
            {"trace_id": trace_ids[0], "name": "correct", "label": "pass"},
            {"trace_id": trace_ids[2], "name": "correct", "label": "fail"},
            {"trace_id": trace_ids[3], "name": "correct", "score": 0.9},
        ]
        assert server.client.post("/api/evaluations", json=evaluations).status_code == 200
        yield server, trace_ids


def _trends(server: RunningServer, project: str = PROJECT, **params: str) -> dict:
    response = server.client.get(f"/api/projects/{_path(project)}/trends", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _path(project: str) -> str:
    return quote(project, safe="")


def _hours(server: RunningServer, **params: str) -> dict:
    return _trends(server, start=_seconds(H0), end=_seconds(H0 + 3 * HOUR_NS), **params)


def test_hourly_figures_are_those_of_the_spans_and_results(filled: tuple[RunningServer, list[str]]):
    server, trace_ids = filled
    trends = _hours(server)
    assert trends["bucket"] == "hour" and trends["bucket_seconds"] == 3600
    buckets = trends["buckets"]
    assert [(b["sessions"], b["turns"], b["errors"]) for b in buckets] == [(2, 3, 1), (0, 0, 0), (1, 1, 0)]
    assert [b["latency_p50_ms"] for b in buckets] == [pytest.approx(200), None, pytest.approx(1000)]
    assert buckets[0]["latency_p95_ms"] == pytest.approx(290)  # 200 + 0.9 * (300 - 200)
    assert [(b["feedback_positive"], b["feedback_negative"]) for b in buckets] == [(1, 1), (0, 0), (0, 1)]
    assert [b["evaluation_pass_rate"] for b in buckets] == [0.5, None, 1.0]
    # Cost: each turn's, as the trace list prices it, summed per hour.
    costs = {item["trace_id"]: item["cost"] for item in server.get_json("/api/traces", limit=100)["items"]}
    assert costs[trace_ids[0]] > 0
    expected = [sum(costs[trace_ids[i]] for i in (0, 1, 2)), 0.0, costs[trace_ids[3]]]
    assert [b["cost"] for b in buckets] == pytest.approx(expected)
    assert buckets[0]["start_time"].endswith(":00:00.000000Z") or buckets[0]["start_time"].endswith(
        ":00:00.000Z"
    )


def test_one_users_trends(filled: tuple[RunningServer, list[str]]):
    server, _ = filled
    buckets = _hours(server, user_id="u1")["buckets"]
    assert [(b["sessions"], b["turns"], b["errors"]) for b in buckets] == [(1, 2, 1), (0, 0, 0), (1, 1, 0)]


def test_a_long_range_is_daily_and_bounded(filled: tuple[RunningServer, list[str]]):
    server, _ = filled
    day0 = H0 // DAY_NS * DAY_NS
    trends = _trends(server, start=_seconds(day0 - 3 * DAY_NS), end=_seconds(day0 + 4 * DAY_NS))
    assert trends["bucket"] == "day" and len(trends["buckets"]) == 7
    assert sum(b["turns"] for b in trends["buckets"]) == len(TURNS)
    years = _trends(server, start="2000-01-01", end="2030-01-01")
    assert len(years["buckets"]) <= 200
    assert sum(b["turns"] for b in years["buckets"]) == len(TURNS)
    forced = _trends(server, start=_seconds(H0), end=_seconds(H0 + 3 * HOUR_NS), bucket="day")
    assert forced["bucket"] == "day" and sum(b["turns"] for b in forced["buckets"]) == len(TURNS)


def test_bad_parameters_and_unknown_projects(filled: tuple[RunningServer, list[str]]):
    server, _ = filled
    assert server.get(f"/api/projects/{_path(PROJECT)}/trends", bucket="week").status_code == 400
    assert server.get(f"/api/projects/{_path(PROJECT)}/trends", start="soon").status_code == 400
    assert (
        server.get(f"/api/projects/{_path(PROJECT)}/trends", start="2030-01-01", end="2029-01-01").status_code
        == 400
    )
    # The widest range the times allow: still at most 200 buckets, every turn in one of them.
    widest = _trends(server, start="1678-01-01", end="2262-04-11")
    assert len(widest["buckets"]) <= 200 and sum(b["turns"] for b in widest["buckets"]) == len(TURNS)
    missing = server.get("/api/projects/nope/trends")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert server.get("/projects/nope").status_code == 404


class _ChartParser(HTMLParser):
    """Each chart's table (by data-chart key) and its SVG's axes, titles and tick labels."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.titles: dict[str, list[str]] = {}
        self.axes: dict[str, set[str]] = {}
        self._chart = ""
        self._cell: list[str] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "figure" and values.get("data-chart"):
            self._chart = values["data-chart"] or ""
            self.tables[self._chart], self.titles[self._chart], self.axes[self._chart] = [], [], set()
        elif tag == "g" and "axis" in (values.get("class") or ""):
            self.axes[self._chart].add(values.get("class") or "")
        elif tag == "tr" and self._chart:
            self.tables[self._chart].append([])
        elif tag in ("td", "th") and self._chart and self.tables[self._chart]:
            self._cell = []
        elif tag == "title" and self._chart:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._chart][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "title":
            self._in_title = False
        elif tag == "figure":
            self._chart = ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.titles[self._chart].append(data)


def test_the_overview_page_draws_the_apis_numbers(filled: tuple[RunningServer, list[str]]):
    server, _ = filled
    params = {"start": _seconds(H0), "end": _seconds(H0 + 3 * HOUR_NS)}
    page = server.get(f"/projects/{_path(PROJECT)}", **params)
    assert page.status_code == 200
    assert "p1 &lt;b&gt;&amp;&#34;x" in page.text and "<b>&" not in page.text
    parsed = _ChartParser()
    parsed.feed(page.text)
    assert set(parsed.tables) == {"sessions", "turns", "cost", "latency", "feedback", "pass-rate"}
    for key in parsed.tables:
        assert parsed.axes[key] == {"axis x-axis", "axis y-axis"}, key
        assert parsed.titles[key], f"{key} has no hover titles"
    buckets = _hours(server)["buckets"]
    rows = {key: table[1:] for key, table in parsed.tables.items()}  # without the heading row
    assert [int(row[1]) for row in rows["sessions"]] == [b["sessions"] for b in buckets]
    assert [(int(row[1]), int(row[2])) for row in rows["turns"]] == [
        (b["turns"], b["errors"]) for b in buckets
    ]
    assert [(int(row[1]), int(row[2])) for row in rows["feedback"]] == [
        (b["feedback_positive"], b["feedback_negative"]) for b in buckets
    ]
    assert [row[1] for row in rows["pass-rate"]] == ["50%", "—", "100%"]
    assert [row[1:] for row in rows["latency"]] == [["200 ms", "290 ms"], ["—", "—"], ["1.00 s", "1.00 s"]]
    first_hour = rows["sessions"][0][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:00", first_hour)
    assert any(title.startswith(f"{first_hour}: Turns 3") for title in parsed.titles["turns"])


def test_lists_show_a_trend_strip_and_the_nav_links_the_overview(filled: tuple[RunningServer, list[str]]):
    server, _ = filled
    for path in ("/sessions", "/users"):
        page = server.get(path, project=PROJECT)
        assert page.status_code == 200
        parsed = _ChartParser()
        parsed.feed(page.text)
        assert set(parsed.tables) == {"sessions", "turns", "cost"}, path
        assert sum(int(row[1]) for row in parsed.tables["turns"][1:]) == len(TURNS)
        assert f'href="/projects/{_path(PROJECT)}"' in page.text
    projects = server.get("/projects")
    assert projects.status_code == 200 and f'href="/projects/{_path(PROJECT)}"' in projects.text
    picked = server.client.get("/projects", params={"project": PROJECT}, follow_redirects=False)
    assert picked.status_code == 302 and picked.headers["location"] == f"/projects/{_path(PROJECT)}"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("trends-auth")
    with run_server(
        directory / "a.db", keys_file=write_keys(directory / "keys.json"), backend=store_backend
    ) as server:
        for project in ("p1", "p2"):
            _, spans = make_turn(f"s-{project}", "u", OFFSET_MS)
            assert (
                server.post_spans(make_request(spans, {"project.name": project}), bearer(INGEST)).status_code
                == 200
            )
        yield server


def test_a_project_key_never_learns_of_another_project(keyed: RunningServer):
    own = keyed.client.get("/api/projects/p1/trends", headers=bearer(P1_READ))
    assert own.status_code == 200 and sum(b["turns"] for b in own.json()["buckets"]) == 1
    other = keyed.client.get("/api/projects/p2/trends", headers=bearer(P1_READ))
    missing = keyed.client.get("/api/projects/p3/trends", headers=bearer(P1_READ))
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["message"].replace("p2", "X") == missing.json()["error"]["message"].replace(
        "p3", "X"
    )
    assert keyed.client.get("/projects/p2", headers=bearer(P1_READ)).status_code == 404
    listed = keyed.client.get("/projects", headers=bearer(P1_READ)).text
    assert "/projects/p1" in listed and "p2" not in listed
    assert keyed.client.get("/api/projects/p1/trends").status_code == 401
