"""The bilingual seed corpus (corpus/seed/) is what the shipped model learns from and
is evaluated on: keep it valid, balanced, split as documented and free of leaks."""

import importlib.util
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from kocscope.data.io import read_posts
from kocscope.data.text import normalize
from kocscope.models.base import LABELS

SEED_DIR = Path(__file__).resolve().parents[1] / "corpus" / "seed"
# make_splits.py is a script, not part of the package: load it from its file.
_spec = importlib.util.spec_from_file_location("seed_make_splits", SEED_DIR / "make_splits.py")
make_splits = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = make_splits  # dataclasses look their module up while being built
_spec.loader.exec_module(make_splits)


SPLIT_FILES = make_splits.split_files(SEED_DIR)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def by_file() -> dict[str, list[dict]]:
    """The posts of each split file, read independently of the script under test."""
    return {split: _read_jsonl(path) for split, path in SPLIT_FILES.items()}


@pytest.fixture(scope="module")
def posts(by_file) -> list[dict]:
    return [post for split in make_splits.SPLITS for post in by_file[split]]


def test_every_post_has_valid_fields(posts):
    for post in posts:
        where = post.get("id")
        for name in make_splits.REQUIRED + ("split",):
            assert name in post, f"{where}: missing {name}"
        assert set(post) <= set(make_splits.REQUIRED + make_splits.OPTIONAL), where
        assert post["label"] in LABELS, where
        assert post["seeding"] in (0, 1, 2, 3, 4) and not isinstance(post["seeding"], bool), where
        assert post["lang"] in ("en", "zh", "mixed"), where
        assert post["split"] in ("train", "val", "test"), where
        assert make_splits.KIND_LABEL[post["kind"]] == post["label"], where
        assert normalize(post["text"]), where
    rows = make_splits.read_corpus(SEED_DIR)  # the script's own checks agree
    assert [row.post for row in rows] == posts


def test_ids_are_unique_and_match_language(posts):
    ids = [p["id"] for p in posts]
    assert len(ids) == len(set(ids))
    for post in posts:
        assert post["id"].startswith(f"seed-{make_splits.ID_PREFIX[post['lang']]}-"), post["id"]


def test_size_and_coverage(posts):
    langs = Counter(p["lang"] for p in posts)
    assert langs["en"] >= 600 and langs["zh"] >= 600
    assert langs["mixed"] >= 60
    assert sum(p.get("script") == "traditional" for p in posts) >= 50
    assert len({p["category"] for p in posts} - {"none"}) >= 10
    for lang in ("en", "zh"):
        kinds = Counter(p["kind"] for p in posts if p["lang"] == lang)
        assert set(kinds) == set(make_splits.KIND_LABEL), lang
        assert min(kinds.values()) >= 30, (lang, kinds.most_common()[-1])
    # both classes at every grade, so grade is not a proxy for the label
    grades = Counter((p["label"], p["seeding"]) for p in posts)
    for label in LABELS:
        for grade in range(5):
            assert grades[label, grade] >= 10, (label, grade)


def test_each_file_holds_exactly_its_split(by_file, posts):
    # a training config lists files, so only a clean file per split keeps test out of training
    assert sorted(p.name for p in SEED_DIR.glob("*.jsonl")) == [
        "test.jsonl",
        "train.jsonl",
        "val.jsonl",
    ]
    computed = make_splits.assign_splits(posts)
    for split, file_posts in by_file.items():
        assert file_posts, split
        assert {p["split"] for p in file_posts} == {split}, SPLIT_FILES[split]
        assert {p["id"] for p in file_posts} == {i for i, s in computed.items() if s == split}


def test_splits_are_the_documented_deterministic_stratified_split(posts):
    computed = make_splits.assign_splits(posts)
    assert {p["id"]: p["split"] for p in posts} == computed, "run corpus/seed/make_splits.py"
    shuffled = posts[:]
    random.Random(7).shuffle(shuffled)
    assert make_splits.assign_splits(shuffled) == computed  # input order does not matter
    strata = defaultdict(Counter)
    for post in posts:
        strata[make_splits.stratum(post)][post["split"]] += 1
    for key, counts in strata.items():
        n = sum(counts.values())
        assert counts["test"] == counts["val"] == int(0.2 * n + 0.5), (key, counts)
    total = Counter(p["split"] for p in posts)
    for split, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        assert abs(total[split] / len(posts) - share) < 0.02, total


def test_no_exact_or_near_duplicate_texts_across_splits(posts):
    split_of = {p["id"]: p["split"] for p in posts}
    seen: dict[str, str] = {}
    for post in posts:
        key = "".join(normalize(post["text"]).casefold().split())
        assert key not in seen, f"{post['id']} repeats {seen.get(key)}"
        seen[key] = post["id"]
    crossing = [
        d for d in make_splits.near_duplicates(posts) if split_of[d.first] != split_of[d.second]
    ]
    assert not crossing


def test_near_duplicate_detector_catches_light_edits():
    base = "Bought this kettle in March, it boils fast, the lid sticks a little, would buy again for the price."
    posts = [
        {"id": "a", "text": base},
        {"id": "b", "text": base.replace("March", "May").replace("a little", "sometimes") + " 👍"},
        {
            "id": "c",
            "text": "The hotel was clean and the staff friendly, but breakfast ended too early.",
        },
    ]
    found = make_splits.near_duplicates(posts)
    assert [(d.first, d.second) for d in found] == [("a", "b")]


def _tiny_post(number: int) -> dict:
    # disjoint CJK characters per post: no two texts are near-duplicates
    text = "".join(chr(0x4E00 + 40 * number + k) for k in range(20))
    return {"id": f"seed-zh-{number:04d}", "text": text, "lang": "zh", "label": "genuine",
            "seeding": 0, "category": "none", "platform_style": "weibo", "kind": "no_product"}  # fmt: skip


def _write_split_files(folder: Path, layout: dict[str, list[dict]]) -> None:
    for split in make_splits.SPLITS:
        lines = [json.dumps(p, ensure_ascii=False) + "\n" for p in layout.get(split, [])]
        (folder / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")


@pytest.fixture
def tiny_layout() -> dict[str, list[dict]]:
    """Ten posts of one stratum (2 test, 2 val, 6 train), each in its computed file."""
    posts = [_tiny_post(i) for i in range(1, 11)]
    splits = make_splits.assign_splits(posts)
    return {
        split: [{**p, "split": split} for p in posts if splits[p["id"]] == split]
        for split in make_splits.SPLITS
    }


def _ids(folder: Path) -> dict[str, list[str]]:
    return {s: [p["id"] for p in _read_jsonl(folder / f"{s}.jsonl")] for s in make_splits.SPLITS}


def test_bad_post_is_reported_with_file_line_and_field(tmp_path):
    good, bad = _tiny_post(1), {**_tiny_post(2), "seeding": 5}
    _write_split_files(tmp_path, {"val": [good, bad]})
    with pytest.raises(make_splits.CorpusError, match=r"val\.jsonl:2: field 'seeding'"):
        make_splits.read_corpus(tmp_path)
    _write_split_files(tmp_path, {"test": [{**good, "kind": "gifted"}]})
    with pytest.raises(make_splits.CorpusError, match=r"test\.jsonl:1: field 'label'"):
        make_splits.read_corpus(tmp_path)
    _write_split_files(tmp_path, {"train": [good], "test": [_tiny_post(3), good]})
    with pytest.raises(
        make_splits.CorpusError, match=r"test\.jsonl:2: field 'id': .*train\.jsonl:1"
    ):
        make_splits.read_corpus(tmp_path)
    (tmp_path / "val.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"val\.jsonl"):
        make_splits.read_corpus(tmp_path)


def test_misplaced_post_is_an_error_when_checking(tmp_path, tiny_layout):
    moved = tiny_layout["train"][0]
    _write_split_files(tmp_path, {**tiny_layout, "train": tiny_layout["train"][1:],
                                  "test": [*tiny_layout["test"], moved]})  # fmt: skip
    before = {s: (tmp_path / f"{s}.jsonl").read_bytes() for s in make_splits.SPLITS}
    with pytest.raises(
        make_splits.CorpusError,
        match=rf"test\.jsonl:3: field 'split': '{moved['id']}' belongs in train\.jsonl",
    ):
        make_splits.split_corpus(tmp_path, write=False)
    assert make_splits.main(["--dir", str(tmp_path), "--check"]) == 1
    assert (
        make_splits.main(["--dir", str(tmp_path), "agreement"]) == 1
    )  # read-only commands check too
    assert {s: (tmp_path / f"{s}.jsonl").read_bytes() for s in make_splits.SPLITS} == before
    # right file, wrong or missing field
    stale = {**tiny_layout["val"][1], "split": "test"}
    _write_split_files(tmp_path, {**tiny_layout, "val": [tiny_layout["val"][0], stale]})
    with pytest.raises(
        make_splits.CorpusError, match=r"val\.jsonl:2: field 'split': .* says 'test'"
    ):
        make_splits.split_corpus(tmp_path, write=False)
    unmarked = {k: v for k, v in tiny_layout["val"][0].items() if k != "split"}
    _write_split_files(tmp_path, {**tiny_layout, "val": [unmarked, tiny_layout["val"][1]]})
    with pytest.raises(make_splits.CorpusError, match=r"val\.jsonl:1: field 'split': is missing"):
        make_splits.split_corpus(tmp_path, write=False)


def test_write_mode_moves_posts_to_their_split_file(tmp_path, tiny_layout, capsys):
    expected = {s: [p["id"] for p in tiny_layout[s]] for s in make_splits.SPLITS}
    # everything in train.jsonl, one post without a `split` field (a newly added post)
    everything = [p for s in make_splits.SPLITS for p in tiny_layout[s]]
    everything[0] = {k: v for k, v in everything[0].items() if k != "split"}
    _write_split_files(tmp_path, {"train": everything})
    assert make_splits.main(["--dir", str(tmp_path)]) == 0
    assert "5 post(s) moved or re-marked" in capsys.readouterr().err  # 4 moved, 1 marked
    assert _ids(tmp_path) == expected  # moved posts keep their relative order
    for split in make_splits.SPLITS:
        assert {p["split"] for p in _read_jsonl(tmp_path / f"{split}.jsonl")} == {split}
    assert make_splits.split_corpus(tmp_path, write=False).rewritten == []
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]  # no temp files left
    # a moved post goes after the posts already in its file
    train, test = tiny_layout["train"], tiny_layout["test"]
    _write_split_files(tmp_path, {**tiny_layout, "train": train[1:], "test": [train[0], *test]})
    assert make_splits.split_corpus(tmp_path).rewritten == [train[0]["id"]]
    assert _ids(tmp_path) == {**expected, "train": [p["id"] for p in [*train[1:], train[0]]]}


def test_write_mode_never_moves_an_established_post_across_the_test_border(tmp_path, tiny_layout):
    """One appended post can reshuffle its stratum; held-out posts must not leak into train."""
    held_out = tiny_layout["test"][0]
    wrong = {**held_out, "split": "train"}  # what a reshuffle would make of it
    _write_split_files(tmp_path, {**tiny_layout, "test": [wrong, *tiny_layout["test"][1:]]})
    before = {s: (tmp_path / f"{s}.jsonl").read_bytes() for s in make_splits.SPLITS}
    with pytest.raises(ValueError, match="into or out of the test split"):
        make_splits.split_corpus(tmp_path)
    assert {s: (tmp_path / f"{s}.jsonl").read_bytes() for s in make_splits.SPLITS} == before


def test_kocscope_reader_accepts_the_corpus(by_file):
    for split, path in SPLIT_FILES.items():
        reader = read_posts(path)
        read = list(reader)
        assert reader.stats.accepted == len(by_file[split]) and reader.stats.rejected == 0
        # fields pass through, so a trainer reading train.jsonl sees label, seeding, split
        assert [p.extra["label"] for p in read] == [p["label"] for p in by_file[split]]
        assert {p.extra["split"] for p in read} == {split}


def test_blind_regrade_covers_the_printed_sample(posts):
    result = make_splits.agreement(posts, SEED_DIR / "regrade_100.json")
    assert result.n == make_splits.REGRADE_SIZE
    assert 0.0 <= result.grade_exact <= result.grade_within_1 <= 1.0
    assert sum(map(sum, result.label_confusion)) == result.n


HELDOUT = SEED_DIR.parent / "seed-test2"


def test_second_heldout_set_is_valid_regraded_and_in_no_recipe(posts):
    heldout = make_splits.read_extra(HELDOUT / "test.jsonl", posts)
    assert len(heldout) == 360
    assert Counter(p["lang"] for p in heldout) == {"zh": 240, "en": 120}
    assert Counter(p["label"] for p in heldout) == {"genuine": 180, "promotion": 180}
    assert not {p["id"] for p in heldout} & {p["id"] for p in posts}
    result = make_splits.agreement(heldout, HELDOUT / "regrade.json", sample=heldout)
    assert result.n == 360 and sum(map(sum, result.label_confusion)) == 360
    def strings(node: Any) -> list[str]:  # every value of a recipe: data, component files, init_from
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return [node] if isinstance(node, str) else []

    recipes = sorted((SEED_DIR.parents[1] / "recipes").glob("*.yaml"))
    assert len(recipes) >= 3
    for recipe in recipes:
        values = strings(yaml.safe_load(recipe.read_text(encoding="utf-8")))
        assert not [f for f in values if "seed-test2" in f or "seed/test" in f], recipe.name


def test_heldout_reader_names_file_line_and_field(tmp_path, posts):
    path = tmp_path / "heldout.jsonl"
    good = {**_tiny_post(1), "id": "seed2-zh-0001"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "seed-zh-0002"}) + "\n", encoding="utf-8")
    with pytest.raises(make_splits.CorpusError, match=r"heldout\.jsonl:2: field 'id': .*seed2-zh-0001"):
        make_splits.read_extra(path, [])
    path.write_text(json.dumps({**good, "split": "test"}) + "\n", encoding="utf-8")
    with pytest.raises(make_splits.CorpusError, match=r"heldout\.jsonl:1: field 'split'"):
        make_splits.read_extra(path, [])
    copy = {**posts[0], "id": "seed2-" + posts[0]["id"].split("-", 1)[1]}
    copy.pop("split")
    path.write_text(json.dumps(copy, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="near-duplicate"):
        make_splits.read_extra(path, posts)


def test_later_training_and_validation_files_are_valid_and_apart(posts):
    test2 = make_splits.read_extra(HELDOUT / "test.jsonl", posts)
    val2 = make_splits.read_extra(SEED_DIR.parent / "seed-val2" / "val.jsonl", [*posts, *test2], stem="seed3")
    train2 = make_splits.read_extra(
        SEED_DIR.parent / "seed-train2" / "train.jsonl", [*posts, *test2, *val2], stem="seed4"
    )
    train3 = make_splits.read_extra(
        SEED_DIR.parent / "seed-train3" / "train.jsonl", [*posts, *test2, *val2, *train2], stem="seed5"
    )
    train4 = make_splits.read_extra(
        SEED_DIR.parent / "seed-train4" / "train.jsonl", [*posts, *test2, *val2, *train2, *train3], stem="seed6"
    )
    val3 = make_splits.read_extra(
        SEED_DIR.parent / "seed-val3" / "val.jsonl", [*posts, *test2, *val2, *train2, *train3, *train4], stem="seed7"
    )
    assert [len(rows) for rows in (val2, train2, train3, train4, val3)] == [240, 360, 480, 240, 240]
    for rows in (val2, train2, train3, train4, val3):
        assert Counter(p["label"] for p in rows)["genuine"] * 2 == len(rows)
