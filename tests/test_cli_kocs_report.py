"""`kocscope kocs` and `kocscope report` through typer's CliRunner: outputs and exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import types

import pytest
from typer.testing import CliRunner

from kocscope.cli import app

runner = CliRunner()
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def row(author, i, p, seeding=0.7, **extra):
    out = {
        "id": f"{author}-{i}",
        "author_id": author,
        "text": f"post {i} 推荐 闭眼入",
        "p_promotion": p,
        "authenticity": 1 - p,
        "label": "promotion" if p >= 0.5 else "genuine",
        "seeding": seeding,
        "followers": 10_000,
        "likes": 400,
        "created_at": f"2024-05-{i + 1:02d}",
    }
    out.update(extra)
    return out


def rows():
    data = [row("koc", i, 0.05) for i in range(6)]
    data += [row("shill", i, 0.9) for i in range(5)]
    data += [row("new", 0, 0.0)]
    data += [{**row("x", 0, 0.1), "author_id": None}, {**row("x", 1, 0.1), "author_id": ""}]
    data += [row(XSS, i, 0.2, text=XSS) for i in range(3)]
    return data


def write_jsonl(path, data):
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8"
    )
    return path


@pytest.fixture
def scored(tmp_path):
    return write_jsonl(tmp_path / "scored.jsonl", rows())


def test_kocs_table_and_footer(scored):
    result = runner.invoke(app, ["kocs", str(scored)])
    assert result.exit_code == 0, result.output
    assert "KOC ranking" in result.stdout and "koc" in result.stdout
    assert "2 posts without author_id" in result.stdout
    assert "1 authors with fewer than 3 posts (1 posts)" in result.stdout
    assert "<script>alert(1)</script>" in result.stdout  # rich markup is not interpreted
    assert result.stdout.index("koc ") < result.stdout.index("shill")


def test_kocs_json(scored):
    result = runner.invoke(app, ["kocs", str(scored), "--json", "--top", "2", "--min-posts", "1"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [a["rank"] for a in payload["authors"]] == [1, 2]
    assert payload["authors"][0]["author_id"] == "koc"
    assert payload["n_posts"] == 17 and payload["n_ranked"] == 4
    assert payload["skipped"]["posts_without_author"] == 2
    assert payload["settings"]["min_posts"] == 1 and payload["settings"]["followers"] == [
        1000,
        100000,
    ]


@pytest.mark.parametrize("name", ["authors.csv", "authors.jsonl", "authors.parquet"])
def test_kocs_writes_the_full_ranking(scored, tmp_path, name):
    out = tmp_path / name
    result = runner.invoke(app, ["kocs", str(scored), "--top", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    if name.endswith(".csv"):
        with open(out, newline="", encoding="utf-8") as fh:
            records = list(csv.DictReader(fh))
        assert json.loads(records[0]["top_post_ids"])[0].startswith("koc-")
        assert (
            json.loads(records[0]["reasons"])
            and json.loads(records[0]["factors"])["follower_fit"] == 1.0
        )
    elif name.endswith(".jsonl"):
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    else:
        import pyarrow.parquet as pq

        records = pq.read_table(out).to_pylist()
    assert len(records) == 3  # every ranked author, not only --top
    assert records[0]["author_id"] == "koc"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scored.jsonl", name])


def test_kocs_weights_and_band_change_the_result(scored):
    base = json.loads(runner.invoke(app, ["kocs", str(scored), "--json"]).stdout)
    narrow = json.loads(
        runner.invoke(app, ["kocs", str(scored), "--json", "--followers", ":5k"]).stdout
    )
    assert base["authors"][0]["follower_fit"] == 1.0 and narrow["authors"][0]["follower_fit"] < 1.0
    only_seed = runner.invoke(
        app,
        [
            "kocs",
            str(scored),
            "--json",
            "--w-authenticity",
            "0",
            "--w-followers",
            "0",
            "--w-engagement",
            "0",
            "--w-activity",
            "0",
        ],
    )
    assert only_seed.exit_code == 0
    top = json.loads(only_seed.stdout)["authors"][0]
    assert top["score"] == pytest.approx(top["factors"]["seeding"])


@pytest.mark.parametrize(
    "args",
    [
        ["--followers", "1000"],
        ["--followers", "abc:10"],
        ["--followers", "100:10"],
        ["--confidence", "1.5"],
        ["--now", "someday"],
        ["--w-seeding", "-1"],
        ["--min-posts", "0"],
        ["-o", "authors.xlsx"],
    ],
)
def test_kocs_usage_errors_exit_2(scored, tmp_path, args):
    args = [str(tmp_path / a) if a.endswith(".xlsx") else a for a in args]
    result = runner.invoke(app, ["kocs", str(scored), *args])
    assert result.exit_code == 2, result.output


def test_missing_or_unknown_input_exits_2(tmp_path):
    assert runner.invoke(app, ["kocs", str(tmp_path / "nope.jsonl")]).exit_code == 2
    (tmp_path / "posts.txt").write_text("x")
    result = runner.invoke(app, ["kocs", str(tmp_path / "posts.txt")])
    assert result.exit_code == 2 and "unknown file type" in result.output


def test_bad_row_exits_1_naming_file_line_and_field(tmp_path):
    data = rows()[:4]
    data[2]["p_promotion"] = "high"
    path = write_jsonl(tmp_path / "bad.jsonl", data)
    result = runner.invoke(app, ["kocs", str(path)])
    assert result.exit_code == 1
    assert (
        f"{path}, line 3, field 'p_promotion': must be a number in [0, 1], got 'high'"
        in result.output
    )


def test_bad_csv_row_and_malformed_json(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "id,author_id,text,p_promotion,label,seeding\n1,a,t,0.1,genuine,0.5\n2,a,t,0.1,genuine,2\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["kocs", str(path)])
    assert result.exit_code == 1 and f"{path}, line 3, field 'seeding'" in result.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(row("a", 0, 0.1)) + "\n{not json\n", encoding="utf-8")
    result = runner.invoke(app, ["kocs", str(broken)])
    assert result.exit_code == 1 and "line 2" in result.output and "malformed JSON" in result.output


def test_several_files_are_ranked_together(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [row("koc", i, 0.05) for i in range(2)])
    b = write_jsonl(tmp_path / "b.jsonl", [row("koc", i, 0.05) for i in range(2, 4)])
    payload = json.loads(runner.invoke(app, ["kocs", str(a), str(b), "--json"]).stdout)
    assert payload["authors"][0]["n_posts"] == 4


def test_unscored_input_goes_through_the_scoring_engine(tmp_path, monkeypatch):
    calls = []

    def score_records(records, model=None):
        for r in records:
            calls.append(r["id"])
            yield {**r, "p_promotion": 0.1, "authenticity": 0.9, "label": "genuine", "seeding": 0.5}

    fake = types.ModuleType("kocscope.inference.scoring")
    fake.score_records = score_records
    monkeypatch.setitem(sys.modules, "kocscope.inference.scoring", fake)
    raw = write_jsonl(
        tmp_path / "posts.jsonl", [{"id": f"p{i}", "author_id": "a", "text": "t"} for i in range(3)]
    )
    result = runner.invoke(app, ["kocs", str(raw), "--json"])
    assert result.exit_code == 0, result.output
    assert calls == ["p0", "p1", "p2"]
    assert json.loads(result.stdout)["authors"][0]["author_id"] == "a"


def test_unscored_input_errors_point_at_file_and_line(tmp_path, monkeypatch):
    from kocscope.data.records import RecordError
    from kocscope.models.bundle import BundleError

    def score_records(records, model=None):
        for i, r in enumerate(records, start=1):
            if not r.get("text"):
                raise RecordError("is empty", source="<records>", line=i, unit="record", field="text")
            yield {**r, "p_promotion": 0.1, "authenticity": 0.9, "label": "genuine", "seeding": 0.5}

    fake = types.ModuleType("kocscope.inference.scoring")
    fake.score_records = score_records
    monkeypatch.setitem(sys.modules, "kocscope.inference.scoring", fake)
    raw = tmp_path / "posts.jsonl"
    raw.write_text('{"id": "a", "author_id": "x", "text": "ok"}\n\n{"id": "b", "author_id": "x", "text": ""}\n',
                   encoding="utf-8")
    result = runner.invoke(app, ["kocs", str(raw)])
    assert result.exit_code == 1 and f"{raw}, line 3, field 'text': is empty" in result.output

    def no_model(records, model=None):
        raise BundleError("no default model is installed")
        yield  # pragma: no cover

    fake.score_records = no_model
    result = runner.invoke(app, ["report", str(raw), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "no default model" in result.output  # as score: a bundle problem
    result = runner.invoke(app, ["kocs", str(raw), "--model", str(tmp_path / "no-such-bundle")])
    assert result.exit_code == 2 and "no-such-bundle" in result.output


def test_unscored_input_without_scoring_engine_exits_1(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kocscope.inference.scoring", None)  # import fails
    raw = write_jsonl(tmp_path / "posts.jsonl", [{"id": "p", "author_id": "a", "text": "t"}])
    result = runner.invoke(app, ["kocs", str(raw)])
    assert result.exit_code == 1 and "no p_promotion" in result.output
    assert runner.invoke(app, ["report", str(raw), "-o", str(tmp_path / "r.html")]).exit_code == 1


def test_report_command(scored, tmp_path):
    out = tmp_path / "out" / "report.html"
    result = runner.invoke(
        app, ["report", str(scored), "-o", str(out), "--top", "3", "--examples", "2"]
    )
    assert result.exit_code == 0, result.output
    doc = out.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>") and "KOC leaderboard" in doc
    assert "<script" not in doc and "<img" not in doc and "&lt;script&gt;" in doc
    assert "from scored.jsonl" in doc


def test_report_and_kocs_read_a_folder_of_shards_in_name_order(scored, tmp_path):
    data = rows()
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "part-00001.jsonl", data[8:])
    write_jsonl(shards / "part-00000.jsonl", data[:8])
    (shards / "_kocscope_score.json").write_text("{}", encoding="utf-8")  # a run marker, not a shard
    # score's rejects file beside its output: bad rows with reasons, not posts
    write_jsonl(shards / "part-00001.jsonl.rejects.jsonl", [{"source": "x", "line": 3, "reason": "empty"}])
    whole = runner.invoke(app, ["kocs", str(scored), "--json", "--min-posts", "1"])
    folder = runner.invoke(app, ["kocs", str(shards), "--json", "--min-posts", "1"])
    assert folder.exit_code == 0, folder.output
    assert json.loads(folder.stdout)["authors"] == json.loads(whole.stdout)["authors"]
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(shards), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "KOC leaderboard" in out.read_text(encoding="utf-8")
    globbed = runner.invoke(app, ["kocs", str(shards / "*.jsonl"), "--json", "--min-posts", "1"])
    assert globbed.exit_code == 0, globbed.output
    assert json.loads(globbed.stdout)["authors"] == json.loads(whole.stdout)["authors"]
    assert "left out 1 rejects file(s)" in globbed.stderr


def test_outputs_never_overwrite_inputs_and_write_failures_exit_2(scored, tmp_path):
    before = scored.read_bytes()
    result = runner.invoke(app, ["kocs", str(scored), "-o", str(scored)])
    assert result.exit_code == 2 and "is also an input" in result.output
    assert scored.read_bytes() == before
    link = tmp_path / "latest.html"  # a link that leads back to the input
    link.symlink_to(scored)
    result = runner.invoke(app, ["report", str(scored), "-o", str(link)])
    assert result.exit_code == 2 and "is also an input" in result.output
    assert scored.read_bytes() == before
    result = runner.invoke(app, ["report", str(scored), "-o", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 2 and "name it .html" in result.output
    (tmp_path / "taken.html").mkdir()
    result = runner.invoke(app, ["report", str(scored), "-o", str(tmp_path / "taken.html")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = runner.invoke(app, ["kocs", str(scored), "-o", str(scored / "ranking.csv")])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_kocs_to_stdout_keeps_stdout_machine_readable(scored):
    result = runner.invoke(app, ["kocs", str(scored), "-o", "-", "--json", "--min-posts", "1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all("author_id" in json.loads(line) for line in lines)
    assert json.loads(result.stderr.strip().splitlines()[-1])["n_ranked"] == 4


def test_report_errors(scored, tmp_path):
    assert runner.invoke(app, ["report", str(scored)]).exit_code == 2  # -o is required
    assert (
        runner.invoke(
            app, ["report", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "r.html")]
        ).exit_code
        == 2
    )
    assert (
        runner.invoke(
            app, ["report", str(scored), "-o", str(tmp_path / "r.html"), "--followers", "x"]
        ).exit_code
        == 2
    )
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**row("a", 0, 0.1), "label": "ad"}])
    result = runner.invoke(app, ["report", str(bad), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "line 1, field 'label'" in result.output
    assert not (tmp_path / "r.html").exists()


def test_cli_import_stays_light():
    code = (
        "import sys, kocscope.cli; heavy = {'torch', 'transformers', 'datasets', 'sklearn', 'scipy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_weight_help_states_the_library_defaults():
    import typer.main

    from kocscope.inference.kocs import KocWeights

    params = {p.name: p for p in typer.main.get_command(app).commands["kocs"].params}
    names = {
        "w_authenticity": "authenticity",
        "w_seeding": "seeding",
        "w_followers": "follower_fit",
        "w_engagement": "engagement",
        "w_activity": "activity",
    }
    for option, field in names.items():
        assert f"(default {getattr(KocWeights(), field):.2f})" in params[option].help


def test_unscored_input_scored_with_a_real_bundle(tmp_path):
    """End to end through the real scoring engine: a tiny lexical model, posts without scores."""
    from kocscope.models.lexical import LexicalModel

    ads = ["广告 合作 链接在评论区 优惠码", "#ad use code SAVE20 link in bio", "品牌方寄样 私信领券 带货"]
    own = ["自己买的 用了两周 还不错", "I bought it myself and use it daily", "踩雷了 不推荐 退货了"]
    model = LexicalModel(n_features=2**12).fit(ads * 4 + own * 4, [1] * 12 + [0] * 12)
    bundle = model.save_pretrained(tmp_path / "bundle")
    raw = write_jsonl(tmp_path / "posts.jsonl", [{"id": f"p{i}", "author_id": "fan" if i % 2 else "shop",
                                                  "text": (own if i % 2 else ads)[i % 3]} for i in range(12)])
    result = runner.invoke(app, ["kocs", str(raw), "--model", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    authors = {a["author_id"]: a for a in json.loads(result.stdout)["authors"]}
    assert authors["fan"]["rank"] == 1 and authors["fan"]["share_promotion"] < authors["shop"]["share_promotion"]


def test_a_file_given_twice_counts_each_post_once_and_says_so(scored, tmp_path):
    once = runner.invoke(app, ["kocs", str(scored), "--json", "--min-posts", "1"])
    twice = runner.invoke(app, ["kocs", str(scored), str(scored), "--json", "--min-posts", "1"])
    assert json.loads(twice.stdout)["authors"] == json.loads(once.stdout)["authors"]
    assert json.loads(twice.stdout)["skipped"]["duplicate_posts"] == 15  # every post with an author and id
    table = runner.invoke(app, ["kocs", str(scored), str(scored)])
    assert "15 repeated posts (same author and id) counted once" in " ".join(table.stdout.split())
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["report", str(scored), str(scored), "-o", str(out)]).exit_code == 0
    assert "15 repeated posts" in out.read_text(encoding="utf-8")


def test_report_with_top_0_does_not_say_nobody_was_ranked(scored, tmp_path):
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["report", str(scored), "-o", str(out), "--top", "0"]).exit_code == 0
    doc = out.read_text(encoding="utf-8")
    assert "No author has enough posts" not in doc and "--top 0 shows none of them here" in doc
