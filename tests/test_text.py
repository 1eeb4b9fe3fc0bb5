import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kocscope.data.text import LANGS, detect_lang, normalize
from paths import ZHIHU  # tests/ is on sys.path under pytest

# -- normalize: examples -----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # full-width ASCII folds to half-width, Chinese punctuation keeps its meaning
        ("ＳＫ－ＩＩ神仙水ｙｙｄｓ！１０／１０", "SK-II神仙水yyds!10/10"),
        ("真的好用，推荐！", "真的好用,推荐!"),
        ("句号。顿号、书名号《》", "句号。顿号、书名号《》"),  # no compatibility form: unchanged
        # ideographic space, NBSP, thin space, tab: one plain space
        ("好物\u3000推荐", "好物 推荐"),
        ("price:\u00a0¥199\u2009only\tnow", "price: ¥199 only now"),
        # zero-width chars hidden inside a keyword are removed
        ("广\u200b告 合\u200c作 #a\u200dd \ufeffhi\u2060!", "广告 合作 #ad hi!"),
        # control chars removed, line breaks unified
        ("bad\x00 \x07bytes\x1b", "bad bytes"),
        ("line one\r\nline two\rline three\u2028four", "line one\nline two\nline three\nfour"),
        # spaces collapsed, trimmed at line edges, at most one blank line kept
        ("  so    many   spaces  ", "so many spaces"),
        ("para one   \n   para two", "para one\npara two"),
        ("a\n\nb", "a\n\nb"),
        ("a\n\n\n\n\nb", "a\n\nb"),
        ("a\n \n\t\n \nb", "a\n\nb"),
        ("\n\n  标题\n\n", "标题"),
        # traditional Chinese is kept as written
        ("這款精華液真的很好用", "這款精華液真的很好用"),
        # emoji survive (variation selector included)
        ("love it ❤️👍🏻", "love it ❤️👍🏻"),
        ("", ""),
    ],
)
def test_normalize_examples(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_removes_zero_width_joiner_between_emoji() -> None:
    # the brief wants U+200D gone even though it joins emoji sequences
    assert normalize("🏃\u200d♂️") == "🏃♂️"


def test_normalize_removal_happens_before_composition() -> None:
    # e + ZWJ + combining acute: removing the ZWJ after NFKC would leave "e\u0301",
    # which a second call would compose to "é", breaking idempotence.
    once = normalize("e\u200d\u0301")
    assert once == normalize(once) == "é"


def test_normalize_drops_lone_surrogates() -> None:
    out = normalize("ok\ud800ok")
    assert out == "okok"
    out.encode("utf-8")  # would raise if a surrogate were left


# -- normalize: properties -----------------------------------------------------

# The characters that interact: combining marks, joiners, every kind of space and
# line break, compatibility forms that NFKC expands into spaces or marks.
TRICKY = (
    "ae \t\n\r\x0b\x0c\x85\u2028\u2029\u00a0\u1680\u2000\u2009\u202f\u205f\u3000"
    "\u0301\u0308\u0327\u20dd\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u202e"
    "\u00a8\u00b4\u02dc\u1fed\uff9e\u309b\u3099\ufb01\u2126\u212b\u1100\u1161\u11a8\uac00"
    "ＡＢ！，。广告\x00\x1f\x7f\u0085\U0001f600\U0001f3fb\ufe0f\ud800\udfff"
)


def _check_output(text: str) -> None:
    out = normalize(text)
    assert normalize(out) == out
    assert "  " not in out and "\n\n\n" not in out
    assert out == out.strip(" \n")
    assert " \n" not in out and "\n " not in out
    for ch in out:
        cat = unicodedata.category(ch)
        assert cat not in ("Cf", "Cs") and (cat != "Cc" or ch == "\n"), repr(ch)
        assert not ch.isspace() or ch in " \n", repr(ch)
    assert unicodedata.is_normalized("NFKC", out)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=40))
def test_normalize_idempotent_and_clean_on_tricky_text(text: str) -> None:
    _check_output(text)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=60))
def test_normalize_never_raises_and_is_idempotent_on_any_str(text: str) -> None:
    # exclude_categories=() lets surrogates and unassigned code points in too
    _check_output(text)


# -- detect_lang ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("入冬以后皮肤一直很干，这瓶精华用了两周泛红少了很多。", "zh"),
        ("這款精華液真的很好用，推薦給大家", "zh"),
        ("我买了iPhone 15", "zh"),  # brand and model inside Chinese
        ("我买了Apple的耳机", "zh"),
        ("SK-II神仙水用了两周，皮肤变亮了", "zh"),
        ("https://example.com/very/long/english/path 好用", "zh"),  # URLs ignored
        ("@some_english_handle 谢谢你的推荐", "zh"),  # mentions ignored
        ("This moisturizer is a holy grail, run don't walk!", "en"),
        ("Went to 海底捞 last night, the service was amazing", "en"),
        ("#skincare #nightroutine the best serum ever", "en"),
        ("这个serum真的绝了 holy grail", "mixed"),
        ("OOTD | 今天穿搭 cozy vibes 🧸", "mixed"),
        ("最近的night routine分享～ 先用cleansing balm卸妆，然后是toner", "mixed"),
        ("今日は新しいカフェに行きました", "other"),  # Japanese: kana
        ("오늘 날씨가 좋네요", "other"),  # Korean
        ("Привет, как дела", "other"),  # Cyrillic
        ("😀😀👍 123 !!!", "other"),  # no letters
        ("", "other"),
        ("https://t.cn/AbCdEf", "other"),  # only a URL
    ],
)
def test_detect_lang(text: str, lang: str) -> None:
    assert detect_lang(text) == lang


def test_detect_lang_sees_through_full_width_letters() -> None:
    assert detect_lang("ｔｈｉｓ ｉｓ ｇｒｅａｔ") == "en"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=80))
def test_detect_lang_never_raises(text: str) -> None:
    assert detect_lang(text) in LANGS


ZHIHU_VAL = ZHIHU / "val.jsonl"


@pytest.mark.integration
@pytest.mark.skipif(not ZHIHU_VAL.exists(), reason="zhihu16k corpus not present")
def test_real_corpus_normalizes_idempotently_and_reads_as_chinese() -> None:
    texts = [
        json.loads(line)["text"] for line in ZHIHU_VAL.read_text(encoding="utf-8").splitlines()
    ]
    for text in texts:
        once = normalize(text)
        assert normalize(once) == once
    langs = [detect_lang(text) for text in texts]
    assert langs.count("zh") / len(langs) >= 0.99
