"""log_feedback() and end_session(): what the end user thought of a turn or a conversation, and
the end of a conversation, sent to the spanloom server from anywhere in the app.

Unlike `log_evaluation` (an event on a live span), these need no span: a web handler answering
a thumbs-up minutes after the turn ended names the turn by its trace id (hand it to the front end
with `current_trace_id()` while the turn runs) or the conversation by its session id. They send
to the server `register()` was given (else the one the environment names), off the caller's
thread: see feedback_sender.py. Bad input gives a warning and sends nothing (an exception under
SPANLOOM_STRICT=1); nothing else here raises into the app.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import uuid
from typing import Any
from urllib.parse import quote, urlencode

from spanloom.sdk._guard import log_failure
from spanloom.sdk._text import clean_text
from spanloom.sdk._validate import reject, valid_id
from spanloom.sdk.destination import api_destination
from spanloom.sdk.feedback_sender import DEFAULT_MAX_PENDING, FeedbackSender, Outgoing

# The server's bounds for POST /api/feedback (server/api/feedback.py), checked here so that bad
# input is reported at the caller's line instead of in a log line from the sender thread.
MAX_ABS_SCORE = 1_000_000.0
MAX_TEXT = 200  # an id, a label, a project
MAX_ID = 256  # a session or user id
MAX_COMMENT = 10_000  # longer comments are cut (the server cuts them too)
EXIT_FLUSH_SECONDS = 5.0

_lock = threading.Lock()
_sender: FeedbackSender | None = None


def _max_pending() -> int:
    try:
        value = int(os.environ.get("SPANLOOM_MAX_PENDING_FEEDBACK", ""))
    except ValueError:
        return DEFAULT_MAX_PENDING
    return value if value > 0 else DEFAULT_MAX_PENDING


def _shared_sender() -> FeedbackSender:
    global _sender
    with _lock:
        if _sender is None:
            _sender = FeedbackSender(max_pending=_max_pending())
            atexit.register(_sender.close, EXIT_FLUSH_SECONDS)
        return _sender


def _forget_sender_in_child() -> None:
    # A forked worker (gunicorn, multiprocessing) has no sender thread, and what the parent
    # queued is the parent's to send: the child starts a sender of its own when it needs one,
    # and its exit does not wait for the parent's copy.
    global _sender, _lock
    if _sender is not None:
        _sender.forget_after_fork()
    _sender = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_sender_in_child)


def _text(value: object, what: str, limit: int, stacklevel: int) -> str | None:
    """`value` as clean text within `limit` characters, or None after reporting it (`stacklevel`
    counts from here to the caller's line)."""
    if not valid_id(value, what, stacklevel=stacklevel + 1):
        return None
    assert isinstance(value, str)
    if len(value) > limit:
        reject(f"{what} must be at most {limit} characters, got {len(value)}", ValueError, stacklevel)
        return None
    return clean_text(value.strip())


def _trace_id(value: object) -> str | None:
    """32 lowercase hex digits from a hex string or OpenTelemetry's integer trace id."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 128:
        return f"{value:032x}"
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) == 32 and all(char in "0123456789abcdef" for char in text) and text != "0" * 32:
            return text
    reject(
        f"trace_id must be 32 hex digits (or an OpenTelemetry trace id integer), got {value!r:.80}",
        TypeError if not isinstance(value, (str, int)) else ValueError,
        stacklevel=5,
    )
    return None


def _feedback_item(
    score: object,
    label: object,
    comment: object,
    trace_id: object,
    session_id: object,
    user_id: object,
    feedback_id: object,
    project: object,
) -> dict[str, Any] | None:
    """The JSON item for POST /api/feedback, or None after reporting what is wrong."""
    item: dict[str, Any] = {}
    if (trace_id is None) == (session_id is None):
        reject(
            "log_feedback needs trace_id (a turn) or session_id (the conversation), one of them",
            ValueError,
            stacklevel=4,
        )
        return None
    if score is None and label is None:
        reject(
            "log_feedback needs a score (1 for a thumbs-up, -1 for a thumbs-down) or a label", stacklevel=4
        )
        return None
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            reject(
                f"feedback score must be a finite number (1 or -1 for thumbs), got {score!r:.80}",
                TypeError,
                stacklevel=4,
            )
            return None
        if abs(score) > MAX_ABS_SCORE:
            reject(f"feedback score must be within ±{MAX_ABS_SCORE:,.0f}, got {score!r:.80}", stacklevel=4)
            return None
        item["score"] = float(score)
    checks: list[tuple[str, object, int]] = [
        ("label", label, MAX_TEXT),
        ("session_id", session_id, MAX_ID),
        ("user_id", user_id, MAX_ID),
        ("id", feedback_id, MAX_TEXT),
        ("project", project, MAX_TEXT),
    ]
    for key, value, limit in checks:
        if value is not None:
            text = _text(value, f"feedback {key}", limit, stacklevel=5)
            if text is None:
                return None
            item[key] = text
    if trace_id is not None:
        hex_id = _trace_id(trace_id)
        if hex_id is None:
            return None
        item["trace_id"] = hex_id
    if comment is not None:
        if not isinstance(comment, str):
            reject(
                f"feedback comment must be a string, got {type(comment).__name__}", TypeError, stacklevel=4
            )
            return None
        item["comment"] = clean_text(comment[:MAX_COMMENT])
    # An id of our own when none is given: a retried request replaces, never doubles, the feedback.
    item.setdefault("id", uuid.uuid4().hex)
    return item


def log_feedback(
    score: float | None = None,
    label: str | None = None,
    comment: str | None = None,
    *,
    trace_id: str | int | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    id: str | None = None,  # the API's own name for it, shadowing the builtin here only
    project: str | None = None,
) -> str | None:
    """Send an end user's feedback on a turn (`trace_id`) or a whole conversation (`session_id`).

    `score`: 1 for a thumbs-up, -1 for a thumbs-down, or any number (at least 0.5 counts as
    positive); `label` (``"helpful"``, ``"wrong answer"``...) and `comment` are optional, but a
    score or a label is needed. `user_id` is who gave it. `id` is yours to choose: feedback sent
    again with the same id replaces the earlier one (a user who changes their mind); without one
    a random id is made. `project` defaults to register()'s (else SPANLOOM_PROJECT, else the
    server works it out from the key or the stored session).

    Returns at once with the feedback's id, or None when it was not queued (bad input, with a
    warning; a full queue, logged). It is sent in the background, retried while the server is
    unreachable, and flushed at exit or by `flush_feedback()`. It may arrive before the turn's
    spans: it counts once they do.
    """
    item = _feedback_item(score, label, comment, trace_id, session_id, user_id, id, project)
    if item is None:
        return None
    try:
        destination = api_destination()
        item.setdefault("project", destination.project)
        if item["project"] is None:
            del item["project"]
        outgoing = Outgoing.feedback(destination.url + "/api/feedback", destination.headers, item)
        return item["id"] if _shared_sender().submit(outgoing) else None
    except Exception:
        log_failure("log_feedback")
        return None


def end_session(session_id: str, project: str | None = None) -> bool:
    """Mark the conversation `session_id` ended now (the user closed the chat, the task is done):
    its session evaluators may run, and it shows as ended until a later turn reopens it.

    Sent in the background like `log_feedback`; True when queued. `project` defaults to
    register()'s, else SPANLOOM_PROJECT, else the one the server finds.
    """
    if not valid_id(session_id, "session_id", stacklevel=4):
        return False
    if project is not None and _text(project, "project", MAX_TEXT, stacklevel=4) is None:
        return False
    try:
        destination = api_destination()
        chosen = project or destination.project
        url = f"{destination.url}/api/sessions/{quote(session_id, safe='')}/end"
        if chosen:
            url += "?" + urlencode({"project": chosen})
        outgoing = Outgoing(url, destination.headers, None, f"the end of session {session_id!r}")
        return _shared_sender().submit(outgoing)
    except Exception:
        log_failure("end_session")
        return False


def flush_feedback(timeout: float = 5.0) -> bool:
    """Wait up to `timeout` seconds for queued feedback and session ends to be sent; True when
    none is left. Exiting the interpreter does this too (within 5 seconds)."""
    with _lock:
        sender = _sender
    if sender is None:
        return True
    try:
        return sender.flush(timeout)
    except Exception:
        log_failure("flush_feedback")
        return False
