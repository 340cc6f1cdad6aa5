"""The attribute an input/output text was read from (`input_key`/`output_key`, span_texts.py),
stored in a byte or two when it is one of the usual ones: the key text was ~40 bytes of every
span's row.

NULL (with a position in `input_at`/`output_at`): ``input.value`` / ``output.value``. A BLOB
(code, N): the content of message N of OpenInference's flattened input or output messages. Any
other key is stored as its text. Rows written before hold every key as text, which reads the same.
"""

from __future__ import annotations

from spanloom import semconv
from spanloom.server.store.span_texts import INPUT_VALUE_KEY, OUTPUT_VALUE_KEY

# Code -> (prefix, suffix) of a message key; part of the stored format: append, never reorder.
_TEMPLATES = {
    1: (f"{semconv.LLM_INPUT_MESSAGES}.", f".{semconv.MESSAGE_CONTENT}"),
    2: (f"{semconv.LLM_OUTPUT_MESSAGES}.", f".{semconv.MESSAGE_CONTENT}"),
}
_DEFAULTS = {"input": INPUT_VALUE_KEY, "output": OUTPUT_VALUE_KEY}


def encode_key(key: str, column: str) -> str | bytes | None:
    """How `key`, the attribute the `column` ("input" or "output") text was read from, is stored."""
    if key == _DEFAULTS[column]:
        return None
    for code, (prefix, suffix) in _TEMPLATES.items():
        if key.startswith(prefix) and key.endswith(suffix):
            number = key[len(prefix) : len(key) - len(suffix)]
            # Only the canonical spelling of a small number: "01" or "+1" must come back as sent.
            if number.isdigit() and number.isascii() and str(int(number)) == number and int(number) < 256:
                return bytes((code, int(number)))
    return key


def decode_key(stored: str | bytes | None, column: str) -> str:
    """The key `encode_key` stored, for a text that was moved (its position is not NULL)."""
    if stored is None:
        return _DEFAULTS[column]
    if isinstance(stored, bytes):
        prefix, suffix = _TEMPLATES[stored[0]]
        return f"{prefix}{stored[1]}{suffix}"
    return stored
