"""Bilingual text clean-up and language detection, shared by every model kind.

Both functions are pure and fast (no model, no heavy import), because they run
on every post before lexical features, cue matching and the encoder see it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Lang = Literal["zh", "en", "mixed", "other"]
LANGS: tuple[Lang, ...] = ("zh", "en", "mixed", "other")

# -- shared patterns (tokenize.py reuses them for entities) -----------------
# URL: scheme or www. form, plus bare short-link domains common in posts
# (t.cn/..., xhslink.com/..., b23.tv/...). ASCII only, so a URL glued to Chinese
# text ends where the Chinese starts; the last char may not be punctuation.
# The bare domain is DNS-shaped: labels of 1-63 chars, at most 127 of them,
# taken possessively. Unbounded labels made every word boundary of a long
# "a-a-a-..." or "a.a.a...." run rescan the rest of the run: quadratic time
# (20k chars: 5 s). Bounded, each start costs at most one domain's length.
URL_RE = re.compile(
    r"(?:https?://|www\.|\b(?:[a-z0-9-]{1,63}+\.){1,127}+(?:com|cn|net|org|tv|io|ly|co|me|gl)/)"
    r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*[A-Za-z0-9/_\-=#%&~+])?",
    re.IGNORECASE,
)
# @mention: an ASCII handle (instagram/tiktok style: letters, digits, _ and .)
# stops at the first non-ASCII char, so "谢谢@glossier寄的" yields "glossier";
# a handle starting with a non-ASCII word char (weibo nicknames) runs to the next
# space or punctuation, since such nicknames have no other end marker.
MENTION_RE = re.compile(
    r"(?<![A-Za-z0-9_.@])@(?:[A-Za-z0-9_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?|[^\W\d_A-Za-z][\w\-]{0,29})"
)
# Hashtags: weibo/xiaohongshu closed form "#话题#" (optionally "#话题[话题]#") and
# the open form "#tag". The closed form may not contain whitespace, so
# "#ad #sponsored" reads as two open tags.
HASHTAG_RE = re.compile(r"#(?:([^#\s\[\]]{1,40}?)(?:\[话题\])?#|(\w[\w\-]*))")
# Emoji: flag pairs first, then single pictographs with their skin-tone and
# variation-selector modifiers (normalize() already removed ZWJ joiners).
EMOJI_RE = re.compile(
    "[\U0001f1e6-\U0001f1ff]{2}"
    "|[\U0001f000-\U0001faff\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\u3030\u303d\u3297\u3299]"
    "[\ufe0f\U0001f3fb-\U0001f3ff]*"
)
# Script ranges, for character classes: CJK ideographs (incl. extension A-H and
# compatibility ideographs), Japanese kana, Korean Hangul.
HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
KANA_CHARS = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
HANGUL_CHARS = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
HAN_RE = re.compile(f"[{HAN_CHARS}]")

# -- normalize --------------------------------------------------------------
# Line breaks in all their forms become "\n" before anything else is removed.
_NEWLINES_RE = re.compile(r"\r\n|[\r\x0b\x0c\x85\u2028\u2029]")


class _RemovalTable(dict):
    """str.translate table, filled per code point on first sight: building it for
    all 1.1M code points up front costs 0.15 s, and posts use few distinct chars.

    Format (Cf: zero-width, bidi marks, BOM), control (Cc) and lone surrogate (Cs)
    code points are dropped: invisible, they carry no meaning, and zero-width
    chars are a known way to slip "广\u200b告" past keyword filters. Surrogates
    would make any later UTF-8 write fail. Tab is a word separator: a space.
    """

    def __missing__(self, cp: int) -> int | str | None:
        cat = unicodedata.category(chr(cp))
        value: int | str | None = cp
        if cp == 0x09:
            value = " "
        elif cat in ("Cf", "Cs") or (cat == "Cc" and cp != 0x0A):
            value = None
        self[cp] = value
        return value


_REMOVE = _RemovalTable()
_SPACES_RE = re.compile(r"[^\S\n]+")  # any Unicode whitespace except the line break
_EDGE_SPACES_RE = re.compile(r" *\n *")
_BLANK_LINES_RE = re.compile(r"\n{3,}")


def normalize(text: str) -> str:
    """Canonical form of a post, so lexicons, tokenizer and encoder see one
    spelling of each character (full-width ＡＢＣ and ASCII ABC are the same word).

    Steps, in an order chosen so the result is idempotent: line breaks unified;
    format/control chars removed (tab -> space) BEFORE NFKC, because removing a
    char after NFKC can bring a base and a combining mark together, which a
    second NFKC would then compose; NFKC (folds full-width ASCII and U+3000);
    every other whitespace -> one space; spaces at line edges dropped; at most
    one blank line between paragraphs; stripped. Traditional Chinese stays.
    """
    text = _NEWLINES_RE.sub("\n", text).translate(_REMOVE)
    text = unicodedata.normalize("NFKC", text)
    text = _SPACES_RE.sub(" ", text)
    text = _EDGE_SPACES_RE.sub("\n", text)
    text = _BLANK_LINES_RE.sub("\n\n", text)
    return text.strip(" \n")


# -- detect_lang ------------------------------------------------------------
_KANA_RE = re.compile(f"[{KANA_CHARS}]")
_HANGUL_RE = re.compile(f"[{HANGUL_CHARS}]")
# Runs of letters of alphabetic scripts (Latin, Cyrillic, Greek, ...): \w minus
# digits, underscore and the CJK scripts, which are counted per character.
_LETTERS = rf"[^\W\d_{HAN_CHARS}{KANA_CHARS}{HANGUL_CHARS}]+"
_WORD_RE = re.compile(rf"{_LETTERS}(?:['’\-]{_LETTERS})*")
_LATIN_RE = re.compile(r"[A-Za-z\u00c0-\u024f'’\-]+")
# E-mail: local part, '@', a domain with at least one dot. The local part always
# runs to the '@' (no local-part char is '@'), so a search only needs to start
# where a run of local-part chars starts: the lookbehind skips the middle of
# runs, which made any long run of word chars (Han, digits) quadratic before.
_EMAIL_CHARS = r"[\w.+\-]"
_EMAIL_BODY = rf"{_EMAIL_CHARS}++@[\w\-]++(?:\.[\w\-]++)++"
_EMAIL_RE = re.compile(rf"(?<!{_EMAIL_CHARS}){_EMAIL_BODY}")
_EMAIL_HERE_RE = re.compile(_EMAIL_BODY)  # anchored with .match at a given position
_EMAIL_RUN_RE = re.compile(rf"{_EMAIL_CHARS}*+")


def _remove_emails(text: str) -> str:
    r"""Every e-mail address replaced by one space, exactly as the plain regex
    ``[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+`` would with ``.sub(" ", text)``, in
    linear time. The one case the lookbehind alone would miss: the plain regex
    resumes right after a match, which can be inside a run of local-part chars
    ("a@b.com+c@d.com" is two addresses); that run is tried once, at its start.
    """
    if "@" not in text:
        return text
    parts: list[str] = []
    last = pos = 0
    while (m := _EMAIL_RE.search(text, pos)) is not None:
        parts += (text[last : m.start()], " ")
        last = m.end()
        while (m := _EMAIL_HERE_RE.match(text, last)) is not None:  # addresses glued to the previous one
            parts.append(" ")
            last = m.end()
        run = _EMAIL_RUN_RE.match(text, last)  # no later start in this run can match either
        pos = run.end() if run else last
    parts.append(text[last:])
    return "".join(parts)


# Weights put both scripts on one scale of "meaning units": a Chinese translation
# of English text has about 1.5 characters per English word, so a common English
# word weighs 1.5 Han characters. A name-like Latin token (camelCase iPhone,
# all-caps YSL, SK-II) inside Chinese text is a borrowed name, not English
# prose, and weighs only 0.5. Kana and Hangul count per character like Han.
_EN_WORD_WEIGHT = 1.5
_NAME_WEIGHT = 0.5
_DOMINANT = 0.75  # share at or above which one language labels the post
_MIXED_MIN = 0.2  # share each of zh and en needs for "mixed"
_OTHER_MAX = 0.5  # share of other scripts at which the post is "other"
_MIN_UNITS = 1.0  # below this there is too little text to tell


def _is_name_like(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return True  # YSL, SK-II, OOTD
    return any(c.isupper() for c in word[1:])  # iPhone, CeraVe, McDonald's


def detect_lang(text: str) -> Lang:
    """Language of a post from script ratios: 'zh', 'en', 'mixed' or 'other'.

    URLs, e-mails and @mentions are removed first (handles are not prose);
    digits, emoji, punctuation and the '#' of hashtags carry no letters and so
    are ignored by construction, while hashtag words count. Units: Han chars 1,
    English words 1.5, name-like Latin tokens 0.5, other-script chars (kana,
    Hangul) 1 and other-script words (Cyrillic, Greek, ...) 1.5. Japanese is
    recognised by kana (>= 15% of Han + kana): its Han chars then count as other.
    Decision on the shares of the total:
    total < 1 -> 'other' (too little text); other >= 0.5 -> 'other';
    zh >= 0.75 -> 'zh'; en >= 0.75 -> 'en'; zh >= 0.2 and en >= 0.2 -> 'mixed';
    else the larger of zh/en if it reaches 0.5, otherwise 'other'.
    """
    text = normalize(text)
    text = _remove_emails(text)
    text = URL_RE.sub(" ", text)
    text = MENTION_RE.sub(" ", text)
    han = len(HAN_RE.findall(text))
    kana = len(_KANA_RE.findall(text))
    other = kana + len(_HANGUL_RE.findall(text))
    if kana >= 2 and kana >= 0.15 * (han + kana):
        other, han = other + han, 0
    en = 0.0
    for word in _WORD_RE.findall(text):
        if _LATIN_RE.fullmatch(word):
            en += _NAME_WEIGHT if han and _is_name_like(word) else _EN_WORD_WEIGHT
        else:
            other += _EN_WORD_WEIGHT
    total = han + en + other
    if total < _MIN_UNITS or other / total >= _OTHER_MAX:
        return "other"
    zh_share, en_share = han / total, en / total
    if zh_share >= _DOMINANT:
        return "zh"
    if en_share >= _DOMINANT:
        return "en"
    if zh_share >= _MIXED_MIN and en_share >= _MIXED_MIN:
        return "mixed"
    best_share, best = max((zh_share, "zh"), (en_share, "en"))
    return best if best_share >= 0.5 else "other"  # type: ignore[return-value]
