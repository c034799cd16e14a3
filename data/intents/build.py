"""Rebuild the intent training sets (data/intents/*.jsonl) and the held-out benchmark set
(bench/data/intents_heldout.jsonl) from pinned public snapshots, plus our own writing.

    python data/intents/build.py [--mirrors /work/.mirror]

Each snapshot is a git directory (as the `fetch` tool leaves them: <owner>+<name>/repo); files
are read at the pinned commit with `git show`, so the output is byte-for-byte reproducible.
Sampling uses fixed seeds. See SOURCES.md and bench/data/HELDOUT_SOURCES.md for provenance.
Training sources and held-out sources never share a dataset split.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HELDOUT = ROOT / "bench" / "data" / "intents_heldout.jsonl"

PINS = {
    "openai/grade-school-math": "3101c7d5072418e28b9008a6636bde82a006892c",
    "aiwaves-cn/agents": "e8c4e3c2d19739d3dff59e577d1c97090cc15f59",
    "deepmind/AQuA": "26b64ed1f22208c6742f47df547dfd65088ec30d",
    "shilliscmu/TranxConalaBaseline": "5520285387d946e826f4cc5a4a0a1bf7361355e5",
    "wywy136/StrategyQA": "4b8cc748362c8d3903ca8f840ceb5c5ac69b514a",
    "Yale-LILY/FOLIO": "5d7bb84c7edab3fb358e057d2807f19cf5cf5e2d",
    "yizhongw/self-instruct": "0b26ccaa415992100fa32df62d41b994cf928e23",
    "lm-sys/FastChat": "0e6d3e4beaab66f4d3f93db72541a4abab8af28d",
    "openai/human-eval": "6d43fb980f9fee3c892a914eda09951f772ad10d",
    "lgw863/LogiQA-dataset": "ff6c4cbca47627b3ac2da94a29fa28204a167b41",
    "suzgunmirac/BIG-Bench-Hard": "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
    "google-research-datasets/natural-questions": "fb26a3073b1fe636c97302890a27b491d6530130",
}

Row = dict[str, Any]


class Mirrors:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ls(self, repo: str, path: str) -> list[str]:
        out = self._git(repo, "ls-tree", "-r", "--name-only", PINS[repo], path)
        return sorted(out.decode().split("\n")[:-1])

    def show(self, repo: str, path: str) -> bytes:
        return self._git(repo, "show", f"{PINS[repo]}:{path}")

    def text(self, repo: str, path: str) -> str:
        return self.show(repo, path).decode("utf-8")

    def _git(self, repo: str, *args: str) -> bytes:
        git_dir = self.root / repo.replace("/", "+") / "repo"
        return subprocess.run(
            ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True
        ).stdout


def jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sample(rows: list[Row], n: int, seed: int) -> list[Row]:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows[:n]


def row(text: str, intent: str, source: str, **extra: Any) -> Row:
    return {"text": text.strip(), "intent": intent, "source": source, **extra}


# --- training sources (train splits only) -------------------------------------------------


def gsm8k_train(m: Mirrors) -> list[Row]:
    items = jsonl(m.text("openai/grade-school-math", "grade_school_math/data/train.jsonl"))
    rows = [row(i["question"], "math", "gsm8k_train", difficulty=0) for i in items]
    return sample(rows, 2000, 11)


def math_train(m: Mirrors) -> list[Row]:
    repo = "aiwaves-cn/agents"
    rows = []
    for path in m.ls(repo, "src/agents/datasets/data/math/train"):
        item = json.loads(m.text(repo, path))
        level = int(item["level"][-1]) if item["level"][-1].isdigit() else 3
        hard = {1: 0, 2: 0, 4: 1, 5: 1}.get(level)
        extra: dict[str, Any] = {"level": level}
        if hard is not None:
            extra["difficulty"] = hard
        rows.append(row(item["problem"], "math", "math_train", **extra))
    return sample(rows, 2500, 12)


def aqua_dev(m: Mirrors) -> list[Row]:
    items = jsonl(m.text("deepmind/AQuA", "dev.json"))
    rng = random.Random(13)
    rows = []
    for i in items:
        text = i["question"]
        if rng.random() < 0.5:
            text += "\nOptions: " + " ".join(i["options"])
        rows.append(row(text, "math", "aqua_dev"))
    return rows


def conala_train(m: Mirrors) -> list[Row]:
    """CoNaLa train (Stack Overflow how-to titles, crowd-rewritten intents, Python snippets)."""
    repo = "shilliscmu/TranxConalaBaseline"
    items = json.loads(m.text(repo, "conala-train.json"))
    rng = random.Random(14)
    rows = []
    for i in items:
        intent = (i.get("intent") or "").strip()
        rewritten = (i.get("rewritten_intent") or "").strip()
        snippet = (i.get("snippet") or "").strip()
        roll = rng.random()
        if roll < 0.45 or not rewritten:
            text = intent  # the question title as asked
        elif roll < 0.8:
            text = rewritten  # the precise request, with variable names
        elif roll < 0.92 and snippet:
            text = f"{intent}\n\n```python\n{snippet}\n```"
        else:
            text = f"{rewritten} in Python"
        if len(text) > 8:
            rows.append(row(text, "code", "conala_train", difficulty=0))
    return rows


def strategyqa_train(m: Mirrors) -> list[Row]:
    """StrategyQA train questions: yes/no questions that need an implicit chain of steps."""
    items = json.loads(
        m.text("wywy136/StrategyQA", "data/strategyqa/strategyqa_train_filtered.json")
    )
    rows = [row(i["question"], "reasoning", "strategyqa_train") for i in items]
    return sample(rows, 600, 17)


def folio_train(m: Mirrors) -> list[Row]:
    items = jsonl(m.text("Yale-LILY/FOLIO", "data/v0.0/folio-train.jsonl"))
    rng = random.Random(16)
    asks = [
        "Based on the premises, is the conclusion true, false, or uncertain?",
        "Does the conclusion follow from the premises?",
        "Determine whether the statement must be true given the facts above.",
        "Can we deduce the conclusion? Answer True, False or Unknown.",
        "Given these premises, evaluate the conclusion logically.",
    ]
    rows = []
    for i in items:
        premises = " ".join(p.strip() for p in i["premises"])
        if rng.random() < 0.5:
            text = f"Premises: {premises}\nConclusion: {i['conclusion']}\n{rng.choice(asks)}"
        else:
            text = f"{premises}\n\n{rng.choice(asks)} {i['conclusion']}"
        rows.append(row(text, "reasoning", "folio_train", difficulty=1))
    return rows


# P3 (T0 training mixture) prompts as kept by self-instruct; the dataset decides the label.
_T0_GENERAL = [
    "adversarial_qa",
    "ag_news",
    "amazon_polarity",
    "app_reviews",
    "cnn_dailymail",
    "common_gen",
    "dbpedia_14",
    "dream",
    "duorc",
    "gigaword",
    "glue_mrpc",
    "glue_qqp",
    "imdb",
    "multi_news",
    "paws_labeled",
    "quoref",
    "rotten_tomatoes",
    "samsum",
    "sciq",
    "trec",
    "wiki_bio",
    "wiki_qa",
    "xsum",
    "yelp_review",
]
_T0_REASONING = ["wiqa", "ropes", "quarel", "quartz"]


def t0(m: Mirrors) -> tuple[list[Row], list[Row]]:
    repo = "yizhongw/self-instruct"
    general: list[Row] = []
    reasoning: list[Row] = []
    for path in m.ls(repo, "data/finetuning/t0_train_50k/data_per_template"):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(tuple(_T0_GENERAL)):
            intent, bucket, cap = "general", general, 14
        elif name.startswith(tuple(_T0_REASONING)):
            intent, bucket, cap = "reasoning", reasoning, 30
        else:
            continue
        items = jsonl(m.text(repo, path))
        for i in sample(items, cap, hash_seed(name)):
            prompt = i["prompt"].strip()
            if 10 < len(prompt) < 6000:
                source = "t0_general" if intent == "general" else "t0_reasoning"
                extra = {"difficulty": 0} if intent == "general" else {}
                bucket.append(row(prompt, intent, source, **extra))
    return general, reasoning


def hash_seed(name: str) -> int:
    return sum(ord(c) * (i + 1) for i, c in enumerate(name))


# --- held-out benchmarks (test splits; never trained on) ----------------------------------


def heldout(m: Mirrors) -> list[Row]:
    rows: list[Row] = []
    mt = jsonl(m.text("lm-sys/FastChat", "fastchat/llm_judge/data/mt_bench/question.jsonl"))
    mt_label = {"coding": "code", "math": "math", "reasoning": "reasoning"}
    for q in mt:
        label = mt_label.get(q["category"], "general")
        rows.append(row(q["turns"][0], label, "mt_bench", category=q["category"]))
    he = jsonl(gzip.decompress(m.show("openai/human-eval", "data/HumanEval.jsonl.gz")).decode())
    rows += [row(i["prompt"], "code", "humaneval") for i in he]
    gsm = jsonl(m.text("openai/grade-school-math", "grade_school_math/data/test.jsonl"))
    rows += sample([row(i["question"], "math", "gsm8k_test") for i in gsm], 250, 21)
    repo = "aiwaves-cn/agents"
    paths = sample([{"p": p} for p in m.ls(repo, "src/agents/datasets/data/math/test")], 600, 22)
    for p in paths:
        item = json.loads(m.text(repo, p["p"]))
        level = int(item["level"][-1]) if item["level"][-1].isdigit() else 3
        rows.append(row(item["problem"], "math", "math_test", level=level))
    logiqa = m.text("lgw863/LogiQA-dataset", "Test.txt").split("\n\n")
    items = []
    for block in logiqa:
        lines = [line for line in block.strip().split("\n") if line.strip()]
        if len(lines) >= 7:
            items.append(row("\n".join(lines[1:]), "reasoning", "logiqa_test"))
    rows += sample(items, 250, 23)
    bbh_tasks = [
        "logical_deduction_three_objects",
        "logical_deduction_five_objects",
        "web_of_lies",
        "causal_judgement",
        "formal_fallacies",
        "navigate",
        "tracking_shuffled_objects_three_objects",
        "temporal_sequences",
        "date_understanding",
        "reasoning_about_colored_objects",
    ]
    bbh: list[Row] = []
    for task in bbh_tasks:
        data = json.loads(m.text("suzgunmirac/BIG-Bench-Hard", f"bbh/{task}.json"))
        bbh += sample(
            [row(e["input"], "reasoning", "bbh", task=task) for e in data["examples"]], 25, 24
        )
    rows += bbh
    nq = jsonl(m.text("google-research-datasets/natural-questions", "nq_open/NQ-open.dev.jsonl"))
    rows += sample([row(i["question"], "general", "nq_open") for i in nq], 250, 25)
    return rows


def write(path: Path, rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path.relative_to(ROOT)}: {len(rows)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    args = parser.parse_args()
    m = Mirrors(args.mirrors)
    sys.path.insert(0, str(HERE))
    from own import extra_rows, own_rows

    general, reasoning = t0(m)
    sets = {
        "gsm8k_train": gsm8k_train(m),
        "math_train": math_train(m),
        "aqua_dev": aqua_dev(m),
        "conala_train": conala_train(m),
        "strategyqa_train": strategyqa_train(m),
        "folio_train": folio_train(m),
        "t0_general": general,
        "t0_reasoning": reasoning,
        "own": own_rows(),
        "own_extra": extra_rows(),
    }
    for name, rows in sets.items():
        write(HERE / f"{name}.jsonl", rows)
    held = heldout(m)
    train_texts = {re.sub(r"\s+", " ", r["text"]) for rows in sets.values() for r in rows}
    leaks = [r for r in held if re.sub(r"\s+", " ", r["text"]) in train_texts]
    if leaks:
        raise SystemExit(f"{len(leaks)} held-out prompts also appear in training data")
    write(HELDOUT, held)


if __name__ == "__main__":
    main()
