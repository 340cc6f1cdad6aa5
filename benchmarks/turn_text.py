"""What reading the user's words out of stored request JSON costs a list page.

The sessions list shows 50 rows, each with a first input and a last output; with our OpenAI
instrumentor (and OpenInference's) those are chat request and completion JSON, read by
`server.turn_text` when the page is drawn. This times one page's worth (50 requests of growing
conversations, 1 to 40 turns of distinct sentences, and their 50 completions) against the
alternative of showing the stored text as it is (the one-line clip the page did before), in
interleaved rounds, and prints min and median per page and the added time per page.

Run: ``python benchmarks/turn_text.py [--rounds 30]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from spanloom.server.turn_text import answer_text, user_text
from spanloom.server.web.format import clip

WORDS = [
    "train",
    "ticket",
    "Vienna",
    "Prague",
    "morning",
    "evening",
    "first",
    "class",
    "seat",
    "price",
    "refund",
    "delay",
    "platform",
    "connection",
    "booking",
    "change",
    "cancel",
    "luggage",
    "bicycle",
    "discount",
    "student",
    "senior",
    "window",
    "aisle",
    "quiet",
]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))).capitalize() + "."


def page_texts(rng: random.Random, rows: int = 50) -> list[tuple[str, str]]:
    texts = []
    for row in range(rows):
        turns = 1 + row * 40 // rows
        messages = [{"role": "system", "content": "You sell train tickets. " + sentence(rng)}]
        for _ in range(turns):
            messages.append({"role": "user", "content": sentence(rng)})
            messages.append({"role": "assistant", "content": " ".join(sentence(rng) for _ in range(3))})
        request = json.dumps({"model": "gpt-4o-mini", "messages": messages[:-1], "temperature": 0.3})
        completion = json.dumps(
            {
                "id": f"chatcmpl-{row}",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": messages[-1], "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": 40 * turns,
                    "completion_tokens": 60,
                    "total_tokens": 40 * turns + 60,
                },
            }
        )
        texts.append((request, completion))
    return texts


def as_stored(texts: list[tuple[str, str]]) -> None:
    for request, completion in texts:
        clip(request, 60)
        clip(completion, 60)


def extracted(texts: list[tuple[str, str]]) -> None:
    for request, completion in texts:
        clip(user_text(request), 60)
        clip(answer_text(completion), 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    texts = page_texts(random.Random(7))
    size = sum(len(request) + len(completion) for request, completion in texts)
    timings: dict[str, list[float]] = {"as stored": [], "extracted": []}
    for _ in range(args.rounds):  # interleaved, so load on the machine hits both alike
        for label, run in (("as stored", as_stored), ("extracted", extracted)):
            start = time.perf_counter()
            run(texts)
            timings[label].append((time.perf_counter() - start) * 1000)
    print(f"one sessions page: 50 rows, {size / 1024:.0f} KiB of request/response JSON; {args.rounds} rounds")
    print("| texts | min ms/page | median ms/page |")
    print("|---|---:|---:|")
    for label, values in timings.items():
        print(f"| {label} | {min(values):.2f} | {statistics.median(values):.2f} |")
    added = statistics.median(timings["extracted"]) - statistics.median(timings["as stored"])
    print(f"added by extraction: {added:.2f} ms per page (median)")


if __name__ == "__main__":
    main()
