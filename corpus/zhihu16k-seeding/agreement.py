"""Intra-annotator agreement between the first-pass seeding grades and the blind re-grade.

Why: a grade set is only as useful as it is repeatable; the re-grade of a seeded random
100 ids measures that (for one grader: see README, limits).

Usage:
  python agreement.py             compare grades.jsonl with regrade_100.jsonl
  python agreement.py --draw      (re)write regrade_ids.txt, the seeded 100 ids to re-grade
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GRADES = HERE / "grades.jsonl"
REGRADE = HERE / "regrade_100.jsonl"
REGRADE_IDS = HERE / "regrade_ids.txt"
REGRADE_SEED = "kocscope-zhihu16k-seeding-regrade-v1"
K = 5  # grades 0..4


def read_grades(path: Path, expect_pass: int) -> dict[str, int]:
    """Read an ids-and-grades file, failing with file, line and field on any bad record."""
    out: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                sys.exit(f"{where}: not JSON ({exc})")
            if set(rec) != {"id", "seeding", "pass"}:
                sys.exit(f"{where}: fields must be exactly id, seeding, pass; got {sorted(rec)}")
            if not isinstance(rec["id"], str) or not rec["id"].startswith("zhihu-"):
                sys.exit(f"{where}: field 'id' must be a 'zhihu-...' string")
            if type(rec["seeding"]) is not int or not 0 <= rec["seeding"] < K:
                sys.exit(f"{where}: field 'seeding' must be an integer 0-4, got {rec['seeding']!r}")
            if rec["pass"] != expect_pass:
                sys.exit(f"{where}: field 'pass' must be {expect_pass}, got {rec['pass']!r}")
            if rec["id"] in out:
                sys.exit(f"{where}: field 'id' {rec['id']!r} repeats an earlier line")
            out[rec["id"]] = rec["seeding"]
    return out


def quadratic_weighted_kappa(a: np.ndarray, b: np.ndarray, k: int = K) -> float:
    observed = np.zeros((k, k))
    np.add.at(observed, (a, b), 1)
    expected = np.outer(np.bincount(a, minlength=k), np.bincount(b, minlength=k)) / len(a)
    i, j = np.indices((k, k))
    weights = (i - j) ** 2 / (k - 1) ** 2
    return float(1 - (weights * observed).sum() / (weights * expected).sum())


def draw() -> None:
    ids = sorted(read_grades(GRADES, 1))
    picked = random.Random(REGRADE_SEED).sample(ids, 100)
    fd, tmp = tempfile.mkstemp(dir=HERE, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.writelines(i + "\n" for i in picked)
    os.replace(tmp, REGRADE_IDS)
    print(f"wrote {REGRADE_IDS} ({len(picked)} ids, seed {REGRADE_SEED!r})")


def compare() -> None:
    first, second = read_grades(GRADES, 1), read_grades(REGRADE, 2)
    missing = sorted(set(second) - set(first))
    if missing:
        sys.exit(f"{REGRADE}: ids not in {GRADES.name}: {missing[:5]}")
    ids = sorted(second)
    a = np.array([first[i] for i in ids])
    b = np.array([second[i] for i in ids])
    confusion = np.zeros((K, K), dtype=int)
    np.add.at(confusion, (a, b), 1)
    print(f"{len(ids)} ids re-graded")
    print(f"exact: {np.mean(a == b):.1%}   within 1: {np.mean(np.abs(a - b) <= 1):.1%}   "
          f"quadratic-weighted kappa: {quadratic_weighted_kappa(a, b):.3f}")
    print(f"mean grade: first pass {a.mean():.2f}, second pass {b.mean():.2f}")
    print("confusion (rows first pass, cols second pass; grades 0-4):")
    for g, row in enumerate(confusion):
        print(f"  {g}: {row.tolist()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draw", action="store_true", help=f"write {REGRADE_IDS.name}")
    args = ap.parse_args()
    draw() if args.draw else compare()


if __name__ == "__main__":
    main()
