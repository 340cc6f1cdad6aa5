"""Bad input to the SDK: a warning pointing at the caller's line, or an exception in strict mode.

Ids are non-empty strings of valid text; metadata is a dict; tags a list of strings. Anything
else is reported once per call site (Python's warning filter) and set nowhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from spanloom.sdk._guard import strict_mode
from spanloom.sdk._text import clean_text, is_clean_text


class SpanloomWarning(UserWarning):
    """Bad input to the SDK: the call went through, the attribute was not set."""


def reject(message: str, error: type[Exception] = ValueError, stacklevel: int = 4) -> None:
    """Report bad input: a warning pointing at the caller's line, or `error` when SPANLOOM_STRICT=1."""
    if strict_mode():
        raise error(message)
    warnings.warn(f"spanloom: {message}; ignored", SpanloomWarning, stacklevel=stacklevel)


def valid_id(value: object, what: str, stacklevel: int = 4) -> bool:
    if isinstance(value, str) and value and not value.isspace():
        if is_clean_text(value):
            return True
        reject(f"{what} must be valid UTF-8 text, got {value!r:.80}", ValueError, stacklevel)
        return False
    if isinstance(value, str):
        reject(f"{what} must be a non-empty string, got {value!r}", ValueError, stacklevel)
    else:
        reject(
            f"{what} must be a non-empty string, got {type(value).__name__} {value!r:.80}",
            TypeError,
            stacklevel,
        )
    return False


def valid_metadata(metadata: object) -> dict[str, Any] | None:
    if not isinstance(metadata, Mapping):
        reject(f"metadata must be a dict, got {type(metadata).__name__}", TypeError)
        return None
    return {str(key): value for key, value in metadata.items()}


def valid_tags(tags: object) -> list[str] | None:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        reject(f"tags must be a list of strings, got {type(tags).__name__}", TypeError)
        return None
    tags = tuple(tags)
    if not all(isinstance(tag, str) for tag in tags):
        reject(f"tags must be a list of strings, got {tags!r:.80}", TypeError)
        return None
    return [clean_text(tag) for tag in tags]  # in the order given, as OpenInference keeps them


def valid_optional_str(value: object, what: str) -> bool:
    if isinstance(value, str):
        return True
    reject(f"{what} must be a string, got {type(value).__name__}", TypeError)
    return False
