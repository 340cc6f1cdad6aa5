"""Pricing on the ingest path: spanloom's PriceTable against asking genai-prices for every span.

Two measures, in interleaved rounds (min and median printed; the machine is shared):

1. Per LLM call: `PriceTable.cost_of` (each model looked up once, each price kept as per-token
   rates) against `genai_prices.calc_price` per call (what pricing costs without that cache), on
   20,000 calls of realistic shape: the demo's models and dated variants, a router prefix, some
   unknown models, prompt counts of 200-40,000 tokens, a quarter with cached prompt tokens, a
   tenth with reasoning tokens, start times over a year.
2. Per span through normalization: `normalize_request` over the ingest benchmark's payloads (the
   demo's spans, a third of them LLM calls) with the real table, against a table that prices
   nothing (the floor): what pricing adds to normalizing a span. Each request is normalized both
   ways back to back and timed in thread CPU time, so other load on the machine weighs on both.

Run: ``python benchmarks/pricing.py [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import genai_prices
from genai_prices.types import Usage

sys.path.insert(0, str(Path(__file__).parent))
from ingest import build_payloads  # the ingest benchmark's payloads

from spanloom.server.ingest.decode import decode_protobuf
from spanloom.server.ingest.normalize import normalize_request
from spanloom.server.pricing import PriceTable, TokenCounts, load_price_table

MODELS = (
    "gpt-4o",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "o3-mini",
    "claude-3-5-sonnet-20241022",
    "claude-sonnet-4-20250514",
    "claude-3-5-haiku-latest",
    "openai/gpt-4o",
    "my-own-finetune",
)
YEAR_NS = 365 * 86_400 * 10**9
T0 = 1_735_689_600 * 10**9  # 2025-01-01


class NoPrices(PriceTable):
    """The floor: a table that prices nothing."""

    def cost_of(self, model, tokens, provider=None, at_ns=None):  # type: ignore[no-untyped-def]
        return None


def calls(count: int) -> list[tuple[str, TokenCounts, int]]:
    rng = random.Random(3)
    found = []
    for _ in range(count):
        prompt = rng.randint(200, 40_000)
        output = rng.randint(20, 2_000)
        cached = rng.randint(0, prompt // 2) if rng.random() < 0.25 else 0
        reasoning = rng.randint(0, output) if rng.random() < 0.1 else 0
        tokens = TokenCounts(prompt, output, cached, 0, reasoning)
        found.append((rng.choice(MODELS), tokens, T0 + rng.randint(0, YEAR_NS)))
    return found


def with_table(table: PriceTable, work: list[tuple[str, TokenCounts, int]]) -> float:
    started = time.perf_counter()
    for model, tokens, at_ns in work:
        table.cost_of(model, tokens, None, at_ns)
    return time.perf_counter() - started


def with_genai_prices(work: list[tuple[str, TokenCounts, int]]) -> float:
    started = time.perf_counter()
    for model, tokens, at_ns in work:
        try:
            genai_prices.calc_price(
                Usage(
                    input_tokens=tokens.input,
                    output_tokens=tokens.output,
                    cache_read_tokens=tokens.cache_read,
                    output_reasoning_tokens=tokens.reasoning,
                ),
                model,
                genai_request_timestamp=datetime.fromtimestamp(at_ns / 1e9, timezone.utc),
            )
        except LookupError:
            pass
    return time.perf_counter() - started


def normalizing(requests: list, table: PriceTable, floor: PriceTable) -> tuple[float, float]:
    """Thread CPU seconds normalizing every request with `table`, and with `floor`: each request
    with both, one right after the other (in turn first), so both see the same machine."""
    spent = [0.0, 0.0]
    for index, request in enumerate(requests):
        order = (0, 1) if index % 2 else (1, 0)
        for which in order:
            started = time.thread_time()
            normalize_request(request, (table, floor)[which])
            spent[which] += time.thread_time() - started
    return spent[0], spent[1]


def summary(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--spans", type=int, default=20_480)
    args = parser.parse_args()
    work = calls(args.calls)
    payloads, *_ = build_payloads(args.spans, 200, 40)
    requests = [decode_protobuf(body) for body in payloads]
    table, floor = load_price_table(), NoPrices()
    with_table(table, work)  # the first lookups of each model and price, as a server's first minute
    table_us, genai_us, normalize_us, floor_us = [], [], [], []
    for _ in range(args.rounds):
        table_us.append(with_table(table, work) / len(work) * 1e6)
        genai_us.append(with_genai_prices(work) / len(work) * 1e6)
        with_prices, without = normalizing(requests, table, floor)
        normalize_us.append(with_prices / args.spans * 1e6)
        floor_us.append(without / args.spans * 1e6)
    ratios = [genai / ours for genai, ours in zip(genai_us, table_us, strict=True)]
    added = [ours - floor for ours, floor in zip(normalize_us, floor_us, strict=True)]
    slower = [ours / floor for ours, floor in zip(normalize_us, floor_us, strict=True)]
    with open("/proc/loadavg") as load:
        average = " ".join(load.read().split()[:3])
    print(f"load average: {average}; {args.rounds} interleaved rounds; min / median")
    print()
    print("| measure | µs | ratio |")
    print("|---|---:|---:|")
    print(f"| `PriceTable.cost_of`, per LLM call | {summary(table_us)} | |")
    print(f"| `genai_prices.calc_price` per call | {summary(genai_us)} | {summary(ratios)}x ours |")
    print(f"| `normalize_request`, per span, with prices | {summary(normalize_us)} | |")
    print(
        f"| `normalize_request`, per span, pricing nothing | {summary(floor_us)} | "
        f"{summary(slower)}x with prices |"
    )
    print(f"| pricing's share of normalizing a span | {summary(added)} | |")


if __name__ == "__main__":
    main()
