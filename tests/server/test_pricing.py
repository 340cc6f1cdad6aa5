"""Costs come from genai-prices (cached, cache-write and reasoning tokens at each provider's own
rates, prices as of the call's time), through normalization of spans as the instrumentors write
them; a user's price file wins; an unknown model costs nothing and raises or logs nothing. The
fast path (a price asked once and kept as rates) equals genai-prices' own computation."""

from __future__ import annotations

import json
import logging
import random
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import genai_prices
import pytest
from _server_kit import make_request, make_span, run_server
from genai_prices import data_snapshot
from genai_prices.types import Usage

from spanloom.server.ingest.normalize import normalize_request
from spanloom.server.pricing import PriceTable, TokenCounts, load_price_table
from spanloom.server.pricing import table as table_module
from spanloom.server.pricing.linear import LinearPrice, is_linear

PRICES = load_price_table()
START_NS = 1_760_000_000 * 10**9  # 2025-10-09
AT_START = datetime.fromtimestamp(START_NS / 1e9, timezone.utc)


def cost_of_span(attributes: dict, table: PriceTable = PRICES, start_ns: int = START_NS) -> float | None:
    span = make_span(b"\x0a" * 16, b"\x0b" * 8, attributes=attributes)
    span.start_time_unix_nano, span.end_time_unix_nano = start_ns, start_ns + 10**9
    batch = normalize_request(make_request([span]), table)
    return batch.spans[0].cost


def reference(model: str, at: datetime = AT_START, provider: str | None = None, **usage: int) -> float:
    """genai-prices asked directly."""
    return float(
        genai_prices.calc_price(
            Usage(**usage), model, provider_id=provider, genai_request_timestamp=at
        ).total_price
    )


@pytest.mark.parametrize(
    ("model", "in_tokens", "out_tokens"),
    [("gpt-4o-2024-08-06", 1200, 350), ("gpt-4o-mini", 5000, 900), ("claude-3-5-sonnet-20241022", 2000, 100)],
)
def test_costs_of_openai_and_anthropic_models_come_from_genai_prices(
    model: str, in_tokens: int, out_tokens: int
):
    openinference = {
        "llm.model_name": model,
        "llm.token_count.prompt": in_tokens,
        "llm.token_count.completion": out_tokens,
    }
    genai = {
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": in_tokens,
        "gen_ai.usage.output_tokens": out_tokens,
    }
    expected = reference(model, input_tokens=in_tokens, output_tokens=out_tokens)
    assert expected > 0
    assert cost_of_span(openinference) == pytest.approx(expected, rel=1e-12)
    assert cost_of_span(genai) == pytest.approx(expected, rel=1e-12)


def test_gpt_4o_costs_its_list_price():
    # $2.50 per million input tokens, $10 per million output tokens, cached input at half price.
    attributes = {
        "llm.model_name": "gpt-4o",
        "llm.token_count.prompt": 1_000_000,
        "llm.token_count.completion": 100_000,
    }
    assert cost_of_span(attributes) == pytest.approx(2.5 + 1.0)
    cached = {**attributes, "llm.token_count.prompt_details.cache_read": 400_000}
    assert cost_of_span(cached) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 1.0)


def test_cached_prompt_tokens_are_priced_as_anthropic_prices_them():
    """As spanloom's Anthropic instrumentor writes a call with a cache hit and a cache write: the
    prompt count includes both; a cache read costs a tenth of input, a write 1.25x."""
    model, uncached, read, written, output = "claude-3-5-sonnet-20241022", 800, 6000, 1200, 300
    prompt = uncached + read + written
    attributes = {
        "llm.model_name": model,
        "llm.token_count.prompt": prompt,
        "llm.token_count.completion": output,
        "llm.token_count.prompt_details.cache_read": read,
        "llm.token_count.prompt_details.cache_write": written,
    }
    expected = reference(
        model, input_tokens=prompt, cache_read_tokens=read, cache_write_tokens=written, output_tokens=output
    )
    assert cost_of_span(attributes) == pytest.approx(expected, rel=1e-12)
    plain = {key: value for key, value in attributes.items() if "details" not in key}
    assert cost_of_span(attributes) < cost_of_span(plain)
    assert expected == pytest.approx((uncached * 3 + read * 0.3 + written * 3.75 + output * 15) / 1e6)
    # The same call in GenAI attributes.
    genai = {
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": prompt,
        "gen_ai.usage.output_tokens": output,
        "gen_ai.usage.cache_read.input_tokens": read,
        "gen_ai.usage.cache_creation.input_tokens": written,
    }
    assert cost_of_span(genai) == pytest.approx(expected, rel=1e-12)
    # Anthropic's raw counts, with the cache outside input_tokens: the parts exceed the whole.
    raw = {**genai, "gen_ai.usage.input_tokens": uncached}
    assert cost_of_span(raw) == pytest.approx(expected, rel=1e-12)


def test_reasoning_tokens_and_the_provider_named_by_the_span():
    attributes = {
        "llm.model_name": "o3-mini",
        "llm.token_count.prompt": 2000,
        "llm.token_count.completion": 3000,
        "llm.token_count.completion_details.reasoning": 2500,
    }
    expected = reference("o3-mini", input_tokens=2000, output_tokens=3000, output_reasoning_tokens=2500)
    assert cost_of_span(attributes) == pytest.approx(expected, rel=1e-12)
    azure = {
        "llm.model_name": "gpt-4o",
        "llm.provider": "azure",
        "llm.token_count.prompt": 1000,
        "llm.token_count.completion": 10,
    }
    assert cost_of_span(azure) == pytest.approx(
        reference("gpt-4o", provider="azure", input_tokens=1000, output_tokens=10)
    )


def test_a_call_is_priced_as_of_its_time():
    """OpenAI cut o3's price on 2025-06-10: a call before costs the old price."""
    attributes = {
        "llm.model_name": "o3",
        "llm.token_count.prompt": 10_000,
        "llm.token_count.completion": 1000,
    }
    before, after = datetime(2025, 5, 1, tzinfo=timezone.utc), datetime(2025, 7, 1, tzinfo=timezone.utc)
    old = cost_of_span(attributes, start_ns=int(before.timestamp()) * 10**9)
    new = cost_of_span(attributes, start_ns=int(after.timestamp()) * 10**9)
    assert old == pytest.approx(reference("o3", before, input_tokens=10_000, output_tokens=1000), rel=1e-12)
    assert new == pytest.approx(reference("o3", after, input_tokens=10_000, output_tokens=1000), rel=1e-12)
    assert old > new


@pytest.mark.parametrize(
    "model",
    [
        "openai/gpt-4.1-nano",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
    ],
)
def test_router_and_bedrock_names_are_found(model: str):
    assert PRICES.cost_of(model, TokenCounts(1000, 100)) is not None


def test_an_unknown_model_costs_nothing_and_says_so_nowhere(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    for attributes in (
        {"llm.model_name": "my-own-model", "llm.token_count.prompt": 5, "llm.token_count.completion": 5},
        {"llm.model_name": "gpt-4o", "llm.provider": "no-such-provider", "llm.token_count.prompt": 5},
        {"llm.model_name": "gpt-4o"},  # no tokens
    ):
        cost = cost_of_span(attributes)
        assert cost is None or attributes.get("llm.provider")
    assert cost_of_span({"llm.model_name": "my-own-model", "llm.token_count.prompt": 5}) is None
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_an_override_file_wins(tmp_path: Path):
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps(
            {
                "models": {
                    "gpt-4o": {"input": 1, "output": 2, "cache_read": 0.5},
                    "my-finetune": {"input": 3, "output": 12},
                    "my-finetune-large": {"input": 6, "output": 24},
                }
            }
        )
    )
    table = load_price_table(override)
    assert table.cost_of("gpt-4o", TokenCounts(1_000_000, 1_000_000)) == pytest.approx(3.0)
    assert table.cost_of("GPT-4o", TokenCounts(1_000_000, 0, cache_read=1_000_000)) == pytest.approx(0.5)
    assert table.cost_of("openai/gpt-4o", TokenCounts(1_000_000, 0)) == pytest.approx(1.0)
    # Another name of the same model in genai-prices' table: the file's price too.
    assert table.cost_of("gpt-4o-2024-08-06", TokenCounts(1_000_000, 0)) == pytest.approx(1.0)
    # Not in the file: genai-prices. A name the file starts: the longest entry.
    assert table.cost_of("gpt-4o-mini", TokenCounts(1_000_000, 0)) == pytest.approx(
        reference("gpt-4o-mini", input_tokens=10**6)
    )
    assert table.cost_of("my-finetune-v2", TokenCounts(0, 1_000_000)) == pytest.approx(12.0)
    assert table.cost_of("my-finetune-large-2", TokenCounts(0, 1_000_000)) == pytest.approx(24.0)
    # A cache read without a cache price of its own costs the input rate.
    assert table.cost_of("my-finetune", TokenCounts(1_000_000, 0, cache_read=500_000)) == pytest.approx(3.0)
    assert cost_of_span(
        {"llm.model_name": "gpt-4o", "llm.token_count.prompt": 10**6}, table
    ) == pytest.approx(1.0)
    assert "overridden by prices.json" in table.source.describe()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not json", "not valid JSON"),
        ('{"gpt-4o": {}}', "'models' object"),
        ('{"models": {"bad": {"input": 1}}}', "'bad' needs numeric"),
        ('{"models": {"bad": {"input": "x", "output": 1}}}', "'input' must be a number"),
        ('{"models": {"bad": {"input": -1, "output": 1}}}', "'input' must be a number"),
        ('{"models": {"bad": {"input": 1, "output": 1, "cached": 1}}}', "unknown key(s) cached"),
    ],
)
def test_a_malformed_override_file_is_refused_naming_what_is_wrong(tmp_path: Path, content: str, words: str):
    override = tmp_path / "prices.json"
    override.write_text(content)
    with pytest.raises(ValueError, match=r"prices\.json") as raised:
        load_price_table(override)
    assert words in str(raised.value)


def test_the_kept_rates_equal_genai_prices_for_every_model():
    """The fast path against genai-prices itself, for every model of its table (those with price
    tiers take genai-prices' own path), on realistic token counts."""
    snapshot = data_snapshot.get_snapshot()
    generator = random.Random(7)
    compared = 0
    for provider in snapshot.providers:
        for model in provider.models:
            price = model.get_prices(AT_START)
            rates = LinearPrice.of(price) if is_linear(price) else None
            for _ in range(2):
                prompt, output = generator.randint(0, 200_000), generator.randint(0, 20_000)
                read = generator.randint(0, prompt // 2)
                written, reasoning = generator.randint(0, prompt - read), generator.randint(0, output)
                counts = TokenCounts(prompt, output, read, written, reasoning)
                try:
                    expected = float(price.calc_price(counts.usage())["total_price"])
                except ValueError:
                    continue  # units this usage cannot express (audio, images...)
                if rates is not None:
                    assert rates.cost(counts) == pytest.approx(expected, rel=1e-9, abs=1e-12), (
                        provider.id,
                        model.id,
                        counts,
                    )
                    compared += 1
    assert compared > 1000


def test_the_dashboard_and_metrics_say_which_price_table_priced_the_costs(tmp_path: Path):
    override = tmp_path / "team-prices.json"
    override.write_text(json.dumps({"models": {"my-finetune": {"input": 3, "output": 12}}}))
    version = genai_prices.__version__
    with (
        run_server(tmp_path / "plain.db") as plain,
        run_server(tmp_path / "own.db", pricing_file=override) as own,
    ):
        page = plain.get("/sessions")
        assert page.status_code == 200
        footer = page.text[page.text.index('<footer class="bottom">') :]
        assert f"Costs priced with genai-prices {version} (newest price " in footer
        assert "overridden" not in footer
        assert f"genai-prices {version}" in own.get("/users").text
        assert "overridden by team-prices.json" in own.get("/users").text
        info = [
            line
            for line in plain.get("/metrics").text.splitlines()
            if line.startswith("spanloom_price_table_info")
        ]
        assert len(info) == 1 and f'version="{version}"' in info[0] and 'overridden="false"' in info[0]
        assert 'overridden="true"' in own.get("/metrics").text


def test_memory_stays_bounded_however_many_model_names_clients_send(monkeypatch: pytest.MonkeyPatch):
    """Model names come from clients: neither the table nor genai-prices' lookup caches may keep
    one entry per name ever sent (4,000 new names would keep about 1.3 MB)."""
    monkeypatch.setattr(table_module, "MAX_CACHED_MODELS", 200)
    table = load_price_table()
    for number in range(1000):
        table.cost_of(f"claude-made-up-{number}", TokenCounts(1, 1))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(4000):
            assert table.cost_of(f"claude-made-up-again-{number}", TokenCounts(1, 1)) is None
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 300_000, grown
    assert table.cost_of("gpt-4o", TokenCounts(1_000_000, 0)) == pytest.approx(
        reference("gpt-4o", input_tokens=10**6)
    )
