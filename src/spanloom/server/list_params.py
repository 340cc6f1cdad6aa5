"""The list parameters (filters, sort, order, limit, cursor), declared once as Pydantic models.

The JSON API takes them as FastAPI query models, so the OpenAPI document shows their real types
and a bad value answers 400 naming the parameter; the pages validate the same models from their
query string (after forms.py translates the page-only inputs), so a filter means the same thing
everywhere. ``metadata.KEY=VALUE`` is a family of parameters no schema can list: `metadata_filters`
reads it beside the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from starlette.datastructures import ImmutableMultiDict

from spanloom.server.store.base import (
    MAX_PAGE_SIZE,
    SESSION_SORT_KEYS,
    TRACE_SORT_KEYS,
    USER_SORT_KEYS,
    ListQuery,
)
from spanloom.server.store.cursor import (
    TRACE_SPANS_CURSOR,
    InvalidCursorError,
    decode_cursor,
    decode_turns_cursor,
)
from spanloom.server.store.evaluation_list import EvaluationQuery, decode_evaluation_cursor
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX, FEEDBACK, MAX_EVALUATION_NAME

DEFAULT_PAGE_SIZE = 50
# Spans of one trace per page of GET /api/traces/{id}: most traces fit in one.
DEFAULT_TRACE_SPANS = 1_000
MAX_TRACE_SPANS = 10_000
# Turns of one session per page of GET /api/sessions/{id} and of the session page: most
# conversations fit in one; a session of 20,000 turns is read a page at a time.
DEFAULT_SESSION_TURNS = 100
MAX_SESSION_TURNS = 500
METADATA_PREFIX = "metadata."
# Tag and metadata filters per request: each is a condition of its own, and a thousand of them
# make a query no database plans ("Expression tree is too large").
MAX_LABEL_FILTERS = 20
MAX_TEXT = 1000  # characters of an id or a search text
# Times are stored as signed 64-bit nanoseconds: about ±292 years around 1970.
_MAX_TIME_NS = 2**63 - 1


class BadParameterError(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


# A query string: Starlette's QueryParams, or the MultiDict the pages build from one.
QueryParams = ImmutableMultiDict[str, str]


def parse_time(parameter: str, raw: str) -> int:
    """ISO 8601 (naive means UTC) or Unix seconds, as nanoseconds since the epoch."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds):
            raise BadParameterError(parameter, f"expected a finite number of Unix seconds, got {raw!r}")
        if abs(seconds) > _MAX_TIME_NS / 1e9:
            raise BadParameterError(parameter, f"{raw!r} is outside the years 1678 to 2262")
        nanoseconds = int(seconds * 1e9)
    else:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise BadParameterError(
                parameter, f"expected ISO 8601 or Unix seconds, got {raw!r:.80}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        nanoseconds = int(moment.timestamp() * 1_000_000) * 1000
    if abs(nanoseconds) > _MAX_TIME_NS:
        raise BadParameterError(parameter, f"{raw!r} is outside the years 1678 to 2262")
    return nanoseconds


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _time(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is None or isinstance(value, int):
        return value
    try:
        return parse_time("time", str(value))
    except BadParameterError as error:
        raise ValueError(error.message) from None


def _upper(value: Any) -> Any:
    value = _blank_to_none(value)
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    value = _blank_to_none(value)
    return value.lower() if isinstance(value, str) else value


def _texts(value: Any) -> Any:
    """Repeated parameters: blank ones dropped."""
    values = value if isinstance(value, list) else [value]
    return [item.strip() for item in values if isinstance(item, str) and item.strip()]


_Bounded = Annotated[str, Field(max_length=MAX_TEXT)]
Text = Annotated[_Bounded | None, BeforeValidator(_blank_to_none)]
Time = Annotated[
    int | None,
    BeforeValidator(_time),
    WithJsonSchema({"type": "string", "description": "ISO 8601 or Unix seconds"}),
]
Tags = Annotated[list[str], BeforeValidator(_texts), Field(max_length=MAX_LABEL_FILTERS)]
Order = Annotated[Literal["asc", "desc"], BeforeValidator(_lower)]


def _sort_schema(sort_keys: Sequence[str], eval_sort: bool) -> WithJsonSchema:
    keys = "|".join([*sort_keys, FEEDBACK] if eval_sort else sort_keys)
    pattern = f"^({keys}|{EVAL_SORT_PREFIX}.+)$" if eval_sort else f"^({keys})$"
    return WithJsonSchema({"type": "string", "pattern": pattern})


class _ListParams(BaseModel):
    """The parameters every list takes. Subclasses set the sort keys (the first is the default)
    and the length of a row's key in their cursors."""

    model_config = ConfigDict(extra="ignore")
    SORT_KEYS: ClassVar[tuple[str, ...]]
    KEY_LENGTH: ClassVar[int]
    LABELED: ClassVar[bool] = True  # the rows have tags and metadata to filter by

    project: Text = Field(None, description="Project name.")
    user_id: Text = Field(None, description="Only this user's rows.")
    start: Time = Field(None, description="ISO 8601 or Unix seconds: rows active at or after.")
    end: Time = Field(None, description="ISO 8601 or Unix seconds: rows active at or before.")
    has_error: bool | None = Field(None, description="true: only rows with errors; false: only without.")
    has_negative_feedback: bool | None = Field(
        None, description="true: only rows with an end user's negative feedback; false: only without."
    )
    q: Text = Field(None, description="Case-insensitive text search over ids, inputs and outputs.")
    order: Order = Field("desc", description="asc or desc.")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: Annotated[str | None, BeforeValidator(_blank_to_none)] = Field(
        None, description="`next_cursor` of the previous page."
    )
    sort: Annotated[str | None, BeforeValidator(_blank_to_none)] = None

    @model_validator(mode="before")
    @classmethod
    def _blanks_and_labels(cls, data: Any) -> Any:
        """An empty input of a form means "not given"; tag and metadata filters on a list without
        them are refused."""
        if not isinstance(data, Mapping):
            return data
        data = {
            key: value for key, value in data.items() if not (isinstance(value, str) and not value.strip())
        }
        if not cls.LABELED:
            refused = [key for key in data if key == "tag" or str(key).startswith(METADATA_PREFIX)]
            if refused:
                raise ValueError(f"{refused[0]}: this list has no tags or metadata to filter by")
        return data

    @model_validator(mode="after")
    def _sort_and_cursor(self) -> _ListParams:
        sort = self.sort or self.SORT_KEYS[0]
        if sort == FEEDBACK and self.SORT_KEYS in (SESSION_SORT_KEYS, USER_SORT_KEYS):
            sort = EVAL_SORT_PREFIX + FEEDBACK  # end users' feedback: its mean score
        if sort.startswith(EVAL_SORT_PREFIX) and self.SORT_KEYS in (SESSION_SORT_KEYS, USER_SORT_KEYS):
            name = sort[len(EVAL_SORT_PREFIX) :]
            if not name.strip() or len(name) > MAX_EVALUATION_NAME or not name.isprintable():
                raise ValueError(f"sort: eval:NAME needs an evaluation name, got {sort!r:.80}")
        elif sort not in self.SORT_KEYS:
            raise ValueError(f"sort: expected one of {', '.join(self.SORT_KEYS)}, got {sort!r:.80}")
        if self.cursor is not None:
            try:
                decode_cursor(self.cursor, sort, self.KEY_LENGTH)
            except InvalidCursorError as error:
                raise ValueError(f"cursor: {error}") from None
        self.sort = sort
        return self

    def to_query(self, metadata: Sequence[tuple[str, str]] = ()) -> ListQuery:
        return ListQuery(
            project=self.project,
            user_id=self.user_id,
            session_id=getattr(self, "session_id", None),
            start_ns=self.start,
            end_ns=self.end,
            has_error=self.has_error,
            has_negative_feedback=self.has_negative_feedback,
            q=self.q,
            tags=list(getattr(self, "tag", ())),
            metadata=list(metadata),
            span_kind=getattr(self, "span_kind", None),
            model=getattr(self, "model", None),
            status=getattr(self, "status", None),
            sort=self.sort,
            order=self.order,
            limit=self.limit,
            cursor=self.cursor,
        )


class SessionListParams(_ListParams):
    SORT_KEYS = SESSION_SORT_KEYS
    KEY_LENGTH = 2

    sort: Annotated[str | None, BeforeValidator(_blank_to_none), _sort_schema(SESSION_SORT_KEYS, True)] = (
        Field(
            None,
            description=f"One of {', '.join(SESSION_SORT_KEYS)}, feedback or eval:NAME (default start_time).",
        )
    )
    tag: Tags = Field([], description="Keep rows carrying this tag (repeatable).")
    status: Annotated[Literal["active", "idle", "ended"] | None, BeforeValidator(_lower)] = Field(
        None, description="active, idle (no new turn for a while) or ended."
    )

    def to_query(self, metadata: Sequence[tuple[str, str]] = ()) -> ListQuery:
        query = super().to_query(metadata)
        query.status = None  # the field names the session's status here, not a trace's
        query.session_status = self.status
        return query


class UserListParams(_ListParams):
    """Users have no tags or metadata of their own: those filters are refused, not ignored."""

    SORT_KEYS = USER_SORT_KEYS
    KEY_LENGTH = 2
    LABELED = False

    sort: Annotated[str | None, BeforeValidator(_blank_to_none), _sort_schema(USER_SORT_KEYS, True)] = Field(
        None, description=f"One of {', '.join(USER_SORT_KEYS)}, or eval:NAME (default last_seen)."
    )


class TraceListParams(_ListParams):
    SORT_KEYS = TRACE_SORT_KEYS
    KEY_LENGTH = 1

    sort: Annotated[str | None, BeforeValidator(_blank_to_none), _sort_schema(TRACE_SORT_KEYS, False)] = (
        Field(None, description=f"One of {', '.join(TRACE_SORT_KEYS)} (default start_time).")
    )
    tag: Tags = Field([], description="Keep rows carrying this tag (repeatable).")
    session_id: Text = Field(None, description="Only this session's traces.")
    span_kind: Annotated[_Bounded | None, BeforeValidator(_upper)] = Field(
        None, description="Traces with a span of this kind (LLM, TOOL, ...)."
    )
    model: Text = Field(None, description="Traces with a span calling this model.")
    status: Annotated[Literal["UNSET", "OK", "ERROR"] | None, BeforeValidator(_upper)] = Field(
        None, description="UNSET, OK or ERROR."
    )


class EvaluationListParams(BaseModel):
    """GET /api/evaluations: individual results, filtered, in the store's one order (results on
    spans and turns by trace, then results on sessions), a page at a time."""

    model_config = ConfigDict(extra="ignore")

    project: Text = Field(None, description="Project name.")
    name: Annotated[
        Annotated[str, Field(max_length=MAX_EVALUATION_NAME)] | None, BeforeValidator(_blank_to_none)
    ] = Field(None, description="Only results of this evaluation name.")
    session_id: Text = Field(None, description="Only results on this session's turns and on the session.")
    trace_id: Annotated[_Bounded | None, BeforeValidator(_lower)] = Field(
        None, description="Only results on this trace's spans and on the turn."
    )
    span_id: Annotated[_Bounded | None, BeforeValidator(_lower)] = Field(
        None, description="Only results on this span."
    )
    source: Annotated[Literal["sdk", "api", "server", "feedback"] | None, BeforeValidator(_lower)] = Field(
        None, description="sdk, api, server (server evaluators) or feedback (end users)."
    )
    start: Time = Field(None, description="ISO 8601 or Unix seconds: results recorded at or after.")
    end: Time = Field(None, description="ISO 8601 or Unix seconds: results recorded at or before.")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: Annotated[str | None, BeforeValidator(_blank_to_none)] = Field(
        None, description="`next_cursor` of the previous page."
    )

    @model_validator(mode="after")
    def _cursor(self) -> EvaluationListParams:
        if self.cursor is not None:
            try:
                decode_evaluation_cursor(self.cursor)
            except InvalidCursorError as error:
                raise ValueError(f"cursor: {error}") from None
        return self

    def to_query(self) -> EvaluationQuery:
        return EvaluationQuery(
            project=self.project,
            name=self.name,
            session_id=self.session_id,
            trace_id=self.trace_id,
            span_id=self.span_id,
            source=self.source,
            start_ns=self.start,
            end_ns=self.end,
            limit=self.limit,
            cursor=self.cursor,
        )


class TraceSpanPageParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(DEFAULT_TRACE_SPANS, ge=1, le=MAX_TRACE_SPANS, description="Spans per page.")
    cursor: Annotated[str | None, BeforeValidator(_blank_to_none)] = Field(
        None, description="The previous page's next_cursor."
    )

    @model_validator(mode="after")
    def _cursor(self) -> TraceSpanPageParams:
        if self.cursor is not None:
            try:
                decode_cursor(self.cursor, TRACE_SPANS_CURSOR)
            except InvalidCursorError as error:
                raise ValueError(f"cursor: {error}") from None
        return self


class SessionTurnParams(BaseModel):
    """Which page of a session's turns: `limit` of them from the start, or from a cursor."""

    model_config = ConfigDict(extra="ignore")

    project: Text = Field(None, description="The session's project (needed when its id is in several).")
    limit: int = Field(DEFAULT_SESSION_TURNS, ge=1, le=MAX_SESSION_TURNS, description="Turns per page.")
    cursor: Annotated[str | None, BeforeValidator(_blank_to_none)] = Field(
        None, description="`next_cursor`, `previous_cursor` or `first_failing_turn.cursor` of a page."
    )

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {
                key: value
                for key, value in data.items()
                if not (isinstance(value, str) and not value.strip())
            }
        return data

    @model_validator(mode="after")
    def _cursor(self) -> SessionTurnParams:
        if self.cursor is not None:
            try:
                decode_turns_cursor(self.cursor)
            except InvalidCursorError as error:
                raise ValueError(f"cursor: {error}") from None
        return self


def validate_turns(params: QueryParams) -> SessionTurnParams:
    """A session page's turn parameters; BadParameterError says which one is wrong."""
    try:
        return SessionTurnParams.model_validate(as_mapping(params))
    except ValidationError as error:
        raise first_problem(error) from None


def metadata_filters(params: QueryParams) -> list[tuple[str, str]]:
    """The ``metadata.KEY=VALUE`` parameters, in order."""
    filters = []
    for key, value in params.multi_items():
        if key.startswith(METADATA_PREFIX):
            name = key[len(METADATA_PREFIX) :]
            if not name:
                raise BadParameterError(key, "expected metadata.KEY=VALUE")
            filters.append((name, value))
    if len(filters) > MAX_LABEL_FILTERS:
        raise BadParameterError("metadata", f"at most {MAX_LABEL_FILTERS} metadata filters per request")
    return filters


def as_mapping(params: QueryParams) -> dict[str, Any]:
    """A query string as a model validates it: repeated keys as lists."""
    values: dict[str, Any] = {}
    for key, value in params.multi_items():
        if key in values:
            existing = values[key]
            values[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            values[key] = value
    return values


def describe_problems(errors: Sequence[Mapping[str, Any]], skip: int = 0) -> str:
    """Validation errors as one line, each "parameter: what is wrong". `skip`: leading parts of an
    error's location that are not the parameter's name (FastAPI's "query")."""
    problems = []
    for item in errors:
        location = ".".join(str(part) for part in tuple(item.get("loc", ()))[skip:])
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        if not location and ": " in message:  # a check across parameters names its own
            location, _, message = message.partition(": ")
        problems.append(f"{location or 'request'}: {message}")
    return "; ".join(problems) or "request: not valid"


def first_problem(error: ValidationError) -> BadParameterError:
    """A validation error as the BadParameterError the pages show."""
    parameter, _, message = describe_problems(error.errors()[:1]).partition(": ")
    return BadParameterError(parameter, message)


def validate_list(
    model: type[_ListParams], params: QueryParams, overrides: Mapping[str, Any] | None = None
) -> ListQuery:
    """A page's list parameters (the API gets the same through FastAPI); BadParameterError says
    which one is wrong."""
    try:
        parsed = model.model_validate({**as_mapping(params), **(overrides or {})})
    except ValidationError as error:
        raise first_problem(error) from None
    return parsed.to_query(metadata_filters(params))
