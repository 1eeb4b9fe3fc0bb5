"""`kocscope inspect`: summary output, --json, rejects and exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kocscope.cli import app

runner = CliRunner()

POSTS = [
    {"text": "#ad I love this serum so much, it works great", "author_id": "a", "likes": 3},
    {"text": "商务合作 感谢品牌方 这款面霜很好用", "author_id": "b", "followers": "1.2万"},
    {"text": "今天天气很好我们去公园散步了", "title": "周末"},
]


def write_jsonl(path, *rows) -> str:
    path.write_text(
        "".join(
            (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows
        ),
        encoding="utf-8",
    )
    return str(path)


def inspect(*args: str, **kw):
    return runner.invoke(app, ["inspect", *args], **kw)


def test_table_summary(tmp_path):
    result = inspect(write_jsonl(tmp_path / "p.jsonl", *POSTS, '{"text": ""}'))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in [
        "rows read",
        "│ 4 ",
        "1 x field 'text': is empty",
        "zh 66.7%",
        "en 33.3%",
        "with disclosure cues │ 66.7%",
        "field author_id",
        "field platform       │ absent",
        "rejected: ",
        "line 4, field 'text': is empty",
    ]:
        assert expected in out, expected


def test_json_summary(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", *POSTS, "[1]")
    result = inspect(path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["read"], data["accepted"], data["rejected"]) == (4, 3, 1)
    assert data["reasons"] == {"must be a JSON object": 1}
    assert data["first_errors"] == [f"{path}, line 4: must be a JSON object, got [1]"]
    assert data["languages"] == {"zh": 2, "en": 1, "mixed": 0, "other": 0}
    assert data["fields"]["followers"] == 1 and data["fields"]["url"] == 0
    assert data["with_disclosure"] == 2
    assert set(data["text_length"]) == {"p10", "p50", "p90", "max"}
    assert data["rejects_path"] is None


def test_rejects_file_and_raise_exit_code(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", POSTS[0], {"text": "x", "likes": "-3"})
    rejects = tmp_path / "rejects.jsonl"
    result = inspect(path, "--rejects", str(rejects), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["rejects_path"] == str(rejects)
    (reject,) = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert (reject["line"], reject["field"]) == (2, "likes")

    result = inspect(path, "--on-error", "raise")
    assert result.exit_code == 1
    assert (
        f"{path}, line 2, field 'likes': must be a non-negative number, got '-3'" in result.stderr
    )


def test_column_options_and_csv(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("内容,用户,编号\n好用推荐,u1,p1\n不错,u2,p2\n", encoding="utf-8")
    result = inspect(str(path), "--json")
    assert result.exit_code == 2
    assert "no column 'text'" in result.stderr and "--text-column" in result.stderr
    result = inspect(
        str(path),
        "--text-column",
        "内容",
        "--author-column",
        "用户",
        "--id-column",
        "编号",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["accepted"] == 2 and data["fields"]["author_id"] == 2


def test_gbk_hint_and_encoding_option(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("text\n这款面霜真的很好用\n".encode("gbk"))
    result = inspect(str(path), "--on-error", "raise")
    assert result.exit_code == 1
    assert "line 2: not valid UTF-8" in result.stderr and "--encoding gb18030" in result.stderr
    result = inspect(str(path), "--encoding", "gb18030", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["accepted"] == 1


def test_stdin(tmp_path):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in POSTS)
    result = inspect("-", "--json", input=data)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accepted"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "no such file"),
        (["notes.txt"], "unknown file type '.txt'"),
        (["p.jsonl", "--on-error", "ignore"], "--on-error must be 'skip' or 'raise'"),
        (["p.jsonl", "--encoding", "klingon"], "unknown encoding"),
        (["p.jsonl", "--rejects", "r.csv"], "name it .jsonl"),
    ],
)
def test_usage_errors_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "p.jsonl", *POSTS)
    (tmp_path / "notes.txt").write_text("hello")
    result = inspect(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_unreadable_file_exits_1(tmp_path):
    path = tmp_path / "p.parquet"
    path.write_bytes(b"garbage")
    result = inspect(str(path))
    assert result.exit_code == 1
    assert "not a readable Parquet file" in result.stderr


def test_help_documents_the_default_on_error():
    result = runner.invoke(app, ["inspect", "--help"])
    assert result.exit_code == 0
    assert "skip" in result.stdout and "raise" in result.stdout and "Exit codes" in result.stdout
