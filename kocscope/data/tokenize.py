"""Word tokens and social entities for the lexical model and cue reports.

Chinese runs go through jieba with a project dictionary, so marketing slang
(种草, 闭眼入, 好物推荐 ...) stays one feature instead of being split into
characters; everything else is cut by one regex in a single pass.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from kocscope.data.text import (
    EMOJI_RE,
    HAN_CHARS,
    HANGUL_CHARS,
    HASHTAG_RE,
    KANA_CHARS,
    MENTION_RE,
    URL_RE,
    normalize,
)

if TYPE_CHECKING:  # pragma: no cover
    import jieba

USERDICT = "jieba_userdict.txt"
URL_TOKEN = "<url>"
MENTION_TOKEN = "<mention>"
NUM_TOKEN = "<num>"  # prices, sizes and counts generalise better as one feature

_ALNUM = rf"[^\W_{HAN_CHARS}{KANA_CHARS}{HANGUL_CHARS}]"  # letters and digits of alphabetic scripts
# One pass, first alternative wins: entities before words, so "#ad" or a URL is
# never cut into words. A number glued to letters ("spf50", "save20") stays in the
# word; a leading number ("50ml") is split off as <num>. Each alternative fails
# after a bounded look or consumes what it reads, so a scan stays linear on any
# input (URL_RE's domain labels are bounded for that; see text.py).
_SCAN_RE = re.compile(
    "|".join(
        [
            rf"(?P<url>(?i:{URL_RE.pattern}))",
            rf"(?P<mention>{MENTION_RE.pattern})",
            rf"(?P<hashtag>{HASHTAG_RE.pattern})",
            rf"(?P<emoji>{EMOJI_RE.pattern})",
            rf"(?P<han>[{HAN_CHARS}]+)",
            r"(?P<num>\d+(?:[.,]\d+)*)",
            rf"(?P<word>{_ALNUM}+(?:['’]{_ALNUM}+)*)",
            rf"(?P<kana>[{KANA_CHARS}{HANGUL_CHARS}]+)",
            r"(?P<symbol>[¥$€£%])",
        ]
    )
)
_SKIN_AND_VARIATION = re.compile("[\ufe0f\U0001f3fb-\U0001f3ff]")

_jieba: jieba.Tokenizer | None = None
_jieba_lock = threading.Lock()


def _segmenter() -> jieba.Tokenizer:
    """jieba loads its 350k-word dictionary in about a second: once per process,
    on first use, into a private Tokenizer so the project dictionary does not
    change jieba's global state for other code."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)  # silence "Building prefix dict ..."
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                for word, freq in read_userdict():
                    tokenizer.add_word(word, max(freq, tokenizer.FREQ.get(word, 0)))
                _jieba = tokenizer
    return _jieba


def read_userdict() -> list[tuple[str, int]]:
    """The project dictionary as (word, frequency) pairs."""
    path = resources.files("kocscope.data") / "resources" / USERDICT
    entries: list[tuple[str, int]] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{path}:{lineno}: expected 'word frequency', got {raw!r}")
        entries.append((parts[0], int(parts[1])))
    return entries


def tokenize(text: str, *, hmm: bool = False) -> list[str]:
    """Lowercased tokens of a post: jieba words for Chinese, words for English
    (apostrophes kept: don't), '#tag' for hashtags (weibo '#话题#' too), one token
    per emoji, and placeholders <url>, <mention>, <num>; currency signs and '%'
    are kept, other punctuation dropped. The text is normalized first.

    ``hmm`` lets jieba guess words missing from its dictionary (names, new slang);
    off by default: it makes tokenizing about 30% slower (1000-char Chinese post:
    ~850 posts/s without, ~660 with, on one core) and the project dictionary
    already covers the slang that matters.
    """
    tokens: list[str] = []
    for m in _SCAN_RE.finditer(normalize(text).lower()):
        kind, value = m.lastgroup, m.group()
        if kind == "han":
            tokens.extend(_segmenter().cut(value, HMM=hmm))
        elif kind == "hashtag":
            tokens.append("#" + _hashtag_text(value))
        elif kind == "emoji":
            tokens.append(_SKIN_AND_VARIATION.sub("", value) or value)  # a lone 🏻 stays
        elif kind == "url":
            tokens.append(URL_TOKEN)
        elif kind == "mention":
            tokens.append(MENTION_TOKEN)
        elif kind == "num":
            tokens.append(NUM_TOKEN)
        elif kind == "word":
            tokens.append(value.replace("’", "'"))
        else:
            tokens.append(value)
    return tokens


def _hashtag_text(tag: str) -> str:
    m = HASHTAG_RE.fullmatch(tag)
    assert m is not None  # only called on _SCAN_RE hashtag matches
    return m.group(1) or m.group(2)


@dataclass
class Entities:
    """Social entities of a post, in order of appearance, repeats kept (counts
    matter: a post with five brand hashtags reads differently from one with one)."""

    hashtags: list[str] = field(default_factory=list)  # without '#' / '[话题]#'
    mentions: list[str] = field(default_factory=list)  # without '@'
    urls: list[str] = field(default_factory=list)
    emoji: list[str] = field(default_factory=list)


def extract_entities(text: str) -> Entities:
    """Hashtags, @mentions, URLs and emoji of the normalized text (case kept)."""
    found = Entities()
    for m in _SCAN_RE.finditer(normalize(text)):
        kind, value = m.lastgroup, m.group()
        if kind == "hashtag":
            found.hashtags.append(_hashtag_text(value))
        elif kind == "mention":
            found.mentions.append(value[1:])
        elif kind == "url":
            found.urls.append(value)
        elif kind == "emoji":
            found.emoji.append(value)
    return found
