"""Checks on the zhihu16k seeding grades (corpus/zhihu16k-seeding): ids and grades only, valid,
joined to the real train split, and an agreement metric that matches sklearn."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from paths import ZHIHU  # tests/ is on sys.path under pytest

DIR = Path(__file__).resolve().parents[1] / "corpus" / "zhihu16k-seeding"
TRAIN = ZHIHU / "train.jsonl"
FIELDS = {"id", "seeding", "pass"}
needs_corpus = pytest.mark.skipif(not TRAIN.exists(), reason="zhihu16k corpus not present")


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DIR / name).read_text(encoding="utf-8").splitlines()]


def _train_labels() -> dict[str, int]:
    with TRAIN.open(encoding="utf-8") as fh:
        return {r["id"]: r["label"] for r in map(json.loads, fh)}


@pytest.mark.parametrize("name, expect_pass", [("grades.jsonl", 1), ("regrade_100.jsonl", 2)])
def test_records_hold_only_ids_and_grades(name: str, expect_pass: int) -> None:
    rows = _rows(name)
    for lineno, r in enumerate(rows, 1):
        assert set(r) == FIELDS, f"{name}:{lineno}: fields {sorted(r)}"  # no text or other fields
        assert isinstance(r["id"], str) and r["id"].startswith("zhihu-"), f"{name}:{lineno}: id"
        assert len(r["id"]) < 40, f"{name}:{lineno}: id too long to be an id"
        assert type(r["seeding"]) is int and 0 <= r["seeding"] <= 4, f"{name}:{lineno}: seeding"
        assert r["pass"] == expect_pass, f"{name}:{lineno}: pass"
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"{name}: duplicate ids"


def test_sizes_and_regrade_subset() -> None:
    first = {r["id"] for r in _rows("grades.jsonl")}
    second = [r["id"] for r in _rows("regrade_100.jsonl")]
    drawn = (DIR / "regrade_ids.txt").read_text(encoding="utf-8").split()
    assert len(first) >= 400
    assert len(second) == 100 and set(second) <= first
    assert second == drawn  # graded in the drawn order, every drawn id graded


def test_sample_ids_match_grades() -> None:
    sample = (DIR / "sample_ids.txt").read_text(encoding="utf-8").split()
    assert [r["id"] for r in _rows("grades.jsonl")] == sample


def test_quadratic_weighted_kappa_matches_sklearn() -> None:
    from sklearn.metrics import cohen_kappa_score

    spec = importlib.util.spec_from_file_location("seeding_agreement", DIR / "agreement.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 200)
    b = np.clip(a + rng.integers(-2, 3, 200), 0, 4)
    ours = mod.quadratic_weighted_kappa(a, b)
    assert ours == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"), abs=1e-12)
    assert mod.quadratic_weighted_kappa(a, a) == pytest.approx(1.0)
    assert ours < 1.0


@pytest.mark.integration
@needs_corpus
def test_ids_exist_in_train_split_and_both_labels_represented() -> None:
    labels = _train_labels()
    ids = [r["id"] for r in _rows("grades.jsonl")]
    unknown = [i for i in ids if i not in labels]
    assert not unknown, f"ids not in the zhihu16k train split: {unknown[:5]}"
    counts = {lab: sum(labels[i] == lab for i in ids) for lab in (0, 1)}
    assert counts[0] >= 150 and counts[1] >= 150, counts


@pytest.mark.integration
@needs_corpus
def test_no_corpus_text_copied_into_the_folder() -> None:
    """A 30-character run of any sampled post must not appear in any file we ship."""
    ids = set((DIR / "sample_ids.txt").read_text(encoding="utf-8").split())
    with TRAIN.open(encoding="utf-8") as fh:
        texts = [r["text"] for r in map(json.loads, fh) if r["id"] in ids]
    shipped = "".join(p.read_text(encoding="utf-8") for p in DIR.iterdir() if p.is_file())
    for t in texts:
        t = t.replace("\n", "")
        for start in range(0, max(len(t) - 30, 1), 200):
            piece = t[start:start + 30]
            if len(piece) == 30:
                assert piece not in shipped, f"post text found in corpus/zhihu16k-seeding: {piece!r}"
