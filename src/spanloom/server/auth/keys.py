"""API keys: what each may do (ingest, read, or both) and for which projects.

Keys come from SPANLOOM_API_KEY (one admin key for everything) and/or a keys file::

    {"keys": [{"key": "...", "role": "ingest" | "read" | "admin", "projects": ["p1"] | "*"}]}

Lookup hashes the presented key and compares the digest with every key's digest using
`hmac.compare_digest`, without stopping at a match: the time taken depends neither on which key
matched, nor on how long the keys are (digests all have the same length).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("ingest", "read", "admin")
# Short keys are guessable; the file is refused rather than silently weak.
MIN_KEY_LENGTH = 16


class KeysFileError(ValueError):
    """The keys file is missing or malformed. Messages never quote a key."""


@dataclass(frozen=True)
class Principal:
    """What a presented key may do. `projects` is None for every project."""

    label: str  # "SPANLOOM_API_KEY" or "keys file entry 3": for messages, never the key itself
    can_ingest: bool
    can_read: bool
    projects: frozenset[str] | None

    def allows(self, project: str) -> bool:
        return self.projects is None or project in self.projects

    @property
    def is_admin(self) -> bool:
        """May do everything in every project (and so see the whole server's /metrics)."""
        return self.can_ingest and self.can_read and self.projects is None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _principal(label: str, role: str, projects: frozenset[str] | None) -> Principal:
    return Principal(label, role in ("ingest", "admin"), role in ("read", "admin"), projects)


def _entry(index: int, raw: Any) -> tuple[str, Principal]:
    where = f"keys file entry {index}"
    if not isinstance(raw, dict):
        raise KeysFileError(f"{where}: expected an object with key, role and projects")
    key, role, projects = raw.get("key"), raw.get("role"), raw.get("projects", "*")
    if not isinstance(key, str) or len(key.strip()) < MIN_KEY_LENGTH or key != key.strip():
        raise KeysFileError(f"{where}: key must be a string of at least {MIN_KEY_LENGTH} characters")
    if role not in ROLES:
        raise KeysFileError(f"{where}: role must be one of {', '.join(ROLES)}")
    if projects == "*":
        scope = None
    elif (
        isinstance(projects, list)
        and projects
        and all(isinstance(name, str) and name.strip() for name in projects)
    ):
        scope = frozenset(name.strip() for name in projects)
    else:
        raise KeysFileError(f'{where}: projects must be "*" or a non-empty list of project names')
    return key, _principal(where, role, scope)


def load_keys_file(path: Path) -> list[tuple[str, Principal]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise KeysFileError(f"cannot read keys file {path}: {error.strerror}") from None
    except ValueError as error:
        raise KeysFileError(f"keys file {path} is not valid JSON: {error}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeysFileError(f'keys file {path}: expected {{"keys": [...]}} with at least one key')
    return [_entry(index, raw) for index, raw in enumerate(entries, start=1)]


class KeyRing:
    """Every accepted key, kept only as SHA-256 digests."""

    def __init__(self, keys: list[tuple[str, Principal]]) -> None:
        digests = [_digest(key) for key, _ in keys]
        if len(set(digests)) != len(digests):
            raise KeysFileError("the same key appears twice (keys must be unique)")
        self._entries = [(digest, principal) for digest, (_, principal) in zip(digests, keys, strict=True)]

    @classmethod
    def from_settings(cls, api_key: str | None, keys_file: Path | None) -> KeyRing | None:
        """The keys to enforce, or None when none are configured (the server is then open)."""
        keys: list[tuple[str, Principal]] = []
        if api_key:
            keys.append((api_key, _principal("SPANLOOM_API_KEY", "admin", None)))
        if keys_file is not None:
            keys.extend(load_keys_file(keys_file))
        return cls(keys) if keys else None

    def lookup(self, presented: str) -> Principal | None:
        """The principal of `presented`, comparing against every key (no early exit)."""
        digest = _digest(presented)
        found: Principal | None = None
        for key_digest, principal in self._entries:
            # compare_digest runs first on every entry, whatever was found before.
            if hmac.compare_digest(digest, key_digest) and found is None:
                found = principal
        return found
