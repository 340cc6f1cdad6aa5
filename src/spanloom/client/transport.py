"""What the sync and async clients share about HTTP: the requests they make (plain values, so
each client only sends them), the answer read as JSON or as a SpanloomClientError, and when to
try again (429 and 503, honoring Retry-After)."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

import httpx

from spanloom.client.errors import SpanloomClientError
from spanloom.sdk.destination import api_destination, resolve_headers


class Request(NamedTuple):
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    # Statuses besides 200 whose JSON body is the answer (POST /api/evaluations: 207 and 422).
    also_ok: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Retry:
    """`tries` attempts in all on 429 and 503; between them, the server's Retry-After (capped at
    `max_wait` seconds) or, without one, `backoff` seconds doubled each time."""

    tries: int = 4
    backoff: float = 0.5
    max_wait: float = 30.0
    statuses: frozenset[int] = field(default=frozenset({429, 503}))

    def wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying again after `response` (the `attempt`-th, from 1), or
        None to give up."""
        if response.status_code not in self.statuses or attempt >= self.tries:
            return None
        told = retry_after(response.headers.get("retry-after"))
        wait = told if told is not None else self.backoff * 2 ** (attempt - 1)
        return min(max(wait, 0.0), self.max_wait)


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - datetime.now(timezone.utc)).total_seconds()
    return seconds if math.isfinite(seconds) else None


def server_and_headers(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The server and headers the SDK would send to (sdk/destination.py): the one `register()`
    was given, else the environment's (SPANLOOM_ENDPOINT, the OTLP variables, SPANLOOM_API_KEY),
    else http://127.0.0.1:4318. `base_url` and `api_key`, when given, win."""
    if base_url:
        url, headers = base_url, {name.lower(): value for name, value in resolve_headers(None).items()}
    else:
        destination = api_destination()
        url, headers = destination.url, dict(destination.headers)
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    headers.setdefault("accept", "application/json")
    return url.rstrip("/"), headers


def query(**params: Any) -> tuple[tuple[str, str], ...]:
    """Query parameters as the API reads them: None left out, booleans as true/false, times as
    ISO 8601, lists repeated, ``metadata={"k": "v"}`` as ``metadata.k=v``."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if name == "metadata":
            pairs.extend((f"metadata.{key}", _text(item)) for key, item in dict(value).items())
        elif isinstance(value, (list, tuple, set, frozenset)):
            pairs.extend((name, _text(item)) for item in value)
        else:
            pairs.append((name, _text(value)))
    return tuple(pairs)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return str(value)


def answer_of(request: Request, response: httpx.Response) -> Any:
    """The JSON of a successful answer; a SpanloomClientError for any other."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if response.status_code == 200 or response.status_code in request.also_ok:
        return body
    error = body.get("error") if isinstance(body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    raise SpanloomClientError(
        f"{request.method} {request.path} answered {response.status_code}: {message or body!s:.500}",
        response.status_code,
        body,
        code,
    )


def unreachable(base_url: str, error: httpx.TransportError) -> SpanloomClientError:
    return SpanloomClientError(f"cannot reach {base_url}: {error}")


def evaluation_items(results: Iterable[Mapping[str, Any]]) -> Request:
    return Request(
        "POST", "/api/evaluations", json=[dict(result) for result in results], also_ok=frozenset({207, 422})
    )
