"""`PriceTable`: what a model call cost in USD, from genai-prices' maintained table, with the
user's price file winning (see overrides.py).

genai-prices prices cached prompt tokens, cache writes and reasoning tokens at each provider's
own rates, and knows prices by date (a span is priced as of its start). A model is found by
name, helped by the provider a span names (`llm.provider`, `gen_ai.provider.name`,
`gen_ai.system`: 'azure' prices gpt-4o as Azure does); names with a router's prefix
('openai/gpt-4o') and Bedrock's ids ('anthropic.claude-3-5-sonnet-20240620-v1:0') are found too.
A model found nowhere costs nothing (None): no error, no log line.

Each (provider, model) is looked up once; each price becomes a `LinearPrice` once (linear.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, StartDateConstraint

from spanloom.server.pricing.linear import LinearPrice, TokenCounts, exact_cost, is_linear
from spanloom.server.pricing.overrides import Overrides

# Model names and providers come from clients: a bound on what is remembered of them, here and
# in genai-prices' lookup caches (a snapshot of its own, replaced when this one is cleared).
MAX_CACHED_MODELS = 10_000
# Bedrock names models '<vendor>.<model>' ('us.anthropic.claude-...'); genai-prices lists them
# under this provider.
_BEDROCK = "aws"

_Found = LinearPrice | ModelInfo | None


@dataclass(frozen=True)
class PriceSource:
    """Which table priced the costs, for the dashboard and /metrics."""

    version: str  # genai-prices'
    newest_price: date | None  # the newest price change it lists, up to today
    overrides: Path | None

    def describe(self) -> str:
        text = f"genai-prices {self.version}"
        if self.newest_price is not None:
            text += f" (newest price {self.newest_price.isoformat()})"
        if self.overrides is not None:
            text += f", overridden by {self.overrides.name}"
        return text


def _newest_price(snapshot: data_snapshot.DataSnapshot, today: date) -> date | None:
    newest: date | None = None
    for provider in snapshot.providers:
        for model in provider.models:
            if not isinstance(model.prices, list):
                continue
            for conditional in model.prices:
                constraint = conditional.constraint
                if isinstance(constraint, StartDateConstraint):
                    start = constraint.start_date
                    day = start.date() if isinstance(start, datetime) else start
                    if day <= today and (newest is None or day > newest):
                        newest = day
    return newest


def _moment(at_ns: int | None) -> datetime:
    if at_ns is None:
        return datetime.now(timezone.utc)
    return datetime.fromtimestamp(at_ns / 1e9, timezone.utc)


class PriceTable:
    def __init__(self, overrides: Overrides | None = None) -> None:
        self._overrides = overrides or Overrides(None, {})
        self._providers = data_snapshot.get_snapshot().providers
        self._snapshot = self._fresh_snapshot()
        self._models: dict[tuple[str | None, str], _Found] = {}
        # id(price) -> (price, its linear form or None for a price with tiers). The price is kept
        # so that its id is never reused while the entry lives.
        self._forms: dict[int, tuple[ModelPrice, LinearPrice | None]] = {}
        # genai-prices' model id -> the override file's entry naming that model.
        self._overridden: dict[str, ModelPrice] = {}
        for entry, price in self._overrides.prices.items():
            model = self._catalogued(entry, None)
            if model is not None:
                self._overridden.setdefault(model.id, price)
        self.source = PriceSource(
            genai_prices.__version__,
            _newest_price(self._snapshot, datetime.now(timezone.utc).date()),
            self._overrides.path,
        )

    def cost_of(
        self,
        model: str | None,
        tokens: TokenCounts | None,
        provider: str | None = None,
        at_ns: int | None = None,
    ) -> float | None:
        """USD for one call made at `at_ns` (default: now), or None when the model is unknown or
        no tokens were counted."""
        if not model or tokens is None:
            return None
        found = self._find(model, provider)
        if found is None:
            return None
        counts = tokens.consistent()
        if isinstance(found, LinearPrice):
            return found.cost(counts)
        price = found.get_prices(_moment(at_ns))
        form = self._form(price)
        if form is not None:
            return form.cost(counts)
        try:
            return exact_cost(price, counts)
        except ValueError:  # counts genai-prices finds inconsistent: priced as nothing
            return None

    def _form(self, price: ModelPrice) -> LinearPrice | None:
        known = self._forms.get(id(price))
        if known is None:
            known = (price, LinearPrice.of(price) if is_linear(price) else None)
            self._forms[id(price)] = known
        return known[1]

    def _fresh_snapshot(self) -> data_snapshot.DataSnapshot:
        """genai-prices' table with lookup caches of this table's own (its shared snapshot would
        remember every name any client sent, without a bound)."""
        return data_snapshot.DataSnapshot(providers=self._providers, from_auto_update=False)

    def _find(self, model: str, provider: str | None) -> _Found:
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        if len(self._models) >= MAX_CACHED_MODELS:
            # A client naming ever new models: start over rather than grow.
            self._models.clear()
            self._snapshot = self._fresh_snapshot()
        found = self._lookup(model.strip().lower(), provider)
        self._models[key] = found
        return found

    def _lookup(self, name: str, provider: str | None) -> _Found:
        bare = name.rsplit("/", 1)[-1]
        override = self._overrides.exact(name) or self._overrides.exact(bare)
        if override is not None:
            return LinearPrice.of(override)
        model = self._catalogued(name, provider)
        if model is not None:
            override = self._overridden.get(model.id)
            if override is not None:
                return LinearPrice.of(override)
            # One price for all time, without tiers: priced as a LinearPrice from now on, without
            # asking genai-prices which price applies at each span's start (get_prices returns
            # this very price whatever the date when none of it is conditional).
            if isinstance(model.prices, ModelPrice) and is_linear(model.prices):
                return LinearPrice.of(model.prices)
            return model
        override = self._overrides.longest_prefix(name) or self._overrides.longest_prefix(bare)
        return LinearPrice.of(override) if override is not None else None

    def _catalogued(self, name: str, provider: str | None) -> ModelInfo | None:
        """The model of genai-prices' table `name` (lowercase) names, helped by `provider`."""
        bare = name.rsplit("/", 1)[-1]
        candidates: list[tuple[str, str | None]] = []
        if provider:
            candidates.append((name, provider))
        candidates.append((name, None))
        if bare != name:
            candidates.append((bare, None))
        if "." in bare:
            candidates.append((bare, _BEDROCK))
        for reference, hint in candidates:
            try:
                return self._snapshot.find_provider_model(reference, None, hint, None)[1]
            except (LookupError, ValueError):
                continue
        return None


def load_price_table(override_file: Path | None = None) -> PriceTable:
    """genai-prices' table with the entries of `override_file` winning. Raises ValueError for a
    file it cannot read or parse."""
    return PriceTable(Overrides.load(override_file))
