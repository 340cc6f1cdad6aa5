"""`llm_judge`: a rubric you write, sent with the session's transcript to an OpenAI-compatible
``/chat/completions`` endpoint you configure, its JSON answer parsed into score, label and
explanation.

Options: ``rubric``, ``base_url`` (e.g. https://api.openai.com/v1 or http://localhost:11434/v1),
``model``, ``api_key_env`` (the name of the environment variable holding the key: the key itself
is never written to the evaluators file), ``timeout`` (seconds per connect/read/write, default
30), ``retries`` (after a timeout, a connection error, HTTP 429 or 5xx, or a malformed answer;
default 2), ``concurrency`` (calls at once, default 4), ``daily_budget`` (HTTP calls a day, each
retry counted, UTC days, default 1000) and ``max_transcript_chars`` (default 24,000).

A call that fails gives a `JudgeFailure` instead of a verdict, never an exception: the runner
stores it on the session as a result with label ``judge_error`` (or ``budget_exhausted``), no
score and the reason as explanation, and logs it. `transient` says whether trying again later
may help (everything but a spent budget).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spanloom.server.evaluators.builtin import EvaluatorOptionError
from spanloom.server.evaluators.judge_prompt import (
    DEFAULT_MAX_TRANSCRIPT_CHARS,
    MalformedAnswerError,
    answer_content,
    build_messages,
    parse_verdict,
)
from spanloom.server.evaluators.session_builtin import SessionVerdict
from spanloom.server.evaluators.transcript import Transcript
from spanloom.server.json_text import parse_json

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

KIND = "llm_judge"
OPTIONS = (
    "rubric",
    "base_url",
    "model",
    "api_key_env",
    "timeout",
    "retries",
    "concurrency",
    "daily_budget",
    "max_transcript_chars",
)
JUDGE_ERROR = "judge_error"
BUDGET_EXHAUSTED = "budget_exhausted"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 2
DEFAULT_CONCURRENCY = 4
DEFAULT_DAILY_BUDGET = 1000
MAX_RUBRIC = 20_000
MAX_RESPONSE_BYTES = 1024 * 1024
RETRY_BACKOFF_SECONDS = 1.0  # doubled at each retry; a Retry-After up to MAX_RETRY_AFTER wins
MAX_RETRY_AFTER = 30.0
DAY_NS = 86_400 * 10**9
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True, slots=True)
class JudgeFailure:
    label: str  # JUDGE_ERROR or BUDGET_EXHAUSTED
    explanation: str
    transient: bool  # trying again later may help


def _number(options: Mapping[str, Any], key: str, low: float, high: float, whole: bool) -> None:
    value = options.get(key)
    if value is None:
        return
    number = isinstance(value, int) or (not whole and isinstance(value, float))
    if not number or isinstance(value, bool) or not low <= value <= high:
        shape = "a whole number" if whole else "a number"
        raise EvaluatorOptionError(f"{KIND} '{key}' must be {shape} from {low:g} to {high:g}")


def check_options(options: Mapping[str, Any]) -> None:
    """Raises EvaluatorOptionError saying what is missing or wrong."""
    rubric = options.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip() or len(rubric) > MAX_RUBRIC:
        raise EvaluatorOptionError(
            f"{KIND} needs a 'rubric': what a good conversation is, in at most {MAX_RUBRIC:,} characters"
        )
    base_url = options.get("base_url")
    if not isinstance(base_url, str) or not re.match(r"https?://[^\s/]+", base_url):
        raise EvaluatorOptionError(
            f"{KIND} needs a 'base_url' starting with http:// or https://, e.g. https://api.openai.com/v1"
        )
    model = options.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise EvaluatorOptionError(f"{KIND} needs a 'model', e.g. gpt-4o-mini")
    key_env = options.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not _ENV_NAME.fullmatch(key_env)):
        raise EvaluatorOptionError(
            f"{KIND} 'api_key_env' is the name of an environment variable (e.g. OPENAI_API_KEY), not the key"
        )
    _number(options, "timeout", 0.1, 600, whole=False)
    _number(options, "retries", 0, 10, whole=True)
    _number(options, "concurrency", 1, 64, whole=True)
    _number(options, "daily_budget", 1, 10**9, whole=True)
    _number(options, "max_transcript_chars", 1000, 1_000_000, whole=True)


class DailyBudget:
    """At most `limit` calls per UTC day of `clock` (ns); shared by the threads of one judge."""

    def __init__(self, limit: int, clock: Callable[[], int] = time.time_ns) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._day = -1
        self.used = 0

    def take(self) -> bool:
        with self._lock:
            day = self._clock() // DAY_NS
            if day != self._day:
                self._day, self.used = day, 0
            if self.used >= self.limit:
                return False
            self.used += 1
            return True


class _Retryable(Exception):
    """A failure another attempt may not have; `retry_after`: the endpoint's Retry-After."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Final(Exception):
    """A failure another attempt would have too (HTTP 400, 401, 404...)."""


class LlmJudge:
    """One configured llm_judge: its HTTP client, worker threads and budget."""

    def __init__(
        self,
        name: str,
        options: Mapping[str, Any],
        budget: DailyBudget,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        check_options(options)
        self.name = name
        self.options = dict(options)
        self._budget = budget
        self._sleep = sleep
        self._environ = os.environ if environ is None else environ
        self._rubric: str = options["rubric"]
        self._url = options["base_url"].rstrip("/") + "/chat/completions"
        self._model: str = options["model"]
        self._key_env: str | None = options.get("api_key_env")
        self._timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
        self._retries = int(options.get("retries", DEFAULT_RETRIES))
        self._max_chars = int(options.get("max_transcript_chars", DEFAULT_MAX_TRANSCRIPT_CHARS))
        concurrency = int(options.get("concurrency", DEFAULT_CONCURRENCY))
        # Imported here, when a judge is configured: `import httpx` also loads its command line's
        # rich and pygments, megabytes a server without a judge should not carry.
        import httpx

        self._client = httpx.Client(
            transport=transport,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="spanloom-judge")

    def judge_many(self, transcripts: Sequence[Transcript]) -> list[SessionVerdict | JudgeFailure]:
        """A verdict or a failure for each transcript, in order, `concurrency` calls at a time."""
        return list(self._pool.map(self.judge, transcripts))

    def judge(self, transcript: Transcript) -> SessionVerdict | JudgeFailure:
        headers = {}
        if self._key_env:
            key = self._environ.get(self._key_env, "").strip()
            if not key:
                return self._failed(transcript, f"the environment variable {self._key_env} is not set", True)
            headers["Authorization"] = f"Bearer {key}"
        body = {
            "model": self._model,
            "messages": build_messages(self._rubric, transcript, self._max_chars),
            "temperature": 0,
        }
        reason = ""
        for attempt in range(self._retries + 1):
            if not self._budget.take():
                return self._failed(
                    transcript,
                    f"the daily budget of {self._budget.limit} calls is spent"
                    + (f" (after: {reason})" if reason else ""),
                    False,
                    BUDGET_EXHAUSTED,
                )
            try:
                return parse_verdict(answer_content(self._post(body, headers)), transcript.total_turns)
            except _Final as error:
                return self._failed(transcript, str(error), True)
            except (_Retryable, MalformedAnswerError) as error:
                reason = str(error)
                retry_after = error.retry_after if isinstance(error, _Retryable) else None
            if attempt < self._retries:
                backoff = RETRY_BACKOFF_SECONDS * 2**attempt
                self._sleep(min(retry_after, MAX_RETRY_AFTER) if retry_after is not None else backoff)
        attempts = self._retries + 1
        return self._failed(transcript, f"{reason} ({attempts} attempt{'s' * (attempts > 1)})", True)

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        import httpx  # loaded by __init__ already; see there

        try:
            with self._client.stream("POST", self._url, json=body, headers=headers) as response:
                status = response.status_code
                if status != 200:
                    # The body goes to the log only: it may echo part of the key.
                    logger.warning(
                        "spanloom: llm_judge %r: HTTP %d from %s: %.300s",
                        self.name,
                        status,
                        self._url,
                        _head(response, 300),
                    )
                    message = f"the endpoint answered HTTP {status} {response.reason_phrase}".rstrip()
                    if status == 429 or status >= 500:
                        raise _Retryable(message, _retry_after(response.headers.get("Retry-After")))
                    raise _Final(message)
                raw = bytearray()
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > MAX_RESPONSE_BYTES:
                        raise MalformedAnswerError(f"the response is over {MAX_RESPONSE_BYTES} bytes")
        except httpx.TimeoutException:
            raise _Retryable(f"no answer within {self._timeout:g} s") from None
        except httpx.HTTPError as error:
            raise _Retryable(f"the endpoint could not be reached: {type(error).__name__}") from None
        try:
            return parse_json(bytes(raw))
        except ValueError as error:
            raise MalformedAnswerError(f"the response is not JSON: {error}") from None

    def _failed(
        self, transcript: Transcript, reason: str, transient: bool, label: str = JUDGE_ERROR
    ) -> JudgeFailure:
        logger.warning(
            "spanloom: llm_judge %r on session %r of project %r: %s",
            self.name,
            transcript.session_id,
            transcript.project,
            reason,
        )
        return JudgeFailure(label, reason[:1000], transient)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


def _retry_after(raw: str | None) -> float | None:
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None


def _head(response: httpx.Response, size: int) -> str:
    """The first `size` bytes of a streamed body, as text (the rest is not read)."""
    head = bytearray()
    for chunk in response.iter_bytes():
        head += chunk
        if len(head) >= size:
            break
    return head[:size].decode("utf-8", "replace")
