"""The parameters of a session comparison (``/api/sessions/compare`` and ``/sessions/compare``).

Both sessions are read a page of turns at a time, side by side: `a_cursor` and `b_cursor` are the
cursors of each side's page, moved on together, so turn i of A stays beside turn i of B. A side
that has no more turns while the other has gets END instead of a cursor: it shows no turns.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import QueryParams

from spanloom.server.list_params import Text, as_mapping, first_problem
from spanloom.server.store.cursor import InvalidCursorError, decode_turns_cursor

# The cursor of a side whose turns have all been shown on earlier pages.
END = "end"
DEFAULT_COMPARE_TURNS = 25
# Each turn's input and output are shown whole, twice over (A and B): fewer than a session page.
MAX_COMPARE_TURNS = 100


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


_Cursor = Annotated[str | None, BeforeValidator(_blank_to_none)]


class CompareParams(BaseModel):
    """Which two sessions, in which project, and which page of their turns."""

    model_config = ConfigDict(extra="ignore")

    project: Text = Field(None, description="The sessions' project (needed when an id is in several).")
    a: Text = Field(None, description="The first session's id (the original, say).")
    b: Text = Field(None, description="The second session's id (a replay, say).")
    limit: int = Field(
        DEFAULT_COMPARE_TURNS, ge=1, le=MAX_COMPARE_TURNS, description="Turns of each session per page."
    )
    a_cursor: _Cursor = Field(None, description="`next.a_cursor` of the previous page.")
    b_cursor: _Cursor = Field(None, description="`next.b_cursor` of the previous page.")

    @field_validator("a_cursor", "b_cursor")
    @classmethod
    def _turns_cursor(cls, value: str | None) -> str | None:
        if value is None or value == END:
            return value
        try:
            decode_turns_cursor(value)
        except InvalidCursorError as error:
            raise ValueError(str(error)) from None
        return value


def validate_compare(params: QueryParams) -> CompareParams:
    """A comparison's parameters from a query string; BadParameterError says which one is wrong."""
    try:
        return CompareParams.model_validate(as_mapping(params))
    except ValidationError as error:
        raise first_problem(error) from None
