"""Keys: roles, per-project scope, the 401 that reveals nothing, constant-time lookup, the login
form (CSRF, cookie flags, `next`), and no key in any log line."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _server_kit import RunningServer, make_request, make_turn, run_server

from spanloom.server.auth import keys as keys_module
from spanloom.server.auth.keys import KeyRing, KeysFileError, load_keys_file
from spanloom.server.auth.throttle import FailedKeyThrottle
from spanloom.server.serving import ServeLimits
from spanloom.server.web.login import safe_next

ADMIN = "admin-key-0123456789abcdef"
INGEST = "ingest-key-0123456789abcdef"
READ = "read-key-0123456789abcdefgh"
P1_READ = "p1-read-key-0123456789abcdef"
P1_INGEST = "p1-ingest-key-0123456789abcd"
ALL_KEYS = (ADMIN, INGEST, READ, P1_READ, P1_INGEST)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def csrf(page: object) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[attr-defined]


def write_keys(path: Path) -> Path:
    entries = [
        {"key": ADMIN, "role": "admin", "projects": "*"},
        {"key": INGEST, "role": "ingest", "projects": "*"},
        {"key": READ, "role": "read", "projects": "*"},
        {"key": P1_READ, "role": "read", "projects": ["p1"]},
        {"key": P1_INGEST, "role": "ingest", "projects": ["p1"]},
    ]
    path.write_text(json.dumps({"keys": entries}))
    return path


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory, store_backend: str
) -> Iterator[tuple[RunningServer, dict[str, bytes]]]:
    """A server with the keys file, one trace in project p1 and one in p2."""
    directory = tmp_path_factory.mktemp("auth")
    keys_file = write_keys(directory / "keys.json")
    with run_server(directory / "auth.db", keys_file=keys_file, backend=store_backend) as server:
        traces = {}
        for project in ("p1", "p2"):
            trace_id, spans = make_turn(f"session-{project}", f"user-{project}")
            response = server.post_spans(make_request(spans, {"project.name": project}), bearer(INGEST))
            assert response.status_code == 200, response.text
            traces[project] = trace_id
        yield server, traces


def test_keys_file_roles(keyed: tuple[RunningServer, dict[str, bytes]]):
    server, _ = keyed
    _, spans = make_turn("s-roles", "u")
    body = make_request(spans, {"project.name": "p1"})
    assert server.post_spans(body, bearer(READ)).status_code == 403
    assert server.post_spans(body, {"X-API-Key": ADMIN}).status_code == 200
    assert server.client.get("/api/sessions", headers=bearer(INGEST)).status_code == 403
    assert server.client.get("/api/sessions", headers=bearer(READ)).status_code == 200
    assert server.client.get("/api/sessions", headers={"X-API-Key": ADMIN}).status_code == 200
    # The docs describe the API, not its data: open.
    assert server.get("/openapi.json").status_code == 200


def test_401_reveals_nothing_about_projects_or_ids(keyed: tuple[RunningServer, dict[str, bytes]]):
    server, traces = keyed
    existing, missing = traces["p1"].hex(), "ab" * 16
    for headers in (
        {},
        bearer("wrong-key-0123456789abcdef"),
        {"X-API-Key": ""},
        {"Authorization": "Basic x"},
    ):
        answers = {
            (response.status_code, response.text)
            for response in (
                server.client.get(path, headers=headers)
                for path in (
                    f"/api/traces/{existing}",
                    f"/api/traces/{missing}",
                    "/api/sessions?project=p1",
                    "/api/sessions?project=nope",
                    "/api/sessions/session-p1",
                    "/api/sessions/nope",
                )
            )
        }
        assert answers == {(401, '{"error":{"code":"unauthorized","message":"a valid API key is required"}}')}


def test_per_project_read_key_sees_only_its_project(keyed: tuple[RunningServer, dict[str, bytes]]):
    server, traces = keyed
    headers = bearer(P1_READ)
    projects = server.client.get("/api/projects", headers=headers).json()["items"]
    assert [project["name"] for project in projects] == ["p1"]
    # Lists: project= is forced when absent, and another project answers like a missing one.
    items = server.client.get("/api/traces", headers=headers).json()["items"]
    assert {item["project"] for item in items} == {"p1"}
    other = server.client.get("/api/sessions", params={"project": "p2"}, headers=headers)
    absent = server.client.get("/api/sessions", params={"project": "nope"}, headers=headers)
    assert other.status_code == absent.status_code == 404
    assert other.json()["error"]["code"] == absent.json()["error"]["code"] == "not_found"
    # Details of another project: 404, as for an id that does not exist.
    for path in (f"/api/traces/{traces['p2'].hex()}", "/api/sessions/session-p2", "/api/users/user-p2"):
        assert server.client.get(path, headers=headers).status_code == 404, path
    for path in (f"/api/traces/{traces['p1'].hex()}", "/api/sessions/session-p1", "/api/users/user-p1"):
        assert server.client.get(path, headers=headers).status_code == 200, path
    # The pages, by bearer key too.
    assert server.client.get(f"/traces/{traces['p2'].hex()}", headers=headers).status_code == 404
    assert server.client.get("/sessions/session-p2", headers=headers).status_code == 404
    page = server.client.get("/sessions", headers=headers)
    assert page.status_code == 200 and "session-p1" in page.text and "session-p2" not in page.text
    assert server.client.get("/traces?project=p2", headers=headers).status_code == 404


def test_per_project_ingest_key_rejects_other_projects_spans(keyed: tuple[RunningServer, dict[str, bytes]]):
    server, _ = keyed
    request = make_request(make_turn("s-mixed-1", "u")[1], {"project.name": "p1"})
    other = make_request(make_turn("s-mixed-2", "u")[1], {"project.name": "p2"}).resource_spans
    request.resource_spans.extend(other)
    response = server.client.post(
        "/v1/traces",
        content=json.dumps(_to_json(request)),
        headers={"Content-Type": "application/json", **bearer(P1_INGEST)},
    )
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2" and "may not send" in partial["errorMessage"]
    admin = bearer(ADMIN)
    assert server.client.get("/api/sessions/s-mixed-1", headers=admin).status_code == 200
    assert server.client.get("/api/sessions/s-mixed-2", headers=admin).status_code == 404


def _to_json(request: object) -> dict:
    from google.protobuf import json_format

    data = json_format.MessageToDict(request)  # ids as base64; OTLP/JSON wants hex
    for resource in data["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        import base64

                        span[name] = base64.b64decode(span[name]).hex()
    return data


def test_login_form_csrf_cookie_flags_and_logout(keyed: tuple[RunningServer, dict[str, bytes]]):
    server, _ = keyed
    client = server.client
    client.cookies.clear()
    redirect = client.get("/traces?project=p1", follow_redirects=False)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "/login?next=%2Ftraces%3Fproject%3Dp1"
    form = client.get(redirect.headers["location"])
    assert "Content-Security-Policy" in form.headers
    # A forged token: refused before the key is even looked at. Each rendered form has a new token.
    forged = client.post("/login", data={"key": READ, "csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    wrong = {"key": "wrong", "next": "/traces", "csrf_token": csrf(forged)}
    refused = client.post("/login", data=wrong, follow_redirects=False)
    assert refused.status_code == 401 and "not accepted" in refused.text
    ingest_only = {"key": INGEST, "next": "/traces", "csrf_token": csrf(refused)}
    refused = client.post("/login", data=ingest_only, follow_redirects=False)
    assert refused.status_code == 401 and "not accepted" in refused.text
    good = {"key": READ, "next": "/traces?project=p1", "csrf_token": csrf(refused)}
    signed_in = client.post("/login", data=good, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/traces?project=p1"
    cookie = next(h for h in signed_in.headers.get_list("set-cookie") if h.startswith("spanloom_session="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain http on loopback: a Secure cookie would be dropped
    assert READ not in cookie
    page = client.get("/traces?project=p1")
    assert page.status_code == 200 and "Sign out" in page.text
    assert client.get("/api/sessions").status_code == 200  # the cookie also reads the API
    logout_token = re.search(
        r'action="/logout">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page.text
    )
    assert client.post("/logout", data={"csrf_token": "x"}, follow_redirects=False).status_code == 403
    out = client.post("/logout", data={"csrf_token": logout_token.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("spanloom_session", cookie.split(";")[0].split("=", 1)[1])  # a copied cookie
    assert client.get("/traces", follow_redirects=False).status_code == 302
    client.cookies.clear()


def test_cookie_writes_must_come_from_the_dashboards_own_origin(
    keyed: tuple[RunningServer, dict[str, bytes]],
):
    server, traces = keyed
    client = server.client
    client.cookies.clear()
    form = client.get("/login")
    signed_in = client.post(
        "/login", data={"key": ADMIN, "csrf_token": csrf(form), "next": "/sessions"}, follow_redirects=False
    )
    assert signed_in.status_code == 303
    cookie = {"Cookie": f"spanloom_session={client.cookies['spanloom_session']}"}
    client.cookies.clear()
    body = json.dumps([{"trace_id": traces["p1"].hex(), "name": "csrf-probe", "label": "pass"}])
    simple = {**cookie, "Content-Type": "text/plain"}  # what a cross-site form or fetch can send

    def post(headers: dict[str, str]) -> int:
        return server.client.post("/api/evaluations", content=body, headers=headers).status_code

    # Another port of the same host is the same site: SameSite=Strict sends the cookie along.
    refused = server.client.post(
        "/api/evaluations", content=body, headers={**simple, "Origin": "http://127.0.0.1:3000"}
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "cross_site_write"
    assert post(simple) == 403  # no Origin, no token
    assert post({**simple, "Origin": "null"}) == 403
    assert post({**simple, "Origin": server.url.replace("http://", "https://")}) == 403
    assert post({**simple, "X-CSRF-Token": "forged"}) == 403
    # From the dashboard's own origin, or with the session's token (rendered into its pages).
    assert post({**simple, "Origin": server.url}) == 200
    page = server.client.get("/sessions", headers=cookie)
    token = re.search(
        r'action="/logout">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page.text
    )
    assert post({**simple, "X-CSRF-Token": token.group(1)}) == 200
    # A key in a header is not something a page can make a browser send: unaffected.
    assert post({**bearer(ADMIN), "Content-Type": "text/plain", "Origin": "http://127.0.0.1:3000"}) == 200
    # Reads with the cookie need no Origin.
    assert server.client.get("/api/sessions", headers=cookie).status_code == 200


def _login_cookies(server: RunningServer, headers: dict[str, str]) -> tuple[str, str]:
    """(the login form's CSRF cookie, the session cookie) as set for a request with `headers`."""
    client = server.client
    client.cookies.clear()
    form = client.get("/login", headers=headers)
    token = csrf(form)
    response = client.post(
        "/login",
        data={"key": READ, "csrf_token": token, "next": "/"},
        headers={**headers, "Cookie": f"spanloom_login_csrf={token}"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    session = next(h for h in response.headers.get_list("set-cookie") if h.startswith("spanloom_session="))
    client.cookies.clear()
    return form.headers["set-cookie"].lower(), session.lower()


def _flags(cookie: str) -> set[str]:
    return {part.strip() for part in cookie.split(";")}


def test_session_cookie_is_secure_behind_a_trusted_tls_proxy(tmp_path: Path):
    # The proxy on this host is named with --forwarded-allow-ips: its X-Forwarded-Proto is believed.
    with run_server(
        tmp_path / "proxied.db",
        keys_file=write_keys(tmp_path / "keys.json"),
        limits=ServeLimits(forwarded_allow_ips="127.0.0.1"),
    ) as server:
        csrf_cookie, session = _login_cookies(server, {"X-Forwarded-Proto": "https"})
        assert {"secure", "samesite=strict"} <= _flags(csrf_cookie)
        assert "secure" in _flags(session)


def test_forwarded_headers_are_ignored_unless_a_proxy_is_configured(
    keyed: tuple[RunningServer, dict[str, bytes]],
):
    server, _ = keyed
    # By default nobody's X-Forwarded-Proto is believed: the request came over plain http on
    # loopback, and the cookies say so.
    csrf_cookie, session = _login_cookies(server, {"X-Forwarded-Proto": "https"})
    assert "secure" not in _flags(csrf_cookie) and "secure" not in _flags(session)


def test_made_up_forwarded_addresses_do_not_escape_the_throttle(tmp_path: Path):
    with run_server(tmp_path / "xff.db", keys_file=write_keys(tmp_path / "keys.json")) as server:
        statuses = [
            server.client.get(
                "/api/sessions", headers={**bearer("wrong-key-0123456789"), "X-Forwarded-For": f"10.1.0.{n}"}
            ).status_code
            for n in range(40)
        ]
        # Thirty wrong keys from this connection's address, whatever the header claimed; then 429.
        assert statuses[:30] == [401] * 30 and set(statuses[30:]) == {429}


def test_nobody_on_loopback_can_lock_out_a_chosen_address(tmp_path: Path):
    with run_server(tmp_path / "lockout.db", keys_file=write_keys(tmp_path / "keys.json")) as server:
        for _ in range(40):
            server.client.get(
                "/api/sessions", headers={**bearer("wrong-key-0123456789"), "X-Forwarded-For": "203.0.113.7"}
            )
        throttle = server.app.state.auth.throttle
        # The failures were counted against the real peer, never against the named victim.
        assert throttle.retry_after("203.0.113.7") is None
        assert throttle.retry_after("127.0.0.1") is not None


def test_a_configured_proxy_names_the_client(tmp_path: Path):
    with run_server(
        tmp_path / "trusted.db",
        keys_file=write_keys(tmp_path / "keys.json"),
        limits=ServeLimits(forwarded_allow_ips="127.0.0.1"),
    ) as server:
        for n in range(40):
            response = server.client.get(
                "/api/sessions", headers={**bearer("wrong-key-0123456789"), "X-Forwarded-For": f"10.1.0.{n}"}
            )
            assert response.status_code == 401  # forty clients behind the proxy, one failure each
        throttle = server.app.state.auth.throttle
        assert throttle.retry_after("10.1.0.1") is None and throttle.retry_after("127.0.0.1") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/traces?project=p1", "/traces?project=p1"),
        ("/sessions/a%2Fb", "/sessions/a%2Fb"),
        ("//evil.example/x", "/sessions"),
        ("https://evil.example/", "/sessions"),
        ("/\\evil.example", "/sessions"),
        ("javascript:alert(1)", "/sessions"),
        ("/ok\r\nSet-Cookie: x=1", "/sessions"),
        ("", "/sessions"),
        (None, "/sessions"),
    ],
)
def test_next_must_be_a_local_path(raw: str | None, expected: str):
    assert safe_next(raw) == expected


def test_lookup_compares_every_key_in_constant_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    ring = KeyRing(load_keys_file(write_keys(tmp_path / "keys.json")))
    calls: list[tuple[int, int]] = []
    real = keys_module.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    for presented in (ADMIN, P1_INGEST, "x", "y" * 10_000):
        calls.clear()
        ring.lookup(presented)
        # Every key, whichever matched (the first or none), and always digests of equal length.
        assert calls == [(32, 32)] * len(ALL_KEYS)
    assert ring.lookup(ADMIN).can_ingest and ring.lookup(READ).can_read and not ring.lookup(READ).can_ingest
    assert ring.lookup(P1_READ).projects == frozenset({"p1"}) and ring.lookup("nope") is None


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"keys": []}',
        '{"keys": [{"key": "short", "role": "read"}]}',
        '{"keys": [{"key": "0123456789abcdefXYZ", "role": "owner"}]}',
        '{"keys": [{"key": "0123456789abcdefXYZ", "role": "read", "projects": []}]}',
        '{"keys": [{"key": "0123456789abcdefXYZ", "role": "read"},'
        ' {"key": "0123456789abcdefXYZ", "role": "ingest"}]}',
    ],
)
def test_malformed_keys_files_are_refused_without_quoting_keys(tmp_path: Path, content: str):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(KeysFileError) as error:
        KeyRing.from_settings(None, path)
    assert "0123456789abcdefXYZ" not in str(error.value)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_key_appears_in_the_logs(tmp_path: Path):
    collector = _Collect()
    names = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "spanloom", "fastapi", "httpx")
    loggers = [logging.getLogger(name) for name in names]
    with run_server(
        tmp_path / "logs.db", log_level="debug", keys_file=write_keys(tmp_path / "k.json")
    ) as server:
        previous = [(logger, logger.level) for logger in loggers]
        for logger in loggers:
            logger.addHandler(collector)
            logger.setLevel(logging.DEBUG)
        try:
            _, spans = make_turn("s-log", "u-log")
            assert server.post_spans(make_request(spans), bearer(INGEST)).status_code == 200
            assert server.post_spans(make_request(spans), {"X-API-Key": READ}).status_code == 403
            assert server.client.get("/api/sessions", headers=bearer(ADMIN)).status_code == 200
            assert server.client.get("/api/sessions", headers=bearer(P1_READ + "x")).status_code == 401
            data = {"key": P1_READ, "csrf_token": csrf(server.client.get("/login")), "next": "/sessions"}
            assert server.client.post("/login", data=data, follow_redirects=True).status_code == 200
        finally:
            for logger, level in previous:
                logger.removeHandler(collector)
                logger.setLevel(level)
            server.client.cookies.clear()
    text = "\n".join(collector.lines)
    assert "POST /v1/traces" in text and "GET /api/sessions" in text, "the access log was not captured"
    for key in ALL_KEYS:
        assert key not in text


def test_throttle_counts_wrong_keys_per_address_within_the_window():
    now = [1_000.0]
    throttle = FailedKeyThrottle(limit=3, window_seconds=60, max_addresses=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
        now[0] += 1
    assert throttle.retry_after("10.0.0.1") == 57  # at 1,003; the first failure leaves the window at 1,060
    assert throttle.retry_after("10.0.0.2") is None  # another address is not held back
    now[0] = 1_060.5
    assert throttle.retry_after("10.0.0.1") is None  # one failure aged out: one more try
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 1
    # Memory stays bounded: a third address forgets the one whose last failure is oldest.
    throttle.failed("10.0.0.2")
    throttle.failed("10.0.0.3")
    assert set(throttle._failures) == {"10.0.0.2", "10.0.0.3"}


def test_too_many_wrong_keys_answer_429_until_the_window_passes(tmp_path: Path):
    with run_server(
        tmp_path / "throttled.db", keys_file=write_keys(tmp_path / "keys.json"), max_key_failures_per_minute=3
    ) as server:
        assert server.get("/api/sessions").status_code == 401  # no key: nothing guessed, not counted
        for _ in range(3):
            assert server.client.get("/api/sessions", headers=bearer("guess")).status_code == 401
        # Held back now, whatever the key (it is not even checked) and whatever the path.
        for headers, path in ((bearer(READ), "/api/sessions"), (bearer(INGEST), "/v1/traces")):
            response = server.client.request("GET" if path != "/v1/traces" else "POST", path, headers=headers)
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "too_many_wrong_keys"
            assert 1 <= int(response.headers["Retry-After"]) <= 60
        # The login form is held back too, and says so.
        form = server.client.get("/login")
        attempt = {"key": READ, "next": "/sessions", "csrf_token": csrf(form)}
        refused = server.client.post("/login", data=attempt, follow_redirects=False)
        assert refused.status_code == 429 and "Too many wrong keys" in refused.text
        assert "spanloom_session=" not in refused.headers.get("set-cookie", "")
        # The window passes (the throttle's clock moved on): the right key works again.
        server.app.state.auth.throttle._clock = lambda: time.monotonic() + 61
        assert server.client.get("/api/sessions", headers=bearer(READ)).status_code == 200


def test_wrong_keys_on_the_login_form_count_too(tmp_path: Path):
    with run_server(
        tmp_path / "form.db", keys_file=write_keys(tmp_path / "keys.json"), max_key_failures_per_minute=2
    ) as server:
        page = server.client.get("/login")
        for _ in range(2):
            page = server.client.post("/login", data={"key": "guess", "csrf_token": csrf(page)})
            assert page.status_code == 401
        page = server.client.post(
            "/login", data={"key": READ, "csrf_token": csrf(page)}, follow_redirects=False
        )
        assert page.status_code == 429 and page.headers["Retry-After"]
        assert server.client.get("/api/sessions", headers=bearer(READ)).status_code == 429


def test_a_login_form_with_too_many_fields_is_refused_not_a_500(
    keyed: tuple[RunningServer, dict[str, bytes]],
):
    server, _ = keyed
    stuffed = "&".join(f"field{index}=x" for index in range(20))
    response = server.client.post(
        "/login",
        content=stuffed,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 403  # not this form: refused like a forged one
