"""The post data contract (labels.md section 4): what is accepted, what is rejected and how."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from kocscope.data.records import (
    ID_PREFIX,
    Post,
    RecordError,
    make_post_id,
    parse_count,
    parse_timestamp,
)


def post(**fields):
    return Post.from_dict(fields)


def error_of(**fields) -> RecordError:
    with pytest.raises(RecordError) as info:
        Post.from_dict(fields)
    return info.value


# -- text ----------------
def test_text_is_normalized_and_original_kept():
    p = post(text="  ＡＢＣ好用\u200b！  ")
    assert p.text == "ABC好用!"
    assert p.original_text == "  ＡＢＣ好用\u200b！  "
    assert p.to_dict()["text"] == "  ＡＢＣ好用\u200b！  "


def test_keep_original_false_outputs_normalized_text():
    p = Post.from_dict({"text": "ＡＢＣ"}, keep_original=False)
    assert p.original_text is None
    assert p.to_dict()["text"] == "ABC"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "is missing"),
        ({"text": None}, "is missing"),
        ({"text": 123}, "must be a string"),
        ({"text": ["a"]}, "must be a string"),
        ({"text": ""}, "is empty"),
        ({"text": " \n\t "}, "is empty"),
        ({"text": "\u200b\u200d\ufeff"}, "is empty"),  # only invisible characters
    ],
)
def test_bad_text_is_rejected(fields, reason):
    err = error_of(**fields)
    assert err.field == "text"
    assert err.reason == reason
    assert isinstance(err, ValueError)


def test_missing_text_lists_the_fields_that_are_there():
    err = error_of(content="x", user="u")
    assert "fields: content, user" in str(err)


def test_model_text_puts_normalized_title_first():
    assert post(text="正文", title=" 标题！ ").model_text == "标题!\n正文"
    assert post(text="正文").model_text == "正文"
    assert post(text="正文", title="   ").model_text == "正文"


# -- ids ----------------
def test_id_is_generated_deterministically_from_author_and_normalized_text():
    a = post(text="同一条 笔记", author_id="u1")
    assert a.id == post(text="同一条　笔记", author_id="u1").id  # U+3000 normalizes to a space
    assert a.id != post(text="同一条 笔记", author_id="u2").id
    assert a.id != post(text="另一条", author_id="u1").id
    assert re.fullmatch(re.escape(ID_PREFIX) + r"[0-9a-f]{16}", a.id)
    assert a.id == make_post_id("u1", "同一条 笔记")


def test_given_ids_are_kept_as_strings():
    p = post(text="x", id=12345, author_id=987654321)
    assert (p.id, p.author_id) == ("12345", "987654321")
    assert post(text="x", id=" abc ").id == "abc"
    assert post(text="x", id="").id.startswith(ID_PREFIX)


def test_numpy_integers_are_ids_and_counts():
    p = post(text="x", id=np.int64(5), author_id=np.uint32(7), followers=np.int64(12000), likes=np.float32(2.5))
    assert (p.id, p.author_id, p.followers, p.likes) == ("5", "7", 12000, 2.5)
    assert type(p.followers) is int and type(p.likes) is float  # plain Python numbers for the output
    assert error_of(text="x", id=np.bool_(True)).field == "id"
    assert error_of(text="x", likes=np.int64(-1)).reason == "must be a non-negative number"


@pytest.mark.parametrize("bad", [True, 1.5, ["a"], {"a": 1}])
def test_bad_ids_are_rejected(bad):
    assert error_of(text="x", id=bad).field == "id"
    assert error_of(text="x", author_id=bad).field == "author_id"


# -- numbers ----------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1200, 1200),
        (1200.0, 1200),
        (12.5, 12.5),
        (0, 0),
        ("1200", 1200),
        (" 1200 ", 1200),
        ("1,200", 1200),
        ("1,234,567", 1234567),
        ("1.2万", 12000),
        ("3.4w", 34000),
        ("10w+", 100000),
        ("5k", 5000),
        ("2.5", 2.5),
        ("1e3", 1000),
        ("１２００", 1200),  # full-width digits from Chinese spreadsheets
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_counts_accept_numbers_and_numeric_strings(value, expected):
    got = parse_count(value, "likes")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "value",
    ["abc", "-3", -3, -0.5, True, False, "nan", float("nan"), float("inf"), "1.2.3", [1], {}],
)
def test_counts_reject_non_numbers_negatives_and_bools(value):
    with pytest.raises(RecordError) as info:
        parse_count(value, "followers")
    assert info.value.field == "followers"
    assert info.value.reason == "must be a non-negative number"


def test_absurd_counts_are_rejected_without_building_huge_ints():
    with pytest.raises(RecordError, match="implausibly large"):
        parse_count("1e999999999", "likes")


@pytest.mark.parametrize("name", ["followers", "likes", "comments", "collects", "shares"])
def test_every_count_field_is_validated(name):
    assert getattr(post(text="x", **{name: "7"}), name) == 7
    assert error_of(text="x", **{name: "-1"}).field == name


# -- other known fields and pass-through -------------------------------------------------------
@pytest.mark.parametrize("name", ["title", "platform", "lang", "url"])
def test_string_fields_must_be_strings(name):
    assert getattr(post(text="x", **{name: " v "}), name) == "v"
    assert getattr(post(text="x", **{name: ""}), name) is None
    err = error_of(text="x", **{name: 5})
    assert (err.field, err.reason) == (name, "must be a string")


def test_created_at_accepts_strings_unix_times_and_datetimes():
    assert post(text="x", created_at="2024-05-01 10:00").created_at == "2024-05-01 10:00"
    assert post(text="x", created_at=1714557600).created_at == 1714557600
    assert (
        post(text="x", created_at=dt.datetime(2024, 5, 1, 10)).created_at == "2024-05-01T10:00:00"
    )
    assert post(text="x", created_at=dt.date(2024, 5, 1)).created_at == "2024-05-01"
    assert error_of(text="x", created_at=[2024]).field == "created_at"
    assert error_of(text="x", created_at=-5).field == "created_at"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025/3/5", "2025-03-05T00:00:00+00:00"),
        ("2025-3-5 9:30", "2025-03-05T09:30:00+00:00"),
        ("2025-3-5 24:30", None),
        ("2025/03/05T10:00:00+08:00", "2025-03-05T02:00:00+00:00"),
        ("2025年3月5日", "2025-03-05T00:00:00+00:00"),
        ("2025年3月5日 10:00", "2025-03-05T10:00:00+00:00"),
        ("2024-05-01T00:00:00Z", "2024-05-01T00:00:00+00:00"),
        (np.int64(1714521600), "2024-05-01T00:00:00+00:00"),
    ],
)
def test_created_at_is_kept_as_given_when_the_kocs_ranking_can_read_it(value, expected):
    """One parser for both, so no file passes score and then fails kocs or report."""
    if expected is None:
        assert error_of(text="x", created_at=value).field == "created_at"
        return
    kept = post(text="x", created_at=value).created_at
    assert kept == (value if isinstance(value, str) else int(value))
    assert dt.datetime.fromtimestamp(parse_timestamp(kept), dt.timezone.utc).isoformat() == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("03/05/2025 10:00", "is ambiguous (day/month or month/day?)"),
        ("5.3.2025", "is ambiguous (day/month or month/day?)"),
        ("2025/13/5", "is not a date"),
        ("yesterday", "is not a date"),
        (dt.time(10), "must be a date-time string or a Unix time in seconds"),
        (float("inf"), "must be a date-time string or a Unix time in seconds"),
    ],
)
def test_created_at_that_cannot_be_read_is_refused_by_both(value, reason):
    err = error_of(text="x", created_at=value)
    assert (err.field, err.reason) == ("created_at", reason)
    if isinstance(value, str):
        assert err.hint.startswith("write")  # an example of what to write instead
    with pytest.raises(RecordError, match=re.escape(reason)):
        parse_timestamp(value)


def test_unknown_fields_pass_through_untouched_in_order():
    nested = {"tags": ["护肤", "🧴"], "n": None}
    p = post(text="x", zeta=1, label="promotion", meta=nested, likes="12")
    assert list(p.extra) == ["zeta", "label", "meta"]
    assert p.extra["meta"] is nested
    out = p.to_dict()
    assert out["meta"] is nested and out["likes"] == 12 and out["label"] == "promotion"


def test_to_dict_has_id_text_set_known_fields_then_extras():
    p = post(text="好物", author_id="u", followers="1,000", platform="xhs", extra_col="e")
    assert list(p.to_dict()) == ["id", "text", "author_id", "platform", "followers", "extra_col"]


def test_posts_are_frozen_and_hashable():
    p = post(text="x", meta={"a": 1})
    with pytest.raises(AttributeError):
        p.text = "y"  # type: ignore[misc]
    assert hash(p) == hash(post(text="x", meta={"a": 1}))


# -- the error itself ----------------
def test_error_message_names_file_line_and_field():
    err = error_of(text="x", followers="-3").located("posts.csv", 12)
    assert (
        str(err) == "posts.csv, line 12, field 'followers': must be a non-negative number, got '-3'"
    )
    assert (err.source, err.line, err.field) == ("posts.csv", 12, "followers")
    assert err.key == "field 'followers': must be a non-negative number"


def test_error_message_parts_are_optional_and_values_are_cut_short():
    assert str(RecordError("malformed JSON", source="a.jsonl", line=3, detail="x")) == (
        "a.jsonl, line 3: malformed JSON (x)"
    )
    assert (
        str(RecordError("bad", unit="row", line=4, source="p.parquet")) == "p.parquet, row 4: bad"
    )
    long = RecordError("must be a string", field="title", got="长" * 500)
    assert len(str(long)) < 120
    assert str(RecordError("r", hint="do this")) == "r; do this"
