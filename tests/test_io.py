"""Streaming readers and writers: formats, bad input, accounting, atomic output."""

from __future__ import annotations

import gzip
import io
import json
import re
import string
import sys
import tracemalloc
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kocscope.data.io as kio
from kocscope.data.io import (
    PostReader,
    RecordWriter,
    iter_rows,
    nearest_rank,
    posts_from_dataset,
    posts_to_dataset,
    read_posts,
    summarize_posts,
    write_records,
)
from kocscope.data.records import Post, RecordError, SchemaError
from paths import ZHIHU  # tests/ is on sys.path under pytest

TRICKY = [
    {
        "id": "1",
        "text": '感谢品牌方寄样 🎁，真的好用！\n第二段："引号", 逗号',
        "author_id": "u1",
        "likes": 12,
    },
    {"id": "2", "text": 'Line one\r\nline two, with "quotes" and\ttab 👍🏽', "author_id": "u2"},
    {"id": "3", "text": "  前后空格　全角ＡＢＣ  ", "title": "标题\n换行", "followers": 1500000},
]


def jsonl_bytes(*rows: object) -> bytes:
    return b"".join(
        (row if isinstance(row, bytes) else json.dumps(row, ensure_ascii=False).encode()) + b"\n"
        for row in rows
    )


def read_all(path, **kw) -> tuple[list[Post], PostReader]:
    reader = read_posts(path, **kw)
    return list(reader), reader


def rejects_of(path) -> list[dict]:
    text = path.read_text(encoding="utf-8")  # not splitlines(): U+0085/U+2028 may sit in values
    return [json.loads(line) for line in text.split("\n") if line]


# -- round trips ----------------
@pytest.mark.parametrize("name", ["p.jsonl", "p.csv", "p.parquet", "p.jsonl.gz", "p.csv.gz"])
def test_round_trip_keeps_chinese_emoji_and_newlines(tmp_path, name):
    path = tmp_path / name
    assert write_records(path, TRICKY) == 3
    posts, reader = read_all(path)
    got = [{k: v for k, v in p.to_dict().items() if v not in ("", None)} for p in posts]  # CSV: ""
    assert got == TRICKY
    assert reader.stats.read == reader.stats.accepted == 3


def test_posts_round_trip_through_every_format(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl_bytes(*TRICKY))
    first = [p.to_dict() for p in read_posts(source)]
    for name in ["o.csv", "o.parquet", "o.jsonl"]:
        write_records(tmp_path / name, read_posts(source))  # Posts are accepted directly
        again = [
            {k: v for k, v in p.to_dict().items() if v != ""} for p in read_posts(tmp_path / name)
        ]
        assert again == first, name


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5))
def test_any_text_round_trips(tmp_path, texts):
    rows = [{"id": str(i), "text": t} for i, t in enumerate(texts) if _valid(t)]
    for name in ["h.jsonl", "h.csv", "h.parquet"]:
        write_records(tmp_path / name, rows)
        assert [p.to_dict() for p in read_posts(tmp_path / name)] == rows, name


def _valid(text: str) -> bool:
    try:
        Post.from_dict({"text": text})
    except RecordError:
        return False
    return True


# -- JSONL bad input and accounting ----------------
BAD_JSONL = [
    {"text": "好用", "author_id": "a"},  # 1 ok
    b"",  # 2 blank, not a row
    b"{not json",  # 3
    b"[1, 2]",  # 4
    {"content": "x"},  # 5 text missing
    {"text": "   "},  # 6 empty
    {"text": 5},  # 7 wrong type
    {"text": "ok", "followers": -3},  # 8
    b'{"text": "\xb2\xbb\xba\xc3"}',  # 9 invalid UTF-8 (GBK bytes)
    b'{"text": "bad \\ud800 escape"}',  # 10 lone surrogate
    b"   \t",  # 11 blank
    {"text": "also fine 👍"},  # 12 ok
]


def test_skip_counts_every_row_and_writes_rejects(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_bytes(jsonl_bytes(*BAD_JSONL))
    rejects = tmp_path / "rejects.jsonl"
    posts, reader = read_all(path, on_error="skip", rejects_path=rejects)
    stats = reader.stats
    assert [p.text for p in posts] == ["好用", "also fine 👍"]
    assert (stats.read, stats.accepted, stats.rejected) == (10, 2, 8)
    assert stats.read == stats.accepted + stats.rejected
    assert stats.rejects_path == rejects
    rows = rejects_of(rejects)
    assert [r["line"] for r in rows] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert [r["field"] for r in rows] == [
        None,
        None,
        "text",
        "text",
        "text",
        "followers",
        None,
        "text",
    ]
    assert all(r["source"] == str(path) for r in rows)
    assert rows[0]["raw"] == "{not json" and rows[0]["reason"].startswith("malformed JSON")
    assert rows[1]["reason"] == "must be a JSON object, got [1, 2]"
    assert rows[5]["reason"] == "must be a non-negative number, got -3"
    assert "GBK/GB18030" in rows[6]["reason"] and "\\xb2" in rows[6]["raw"]
    assert sum(stats.reasons.values()) == 8
    assert stats.reasons["field 'text': is missing"] == 1
    assert len(stats.first_errors) == kio.FIRST_ERRORS
    assert stats.first_errors[0].startswith(f"{path}, line 3: malformed JSON")


def test_raise_stops_at_the_first_bad_row_with_file_line_and_field(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_bytes(jsonl_bytes({"text": "ok"}, {"text": "ok", "likes": "abc"}, {"text": "never"}))
    reader = read_posts(path)
    seen = []
    with pytest.raises(RecordError) as info:
        for p in reader:
            seen.append(p.text)
    assert seen == ["ok"]
    assert (
        str(info.value)
        == f"{path}, line 2, field 'likes': must be a non-negative number, got 'abc'"
    )
    assert (reader.stats.read, reader.stats.accepted, reader.stats.rejected) == (2, 1, 1)


def test_invalid_utf8_rejects_only_its_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl_bytes({"text": "前"}, b'{"text": "\xff"}', {"text": "后"}))
    posts, reader = read_all(path, on_error="skip")
    assert [p.text for p in posts] == ["前", "后"]
    assert reader.stats.rejected == 1
    with pytest.raises(
        RecordError,
        match=r"line 2: not valid UTF-8 \(byte 0xff at offset 10\); .*--encoding gb18030",
    ):
        list(read_posts(path))


def test_blank_lines_are_not_rows_but_keep_line_numbers(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'\n\r\n  \n{"text": "a"}\n\n{"text": 1}\n')
    _, reader = read_all(path, on_error="skip")
    assert (reader.stats.read, reader.stats.rejected) == (2, 1)
    assert reader.stats.first_errors == [f"{path}, line 6, field 'text': must be a string, got 1"]


def test_bom_and_crlf_are_handled(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "b"}\r\n')
    assert [p.text for p in read_posts(path)] == ["a", "b"]


def test_overlong_line_is_rejected_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(kio, "MAX_LINE_BYTES", 64)
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"[" + b'{"text": "x"},' * 50 + b"]\n" + jsonl_bytes({"text": "after"}))
    posts, reader = read_all(path, on_error="skip")
    assert [p.text for p in posts] == ["after"]
    assert (
        "line 1: line longer than 64 bytes; JSON Lines needs one object per line"
        in reader.stats.first_errors[0]
    )


def test_deeply_nested_json_is_a_rejected_row_not_a_crash(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"[" * 100_000 + b"\n" + jsonl_bytes({"text": "ok"}))
    posts, reader = read_all(path, on_error="skip")
    assert [p.text for p in posts] == ["ok"] and reader.stats.reasons == Counter(
        {"malformed JSON": 1}
    )


def test_stdin_is_json_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(jsonl_bytes({"text": "来自stdin"})))
    )
    posts, reader = read_all("-")
    assert [p.text for p in posts] == ["来自stdin"] and reader.stats.source == "<stdin>"


# -- CSV ----------------
def test_csv_bad_rows_and_physical_line_numbers(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text(
        "text,author_id,followers\n"  # 1
        '"两行\n的文本",u1,10\n'  # 2-3
        "too,many,fields,here\n"  # 4
        ",,\n"  # 5 blank row, not counted
        "ok,u2,-3\n"  # 6
        "short\n"  # 7
        '"bad"quote,u3,1\n'  # 8
        "fine,u4,1.2万\n",  # 9
        encoding="utf-8",
    )
    rejects = tmp_path / "r.jsonl"
    posts, reader = read_all(path, on_error="skip", rejects_path=rejects)
    assert [(p.text, p.followers) for p in posts] == [("两行\n的文本", 10), ("fine", 12000)]
    rows = rejects_of(rejects)
    assert [r["line"] for r in rows] == [4, 6, 7, 8]
    assert rows[0]["reason"] == "has 4 fields but the header has 3"
    assert rows[0]["raw"] == "too,many,fields,here"
    assert rows[1]["field"] == "followers"
    assert rows[3]["reason"].startswith("malformed CSV")
    assert (reader.stats.read, reader.stats.accepted, reader.stats.rejected) == (6, 2, 4)
    with pytest.raises(RecordError, match=rf"^{path}, line 4: has 4 fields but the header has 3$"):
        list(read_posts(path))


def test_csv_missing_text_column_fails_up_front_even_when_skipping(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("内容,用户\n好用,u\n", encoding="utf-8")
    with pytest.raises(SchemaError) as info:
        list(read_posts(path, on_error="skip"))
    message = str(info.value)
    assert message.startswith(f"{path}, line 1: no column 'text'")
    assert "columns: 内容, 用户" in message and "--text-column" in message
    posts = list(read_posts(path, text_column="内容", author_column="用户"))
    assert posts[0].to_dict() == {"id": posts[0].id, "text": "好用", "author_id": "u"}


def test_csv_duplicate_header_is_a_schema_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text,a,a\nx,1,2\n", encoding="utf-8")
    with pytest.raises(SchemaError, match="duplicate column names in the header: 'a'"):
        list(read_posts(path, on_error="skip"))


def test_csv_invalid_utf8_rejects_only_that_row(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b'text\n\xef\xbb\xbfok\n\xb2\xbb\xba\xc3\n"multi\n\xff line"\nlast\n')
    posts, reader = read_all(path, on_error="skip")
    assert [p.text for p in posts] == ["ok", "last"]  # a BOM inside the file is invisible: dropped
    assert reader.stats.rejected == 2
    assert ", line 3: not valid UTF-8" in reader.stats.first_errors[0]
    assert ", line 5: not valid UTF-8" in reader.stats.first_errors[1]  # reported at the bad line


def test_gbk_needs_an_explicit_encoding_and_the_error_says_so(tmp_path):
    for name, content in [
        ("gbk.csv", "text,author_id\n这款面霜真的很好用,用户甲\n"),
        ("gbk.jsonl", '{"text": "这款面霜真的很好用", "author_id": "用户甲"}\n'),
    ]:
        path = tmp_path / name
        path.write_bytes(content.encode("gbk"))
        with pytest.raises(RecordError) as info:
            list(read_posts(path))
        line = 2 if name.endswith(".csv") else 1
        assert f"{path}, line {line}: not valid UTF-8" in str(info.value)
        assert "if this is a GBK/GB18030 export, pass --encoding gb18030" in str(info.value)
        for encoding in ("gbk", "gb18030"):
            (post,) = read_posts(path, encoding=encoding)
            assert (post.text, post.author_id) == ("这款面霜真的很好用", "用户甲")


def test_encodings_that_do_not_split_on_newline_bytes_are_refused(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes("text\nx\n".encode("utf-16"))
    with pytest.raises(ValueError, match="not supported"):
        read_posts(path, encoding="utf-16")
    with pytest.raises(ValueError, match="unknown encoding"):
        read_posts(path, encoding="no-such-codec")


# -- Parquet ----------------
def test_parquet_rows_are_numbered_and_typed(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"], "likes": [1, 2, -1]}), path)
    _, reader = read_all(path, on_error="skip")
    assert reader.stats.first_errors == [
        f"{path}, row 2, field 'text': is missing (fields: text, likes)",
        f"{path}, row 3, field 'likes': must be a non-negative number, got -1",
    ]


def test_parquet_wrong_type_and_unreadable_file(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), path)
    _, reader = read_all(path, on_error="skip")
    assert reader.stats.reasons == Counter({"field 'text': must be a string": 2})
    path.write_bytes(b"not parquet at all")
    with pytest.raises(RecordError, match="not a readable Parquet file"):
        list(read_posts(path, on_error="skip"))


def test_parquet_timestamps_and_missing_column(tmp_path):
    import datetime as dt

    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"body": ["x"], "created_at": [dt.datetime(2024, 5, 1, 8, 30)]}), path)
    with pytest.raises(SchemaError, match="no column 'text'"):
        list(read_posts(path))
    (post,) = read_posts(path, column_map={"text": "body"})
    assert post.created_at == "2024-05-01T08:30:00"


# -- column mapping ----------------
def test_column_map_and_shortcuts(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl_bytes({"content": "好物", "user": 7, "pid": "p1", "x": 1}))
    (post,) = read_posts(path, column_map={"text": "content", "author_id": "user"}, id_column="pid")
    assert post.to_dict() == {"id": "p1", "text": "好物", "author_id": "7", "x": 1}
    (same,) = read_posts(path, text_column="content", author_column="user", id_column="pid")
    assert same == post


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"column_map": {"text": "a"}, "text_column": "b"},
            "maps 'text' to 'a' but text_column says 'b'",
        ),
        ({"column_map": {"txt": "a"}}, "must be post fields"),
        ({"column_map": {"text": "a", "title": "a"}}, "more than one field"),
        ({"column_map": {"text": ""}}, "must be a column name"),
    ],
)
def test_bad_column_maps_are_usage_errors(tmp_path, kwargs, message):
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl_bytes({"text": "x"}))
    with pytest.raises(ValueError, match=message):
        read_posts(path, **kwargs)


def test_mapped_column_clashing_with_our_name(tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("text,content\nhtml,正文\n", encoding="utf-8")
    with pytest.raises(SchemaError, match="column 'text' clashes with column 'content'"):
        list(read_posts(csv_path, text_column="content"))
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_bytes(jsonl_bytes({"text": "a", "content": "b"}, {"content": "c"}))
    posts, reader = read_all(jsonl, text_column="content", on_error="skip")
    assert [p.text for p in posts] == ["c"]
    assert reader.stats.first_errors[0].startswith(f"{jsonl}, line 1, field 'text': clashes")
    swapped = list(read_posts(csv_path, column_map={"text": "content", "title": "text"}))
    assert (swapped[0].text, swapped[0].title) == ("正文", "html")


def test_mapped_optional_column_absent_from_header(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text,uid\nx,1\n", encoding="utf-8")
    with pytest.raises(
        SchemaError, match=r"no column 'user' \(mapped to 'author_id'\) \(columns: text, uid\)"
    ):
        list(read_posts(path, author_column="user"))


# -- options and files ----------------
def test_file_level_usage_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_posts(tmp_path / "missing.jsonl")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(
        ValueError, match=r"unknown file type '\.txt'; use \.jsonl, \.csv or \.parquet"
    ):
        read_posts(tmp_path / "p.txt")
    (tmp_path / "p.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="on_error"):
        read_posts(tmp_path / "p.jsonl", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="would overwrite the input"):
        read_posts(tmp_path / "p.jsonl", on_error="skip", rejects_path=tmp_path / "p.jsonl")
    with pytest.raises(ValueError, match="name it .jsonl"):
        read_posts(tmp_path / "p.jsonl", on_error="skip", rejects_path=tmp_path / "r.csv")


def test_reading_again_starts_fresh_and_abandoned_reads_write_no_rejects(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl_bytes({"text": "a"}, b"bad", {"text": "b"}))
    rejects = tmp_path / "r.jsonl"
    reader = read_posts(path, on_error="skip", rejects_path=rejects)
    iterator = iter(reader)
    next(iterator)
    iterator.close()
    assert not rejects.exists() and list(tmp_path.iterdir()) == [path]
    assert [p.text for p in reader] == ["a", "b"]
    assert [p.text for p in reader] == ["a", "b"]
    assert (reader.stats.read, reader.stats.rejected) == (3, 1)
    assert len(rejects_of(rejects)) == 1


def test_corrupt_gzip_is_reported_with_its_line(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    data = gzip.compress(jsonl_bytes(*({"text": f"post {i}"} for i in range(2000))))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordError, match=r"line \d+: corrupt or truncated gzip data"):
        list(read_posts(path, on_error="skip"))


def test_iter_rows_reports_errors_inside_rows(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl_bytes({"a": 1}, b"oops"))
    rows = list(iter_rows(path))
    assert (rows[0].line, rows[0].data, rows[0].error) == (1, {"a": 1}, None)
    assert rows[1].data is None and rows[1].error is not None and rows[1].error.line == 2


def test_reading_memory_stays_flat(tmp_path, monkeypatch):
    """Files are streamed: peak Python memory while reading is a small fraction of the data."""
    monkeypatch.setattr(kio, "BATCH_ROWS", 100)
    rows = [
        {
            "text": f"post {i} " + "really good stuff " * 30 + "好用",
            "author_id": f"u{i % 50}",
            "likes": i,
        }
        for i in range(1500)
    ]
    data_size = len(jsonl_bytes(*rows))
    assert data_size > 800_000
    for name in ["big.jsonl", "big.csv", "big.parquet"]:
        path = tmp_path / name
        with RecordWriter(path, batch_rows=100) as out:
            for row in rows:
                out.write(row)
        reader = read_posts(path)
        for _ in zip(range(10), reader, strict=False):
            pass  # warm up imports and caches
        tracemalloc.start()
        count = sum(1 for _ in reader)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == len(rows)
        assert peak < data_size / 4, (name, peak, data_size)


# -- writers ----------------
def test_writer_is_atomic_on_error(tmp_path):
    for name in ["out.jsonl", "out.csv", "out.parquet", "out.csv.gz"]:
        target = tmp_path / name
        target.write_bytes(b"previous")
        with pytest.raises(RuntimeError, match="boom"):
            with RecordWriter(target, batch_rows=1) as out:
                out.write({"a": 1})
                out.write({"a": 2})
                assert target.read_bytes() == b"previous"
                assert len(list(tmp_path.iterdir())) > 1  # the hidden temp file
                raise RuntimeError("boom")
        assert target.read_bytes() == b"previous"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_writer_needs_a_with_block(tmp_path):
    with pytest.raises(RuntimeError, match="with-block"):
        RecordWriter(tmp_path / "o.jsonl").write({"a": 1})


def test_csv_writer_widens_the_header_for_late_fields_and_encodes_nested_values(tmp_path):
    path = tmp_path / "o.csv"
    n = write_records(
        path,
        [
            {"id": 1, "tags": ["a", "好"], "ok": True},
            {"id": 2, "late": "新列\n两行", "score": np.float32(0.25)},
        ],
    )
    assert n == 2
    with open(path, encoding="utf-8", newline="") as fh:
        lines = fh.read()
    assert lines.splitlines()[0] == "id,tags,ok,late,score"
    import csv

    rows = list(csv.DictReader(io.StringIO(lines)))
    assert rows[0] == {"id": "1", "tags": '["a", "好"]', "ok": "true", "late": "", "score": ""}
    assert rows[1] == {"id": "2", "tags": "", "ok": "", "late": "新列\n两行", "score": "0.25"}


def test_parquet_writer_merges_batches_with_new_columns_and_widened_types(tmp_path):
    path = tmp_path / "o.parquet"
    rows = [{"a": None}, {"a": None}, {"a": 1, "b": "x"}, {"a": 2.5}, {"c": [1, 2]}]
    with RecordWriter(path, batch_rows=2) as out:
        for row in rows:
            out.write(row)
    table = pq.read_table(path)
    assert table.column_names == ["a", "b", "c"]
    assert table.schema.field("a").type == pa.float64()
    assert table.to_pylist() == [
        {"a": None, "b": None, "c": None},
        {"a": None, "b": None, "c": None},
        {"a": 1.0, "b": "x", "c": None},
        {"a": 2.5, "b": None, "c": None},
        {"a": None, "b": None, "c": [1, 2]},
    ]
    assert pq.ParquetFile(path).num_row_groups == 3
    assert [p.name for p in tmp_path.iterdir()] == ["o.parquet"]


def test_parquet_writer_rejects_a_column_whose_type_changes(tmp_path):
    path = tmp_path / "o.parquet"
    with pytest.raises(ValueError, match="records 2-2 change a column's type"):
        with RecordWriter(path, batch_rows=1) as out:
            out.write({"a": 1})
            out.write({"a": "one"})
    with pytest.raises(ValueError, match="column 'a' mixes value types"):
        write_records(path, [{"a": 1}, {"a": "one"}])
    assert list(tmp_path.iterdir()) == []


def test_empty_outputs_are_valid_files(tmp_path):
    for name in ["e.jsonl", "e.csv", "e.parquet"]:
        assert write_records(tmp_path / name, []) == 0
        posts, reader = read_all(tmp_path / name)
        assert posts == [] and reader.stats.read == 0


def test_numpy_and_datetime_values_are_written(tmp_path):
    import datetime as dt

    row = {"p": np.float32(0.75), "n": np.int64(3), "v": np.array([1, 2]), "t": dt.date(2024, 1, 2)}
    write_records(tmp_path / "o.jsonl", [row])
    assert json.loads((tmp_path / "o.jsonl").read_text()) == {
        "p": 0.75,
        "n": 3,
        "v": [1, 2],
        "t": "2024-01-02",
    }
    write_records(tmp_path / "o.parquet", [row])
    assert pq.read_table(tmp_path / "o.parquet").to_pylist()[0]["v"] == [1, 2]
    with pytest.raises(TypeError, match="cannot write a value of type object"):
        write_records(tmp_path / "bad.jsonl", [{"x": object()}])
    assert not (tmp_path / "bad.jsonl").exists()


def test_dash_writes_json_lines_to_stdout(capsys):
    assert write_records("-", [{"text": "好"}, {"text": "b"}]) == 2
    assert capsys.readouterr().out == '{"text": "好"}\n{"text": "b"}\n'


def test_unknown_output_format(tmp_path):
    with pytest.raises(ValueError, match="unknown file type"):
        RecordWriter(tmp_path / "o.xlsx")
    with pytest.raises(ValueError, match="drop the .gz"):
        RecordWriter(tmp_path / "o.parquet.gz")
    assert RecordWriter(tmp_path / "o.data", fmt="csv").format.kind == "csv"


# -- datasets ----------------
def test_datasets_round_trip(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl_bytes(*TRICKY))
    ds = posts_to_dataset(read_posts(path))
    assert isinstance(ds, datasets.Dataset) and ds.num_rows == 3
    assert set(ds.column_names) == {"id", "text", "author_id", "likes", "title", "followers"}
    back = [p.to_dict() for p in posts_from_dataset(ds)]
    assert [{k: v for k, v in r.items() if v is not None} for r in back] == TRICKY


def test_posts_from_dataset_maps_columns_and_reports_rows():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"content": ["好", "", "c"], "label": [1, 0, 1]})
    reader = posts_from_dataset(ds, text_column="content", on_error="skip")
    assert [(p.text, p.extra) for p in reader] == [("好", {"label": 1}), ("c", {"label": 1})]
    assert reader.stats.first_errors == ["<dataset>, row 2, field 'text': is empty, got ''"]
    with pytest.raises(SchemaError, match="no column 'text'"):
        list(posts_from_dataset(ds))
    with pytest.raises(ValueError, match="pass one split"):
        posts_from_dataset(datasets.DatasetDict({"train": ds}))
    assert posts_to_dataset([]).num_rows == 0


# -- summary ----------------
def test_nearest_rank_quantiles():
    counts = Counter({n: 1 for n in range(1, 11)})
    assert [nearest_rank(counts, q) for q in (0.1, 0.5, 0.9, 1.0)] == [1, 5, 9, 10]
    assert nearest_rank(Counter({7: 3}), 0.5) == 7


def test_summarize_posts(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        jsonl_bytes(
            {"text": "#ad I love this serum so much, it works great", "author_id": "a", "likes": 3},
            {"text": "商务合作 感谢品牌方 这款面霜很好用", "author_id": "b"},
            {"text": "今天天气很好我们去公园散步了", "title": "周末"},
            {"text": ""},
        )
    )
    summary = summarize_posts(read_posts(path, on_error="skip"))
    assert (summary.stats.read, summary.stats.accepted, summary.stats.rejected) == (4, 3, 1)
    assert summary.languages == {"zh": 2, "en": 1, "mixed": 0, "other": 0}
    assert (
        summary.fields["author_id"] == 2
        and summary.fields["likes"] == 1
        and summary.fields["title"] == 1
    )
    assert summary.with_disclosure == 2 and summary.disclosure_share == pytest.approx(2 / 3)
    short, middle, long = sorted(len(p.text) for p in read_posts(path, on_error="skip"))
    assert summary.text_length == {"p10": short, "p50": middle, "p90": long, "max": long}
    data = summary.to_dict()
    assert data["read"] == 4 and data["reasons"] == {"field 'text': is empty": 1}


# -- properties: no row is ever lost silently ----------------
def _nonblank_lines(data: bytes) -> int:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return sum(1 for line in data.split(b"\n") if line.strip())


line_bytes = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b"", b"  ", b"\r", b"{}", b'{"text": "x"}', b'{"text": ""}', b"[]", b"\xef\xbb\xbf"]
    ),
    st.builds(
        lambda d: json.dumps(d, ensure_ascii=False).encode(),
        st.dictionaries(
            st.sampled_from(["text", "likes", "author_id", "x"]),
            st.one_of(st.text(max_size=8), st.integers(-5, 5), st.none()),
        ),
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(line_bytes, max_size=12), tail=st.booleans())
def test_jsonl_accounts_for_every_nonblank_line(tmp_path, lines, tail):
    data = b"\n".join(lines) + (b"\n" if tail else b"")
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    _, reader = read_all(path, on_error="skip")
    stats = reader.stats
    assert stats.read == stats.accepted + stats.rejected
    assert stats.read == _nonblank_lines(data)
    assert sum(stats.reasons.values()) == stats.rejected


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.lists(
        st.one_of(
            st.binary(max_size=30), st.text(string.printable + '好"', max_size=20).map(str.encode)
        ),
        max_size=10,
    )
)
@example(body=[b"\r "])  # a bare \r ends a csv line: the space after it is a row of its own
def test_csv_accounts_for_every_row(tmp_path, body):
    data = b"text,author_id\n" + b"\n".join(body)
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    rejects = tmp_path / "r.jsonl"
    _, reader = read_all(path, on_error="skip", rejects_path=rejects)
    stats = reader.stats
    assert stats.read == stats.accepted + stats.rejected
    # csv breaks lines at \r as well as \n, and a whitespace-only line is a row (rejected, not lost)
    assert stats.read <= sum(1 for line in re.split(rb"\r\n|\r|\n", data) if line) - 1
    assert len(rejects_of(rejects)) == stats.rejected


# -- the real corpus ----------------
ZHIHU_VAL = str(ZHIHU / "val.jsonl")


@pytest.mark.integration
def test_real_corpus_reads_whole_and_round_trips(tmp_path):
    import os

    if not os.path.exists(ZHIHU_VAL):
        pytest.skip("zhihu16k validation split not present")
    posts, reader = read_all(ZHIHU_VAL)
    assert (reader.stats.read, reader.stats.accepted) == (1530, 1530)  # the corpus README's count
    assert all(set(p.extra) == {"topic", "label", "line_labels"} for p in posts)
    first = [p.to_dict() for p in posts]
    write_records(tmp_path / "val.parquet", posts)
    assert [p.to_dict() for p in read_posts(tmp_path / "val.parquet")] == first
    write_records(tmp_path / "val.csv.gz", posts)
    as_csv = [  # CSV cells are strings, nested lists JSON-encoded
        {**row, "label": str(row["label"]), "line_labels": json.dumps(row["line_labels"])}
        for row in first
    ]
    assert [p.to_dict() for p in read_posts(tmp_path / "val.csv.gz")] == as_csv
