"""How well the intent classifier generalises, and what it costs.

    python -m bench.intents [--quick] [--loso-epochs 3] [--loso-cap 1200]

1. Held-out benchmarks (bench/data/intents_heldout.jsonl): prompts from public benchmark test
   sets the model never saw (MT-Bench first turns, HumanEval, GSM8K test, MATH test, LogiQA
   test, BIG-Bench Hard, NQ-open dev), labelled by the benchmark's nature: accuracy per
   source, overall (micro and macro), MT-Bench per category, and a confusion matrix.
2. Difficulty: MATH test levels 1–2 (easy) against 4–5 (hard): AUC and accuracy at 0.5.
3. The project's labelled set (tests/data/intents.jsonl). It is also a training source, so
   this figure is flattering; the leave-one-source-out line for omen_labelled is the honest one.
4. Leave-one-source-out (skipped with --quick): for each training source, retrain without it
   (each other source capped at --loso-cap rows, --loso-epochs epochs, to stay within a few
   minutes) and score the source that was left out.
5. Latency of classify(): p50/p99 on short and long prompts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from omen.routing.intent import INTENTS, classify, classify_text
from omen.routing.intent_model import CLASSES, features

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "bench" / "data" / "intents_heldout.jsonl"
LABELLED = ROOT / "tests" / "data" / "intents.jsonl"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    # split on "\n" only: the files hold unicode line separators inside strings
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


def trainer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "train_intents", ROOT / "scripts" / "train_intents.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def confusion(pairs: list[tuple[str, str]], labels: tuple[str, ...]) -> None:
    counts = Counter(pairs)
    print(f"{'want/got':<12}" + "".join(f"{g:>10}" for g in labels))
    for want in labels:
        if any(w == want for w, _ in pairs):
            print(f"{want:<12}" + "".join(f"{counts[(want, g)]:>10}" for g in labels))


def heldout(rows: list[dict[str, Any]]) -> None:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    categories: dict[str, Counter[str]] = defaultdict(Counter)
    pairs = []
    for row in rows:
        got = classify_text(row["text"]).intent
        per[row["source"]]["n"] += 1
        per[row["source"]]["ok"] += got == row["intent"]
        pairs.append((row["intent"], got))
        if row["source"] == "mt_bench":
            categories[row["category"]]["n"] += 1
            categories[row["category"]]["ok"] += got == row["intent"]
    print(f"\nheld-out benchmarks (never trained on): {len(rows)} prompts")
    print(f"{'source':<14} {'label':<10} {'n':>5} {'accuracy':>9}")
    labels = {row["source"]: row["intent"] for row in rows}
    for source, c in per.items():
        label = labels[source] if source != "mt_bench" else "mixed"
        print(f"{source:<14} {label:<10} {c['n']:>5} {c['ok'] / c['n']:>9.1%}")
    micro = sum(c["ok"] for c in per.values()) / len(rows)
    macro = sum(c["ok"] / c["n"] for c in per.values()) / len(per)
    print(
        f"{'overall':<14} {'':<10} {len(rows):>5} {micro:>9.1%}  (macro over sources {macro:.1%})"
    )
    print("\nMT-Bench first turns by category:")
    for category, c in sorted(categories.items()):
        print(f"  {category:<12} {c['ok']}/{c['n']}")
    total = sum(c["ok"] for c in categories.values())
    print(f"  {'all':<12} {total}/{sum(c['n'] for c in categories.values())}")
    print("\nconfusion matrix (held-out):")
    confusion(pairs, CLASSES)


def auc(scores: list[tuple[float, int]]) -> float:
    positives = [s for s, y in scores if y]
    negatives = [s for s, y in scores if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def difficulty(rows: list[dict[str, Any]]) -> None:
    levelled = [r for r in rows if r["source"] == "math_test" and r.get("level") in (1, 2, 4, 5)]
    scored = [(classify_text(r["text"]).difficulty, int(r["level"] >= 4)) for r in levelled]
    right = sum((s >= 0.5) == bool(y) for s, y in scored)
    print(f"\ndifficulty on MATH test (levels 1–2 easy vs 4–5 hard, n={len(scored)}):")
    print(f"  AUC {auc(scored):.3f}, accuracy at 0.5 {right / len(scored):.1%}")
    by_level: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r["source"] == "math_test":
            by_level[r["level"]].append(classify_text(r["text"]).difficulty)
    means = ", ".join(f"L{k} {sum(v) / len(v):.2f}" for k, v in sorted(by_level.items()))
    print(f"  mean difficulty by level: {means}")
    for source in ("gsm8k_test", "nq_open", "humaneval", "logiqa_test", "bbh"):
        values = [classify_text(r["text"]).difficulty for r in rows if r["source"] == source]
        hard = sum(v >= 0.5 for v in values) / len(values)
        print(f"  {source:<12} mean {sum(values) / len(values):.2f}, judged hard {hard:.0%}")


def labelled() -> None:
    items = read_jsonl(LABELLED)
    right = Counter(classify(i["request"]).intent == i["intent"] for i in items)
    print(
        f"\nproject labelled set (also a training source): {right[True]}/{len(items)}"
        f" = {right[True] / len(items):.1%}"
    )


def _loso_one(args: tuple[str, int, int]) -> tuple[str, int, int, list[tuple[str, str]]]:
    source, epochs, cap = args
    module = trainer()
    rows = module.load_rows()
    rng = random.Random(5)
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    train_rows = []
    for name, items in sorted(by_source.items()):
        if name != source:
            train_rows += items if len(items) <= cap else rng.sample(items, cap)
    model = module.train(train_rows, epochs=epochs)
    test = by_source[source]
    pairs = [
        (r["intent"], model.predict(features(r["text"], r.get("system", ""))).intent) for r in test
    ]
    return source, sum(w == g for w, g in pairs), len(test), pairs


def loso(epochs: int, cap: int) -> None:
    sources = sorted({r["source"] for r in trainer().load_rows()})
    started = time.perf_counter()
    print(f"\nleave-one-source-out ({epochs} epochs, other sources capped at {cap} rows):")
    pairs: list[tuple[str, str]] = []
    with ProcessPoolExecutor(max_workers=2) as pool:
        for source, ok, n, got in pool.map(_loso_one, [(s, epochs, cap) for s in sources]):
            labels = Counter(w for w, _ in got)
            print(f"  {source:<16} {ok:>5}/{n:<5} {ok / n:>6.1%}  ({', '.join(labels)})")
            pairs += got
    total = sum(w == g for w, g in pairs)
    print(f"  {'all':<16} {total:>5}/{len(pairs):<5} {total / len(pairs):>6.1%}")
    print(f"  ({time.perf_counter() - started:.0f} s)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(rows: list[dict[str, Any]]) -> None:
    short = [r["text"] for r in rows if len(r["text"]) < 200][:300]
    long = [r["text"] for r in rows if len(r["text"]) >= 600][:200]
    huge = ["word " * 20_000 + "```python\nprint(1)\n```"]
    print("\nclassify() latency:")
    for name, texts in (("short (<200 chars)", short), ("long (>=600)", long), ("100 KB", huge)):
        times = []
        for _ in range(5):
            for text in texts:
                body = {"messages": [{"role": "user", "content": text}]}
                t0 = time.perf_counter()
                classify(body)
                times.append(time.perf_counter() - t0)
        p50, p99 = percentile(times, 0.5) * 1e6, percentile(times, 0.99) * 1e6
        print(f"  {name:<20} p50 {p50:>6.0f} µs   p99 {p99:>6.0f} µs   (n={len(times)})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="skip leave-one-source-out")
    parser.add_argument("--loso-epochs", type=int, default=3)
    parser.add_argument("--loso-cap", type=int, default=1200)
    args = parser.parse_args()
    assert set(CLASSES) <= set(INTENTS)
    if not HELDOUT.is_file():
        raise SystemExit(
            f"{HELDOUT.relative_to(ROOT)} is not here: it is extracted from public benchmarks, "
            "not committed; run `python data/intents/build.py` first (data/intents/SOURCES.md)"
        )
    rows = read_jsonl(HELDOUT)
    heldout(rows)
    difficulty(rows)
    labelled()
    latency(rows)
    if not args.quick:
        loso(args.loso_epochs, args.loso_cap)


if __name__ == "__main__":
    main()
