import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kocscope.data.text import HAN_RE
from kocscope.data.tokenize import (
    MENTION_TOKEN,
    NUM_TOKEN,
    URL_TOKEN,
    Entities,
    extract_entities,
    read_userdict,
    tokenize,
)

USERDICT = [word for word, _ in read_userdict()]

# Neighbours chosen to tempt jieba into gluing a char of the term to its context.
PREFIXES = ["我", "真的", "今天", "已经", "这个", "姐妹们", "一直在", "不会", "又", "给你们"]
SUFFIXES = ["了", "的", "吧", "真的很好", "这个", "一下", "太多", "还是", "过", "和"]


def test_userdict_is_large_unique_and_chinese() -> None:
    assert len(USERDICT) >= 60
    assert len(set(USERDICT)) == len(USERDICT)
    for word in USERDICT:
        assert all(HAN_RE.fullmatch(ch) for ch in word), word  # Latin slang needs no entry
    for must in [
        "种草",
        "拔草",
        "回购",
        "闭眼入",
        "恰饭",
        "好物推荐",
        "软广",
        "软文",
        "带货",
        "私信",
        "评论区",
        "链接",
        "优惠券",
        "返现",
        "寄样",
        "品牌方",
        "合作",
        "无限回购",
        "平替",
        "踩雷",
        "避雷",
        "绝绝子",
        "安利",
        "必入",
        "必买",
        "空瓶",
        "测评",
        "开箱",
    ]:
        assert must in USERDICT, must


@pytest.mark.parametrize("hmm", [False, True])
def test_every_userdict_term_stays_whole_in_context(hmm: bool) -> None:
    broken = []
    for word in USERDICT:
        for pre in PREFIXES:
            for suf in SUFFIXES:
                if word not in tokenize(pre + word + suf, hmm=hmm):
                    broken.append(pre + word + suf)
    assert not broken, broken[:20]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("这款面霜我无限回购了，学生党闭眼入", ["无限回购", "学生党", "闭眼入"]),
        ("评论区有链接，私信领优惠券，好评返现", ["评论区", "链接", "私信", "优惠券", "好评返现"]),
        ("品牌方寄样的，大牌平替，不踩雷", ["品牌方", "寄样", "大牌平替"]),
        ("又一个空瓶记录，开箱测评", ["空瓶记录", "开箱", "测评"]),
    ],
)
def test_marketing_terms_in_real_sentences(text: str, expected: list[str]) -> None:
    tokens = tokenize(text)
    for word in expected:
        assert word in tokens, (word, tokens)


def test_english_tokens() -> None:
    tokens = tokenize("I DON'T know… it’s a Must-Have! SPF50 for $29.99, 50ml, 20% OFF")
    assert tokens[:3] == ["i", "don't", "know"]
    assert "it's" in tokens  # curly apostrophe folded
    assert tokens.count(NUM_TOKEN) == 3  # 29.99, 50, 20
    assert "spf50" in tokens and "ml" in tokens and "$" in tokens and "%" in tokens
    assert "must" in tokens and "have" in tokens
    assert "!" not in tokens and "…" not in tokens and "," not in tokens


def test_entities_become_single_tokens() -> None:
    tokens = tokenize(
        "Thanks @Glossier! #AD #好物分享[话题]# #双十一攻略# link: https://xhslink.com/a/AbC123。yyds 🔥🔥"
    )
    assert tokens == [
        "thanks",
        MENTION_TOKEN,
        "#ad",
        "#好物分享",
        "#双十一攻略",
        "link",
        URL_TOKEN,
        "yyds",
        "🔥",
        "🔥",
    ]


def test_emoji_modifiers_dropped_in_tokens() -> None:
    assert tokenize("👍🏻 ❤️") == ["👍", "❤"]
    assert tokenize("🏻") == ["🏻"]  # a lone modifier is kept, not emptied


def test_tokenize_normalizes_first() -> None:
    assert tokenize("ＹＹＤＳ　广\u200b告") == tokenize("yyds 广告")


def test_extract_entities() -> None:
    text = (
        "感谢@lumiere.beauty 寄的新品，还有@小红薯123 的推荐 #gifted #好物分享[话题]# #双十一攻略#\n"
        "链接：https://example.com/shop?id=42&ref=me. 或 www.shop.cn/x，短链 t.cn/A6xYz 🇨🇳👍🏻✨ "
        "mail me at anna@example.com"
    )
    found = extract_entities(text)
    assert found == Entities(
        hashtags=["gifted", "好物分享", "双十一攻略"],
        mentions=["lumiere.beauty", "小红薯123"],
        urls=["https://example.com/shop?id=42&ref=me", "www.shop.cn/x", "t.cn/A6xYz"],
        emoji=["🇨🇳", "👍🏻", "✨"],
    )


def test_hashtags_separated_by_space_are_open_form() -> None:
    assert extract_entities("#ad #sponsored 好用").hashtags == ["ad", "sponsored"]


def test_mention_ascii_handle_stops_at_chinese() -> None:
    assert extract_entities("谢谢@glossier寄的").mentions == ["glossier"]


def test_jieba_is_silent_on_first_use() -> None:
    # jieba logs "Building prefix dict ..." to stderr unless silenced
    code = "from kocscope.data.tokenize import tokenize; print(tokenize('种草了'))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip() == "['种草', '了']"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=60))
def test_tokenize_never_raises(text: str) -> None:
    tokens = tokenize(text)
    assert all(tokens) and all(t == t.strip() for t in tokens)
    extract_entities(text)
