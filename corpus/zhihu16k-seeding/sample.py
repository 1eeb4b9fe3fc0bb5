"""Draw the deterministic stratified sample of zhihu16k train ids that were graded for seeding.

Why stratify: the train split is 87 % normal posts and mostly short, so a plain random
sample would hold few advertorials and few long posts; grading needs every label x topic x
length cell represented. Only ids are written (the text stays in ../shared).

Usage: python corpus/zhihu16k-seeding/sample.py [--write] [--grades]
  --write   write the ids to sample_ids.txt
  --grades  also print the grade distribution of grades.jsonl by label and length bucket
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


def grade_tables(rows: list[dict]) -> None:
    """Print grade counts per label and per length bucket (ids joined to the train split)."""
    from agreement import GRADES, read_grades

    grades = read_grades(GRADES, 1)
    meta = {r["id"]: r for r in rows}
    unknown = sorted(set(grades) - set(meta))
    if unknown:
        sys.exit(f"{GRADES}: ids not in the train split: {unknown[:5]}")
    order = {b: i for i, b in enumerate(BUCKETS)}
    by: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for pid, g in grades.items():
        r = meta[pid]
        by[f"label {r['label']}"][g] += 1
        by[f"{order[r['bucket']]} {r['bucket']}"][g] += 1
        by["all"][g] += 1
    print("\n| group | n | 0 | 1 | 2 | 3 | 4 | mean |\n|---|---|---|---|---|---|---|---|")
    for key in sorted(by, key=lambda k: (k == "all", not k.startswith("label"), k)):
        c = by[key]
        n = sum(c.values())
        mean = sum(g * v for g, v in c.items()) / n
        name = key.split(" ", 1)[1] if key[0].isdigit() else key
        print(f"| {name} | {n} | " + " | ".join(str(c[g]) for g in range(5)) + f" | {mean:.2f} |")
    cross = collections.Counter((meta[p]["label"], order[meta[p]["bucket"]]) for p in grades)
    mean_cross = collections.defaultdict(float)
    for p, g in grades.items():
        mean_cross[(meta[p]["label"], order[meta[p]["bucket"]])] += g
    print("\n| mean grade (n) | " + " | ".join(BUCKETS) + " |\n|---|" + "---|" * len(BUCKETS))
    for label in (1, 0):
        cells = [f"{mean_cross[(label, i)] / cross[(label, i)]:.2f} ({cross[(label, i)]})"
                 for i in range(len(BUCKETS))]
        print(f"| label {label} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help=f"write the ids to {OUT.name}")
    ap.add_argument("--grades", action="store_true", help="print grade tables for grades.jsonl")
    args = ap.parse_args()
    rows = load(TRAIN)
    picked = draw(rows)
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
    if args.grades:
        grade_tables(rows)


if __name__ == "__main__":
    main()
