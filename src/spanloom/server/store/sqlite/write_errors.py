"""How the SQLite writer tells failed writes apart: the storage failing (a full disk, an I/O
error, a lock held elsewhere: worth a retry) from values SQLite cannot take (a retry would fail
again, so the span is rejected alone)."""

from __future__ import annotations

import sqlite3

from spanloom.server.store.base import StoreUnavailableError


def storage_error(error: Exception) -> Exception:
    """A failed write as the caller hears it: any SQLite error (a full disk, an I/O error, a lock
    held by another process) is `StoreUnavailableError`, worth a retry once the storage recovers."""
    if not isinstance(error, sqlite3.Error):
        return error
    code = getattr(error, "sqlite_errorcode", None)  # absent on an error raised by hand
    full = (code & 0xFF == sqlite3.SQLITE_FULL) if code is not None else "or disk is full" in str(error)  # type: ignore[attr-defined]  # 3.11+, as sqlite_errorcode
    if full:
        message = f"storage is full ({error}): nothing was stored; retry once space is freed"
    else:
        message = f"storage failed ({error}): nothing was stored; retry later"
    unavailable = StoreUnavailableError(message, full=full)
    unavailable.__cause__ = error
    return unavailable


# SQLite's answers to values it cannot take (not to a failing disk): a span that provokes one is
# rejected alone instead of failing its whole request on every retry.
DATA_ERROR_MESSAGES = ("integer overflow", "string or blob too big", "surrogates not allowed")


def is_data_error(error: BaseException) -> bool:
    """Whether a failed write is due to the values written, not to the storage: a retry of the
    same values would fail again."""
    if isinstance(
        error, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError)
    ):
        return True
    if isinstance(error, sqlite3.Error):
        return any(message in str(error) for message in DATA_ERROR_MESSAGES)
    return isinstance(error, (ValueError, OverflowError, UnicodeError))


def explain_refusal(error: StoreUnavailableError) -> str:
    """Why the store is not ready, as /readyz says it."""
    if error.full:
        return "storage is full: the database or its disk has no room for a write"
    return f"a write would fail: {error.__cause__ or error}"
