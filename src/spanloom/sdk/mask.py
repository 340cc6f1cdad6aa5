"""TraceConfig: what spanloom records, masks or redacts before a span leaves the process.

Options follow OpenInference's TraceConfig names. Each one can also come from an environment
variable (``SPANLOOM_HIDE_INPUTS=true`` ...), and, for applications moving over from
OpenInference or traceAI, from their spelling of it (``OPENINFERENCE_HIDE_INPUTS``,
``FI_HIDE_INPUTS``). An explicit argument beats every variable; ``SPANLOOM_*`` beats the other
two, ``OPENINFERENCE_*`` beats ``FI_*``. Masked
values become ``REDACTED_VALUE``; `redact_patterns` rewrite matching text inside values.
Redaction never touches ``session.id`` or ``user.id``: an e-mail used as a user id must still
group that user's traces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from spanloom import semconv

REDACTED_VALUE = semconv.REDACTED_VALUE

# Built-in patterns, by the name used in `redact_patterns` and SPANLOOM_REDACT_PATTERNS.
BUILTIN_PATTERNS: dict[str, str] = {
    # Bounded parts (RFC 5321: local part 64, domain 255, label 63): an unbounded `+` tried every
    # start in a long run of letters to its end, so 64 KB of text took seconds (quadratic).
    "email": r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,63}",
    # an optional +country code, then 9-15 digits in groups split by spaces, dots or dashes
    "phone": r"(?<![\w+])\+?\d{1,3}?[ .-]?\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){2,4}(?!\w)",
    # 13-19 digits, optionally grouped by spaces or dashes (Visa, Mastercard, Amex...)
    "card": r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)",
    # provider-style secret keys: sk-..., sk-ant-..., AKIA..., ghp_..., xox?-...
    "api_key": r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,})\b",
}
# Keys that redaction never rewrites.
_IDENTITY_KEYS = frozenset({semconv.SESSION_ID, semconv.USER_ID, semconv.GEN_AI_CONVERSATION_ID})

_INPUT_MESSAGES = semconv.LLM_INPUT_MESSAGES + "."
_OUTPUT_MESSAGES = semconv.LLM_OUTPUT_MESSAGES + "."
_INPUTS = (semconv.INPUT_VALUE, semconv.INPUT_MIME_TYPE)
_OUTPUTS = (semconv.OUTPUT_VALUE, semconv.OUTPUT_MIME_TYPE)
_TEXT_SUFFIXES = ("." + semconv.MESSAGE_CONTENT, "." + semconv.MESSAGE_CONTENT_TEXT)
_IMAGE_SUFFIX = "." + semconv.MESSAGE_CONTENT_IMAGE
_EMBEDDING_VECTOR_SUFFIX = "." + semconv.EMBEDDING_VECTOR

_FALSE = {"0", "false", "no", "off", ""}
# Where an option's variable is looked for, first found wins: ours, then OpenInference's and
# traceAI's names for the same option, so their users' deployments keep their settings.
ENV_PREFIXES = ("SPANLOOM_", "OPENINFERENCE_", "FI_")
# OpenInference's older spelling of one option.
_ENV_ALIASES = {"HIDE_EMBEDDING_VECTORS": ("OPENINFERENCE_HIDE_EMBEDDINGS_VECTORS",)}


def _env_raw(option: str) -> str | None:
    """The raw value for `option` (``"HIDE_INPUTS"``...) from the first variable that is set."""
    for name in (*(prefix + option for prefix in ENV_PREFIXES), *_ENV_ALIASES.get(option, ())):
        raw = os.environ.get(name)
        if raw is not None:
            return raw
    return None


def _env_flag(option: str) -> bool | None:
    raw = _env_raw(option)
    if raw is None:
        return None
    return raw.strip().lower() not in _FALSE


def _env_int(option: str) -> int | None:
    raw = _env_raw(option)
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        return None


@dataclass
class TraceConfig:
    """Masking and redaction settings; ``None`` means "from the environment, else the default"."""

    hide_inputs: bool | None = None
    hide_outputs: bool | None = None
    hide_input_messages: bool | None = None
    hide_output_messages: bool | None = None
    hide_input_images: bool | None = None
    hide_input_text: bool | None = None
    hide_output_text: bool | None = None
    hide_embedding_vectors: bool | None = None
    base64_image_max_length: int | None = None
    # built-in names ("email", "phone", "card", "api_key") and/or regular expressions
    redact_patterns: Iterable[str] | None = None
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    is_noop: bool = field(default=True, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for option in fields(self):
            if option.name.startswith("hide_") and getattr(self, option.name) is None:
                setattr(self, option.name, bool(_env_flag(option.name.upper())))
        if self.base64_image_max_length is None:
            self.base64_image_max_length = _env_int("BASE64_IMAGE_MAX_LENGTH") or 32_000
        if self.redact_patterns is None:
            raw = os.environ.get("SPANLOOM_REDACT_PATTERNS", "")
            self.redact_patterns = [part.strip() for part in raw.split(",") if part.strip()]
        self.redact_patterns = list(self.redact_patterns)
        expressions = [BUILTIN_PATTERNS.get(pattern, pattern) for pattern in self.redact_patterns]
        for expression in expressions:
            re.compile(expression)  # a bad user pattern fails here, at configuration time
        self._compiled = re.compile("|".join(f"(?:{e})" for e in expressions)) if expressions else None
        hides = any(getattr(self, o.name) for o in fields(self) if o.name.startswith("hide_"))
        self.is_noop = not hides and self._compiled is None

    def redact(self, text: str) -> str:
        """`text` with every match of the redaction patterns replaced by REDACTED_VALUE."""
        if self._compiled is None:
            return text
        return self._compiled.sub(REDACTED_VALUE, text)

    def is_hidden(self, key: str) -> bool:
        """Whether the attribute `key` is masked entirely."""
        if key.startswith(_INPUT_MESSAGES):
            if self.hide_inputs or self.hide_input_messages:
                return True
            if self.hide_input_text and key.endswith(_TEXT_SUFFIXES):
                return True
            return bool(self.hide_input_images and key.endswith(_IMAGE_SUFFIX))
        if key.startswith(_OUTPUT_MESSAGES):
            if self.hide_outputs or self.hide_output_messages:
                return True
            return bool(self.hide_output_text and key.endswith(_TEXT_SUFFIXES))
        if key in _INPUTS:
            return bool(self.hide_inputs)
        if key in _OUTPUTS:
            return bool(self.hide_outputs)
        return bool(self.hide_embedding_vectors and key.endswith(_EMBEDDING_VECTOR_SUFFIX))

    def mask(self, key: str, value: Any) -> Any:
        """The value to record for attribute `key`: as is, redacted, REDACTED_VALUE, or None (drop).

        Mime types of hidden inputs/outputs are dropped rather than replaced.
        """
        if self.is_noop or key in _IDENTITY_KEYS:
            # Over-long inline images are cut even with nothing else configured.
            if key.endswith(_IMAGE_SUFFIX) and isinstance(value, str):
                return self.mask_image(value)
            return value
        if self.is_hidden(key):
            if key in (semconv.INPUT_MIME_TYPE, semconv.OUTPUT_MIME_TYPE):
                return None
            return REDACTED_VALUE
        if isinstance(value, str):
            if key.endswith(_IMAGE_SUFFIX):
                return self.mask_image(value)
            return self.redact(value)
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            return [self.redact(item) if isinstance(item, str) else item for item in value]
        return value

    def mask_image(self, url: str) -> str:
        """An image URL as recorded: REDACTED_VALUE for inline base64 data over the length limit."""
        if url.startswith("data:image/") and len(url) > (self.base64_image_max_length or 0):
            return REDACTED_VALUE
        return url

    def mask_attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """`attributes` with `mask` applied to each; dropped keys removed.

        With nothing configured it returns `attributes` itself: callers that build image
        attributes pass those through `mask_image` on that fast path.
        """
        if self.is_noop:
            return attributes
        masked = {}
        for key, value in attributes.items():
            value = self.mask(key, value)
            if value is not None:
                masked[key] = value
        return masked
