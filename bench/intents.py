"""Intent classifier accuracy on the labelled set (tests/data/intents.jsonl), and its cost.

    python -m bench.intents [--errors dev|test|all]

The set is split in two by a hash of each id: "dev" is the half whose mistakes may be looked
at while improving the classifier, "test" the half that is only ever scored. Both are printed,
so the gap shows how much looking at errors flattered the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from omen.routing.intent import INTENTS, classify

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "intents.jsonl"


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def split_of(item: dict[str, Any]) -> str:
    return "dev" if hashlib.sha256(item["id"].encode()).digest()[0] % 2 == 0 else "test"


def table(items: list[dict[str, Any]], title: str) -> float:
    per: dict[str, Counter[str]] = {i: Counter() for i in INTENTS}
    for item in items:
        got = classify(item["request"]).intent
        per[item["intent"]]["n"] += 1
        per[item["intent"]]["ok"] += got == item["intent"]
        per[got]["predicted"] += 1
        per[got]["true_pos"] += got == item["intent"]
    print(f"\n{title}: {len(items)} requests")
    print(f"{'intent':<10} {'n':>4} {'recall':>7} {'precision':>9}")
    correct = 0
    for intent in INTENTS:
        c = per[intent]
        correct += c["ok"]
        recall = c["ok"] / c["n"] if c["n"] else float("nan")
        precision = c["true_pos"] / c["predicted"] if c["predicted"] else float("nan")
        print(f"{intent:<10} {c['n']:>4} {recall:>7.1%} {precision:>9.1%}")
    accuracy = correct / len(items)
    print(f"{'overall':<10} {len(items):>4} {accuracy:>7.1%}")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--errors", choices=["none", "dev", "test", "all"], default="none")
    args = parser.parse_args()
    items = load()
    table(items, "all")
    table([i for i in items if split_of(i) == "dev"], "dev half")
    table([i for i in items if split_of(i) == "test"], "test half (never tuned on)")
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for item in items:
            classify(item["request"])
    per_call = (time.perf_counter() - started) / (rounds * len(items)) * 1e6
    slowest = max(
        (time.perf_counter() - t0, item["id"])
        for item in items
        for t0 in [time.perf_counter()]
        if classify(item["request"])
    )
    print(f"\nclassify(): {per_call:.0f} µs mean per request; slowest {slowest[0] * 1e6:.0f} µs")
    if args.errors != "none":
        print("\nmistakes:")
        for item in items:
            if args.errors != "all" and split_of(item) != args.errors:
                continue
            result = classify(item["request"])
            if result.intent != item["intent"]:
                text = json.dumps(item["request"]["messages"][-1].get("content"))[:140]
                print(f"  {item['id']}: want {item['intent']}, got {result.explain()} {text}")


if __name__ == "__main__":
    main()
