"""Train the intent model (omen/routing/intent_model.bin) from data/intents/*.jsonl and the
project's own labelled set (tests/data/intents.jsonl, text intents only).

    python scripts/train_intents.py [--epochs 6] [--out omen/routing/intent_model.bin]

Pure Python (no numpy): class-balanced multinomial logistic regression with AdaGrad and a
little L2, plus a binary difficulty head on the rows that carry a difficulty label. Fixed
seeds and a fixed row order make the weights file identical from run to run.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omen.routing.intent_model import (  # noqa: E402
    CLASSES,
    MODEL_PATH,
    SHAPE_NAMES,
    Model,
    features,
    save,
)

DATA = ROOT / "data" / "intents"
LABELLED = ROOT / "tests" / "data" / "intents.jsonl"

Row = dict[str, Any]


def labelled_rows() -> list[Row]:
    """The project's hand-labelled requests, reduced to (system, last user text)."""
    rows = []
    for line in LABELLED.read_text().splitlines():
        item = json.loads(line)
        if item["intent"] not in CLASSES:
            continue  # vision and agent are decided by structure, not text
        messages = item["request"]["messages"]
        system = " ".join(
            m["content"]
            for m in messages
            if m.get("role") in ("system", "developer") and isinstance(m.get("content"), str)
        )
        user: Any = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if isinstance(user, list):
            user = "\n".join(p.get("text", "") for p in user if isinstance(p, dict))
        rows.append(
            {"text": user, "system": system, "intent": item["intent"], "source": "omen_labelled"}
        )
    return rows


def load_rows() -> list[Row]:
    rows: list[Row] = []
    for path in sorted(DATA.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().split("\n") if line.strip()]
    return rows + labelled_rows()


def train(
    rows: list[Row], epochs: int = 6, seed: int = 0, min_df: int = 2, l2: float = 1e-6
) -> Model:
    n = len(CLASSES)
    index = {c: i for i, c in enumerate(CLASSES)}
    docs = [(features(r["text"], r.get("system", "")), r) for r in rows]
    df: Counter[str] = Counter()
    for feats, _ in docs:
        df.update(feats.keys())
    keep = {f for f, k in df.items() if k >= min_df or f in SHAPE_NAMES}
    per_class = Counter(r["intent"] for r in rows)
    class_weight = {c: len(rows) / (n * per_class[c]) for c in per_class}
    prepared = [
        (
            [(f, v) for f, v in feats.items() if f in keep],
            index[r["intent"]],
            r.get("difficulty"),
            class_weight[r["intent"]],
        )
        for feats, r in docs
    ]
    weights: dict[str, list[float]] = {f: [0.0] * (n + 1) for f in sorted(keep)}
    squares: dict[str, list[float]] = {f: [1e-8] * (n + 1) for f in weights}
    bias = [0.0] * (n + 1)
    rate, bias_rate = 0.25, 0.01
    order = list(range(len(prepared)))
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(order)
        for k in order:
            feats, y, hard, weight = prepared[k]
            totals = bias[:]
            for f, v in feats:
                w = weights[f]
                for i in range(n + 1):
                    totals[i] += w[i] * v
            peak = max(totals[:n])
            exps = [math.exp(t - peak) for t in totals[:n]]
            norm = sum(exps)
            grads = [weight * (e / norm - (i == y)) for i, e in enumerate(exps)]
            if hard is not None:
                grads.append(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, totals[n])))) - hard)
            else:
                grads.append(0.0)
            for i in range(n + 1):
                bias[i] -= bias_rate * grads[i]
            for f, v in feats:
                w, sq = weights[f], squares[f]
                for i in range(n + 1):
                    g = grads[i]
                    if g == 0.0:
                        continue
                    g = g * v + l2 * w[i]
                    sq[i] += g * g
                    w[i] -= rate * g / math.sqrt(sq[i])
    pruned = {f: w for f, w in weights.items() if max(abs(x) for x in w) >= 0.02}
    return Model(CLASSES, {f: tuple(w) for f, w in pruned.items()}, tuple(bias))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    rows = load_rows()
    print(f"{len(rows)} training rows")
    by_source = Counter((r["source"], r["intent"]) for r in rows)
    for (source, intent), count in sorted(by_source.items()):
        print(f"  {source:<16} {intent:<10} {count:>6}")
    hard = Counter(r["difficulty"] for r in rows if r.get("difficulty") is not None)
    print(f"difficulty labels: easy {hard[0]}, hard {hard[1]}")
    started = time.perf_counter()
    model = train(rows, epochs=args.epochs)
    print(f"trained in {time.perf_counter() - started:.1f} s; {len(model.weights)} features")
    right = sum(
        model.predict(features(r["text"], r.get("system", ""))).intent == r["intent"] for r in rows
    )
    print(f"training accuracy {right / len(rows):.1%}")
    save(
        args.out,
        model.classes,
        model.bias,
        {f: list(w) for f, w in model.weights.items()},
        {"rows": len(rows), "epochs": args.epochs},
    )
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
