"""The example files drive the README demo and other tests: keep them valid and varied."""

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

from kocscope.data.text import detect_lang, normalize
from kocscope.models.base import LABELS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLATFORMS = {
    "xiaohongshu",
    "weibo",
    "douyin",
    "instagram",
    "tiktok",
    "amazon",
    "reddit",
    "dianping",
    "youtube",
}
COUNTS = ("followers", "likes", "comments", "collects", "shares")
ALLOWED = {"id", "author_id", "text", "title", "platform", "created_at", *COUNTS}


def _lines(name: str) -> list[str]:
    return (EXAMPLES / name).read_text(encoding="utf-8").splitlines()


def _problems(line: str) -> list[str]:
    """What makes one line unusable as a post record (labels.md section 4)."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as err:
        return [f"invalid JSON: {err.msg}"]
    if not isinstance(rec, dict):
        return ["not an object"]
    problems = []
    text = rec.get("text")
    if not isinstance(text, str):
        problems.append("text: not a string")
    elif not normalize(text):
        problems.append("text: empty")
    for field in COUNTS:
        value = rec.get(field)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            problems.append(f"{field}: not a non-negative integer")
    return problems


POSTS = [json.loads(line) for line in _lines("posts.jsonl")]


def test_posts_are_valid_records() -> None:
    seen = set()
    for lineno, line in enumerate(_lines("posts.jsonl"), 1):
        assert _problems(line) == [], f"posts.jsonl:{lineno}"
        rec = json.loads(line)
        assert set(rec) <= ALLOWED, f"posts.jsonl:{lineno}: unexpected {set(rec) - ALLOWED}"
        for field in ("id", "author_id", "text", "platform", "created_at"):
            assert isinstance(rec.get(field), str) and rec[field], f"posts.jsonl:{lineno}: {field}"
        assert rec["id"] not in seen, f"posts.jsonl:{lineno}: duplicate id"
        seen.add(rec["id"])
        assert rec["platform"] in PLATFORMS, f"posts.jsonl:{lineno}: platform"
        stamp = datetime.fromisoformat(rec["created_at"])
        assert stamp.tzinfo is not None, f"posts.jsonl:{lineno}: created_at needs a UTC offset"


def test_posts_carry_no_gold_fields() -> None:
    for rec in POSTS:
        assert not {"label", "lang", "seeding", "seeding_grade"} & set(rec), rec["id"]


def test_posts_are_varied() -> None:
    assert len(POSTS) >= 40
    per_author = Counter(rec["author_id"] for rec in POSTS)
    assert len(per_author) >= 10
    assert sum(1 for n in per_author.values() if n >= 3) >= 8  # authors worth ranking
    assert sum(1 for n in per_author.values() if n == 1) >= 3  # single-post authors
    assert max(rec.get("followers", 0) for rec in POSTS) >= 1_000_000  # a celebrity
    assert any("followers" not in rec for rec in POSTS)  # optional fields really optional
    langs = Counter(detect_lang(rec["text"]) for rec in POSTS)
    assert langs["zh"] >= 10 and langs["en"] >= 10 and langs["mixed"] >= 3, langs
    assert len({rec["platform"] for rec in POSTS}) >= 7


def test_labels_cover_every_post() -> None:
    labels = [json.loads(line) for line in _lines("posts_labels.jsonl")]
    assert [lab["id"] for lab in labels] == [rec["id"] for rec in POSTS]
    for lab in labels:
        assert set(lab) == {"id", "label", "seeding_grade"}
        assert lab["label"] in LABELS
        assert lab["seeding_grade"] in range(5)
    counts = Counter(lab["label"] for lab in labels)
    assert counts["promotion"] >= 10 and counts["genuine"] >= 10
    assert {lab["seeding_grade"] for lab in labels} == set(range(5))


def test_labels_mix_within_authors() -> None:
    # the KOC ranking demo needs a pure-genuine author, a promotion-heavy one and a mixed one
    labels = {
        json.loads(line)["id"]: json.loads(line)["label"] for line in _lines("posts_labels.jsonl")
    }
    share: dict[str, list[int]] = {}
    for rec in POSTS:
        share.setdefault(rec["author_id"], []).append(labels[rec["id"]] == "promotion")
    multi = {a: sum(v) / len(v) for a, v in share.items() if len(v) >= 3}
    assert min(multi.values()) == 0.0
    assert max(multi.values()) >= 0.75
    assert any(0.25 <= s <= 0.6 for s in multi.values())


def test_broken_file_has_exactly_four_bad_lines() -> None:
    lines = _lines("posts_broken.jsonl")
    assert 8 <= len(lines) <= 12
    bad = {lineno: _problems(line) for lineno, line in enumerate(lines, 1) if _problems(line)}
    assert sorted(bad) == [2, 4, 6, 8]
    assert bad[2][0].startswith("invalid JSON")
    assert bad[4] == ["text: empty"]
    assert bad[6] == ["followers: not a non-negative integer"]
    assert bad[8] == ["text: not a string"]
