"""Explainable cues: which words of a post point to promotion or to genuine use.

The lexicons live in ``resources/cues.json`` (versioned data, not code) so they
can be reviewed and extended without touching the matcher, and so a model card
can record which lexicon version produced its features.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from kocscope.data.text import normalize

CUE_CATEGORIES: tuple[str, ...] = (
    "disclosure",
    "gift",
    "affiliate",
    "recommendation",
    "dissuasion",
    "experience",
)
DEFAULT_LEXICON = "cues.json"

# No match may start or end inside an ASCII word ("ad" in "bad", "#ad" in
# "#adidas"), while Chinese, which has no spaces, needs no boundary: "这是ad"
# and "淘宝app链接" must still match. The end is checked in the regex (passes when
# the next char is not an ASCII word char OR the match's last char is not one);
# the start is checked in Python, which keeps every entry's leading literal
# visible to the regex engine's fast scan.
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_RIGHT = "(?:(?![A-Za-z0-9_])|(?<![A-Za-z0-9_]))"


@dataclass(frozen=True)
class Cue:
    """One lexicon hit; start/end index the normalized text (``normalize(text)``)."""

    category: str
    # the lexicon entry (literal term or regex pattern) that matched; for a negated
    # disclosure or gift turned into an experience cue, the entry that was negated
    term: str
    text: str  # the matched span, as the text spells it (Traditional stays Traditional)
    start: int
    end: int


@dataclass(frozen=True)
class _Entry:
    key: str  # the term or pattern as written in the lexicon
    not_after: tuple[str, ...]  # lowercased literals that may not come right before the match
    not_before: tuple[str, ...]  # ... nor follow it


# a pattern's regex and its entry, or the terms' regex and its entries by casefolded spelling
_Matcher = tuple[re.Pattern[str], "_Entry | dict[str, _Entry]"]


class Lexicon:
    """A validated cue lexicon, compiled once into a few regexes per category.

    Every problem in the lexicon data raises ValueError naming the file and the
    field, so a caller loading a user's lexicon catches one exception type."""

    def __init__(self, data: dict[str, Any], source: str = "<lexicon>") -> None:
        self.source = source
        version = data.get("version") if isinstance(data, dict) else None
        if not isinstance(version, str) or not version:
            raise ValueError(f"{source}: field 'version' must be a non-empty string")
        self.version: str = version
        categories = data.get("categories")
        if not isinstance(categories, dict) or set(categories) != set(CUE_CATEGORIES):
            got = sorted(categories) if isinstance(categories, dict) else type(categories).__name__
            raise ValueError(
                f"{source}: field 'categories' must hold exactly {list(CUE_CATEGORIES)}, got {got}"
            )
        self._fold = _parse_traditional(data.get("traditional"), source)
        negation = _parse_negation(data.get("negation"), source, self._fold)
        self._negation, self._negated, self._becomes, self._negation_chars = negation
        self._matchers = {name: self._compile(name, categories[name]) for name in CUE_CATEGORIES}
        # negated categories first, so what they hand over reaches its category
        self._order = [n for n in CUE_CATEGORIES if n in self._negated] + [
            n for n in CUE_CATEGORIES if n not in self._negated
        ]

    def fold(self, text: str) -> str:
        """``text`` with Traditional Chinese characters replaced by their Simplified
        form, one char for one (same length, same offsets), as matching sees it."""
        return text.translate(self._fold) if self._fold else text

    def _compile(self, name: str, spec: Any) -> list[_Matcher]:
        """Matchers in priority order: each pattern alone (so the regex engine can
        scan ahead for its leading literal), then all terms in one trie-shaped regex
        behind a lookahead on their first characters: positions where no term can
        start cost one set test, and the trie's greedy branches take the longest
        term, as a longest-first alternation would, at a fifth of the cost."""
        where = f"{self.source}: categories.{name}"
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: must be an object with 'patterns' and 'terms'")  # noqa: TRY004
        matchers: list[_Matcher] = []
        terms: dict[str, _Entry] = {}
        for kind in ("pattern", "term"):
            items = spec.get(kind + "s", [])
            if not isinstance(items, list):
                raise ValueError(f"{where}.{kind}s: must be a list")  # noqa: TRY004
            for i, item in enumerate(items):
                entry = _parse_entry(item, kind, f"{where}.{kind}s[{i}]")
                # matched on folded text, so guards and entries are folded the same way
                entry = replace(
                    entry,
                    not_after=tuple(self.fold(g) for g in entry.not_after),
                    not_before=tuple(self.fold(g) for g in entry.not_before),
                )
                if kind == "term":
                    # matched on normalized text, so spelled the same way
                    spelled = self.fold(normalize(entry.key)).casefold()
                    if spelled in terms:
                        raise ValueError(
                            f"{where}.terms[{i}] {entry.key!r}: duplicate of {terms[spelled].key!r}"
                        )
                    terms[spelled] = entry
                    continue
                try:
                    regex = re.compile(f"(?:{self.fold(entry.key)}){_RIGHT}", re.IGNORECASE)
                except re.error as err:
                    raise ValueError(
                        f"{where}.patterns[{i}] {entry.key!r}: invalid regex: {err}"
                    ) from None
                if regex.match(""):
                    raise ValueError(
                        f"{where}.patterns[{i}] {entry.key!r}: matches the empty string"
                    )
                matchers.append((regex, entry))
        if terms:
            first = "".join(sorted({re.escape(spelled[0]) for spelled in terms}))
            regex = re.compile(f"(?=[{first}])(?:{_trie_regex(terms)}){_RIGHT}", re.IGNORECASE)
            matchers.append((regex, terms))
        if not matchers:
            raise ValueError(f"{where}: has no terms or patterns")
        return matchers

    def find(self, text: str) -> list[Cue]:
        """Cues of every category in ``normalize(text)``, sorted by start.

        Within a category cues never overlap and the result is what one regex
        alternation of all entries (patterns first, then terms longest first) would
        give: at each position the first entry in that order that matches there.
        Across categories cues may overlap.

        Matching runs on ``self.fold(normalize(text))``, so Traditional Chinese
        matches the (Simplified) entries; spans and cue texts are those of
        ``normalize(text)``. A cue of a negated category (disclosure, gift) that
        comes right after a negation (``isn't sponsored``, 不是什么广告) becomes a
        cue of the lexicon's ``negation.becomes`` category (experience) spanning
        negation and cue, which wins over that category's own entries at the same
        start."""
        text = normalize(text)
        folded = self.fold(text)
        cues: list[Cue] = []
        handed_over: list[tuple[int, int, int, _Entry]] = []
        for name in self._order:
            candidates: list[tuple[int, int, int, _Entry]] = []
            for priority, (regex, entries) in enumerate(self._matchers[name]):
                pos = 0
                while (m := regex.search(folded, pos)) is not None:
                    start, end = m.span()
                    entry = (
                        _term_entry(entries, m.group()) if isinstance(entries, dict) else entries
                    )
                    if end > start and not _rejected(entry, folded, start, end):
                        candidates.append((start, priority, end, entry))
                    pos = start + 1  # every start position, so the selection below can choose
            if name == self._becomes:
                candidates += handed_over
            candidates.sort(key=lambda c: (c[0], c[1]))
            negatable = name in self._negated
            taken_to = 0
            for start, _, end, entry in candidates:
                if start >= taken_to:
                    taken_to = end
                    if negatable and (neg := self._negation_start(folded, start)) is not None:
                        if self._becomes is not None:
                            handed_over.append((neg, -1, end, entry))
                        continue
                    cues.append(Cue(name, entry.key, text[start:end], start, end))
        cues.sort(key=lambda c: (c.start, c.end, CUE_CATEGORIES.index(c.category)))
        return cues

    def _negation_start(self, folded: str, start: int) -> int | None:
        """Where the negation that ends right at ``start`` begins, or None if none does."""
        if self._negation is None or not start:
            return None
        m = self._negation.search(folded, max(0, start - self._negation_chars), start)
        return None if m is None else m.start()


def _trie_regex(words: Iterable[str]) -> str:
    """One regex for many literal words, sharing prefixes: a|ab|abc -> a(?:b(?:c)?)?."""
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a word

    def emit(node: dict[str, dict]) -> str:
        parts = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not parts:
            return ""
        alternation = parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"
        return f"(?:{alternation})?" if "" in node else alternation

    return emit(root)


def _term_entry(terms: dict[str, _Entry], matched: str) -> _Entry:
    entry = terms.get(matched.casefold())
    if entry is not None:
        return entry
    # The regex engine's case-insensitive match is per character and can pair
    # chars whose casefold differs in length (İ matches i): find the term it meant.
    return next(e for k, e in terms.items() if re.fullmatch(re.escape(k), matched, re.IGNORECASE))


def _parse_entry(item: Any, kind: str, where: str) -> _Entry:
    if isinstance(item, str):
        item = {kind: item}
    if not isinstance(item, dict) or set(item) - {kind, "not_after", "not_before"}:
        raise ValueError(
            f"{where}: must be a string or an object with '{kind}', 'not_after', 'not_before', got {item!r}"
        )
    key = item.get(kind)
    if not isinstance(key, str) or not normalize(key):
        raise ValueError(f"{where}: '{kind}' must be a non-empty string, got {key!r}")
    guards: list[tuple[str, ...]] = []
    for field_name in ("not_after", "not_before"):
        values = item.get(field_name, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ValueError(
                f"{where}: '{field_name}' must be a list of non-empty strings, got {values!r}"
            )
        guards.append(tuple(v.lower() for v in values))
    return _Entry(key, guards[0], guards[1])


def _rejected(entry: _Entry, text: str, start: int, end: int) -> bool:
    if start and text[start - 1] in _WORD_CHARS and text[start] in _WORD_CHARS:
        return True  # starts inside an ASCII word
    return any(text[max(0, start - len(g)) : start].lower() == g for g in entry.not_after) or any(
        text[end : end + len(g)].lower() == g for g in entry.not_before
    )


def _parse_traditional(spec: Any, source: str) -> dict[int, str]:
    """The str.translate table of the optional 'traditional' section: each
    Traditional form of ``forms`` to its Simplified key, one char for one."""
    where = f"{source}: traditional"
    if spec is None:
        return {}
    if not isinstance(spec, dict) or not isinstance(spec.get("forms"), dict):
        raise ValueError(  # noqa: TRY004
            f"{where}: must be an object with 'forms' (Simplified char -> Traditional chars)"
        )
    unchanged = spec.get("unchanged", "")
    if not isinstance(unchanged, str):
        raise ValueError(f"{where}.unchanged: must be a string of characters")  # noqa: TRY004
    table: dict[int, str] = {}
    for simplified, forms in spec["forms"].items():
        if len(simplified) != 1 or not isinstance(forms, str) or not forms:
            raise ValueError(
                f"{where}.forms[{simplified!r}]: must map one character to a non-empty string of characters"
            )
        for char in forms:
            if char == simplified or char in spec["forms"] or char in unchanged:
                raise ValueError(
                    f"{where}.forms[{simplified!r}]: {char!r} is a Simplified character of the table"
                )
            if ord(char) in table:
                raise ValueError(
                    f"{where}.forms[{simplified!r}]: {char!r} is already a form of {table[ord(char)]!r}"
                )
            table[ord(char)] = simplified
    return table


def _parse_negation(
    spec: Any, source: str, fold: dict[int, str]
) -> tuple[re.Pattern[str] | None, frozenset[str], str | None, int]:
    """The optional 'negation' section: (one regex anchored at the end, categories, becomes, max_chars)."""
    where = f"{source}: negation"
    if spec is None:
        return None, frozenset(), None, 0
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: must be an object")  # noqa: TRY004
    unknown = set(spec) - {"description", "categories", "becomes", "max_chars", "patterns"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    negated = spec.get("categories")
    if (
        not isinstance(negated, list)
        or not negated
        or not all(isinstance(n, str) and n in CUE_CATEGORIES for n in negated)
    ):
        raise ValueError(f"{where}.categories: must be a non-empty list of {list(CUE_CATEGORIES)}")
    becomes = spec.get("becomes")
    if becomes is not None and (becomes not in CUE_CATEGORIES or becomes in negated):
        raise ValueError(
            f"{where}.becomes: must be null or a category other than {negated}, got {becomes!r}"
        )
    max_chars = spec.get("max_chars")
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or not 0 < max_chars <= 200:
        raise ValueError(f"{where}.max_chars: must be an integer from 1 to 200, got {max_chars!r}")
    patterns = spec.get("patterns")
    if not isinstance(patterns, list) or not patterns:
        raise ValueError(f"{where}.patterns: must be a non-empty list of regexes")
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise ValueError(f"{where}.patterns[{i}]: must be a string, got {pattern!r}")  # noqa: TRY004
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"{where}.patterns[{i}] {pattern!r}: invalid regex: {err}") from None
        if regex.match(""):
            raise ValueError(f"{where}.patterns[{i}] {pattern!r}: matches the empty string")
    joined = "|".join(f"(?:{p})" for p in patterns).translate(fold)
    return re.compile(f"(?:{joined})\\Z", re.IGNORECASE), frozenset(negated), becomes, max_chars


def load_lexicon(path: str | Path) -> Lexicon:
    """A lexicon from a JSON file with the layout of ``resources/cues.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    return Lexicon(data, source=str(path))


_default: Lexicon | None = None
_default_lock = threading.Lock()


def default_lexicon() -> Lexicon:
    """The packaged lexicon, read and compiled once, on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                resource = resources.files("kocscope.data") / "resources" / DEFAULT_LEXICON
                with resources.as_file(resource) as path:
                    _default = load_lexicon(path)
    return _default


def find_cues(text: str) -> list[Cue]:
    """Cues of the packaged lexicon in ``normalize(text)``; see ``Lexicon.find``."""
    return default_lexicon().find(text)


def __getattr__(name: str) -> str:
    # LEXICON_VERSION comes from the data file; read it only when asked for.
    if name == "LEXICON_VERSION":
        return default_lexicon().version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
