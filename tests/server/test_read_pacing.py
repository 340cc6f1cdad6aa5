"""Big reads give way to ingest (read_pacing.py): while spans arrive, a trace read pauses after
each piece of work for three times as long as the piece took (it keeps a quarter of its thread's
time); with no ingest it never pauses. Checked with a
fake clock and a recording sleep, never by timing."""

from __future__ import annotations

from _server_kit import RunningServer, make_request, make_span, make_turn, new_span_id, new_trace_id

from spanloom.server.api.json_body import CHUNK_ITEMS
from spanloom.server.read_pacing import ReadPacing


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)


def pacing_with(fake: FakeTime, window: float = 1.0, max_pause: float = 0.15) -> ReadPacing:
    return ReadPacing(window, max_pause, read_share=0.25, clock=fake.clock, sleep=fake.sleep)


def test_a_read_keeps_its_share_of_time_only_while_ingest_is_busy():
    fake = FakeTime()
    pacing = pacing_with(fake)
    assert pacing.yield_to_ingest(0.01) == 0.0  # no ingest yet: full speed
    pacing.ingest_busy()
    fake.now += 0.5
    assert pacing.yield_to_ingest(0.01) == 0.03  # a quarter of the time working
    assert pacing.yield_to_ingest(0.2) == 0.15  # never longer than the maximum
    assert pacing.yield_to_ingest(0.0) == 0.0
    fake.now += 0.6  # 1.1 s since the last ingest request: past the window
    assert pacing.yield_to_ingest(0.01) == 0.0
    assert fake.pauses == [0.03, 0.15]


def test_a_read_share_of_a_half_pauses_as_long_as_the_work():
    fake = FakeTime()
    pacing = ReadPacing(1.0, 0.15, read_share=0.5, clock=fake.clock, sleep=fake.sleep)
    pacing.ingest_busy()
    assert pacing.yield_to_ingest(0.02) == 0.02


def _install(server: RunningServer, fake: FakeTime) -> ReadPacing:
    """A pacing with fake time, shared by the server's ingest and its reads, as create_app wires it."""
    pacing = pacing_with(fake, max_pause=10.0)
    server.app.state.read_pacing = pacing
    server.app.state.ingest.pacing = pacing
    return pacing


def _big_trace(server: RunningServer) -> str:
    trace_id, root_id = new_trace_id(), new_span_id()
    spans = [make_span(trace_id, root_id, name="root")]
    spans += [make_span(trace_id, new_span_id(), root_id, f"step {n}", n, 1) for n in range(CHUNK_ITEMS * 2)]
    assert server.post_spans(make_request(spans)).status_code == 200
    return trace_id.hex()


def test_a_trace_read_during_ingest_gives_way_after_its_rows_and_each_chunk(server: RunningServer):
    fake = FakeTime()
    _install(server, fake)
    trace_id = _big_trace(server)  # ingest: busy from now on, for the window

    body = server.get_json(f"/api/traces/{trace_id}")

    assert len(body["spans"]) == CHUNK_ITEMS * 2 + 1
    # The rows, then each of the 3 chunks: a pause each (as long as its CPU time, which may
    # read 0 on a coarse clock for a tiny chunk: then no pause).
    assert 1 <= len(fake.pauses) <= 4, fake.pauses
    assert all(pause > 0 for pause in fake.pauses)


def test_a_trace_read_with_no_ingest_never_pauses(server: RunningServer):
    fake = FakeTime()
    _install(server, fake)
    trace_id = _big_trace(server)
    fake.now += 5  # the last span arrived 5 s ago

    server.get_json(f"/api/traces/{trace_id}")

    assert fake.pauses == []


def test_lists_and_sessions_are_not_paced(server: RunningServer):
    fake = FakeTime()
    _install(server, fake)
    _, spans = make_turn("s1", "u1", tool=True)
    assert server.post_spans(make_request(spans)).status_code == 200
    for path in ("/api/sessions", "/api/sessions/s1", "/api/users", "/api/traces", "/api/projects"):
        server.get_json(path)
    assert fake.pauses == []
