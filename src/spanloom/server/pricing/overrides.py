"""The user's price file (SPANLOOM_PRICING_FILE), whose prices win over genai-prices'.

    {"models": {"gpt-4o": {"input": 2.5, "output": 10, "cache_read": 1.25},
                "my-finetune": {"input": 3, "output": 12}}}

USD per million tokens: `input` and `output` are required; `cache_read` (prompt tokens read from
a cache), `cache_write` (written to it) and `reasoning` are optional, and tokens of a kind without
a price of its own cost the plain input or output rate. A model name matches its entry exactly
(case aside); else an entry naming the same model of genai-prices' table ('gpt-4o' prices
'gpt-4o-2024-08-06' too, but not 'gpt-4o-mini', another model); else, for a model genai-prices
does not know, the longest entry it starts with ('my-finetune-v2' costs as 'my-finetune').
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from genai_prices.types import ModelPrice

# The file's keys and the genai-prices price keys they become.
_KEYS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "reasoning": "output_reasoning_mtok",
}
_REQUIRED = ("input", "output")


def _rate(source: str, name: str, key: str, raw: object) -> Decimal:
    try:
        if isinstance(raw, bool):
            raise TypeError
        rate = Decimal(str(raw))
    except (InvalidOperation, TypeError):
        rate = Decimal(-1)
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"{source}: model {name!r}: {key!r} must be a number of USD per million tokens")
    return rate


def parse_overrides(text: str, source: str) -> dict[str, ModelPrice]:
    """Raises ValueError naming the file and the entry for anything malformed."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{source} is not valid JSON: {error}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ValueError(f"{source}: expected an object with a 'models' object")
    prices = {}
    for name, entry in models.items():
        if not isinstance(entry, dict) or any(key not in entry for key in _REQUIRED):
            raise ValueError(f"{source}: model {name!r} needs numeric 'input' and 'output'")
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise ValueError(f"{source}: model {name!r}: unknown key(s) {', '.join(unknown)}")
        prices[name.lower()] = ModelPrice(
            **{_KEYS[key]: _rate(source, name, key, raw) for key, raw in entry.items()}
        )
    return prices


@dataclass(frozen=True)
class Overrides:
    path: Path | None
    prices: dict[str, ModelPrice]

    @classmethod
    def load(cls, path: Path | None) -> Overrides:
        if path is None:
            return cls(None, {})
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"cannot read the price file {path}: {error.strerror}") from None
        return cls(Path(path), parse_overrides(text, str(path)))

    def exact(self, name: str) -> ModelPrice | None:
        """The entry named `name` (lowercase)."""
        return self.prices.get(name)

    def longest_prefix(self, name: str) -> ModelPrice | None:
        """The longest entry `name` (lowercase) starts with."""
        prefixes = [entry for entry in self.prices if name.startswith(entry)]
        return self.prices[max(prefixes, key=len)] if prefixes else None
