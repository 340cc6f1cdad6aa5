"""A genai-prices price as a few floats, so that pricing a span costs microseconds.

genai-prices computes a price in about 130 µs (it validates the usage, splits it into the units
the model is priced by, in Decimal): more than all the rest of a span's ingest. Without price
tiers a price is linear in the token counts, so it is asked once per price at a few usages and
kept as USD per token of each kind; genai-prices' own rules (which tokens are priced as what)
stay its own. A price with tiers (the rate depends on the prompt's size) is asked every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from genai_prices.types import ModelPrice, TieredPrices, Usage

_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """One call's tokens: `input` counts cached prompt tokens too (cache reads and writes), and
    `output` counts reasoning tokens too, as OpenAI reports them (spanloom's Anthropic
    instrumentor adds Anthropic's cache reads and writes to the prompt count)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    def consistent(self) -> TokenCounts:
        """The counts with cached tokens inside the prompt and reasoning inside the output: a
        sender that counted them apart (Anthropic's raw `input_tokens` excludes the cache) said
        so by a part larger than its whole."""
        input_tokens, output_tokens = self.input, self.output
        if self.cache_read + self.cache_write > input_tokens:
            input_tokens += self.cache_read + self.cache_write
        if self.reasoning > output_tokens:
            output_tokens += self.reasoning
        return TokenCounts(input_tokens, output_tokens, self.cache_read, self.cache_write, self.reasoning)

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            output_reasoning_tokens=self.reasoning,
        )


def _usd(price: ModelPrice, counts: TokenCounts) -> Decimal:
    return price.calc_price(counts.usage())["total_price"]


@dataclass(frozen=True, slots=True)
class LinearPrice:
    """USD per request and per token of each kind, the cached and reasoning rates as differences
    from the plain input and output rates."""

    per_request: float
    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float

    @classmethod
    def of(cls, price: ModelPrice) -> LinearPrice:
        base = _usd(price, TokenCounts())

        def rate(counts: TokenCounts) -> Decimal:
            return (_usd(price, counts) - base) / _MILLION

        plain_input = rate(TokenCounts(input=_MILLION))
        plain_output = rate(TokenCounts(output=_MILLION))
        return cls(
            per_request=float(base),
            input=float(plain_input),
            output=float(plain_output),
            cache_read=float(rate(TokenCounts(input=_MILLION, cache_read=_MILLION)) - plain_input),
            cache_write=float(rate(TokenCounts(input=_MILLION, cache_write=_MILLION)) - plain_input),
            reasoning=float(rate(TokenCounts(output=_MILLION, reasoning=_MILLION)) - plain_output),
        )

    def cost(self, counts: TokenCounts) -> float:
        return (
            self.per_request
            + counts.input * self.input
            + counts.output * self.output
            + counts.cache_read * self.cache_read
            + counts.cache_write * self.cache_write
            + counts.reasoning * self.reasoning
        )


def is_linear(price: ModelPrice) -> bool:
    """Whether no rate of `price` depends on the prompt's size."""
    return not any(isinstance(rate, TieredPrices) for rate in vars(price).values())


def exact_cost(price: ModelPrice, counts: TokenCounts) -> float:
    """genai-prices' own computation, for prices with tiers."""
    return float(_usd(price, counts))
