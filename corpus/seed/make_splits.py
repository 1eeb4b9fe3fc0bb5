"""Validate the bilingual seed corpus, assign its deterministic stratified split,
print the distributions for DATA_CARD.md, and run the blind re-grade check.

    python corpus/seed/make_splits.py                 # validate, move posts to their split's file
    python corpus/seed/make_splits.py --check         # validate and verify the files, write nothing
    python corpus/seed/make_splits.py regrade-sample OUT.txt   # 100 texts, no labels
    python corpus/seed/make_splits.py agreement       # compare regrade_100.json with the labels
    python corpus/seed/make_splits.py extra corpus/seed-test2/test.jsonl \
        --regrade corpus/seed-test2/regrade.json     # check a file written after the corpus

The corpus is one file per split (train.jsonl, val.jsonl, test.jsonl) because a
training config lists files and cannot filter rows: a recipe names train.jsonl and
val.jsonl and never sees the test posts. Each post also keeps its `split` field.
The split depends only on the ids and each post's (lang, label, kind) stratum, so
adding or fixing a post never reshuffles the other strata; the seed is fixed so
the test split stays the same for everyone. The test split is held out: nobody
trains or tunes on it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kocscope.data.text import LANGS, detect_lang, normalize
from kocscope.models.base import LABELS

HERE = Path(__file__).resolve().parent
REGRADE = HERE / "regrade_100.json"

SPLIT_SEED = "kocscope-seed-v1"
REGRADE_SEED = 20250611
REGRADE_SIZE = 100
SPLITS = ("train", "val", "test")
FRACTIONS = {"val": 0.2, "test": 0.2}  # train takes the rest: 60 / 20 / 20


def split_files(folder: Path = HERE) -> dict[str, Path]:
    """split -> its file; every corpus command reads all three, in this order."""
    return {split: folder / f"{split}.jsonl" for split in SPLITS}


PROMOTION_KINDS = (
    "undisclosed_ad",
    "disclosed_sponsored",
    "gifted",
    "affiliate_roundup",
    "coupon_code",
    "brand_self_post",
    "incentivized",
)
GENUINE_KINDS = (
    "genuine_enthusiastic",
    "genuine_positive",
    "genuine_mixed",
    "genuine_negative",
    "no_product",
)
KIND_LABEL = {
    **dict.fromkeys(PROMOTION_KINDS, "promotion"),
    **dict.fromkeys(GENUINE_KINDS, "genuine"),
}
CATEGORIES = (
    "beauty", "skincare", "food_drink", "restaurants", "electronics", "home", "fashion",
    "baby_parenting", "travel", "fitness", "pets", "education", "cars", "apps_software",
    "books_media", "health", "none",
)  # fmt: skip
PLATFORM_STYLES = (
    "xiaohongshu", "weibo", "douyin", "dianping", "taobao", "jd", "pinduoduo", "zhihu",
    "bilibili", "douban", "wechat", "ptt", "dcard", "mobile01", "openrice", "instagram",
    "tiktok", "youtube", "amazon", "reddit", "forum", "yelp", "google_maps", "twitter",
    "facebook", "threads", "blog",
)  # fmt: skip
GRADES = (0, 1, 2, 3, 4)
REQUIRED = ("id", "text", "lang", "label", "seeding", "category", "platform_style", "kind")
OPTIONAL = ("title", "script", "notes", "split")
ID_PREFIX = {"en": "en", "zh": "zh", "mixed": "mx"}
ID_STEM = "seed"
# ids of files written after this corpus: seed2 = corpus/seed-test2, seed3 = corpus/seed-val2,
# seed4 = corpus/seed-train2
EXTRA_STEMS = ("seed2", "seed3", "seed4", "seed5", "seed6", "seed7")
# Near-exact duplicates: Jaccard of character 4-gram sets after normalization.
# Paraphrases of one post score well above this; unrelated posts of one genre
# ("received free for review, works fine") stay well below.
SHINGLE = 4
NEAR_DUP_JACCARD = 0.6


class CorpusError(ValueError):
    """A bad post, named by file, line and field so it can be fixed at once."""

    def __init__(self, path: Path, line: int, field: str | None, message: str) -> None:
        where = f"{path}:{line}" + (f": field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Row:
    """A post and where it was read, so a misplaced post can be named by file and line."""

    post: dict[str, Any]
    file_split: str  # the split whose file holds the post
    path: Path
    line: int


@dataclass(frozen=True)
class SplitResult:
    posts: list[dict[str, Any]]  # every post, `split` set to its computed split
    rewritten: list[str]  # ids that were in the wrong file or had a stale `split` field


@dataclass(frozen=True)
class NearDuplicate:
    first: str
    second: str
    jaccard: float


def _check_post(post: Any, path: Path, line: int, stem: str = ID_STEM) -> dict[str, Any]:
    if not isinstance(post, dict):
        raise CorpusError(path, line, None, f"expected a JSON object, got {type(post).__name__}")
    for name in REQUIRED:
        if name not in post:
            raise CorpusError(path, line, name, "is missing")
    unknown = sorted(set(post) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise CorpusError(
            path, line, unknown[0], f"is not a corpus field (allowed: {REQUIRED + OPTIONAL})"
        )
    for name in ("id", "text", "lang", "label", "category", "platform_style", "kind", *OPTIONAL):
        if name in post and (not isinstance(post[name], str) or not post[name].strip()):
            raise CorpusError(path, line, name, f"must be a non-empty string, got {post[name]!r}")
    choices = {
        "lang": LANGS[:3],
        "label": LABELS,
        "kind": tuple(KIND_LABEL),
        "category": CATEGORIES,
        "platform_style": PLATFORM_STYLES,
        "split": SPLITS,
        "script": ("traditional",),
    }
    for name, allowed in choices.items():
        if name in post and post[name] not in allowed:
            raise CorpusError(path, line, name, f"{post[name]!r} is not one of {allowed}")
    seeding = post["seeding"]
    if isinstance(seeding, bool) or seeding not in GRADES:
        raise CorpusError(path, line, "seeding", f"must be an integer grade 0-4, got {seeding!r}")
    if not re.fullmatch(rf"{stem}-{ID_PREFIX[post['lang']]}-\d{{4}}", post["id"]):
        raise CorpusError(
            path, line, "id", f"{post['id']!r} must look like {stem}-{ID_PREFIX[post['lang']]}-0001"
        )
    if KIND_LABEL[post["kind"]] != post["label"]:
        raise CorpusError(
            path,
            line,
            "label",
            f"kind {post['kind']!r} is {KIND_LABEL[post['kind']]!r}, not {post['label']!r}",
        )
    if post["kind"] == "no_product" and seeding != 0:
        raise CorpusError(path, line, "seeding", "no_product posts push nothing: grade 0")
    if "script" in post and post["lang"] != "zh":
        raise CorpusError(path, line, "script", "only zh posts carry a script")
    return post


def read_corpus(folder: Path = HERE) -> list[Row]:
    """All posts of the three split files in file order, validated, ids unique across
    the files; raises CorpusError at the first bad one. Which file a post is in is
    checked later (split_corpus), since the computed split needs every post."""
    rows: list[Row] = []
    seen: dict[str, tuple[Path, int]] = {}
    for file_split, path in split_files(folder).items():
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no such file (the corpus is {', '.join(f'{s}.jsonl' for s in SPLITS)})"
            )
        for line, post in _read_posts(path):
            if post["id"] in seen:
                first, first_line = seen[post["id"]]
                raise CorpusError(
                    path, line, "id", f"{post['id']!r} repeats {first.name}:{first_line}"
                )
            seen[post["id"]] = (path, line)
            rows.append(Row(post, file_split, path, line))
    return rows


def _read_posts(path: Path, stem: str = ID_STEM) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, validated post) for each line of a JSONL file; CorpusError at the first bad one."""
    with path.open(encoding="utf-8") as handle:
        for line, raw in enumerate(handle, 1):
            if not raw.strip():
                raise CorpusError(path, line, None, "empty line")
            try:
                post = json.loads(raw)
            except json.JSONDecodeError as err:
                raise CorpusError(path, line, None, f"not valid JSON: {err.msg}") from None
            yield line, _check_post(post, path, line, stem=stem)


def read_extra(
    path: Path, others: Sequence[dict[str, Any]], stem: str = EXTRA_STEMS[0]
) -> list[dict[str, Any]]:
    """The posts of a file written after the corpus (a second test or validation set),
    validated like the corpus (ids ``<stem>-...``, no ``split`` field: the file is its own
    split), ids unique, and no near-duplicate of each other or of any post in ``others``."""
    if stem not in EXTRA_STEMS:
        raise ValueError(f"stem must be one of {EXTRA_STEMS}, got {stem!r}")
    posts: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, post in _read_posts(path, stem):
        if "split" in post:
            raise CorpusError(path, line, "split", "a file written after the corpus is its own split: drop the field")
        if post["id"] in seen:
            raise CorpusError(path, line, "id", f"{post['id']!r} repeats line {seen[post['id']]}")
        seen[post["id"]] = line
        posts.append(post)
    dups = [d for d in near_duplicates([*others, *posts]) if d.first in seen or d.second in seen]
    if dups:
        shown = "; ".join(f"{d.first} ~ {d.second}: {d.jaccard}" for d in dups[:10])
        raise ValueError(f"{path}: {len(dups)} near-duplicate pair(s), rewrite one of each: {shown}")
    return posts


def stratum(post: dict[str, Any]) -> tuple[str, str, str]:
    return post["lang"], post["label"], post["kind"]


def assign_splits(posts: Sequence[dict[str, Any]]) -> dict[str, str]:
    """id -> split, 60/20/20 inside every (lang, label, kind) stratum (half rounds up),
    shuffled with a per-stratum seed so each stratum's split is independent of the others."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for post in posts:
        groups[stratum(post)].append(post["id"])
    out: dict[str, str] = {}
    for key in sorted(groups):
        ids = sorted(groups[key])
        random.Random(f"{SPLIT_SEED}:{':'.join(key)}").shuffle(ids)
        n_test = int(len(ids) * FRACTIONS["test"] + 0.5)
        n_val = int(len(ids) * FRACTIONS["val"] + 0.5)
        for i, post_id in enumerate(ids):
            out[post_id] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def _shingles(text: str) -> set[str]:
    flat = re.sub(r"\s+", "", normalize(text).casefold())
    return {flat[i : i + SHINGLE] for i in range(max(1, len(flat) - SHINGLE + 1))}


def near_duplicates(
    posts: Sequence[dict[str, Any]], threshold: float = NEAR_DUP_JACCARD
) -> list[NearDuplicate]:
    """Pairs of posts whose normalized texts share >= threshold of their 4-grams.
    An inverted index keeps this to candidate pairs, so the whole corpus takes a second."""
    sets = [_shingles(p["text"]) for p in posts]
    index: dict[str, list[int]] = defaultdict(list)
    for i, grams in enumerate(sets):
        for gram in grams:
            index[gram].append(i)
    found: list[NearDuplicate] = []
    for i, grams in enumerate(sets):
        shared: Counter[int] = Counter()
        for gram in grams:
            shared.update(j for j in index[gram] if j > i)
        for j, common in shared.items():
            jaccard = common / len(grams | sets[j])
            if jaccard >= threshold:
                found.append(NearDuplicate(posts[i]["id"], posts[j]["id"], round(jaccard, 3)))
    return found


def _atomic_write_files(contents: Mapping[Path, Iterable[str]]) -> None:
    """Every temp file is written before any is renamed over its target, so a failure
    while writing leaves all targets as they were. Each rename is atomic; the set of
    renames is not (no portable way), which only a crash between them could expose."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, lines in contents.items():
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((Path(name), path))
            if path.exists():  # keep the target's permissions, not mkstemp's 0600
                os.chmod(name, path.stat().st_mode & 0o777)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                for line in lines:
                    handle.write(line + "\n")
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise


def _atomic_write_lines(path: Path, lines: Iterable[str]) -> None:
    _atomic_write_files({path: lines})


def _table(title: str, rows: dict[str, Counter[Any]], order: Sequence[Any]) -> str:
    cols = [*rows, "all"]
    out = [
        f"**{title}**",
        "",
        f"| {title} | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for value in order:
        counts = [rows[s][value] for s in rows]
        out.append(f"| {value} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    totals = [sum(rows[s].values()) for s in rows]
    out.append("| **total** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(out)


def distributions(posts: Sequence[dict[str, Any]], splits: Sequence[str] = SPLITS) -> str:
    """Markdown tables of every annotated field per split, for DATA_CARD.md."""
    by: dict[str, Any] = {
        "lang": lambda p: p["lang"] + ("/traditional" if p.get("script") else ""),
        "label": lambda p: p["label"],
        "kind": lambda p: p["kind"],
        "seeding grade": lambda p: p["seeding"],
        "label x grade": lambda p: f"{p['label']} {p['seeding']}",
        "lang x label": lambda p: f"{p['lang']} {p['label']}",
        "lang x kind": lambda p: f"{p['lang']} {p['kind']}",
        "category": lambda p: p["category"],
        "platform_style": lambda p: p["platform_style"],
    }
    blocks = []
    for title, key in by.items():
        rows = {s: Counter(key(p) for p in posts if p["split"] == s) for s in splits}
        order = sorted({key(p) for p in posts}, key=str)
        blocks.append(_table(title, rows, order))
    # Length is a known confound (promotion written longer): show it per lang x label.
    length = [
        "**median length in characters (title + text)**",
        "",
        "| lang | genuine | promotion |",
        "|---|---|---|",
    ]
    for lang in LANGS[:3]:
        cells = []
        for label in LABELS:
            sizes = sorted(
                len(p.get("title", "")) + len(p["text"])
                for p in posts
                if (p["lang"], p["label"]) == (lang, label)
            )
            cells.append(str(sizes[len(sizes) // 2]) if sizes else "-")
        length.append(f"| {lang} | " + " | ".join(cells) + " |")
    blocks.append("\n".join(length))
    detected = Counter(
        (p["lang"], detect_lang(f"{p.get('title', '')}\n{p['text']}")) for p in posts
    )
    agree = [
        "**annotated lang vs kocscope detect_lang**",
        "",
        "| annotated | detected: counts |",
        "|---|---|",
    ]
    for lang in LANGS[:3]:
        cells = ", ".join(f"{d} {n}" for (a, d), n in sorted(detected.items()) if a == lang)
        agree.append(f"| {lang} | {cells} |")
    blocks.append("\n".join(agree))
    return "\n\n".join(blocks)


def _misplaced(row: Row, split: str, count: int) -> CorpusError:
    fix = f"run make_splits.py without --check to fix {count} misplaced post(s)"
    post_id, stored = row.post["id"], row.post.get("split")
    if row.file_split != split:
        message = f"{post_id!r} belongs in {split}.jsonl (computed split {split!r}), not here"
    elif stored is None:
        message = f"is missing; {post_id!r} is a {split!r} post"
    else:
        message = f"{post_id!r} says {stored!r}, but its file and computed split are {split!r}"
    return CorpusError(row.path, row.line, "split", f"{message}; {fix}")


def split_corpus(folder: Path = HERE, write: bool = True) -> SplitResult:
    """Validate, refuse near-duplicates anywhere, and check that every post is in the file
    of its computed split with that `split` field. With ``write``, misplaced posts are
    moved instead (to the end of their new file; the others keep their order) and the
    three files rewritten; without it, the first misplaced post is a CorpusError."""
    rows = read_corpus(folder)
    posts = [row.post for row in rows]
    dups = near_duplicates(posts)
    if dups:
        at = {row.post["id"]: f"{row.path.name}:{row.line}" for row in rows}
        shown = "; ".join(
            f"{d.first} ({at[d.first]}) ~ {d.second} ({at[d.second]}): {d.jaccard}"
            for d in dups[:10]
        )
        raise ValueError(
            f"{folder}: {len(dups)} near-duplicate pair(s), rewrite one of each: {shown}"
        )
    splits = assign_splits(posts)
    misplaced = [
        row
        for row in rows
        if splits[row.post["id"]] != row.file_split
        or splits[row.post["id"]] != row.post.get("split")
    ]
    if misplaced and not write:
        first = misplaced[0]
        raise _misplaced(first, splits[first.post["id"]], len(misplaced))
    # a post that already has its split may not cross the test split's border: the shuffle
    # of a stratum is by sorted ids, so one new post can reshuffle it, and a held-out post
    # that moved to train (or a trained-on one to test) would leak
    crossing = [
        row.post["id"]
        for row in misplaced
        if row.post.get("split") not in (None, splits[row.post["id"]])
        and "test" in (row.post["split"], splits[row.post["id"]])
    ]
    if crossing:
        raise ValueError(
            f"{folder}: the new split would move {len(crossing)} post(s) already in the corpus into or "
            f"out of the test split (e.g. {', '.join(crossing[:5])}); the test split is fixed, so add "
            "new posts as a batch folder of their own (the `extra` command) instead"
        )
    for post in posts:
        post["split"] = splits[post["id"]]
    if misplaced:
        # stable sort: posts that stay keep their order, moved ones follow them
        ordered = sorted(rows, key=lambda row: row.file_split != row.post["split"])
        _atomic_write_files(
            {
                path: [
                    json.dumps(r.post, ensure_ascii=False)
                    for r in ordered
                    if r.post["split"] == split
                ]
                for split, path in split_files(folder).items()
            }
        )
    return SplitResult(posts, [row.post["id"] for row in misplaced])


def regrade_sample(posts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fixed random sample for the blind second pass (seed printed with it)."""
    return random.Random(REGRADE_SEED).sample(sorted(posts, key=lambda p: p["id"]), REGRADE_SIZE)


def write_blind_sheet(posts: Sequence[dict[str, Any]], out: Path) -> None:
    """Texts only: no label, grade, kind or notes, so the second pass cannot copy the first."""
    lines = [
        f"# blind re-grade sheet, seed {REGRADE_SEED}: label + seeding grade for each post",
        "",
    ]
    for post in regrade_sample(posts):
        lines += [f"=== {post['id']} ({post['platform_style']})"]
        if post.get("title"):
            lines.append(f"[title] {post['title']}")
        lines += [post["text"], ""]
    _atomic_write_lines(out, lines)


@dataclass(frozen=True)
class Agreement:
    n: int
    label_agreement: float
    label_kappa: float
    grade_exact: float
    grade_within_1: float
    grade_quadratic_kappa: float
    label_confusion: list[list[int]]  # rows first pass, columns second pass, order LABELS
    grade_confusion: list[list[int]]  # rows first pass, columns second pass, grades 0-4


def agreement(
    posts: Sequence[dict[str, Any]],
    regrade_path: Path = REGRADE,
    sample: Sequence[dict[str, Any]] | None = None,
) -> Agreement:
    """First-pass labels vs the blind second pass in ``regrade_path``, over ``sample``
    (default: the corpus's seeded 100-post sample)."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    data = json.loads(regrade_path.read_text(encoding="utf-8"))
    second = data.get("grades")
    if not isinstance(second, dict):
        raise CorpusError(regrade_path, 1, "grades", "must map post id -> {label, seeding}")
    wanted = {p["id"] for p in (regrade_sample(posts) if sample is None else sample)}
    if set(second) != wanted:
        missing, extra = sorted(wanted - set(second)), sorted(set(second) - wanted)
        raise CorpusError(
            regrade_path,
            1,
            "grades",
            f"ids differ from the sample: missing {missing[:5]}, extra {extra[:5]}",
        )
    by_id = {p["id"]: p for p in posts}
    ids = sorted(wanted)
    for post_id in ids:
        entry = second[post_id]
        if entry.get("label") not in LABELS or entry.get("seeding") not in GRADES:
            raise CorpusError(
                regrade_path,
                1,
                f"grades.{post_id}",
                f"needs label in {LABELS} and seeding 0-4, got {entry}",
            )
    l1 = [by_id[i]["label"] for i in ids]
    l2 = [second[i]["label"] for i in ids]
    g1 = [by_id[i]["seeding"] for i in ids]
    g2 = [second[i]["seeding"] for i in ids]
    n = len(ids)
    return Agreement(
        n=n,
        label_agreement=sum(a == b for a, b in zip(l1, l2)) / n,
        label_kappa=float(cohen_kappa_score(l1, l2, labels=list(LABELS))),
        grade_exact=sum(a == b for a, b in zip(g1, g2)) / n,
        grade_within_1=sum(abs(a - b) <= 1 for a, b in zip(g1, g2)) / n,
        grade_quadratic_kappa=float(
            cohen_kappa_score(g1, g2, labels=list(GRADES), weights="quadratic")
        ),
        label_confusion=confusion_matrix(l1, l2, labels=list(LABELS)).tolist(),
        grade_confusion=confusion_matrix(g1, g2, labels=list(GRADES)).tolist(),
    )


def _print_agreement(result: Agreement, what: str = f"sample seed {REGRADE_SEED}") -> None:
    print(f"blind re-grade of {result.n} posts ({what})")
    print(
        f"label agreement: {result.label_agreement:.1%}   Cohen's kappa: {result.label_kappa:.3f}"
    )
    print(
        f"grade exact: {result.grade_exact:.1%}   within 1: {result.grade_within_1:.1%}   "
        f"quadratic-weighted kappa: {result.grade_quadratic_kappa:.3f}"
    )
    print(
        "label confusion (rows first pass, cols second pass; genuine, promotion):",
        result.label_confusion,
    )
    print("grade confusion (rows first pass, cols second pass; 0-4):")
    for grade, row in zip(GRADES, result.grade_confusion):
        print(f"  {grade}: {row}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=HERE, help="folder of train.jsonl, val.jsonl, test.jsonl"
    )
    parser.add_argument("--check", action="store_true", help="verify only, write nothing")
    sub = parser.add_subparsers(dest="command")
    sample = sub.add_parser("regrade-sample", help="write the 100 blind texts to a file")
    sample.add_argument("out", type=Path)
    grade = sub.add_parser("agreement", help="compare the blind second pass with the labels")
    grade.add_argument("--regrade", type=Path, default=REGRADE)
    extra = sub.add_parser("extra", help="check a file written after the corpus and print its tables")
    extra.add_argument("file", type=Path)
    extra.add_argument("--stem", default=EXTRA_STEMS[0], choices=EXTRA_STEMS, help="id stem of its posts")
    extra.add_argument(
        "--also", type=Path, action="append", default=[], help="another such file it must not duplicate"
    )
    extra.add_argument("--regrade", type=Path, default=None, help="its blind second pass")
    args = parser.parse_args(argv)
    try:
        result = split_corpus(args.dir, write=not args.check and args.command is None)
        posts = result.posts
        if result.rewritten:
            # stderr: stdout is the table pasted into DATA_CARD.md
            shown = " ".join(result.rewritten[:10]) + (" ..." if len(result.rewritten) > 10 else "")
            print(
                f"rewrote {', '.join(p.name for p in split_files(args.dir).values())}: "
                f"{len(result.rewritten)} post(s) moved or re-marked: {shown}",
                file=sys.stderr,
            )
        if args.command == "regrade-sample":
            write_blind_sheet(posts, args.out)
            print(f"wrote {REGRADE_SIZE} texts (seed {REGRADE_SEED}) to {args.out}")
            print("ids:", " ".join(p["id"] for p in regrade_sample(posts)))
        elif args.command == "agreement":
            _print_agreement(agreement(posts, args.regrade))
        elif args.command == "extra":
            others = list(posts)
            for path in args.also:
                others += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            name = args.file.parent.name
            extra = [{**p, "split": name} for p in read_extra(args.file, others, args.stem)]
            print(f"{len(extra)} posts in {args.file}, checked against {len(others)} other posts\n")
            print(distributions(extra, (name,)))
            if args.regrade:
                print()
                _print_agreement(agreement(extra, args.regrade, sample=extra), "every post")
        else:
            print(f"{len(posts)} posts, split seed {SPLIT_SEED!r}, strata lang x label x kind\n")
            print(distributions(posts))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
