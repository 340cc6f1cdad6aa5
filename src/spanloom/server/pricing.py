"""Token prices: the documented table in pricing.json, optionally overridden by a user's file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_PER_TOKEN = 1e-6  # the table is in USD per million tokens


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens


class PriceTable:
    """Looks up a model's price: exact name, else the longest table entry the name starts with."""

    def __init__(self, prices: dict[str, ModelPrice]) -> None:
        self._prices = {name.lower(): price for name, price in prices.items()}
        # Longest first, so 'gpt-4o-mini-2024-07-18' finds 'gpt-4o-mini' before 'gpt-4o'.
        self._prefixes = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, ModelPrice | None] = {}

    def price_of(self, model: str) -> ModelPrice | None:
        if model in self._cache:
            return self._cache[model]
        name = model.lower().rsplit("/", 1)[-1]
        # Bedrock spells 'anthropic.claude-3-5-sonnet-20240620-v1:0'.
        for provider in ("anthropic.", "openai.", "us.anthropic.", "eu.anthropic."):
            if name.startswith(provider):
                name = name[len(provider) :]
        price = self._prices.get(name)
        if price is None:
            price = next((self._prices[p] for p in self._prefixes if name.startswith(p)), None)
        if len(self._cache) < 10_000:  # model names come from clients: bound the cache
            self._cache[model] = price
        return price

    def cost_of(
        self, model: str | None, prompt_tokens: int | None, completion_tokens: int | None
    ) -> float | None:
        """USD for one call, or None when the model is unknown or no tokens were counted."""
        if not model or (prompt_tokens is None and completion_tokens is None):
            return None
        price = self.price_of(model)
        if price is None:
            return None
        return ((prompt_tokens or 0) * price.input + (completion_tokens or 0) * price.output) * _PER_TOKEN


def _parse(text: str, source: str) -> dict[str, ModelPrice]:
    data = json.loads(text)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ValueError(f"{source}: expected an object with a 'models' object")
    prices = {}
    for name, entry in models.items():
        try:
            prices[name] = ModelPrice(float(entry["input"]), float(entry["output"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{source}: model {name!r} needs numeric 'input' and 'output'") from error
    return prices


def load_price_table(override_file: Path | None = None) -> PriceTable:
    """The built-in table, with the entries of `override_file` (same JSON shape) replacing or adding."""
    default = resources.files("spanloom.server").joinpath("pricing.json").read_text(encoding="utf-8")
    prices = _parse(default, "pricing.json")
    if override_file is not None:
        prices.update(_parse(Path(override_file).read_text(encoding="utf-8"), str(override_file)))
    return PriceTable(prices)
