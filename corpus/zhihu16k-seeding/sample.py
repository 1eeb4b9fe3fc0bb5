"""Draw the deterministic stratified sample of zhihu16k train ids that were graded for seeding.

Why stratify: the train split is 87 % normal posts and mostly short, so a plain random
sample would hold few advertorials and few long posts; grading needs every label x topic x
length cell represented. Only ids are written (the text stays in ../shared).

Usage: python corpus/zhihu16k-seeding/sample.py [--write]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN = HERE.parents[2] / "shared" / "data" / "zhihu16k" / "train.jsonl"
OUT = HERE / "sample_ids.txt"
SEED = "kocscope-zhihu16k-seeding-v1"
PER_LABEL_TOPIC = 22  # 2 labels x 10 topics x 22 = 440
BUCKETS = ("<200", "200-499", "500-999", "1000-1999", ">=2000")


def length_bucket(n: int) -> str:
    for edge, name in zip((200, 500, 1000, 2000), BUCKETS):
        if n < edge:
            return name
    return BUCKETS[-1]


def load(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                r = json.loads(line)
                rows.append({"id": r["id"], "topic": r["topic"], "label": int(r["label"]),
                             "bucket": length_bucket(len(r["text"]))})
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                sys.exit(f"{path}:{lineno}: bad record ({exc!r})")
    return rows


def draw(rows: list[dict]) -> list[dict]:
    """Per label x topic, take posts round-robin over length buckets so lengths spread evenly."""
    cells: dict[tuple, list[dict]] = collections.defaultdict(list)
    for r in rows:
        cells[(r["label"], r["topic"], r["bucket"])].append(r)
    picked = []
    for label in (1, 0):
        for topic in sorted({r["topic"] for r in rows}):
            pools = {}
            for b in BUCKETS:
                pool = sorted(cells.get((label, topic, b), []), key=lambda r: r["id"])
                random.Random(f"{SEED}:{label}:{topic}:{b}").shuffle(pool)
                pools[b] = pool
            taken = 0
            while taken < PER_LABEL_TOPIC and any(pools.values()):
                for b in BUCKETS:
                    if pools[b] and taken < PER_LABEL_TOPIC:
                        picked.append(pools[b].pop())
                        taken += 1
    # Grading order is shuffled so label and topic do not come in runs.
    picked.sort(key=lambda r: r["id"])
    random.Random(f"{SEED}:order").shuffle(picked)
    return picked


def table(picked: list[dict], key) -> str:
    c = collections.Counter(key(r) for r in picked)
    return "\n".join(f"  {k}: {v}" for k, v in sorted(c.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help=f"write the ids to {OUT.name}")
    args = ap.parse_args()
    picked = draw(load(TRAIN))
    print(f"{len(picked)} ids, seed {SEED!r}")
    print("label:\n" + table(picked, lambda r: r["label"]))
    print("topic x label:\n" + table(picked, lambda r: (r["topic"], r["label"])))
    order = {b: i for i, b in enumerate(BUCKETS)}
    print("label x length bucket:\n" + table(picked, lambda r: (r["label"], order[r["bucket"]], r["bucket"])))
    if args.write:
        fd, tmp = tempfile.mkstemp(dir=HERE, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(r["id"] + "\n" for r in picked)
        os.replace(tmp, OUT)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
