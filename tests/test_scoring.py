"""Batch scoring and the library API, on a tiny lexical model trained here."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kocscope.cli import app
from kocscope.data.io import iter_rows, write_records
from kocscope.data.records import Post, RecordError
from kocscope.data.text import normalize
from kocscope.inference.api import KocscopeModel, PostScore, load_model
from kocscope.inference.scoring import score_files, score_records
from kocscope.models.lexical import LexicalModel

GENUINE = [
    "用了一个月，皮肤没什么变化，自己买的，不会回购",
    "周末带娃去公园，天气很好",
    "I bought this kettle myself last year, it is fine, a bit loud",
    "退货了，质量一般，避雷",
    "my cat ignores this toy, waste of money",
    "今天加班到十点，好累",
    "Tried the new ramen place, broth was ok, service slow",
    "这款耳机音质还行，降噪一般",
]
PROMOTION = [
    "感谢品牌方寄样！评论区领优惠券，闭眼入",
    "#ad use code SAVE20 at the link in bio, must-have!",
    "本文由品牌赞助，私信领券，必买清单",
    "Thanks @glowco for sending this, link in bio for 15% off",
    "合作 | 这支口红yyds，点击链接下单立减",
    "sponsored: run don't walk, discount code GLOW10",
    "广告 好物推荐 直播间下单 返现",
    "Paid partnership. Shop now with my affiliate link",
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = GENUINE + PROMOTION
    y = np.array([0] * len(GENUINE) + [1] * len(PROMOTION))
    model = LexicalModel(n_features=2**14, n_word_features=2**12).fit(texts, y)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "lexical")


@pytest.fixture(scope="module")
def model(bundle: Path) -> KocscopeModel:
    return load_model(bundle)


def posts_file(tmp_path: Path, n: int = 60, broken: bool = False) -> Path:
    rows = []
    texts = GENUINE + PROMOTION
    for i in range(n):
        rows.append({"id": f"p{i}", "author_id": f"a{i % 5}", "text": texts[i % len(texts)] + f" #{i}",
                     "followers": 1000 + i, "custom": {"k": i}})
    path = tmp_path / "posts.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if broken:
        lines[3] = "{not json"
        lines[10] = json.dumps({"id": "e", "text": "   "})
        lines[20] = json.dumps({"id": "f", "text": "ok", "followers": -5})
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_score_files_keeps_order_fields_and_counts(tmp_path: Path, model: KocscopeModel) -> None:
    src = posts_file(tmp_path)
    out = tmp_path / "scored.jsonl"
    summary = score_files([src], out, model=model, batch_size=4, window=7)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(60)]
    assert summary.read == summary.scored == 60 and summary.rejected == 0
    for row in rows:
        assert row["custom"]["k"] == int(row["id"][1:])  # pass-through untouched
        assert abs(row["p_promotion"] + row["authenticity"] - 1) < 1e-9
        assert row["label"] in ("genuine", "promotion") and 0 <= row["seeding"] <= 1
        assert row["lang"] in ("zh", "en", "mixed", "other")
    assert summary.promotion == sum(r["label"] == "promotion" for r in rows)
    # same scores as the library call on the same posts
    direct = model.score([{"id": r["id"], "text": r["text"]} for r in rows])
    assert [s.p_promotion for s in direct] == [r["p_promotion"] for r in rows]


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_output_format_from_extension(tmp_path: Path, model: KocscopeModel, ext: str) -> None:
    src = posts_file(tmp_path, n=12)
    out = tmp_path / f"scored.{ext}"
    score_files([src], out, model=model)
    rows = [row.data for row in iter_rows(out)]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(12)]
    assert all("p_promotion" in r and "seeding" in r for r in rows)
    assert not list(tmp_path.glob(".scored*"))  # no work files left behind


def test_bad_rows_skip_to_rejects_and_counts_add_up(tmp_path: Path, model: KocscopeModel) -> None:
    src = posts_file(tmp_path, broken=True)
    out = tmp_path / "scored.jsonl"
    summary = score_files([src], out, model=model, on_error="skip")
    rejects = read_jsonl(Path(summary.rejects))
    assert summary.read == 60 and summary.rejected == 3 and summary.scored == 57
    assert [r["line"] for r in rejects] == [4, 11, 21]
    assert {r["field"] for r in rejects} == {None, "text", "followers"}
    assert len(read_jsonl(out)) == 57


def test_bad_row_raise_names_file_line_field_and_writes_nothing(tmp_path: Path, model: KocscopeModel) -> None:
    src = posts_file(tmp_path, broken=True)
    out = tmp_path / "scored.jsonl"
    with pytest.raises(RecordError) as err:
        score_files([src], out, model=model, on_error="raise")
    assert str(src) in str(err.value) and "line 4" in str(err.value)
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


class Interrupting:
    """Wraps a real estimator; raises KeyboardInterrupt on the n-th batch call."""

    def __init__(self, inner, fail_on_call: int) -> None:
        self.inner, self.calls, self.fail_on_call = inner, 0, fail_on_call
        self.kind = inner.kind

    def predict_outputs(self, texts, batch_size=None):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt
        return self.inner.predict_outputs(texts, batch_size=batch_size)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_resume_after_interruption_scores_each_row_once(tmp_path: Path, model: KocscopeModel, ext: str) -> None:
    first, second = posts_file(tmp_path, n=50, broken=True), tmp_path / "more.jsonl"
    write_records(second, [{"id": f"q{i}", "text": GENUINE[i % 8]} for i in range(23)])
    reference = tmp_path / f"reference.{ext}"
    score_files([first, second], reference, model=model, window=8, on_error="skip")

    out = tmp_path / f"scored.{ext}"
    flaky = KocscopeModel(Interrupting(model.estimator, fail_on_call=8), model.path)
    with pytest.raises(KeyboardInterrupt):
        score_files([first, second], out, model=flaky, window=8, on_error="skip")
    assert not out.exists()

    counting = Interrupting(model.estimator, fail_on_call=-1)
    summary = score_files([first, second], out, model=KocscopeModel(counting, model.path), window=8,
                          on_error="skip", resume=True)
    assert summary.resumed_from > 0
    assert [r.data for r in iter_rows(out)] == [r.data for r in iter_rows(reference)]
    assert summary.read == 73 and summary.rejected == 3 and summary.scored == 70
    assert read_jsonl(Path(summary.rejects)) == read_jsonl(Path(str(reference) + ".rejects.jsonl"))
    # only the unfinished windows were scored again: 73 rows in windows of 8 is 10 calls
    assert counting.calls < 10


def test_resume_refuses_other_inputs(tmp_path: Path, model: KocscopeModel) -> None:
    src = posts_file(tmp_path, n=40)
    out = tmp_path / "scored.jsonl"
    with pytest.raises(KeyboardInterrupt):
        score_files([src], out, model=KocscopeModel(Interrupting(model.estimator, 3), model.path), window=8)
    src.write_text(src.read_text(encoding="utf-8") + json.dumps({"text": "one more post"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="other inputs or settings"):
        score_files([src], out, model=model, window=8, resume=True)


def test_library_score_accepts_texts_dicts_posts(model: KocscopeModel) -> None:
    results = model.score(["自己买的，一般", {"id": "x", "text": "#ad code SAVE20"}, Post.from_dict({"text": "hello"})])
    assert all(isinstance(r, PostScore) for r in results)
    assert results[1].id == "x" and results[0].id.startswith("auto-")
    with pytest.raises(RecordError):
        model.score([{"text": ""}])
    streamed = list(model.score_iter(iter(GENUINE * 5), batch_size=3, window=4))
    assert [s.p_promotion for s in streamed] == [s.p_promotion for s in model.score(GENUINE * 5)]


def test_explain_cues_and_evidence_index_normalized_text(model: KocscopeModel) -> None:
    text = "第一段随便聊聊。\n感谢品牌方寄样！评论区领优惠券，闭眼入"
    (score,) = model.score([text], explain=True)
    body = normalize(text)
    assert score.cues and all(body[c["start"]:c["end"]] == c["text"] for c in score.cues)
    ev = score.evidence
    assert body[ev["start"]:ev["end"]].strip() == ev["text"]
    assert "随便聊聊" not in ev["text"]  # a promotional sentence, not the chit-chat


def test_one_model_is_safe_to_share_between_threads(model: KocscopeModel) -> None:
    texts = (GENUINE + PROMOTION) * 20
    expected = [s.p_promotion for s in model.score(texts)]
    results: dict[int, list[float]] = {}

    def work(i: int) -> None:
        results[i] = [s.p_promotion for s in model.score(texts, batch_size=5)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == expected for i in range(4))


def test_score_records_for_in_memory_rows(model: KocscopeModel) -> None:
    rows = list(score_records([{"id": "a", "text": "hi there"}, {"text": "广告 私信领券"}], model))
    assert rows[0]["id"] == "a" and {"p_promotion", "seeding", "label"} <= set(rows[1])
    with pytest.raises(RecordError, match="record 2"):
        list(score_records([{"text": "ok"}, {"text": 5}], model))


def test_input_field_named_like_a_score_is_kept_under_input_prefix(model: KocscopeModel) -> None:
    row = next(score_records([{"id": "a", "text": "广告 私信领券", "label": "gold-promotion", "seeding": 4}], model))
    assert row["input_label"] == "gold-promotion" and row["input_seeding"] == 4
    assert row["label"] in ("genuine", "promotion") and 0 <= row["seeding"] <= 1
    assert list(row)[0] == "id"


def test_cli_score_summary_and_exit_codes(tmp_path: Path, bundle: Path) -> None:
    runner = CliRunner()
    src = posts_file(tmp_path, broken=True)
    out = tmp_path / "s.jsonl"
    result = runner.invoke(app, ["score", str(src), "-o", str(out), "--model", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["read"], summary["scored"], summary["rejected"]) == (60, 57, 3)
    result = runner.invoke(app, ["score", str(src), "-o", str(out), "--model", str(bundle), "--on-error", "raise"])
    assert result.exit_code == 1 and "line 4" in result.output
    result = runner.invoke(app, ["score", str(tmp_path / "missing.jsonl"), "-o", str(out), "--model", str(bundle)])
    assert result.exit_code == 2
    result = runner.invoke(app, ["score", str(src), "-o", str(tmp_path / "x.txt"), "--model", str(bundle)])
    assert result.exit_code == 2 and "unknown file type" in result.output
    result = runner.invoke(app, ["score", str(src), "-o", str(out), "--model", str(tmp_path)])
    assert result.exit_code == 2 and "manifest" in result.output


def test_stdout_output_still_writes_named_rejects(tmp_path: Path, bundle: Path) -> None:
    src = posts_file(tmp_path, n=30, broken=True)
    rejects = tmp_path / "rej.jsonl"
    result = CliRunner().invoke(
        app, ["score", str(src), "-o", "-", "--model", str(bundle), "--rejects", str(rejects)]
    )
    assert result.exit_code == 0, result.output
    assert len([line for line in result.stdout.splitlines() if line.startswith("{")]) == 27
    assert [r["line"] for r in read_jsonl(rejects)] == [4, 11, 21]


def test_no_rejects_file_when_nothing_was_rejected(tmp_path: Path, model: KocscopeModel) -> None:
    summary = score_files([posts_file(tmp_path, n=5)], tmp_path / "s.jsonl", model=model, on_error="skip")
    assert summary.rejects is None and not (tmp_path / "s.jsonl.rejects.jsonl").exists()


def test_a_run_never_writes_over_its_inputs(tmp_path: Path, bundle: Path) -> None:
    runner = CliRunner()
    src = posts_file(tmp_path, n=24, broken=True)
    before = src.read_bytes()
    out = tmp_path / "s.jsonl"
    for extra, message in (
        (["-o", str(src)], "the output is also an input"),
        (["-o", str(out), "--rejects", str(src)], "the rejects file is also an input"),
        (["-o", str(out), "--rejects", str(out)], "the rejects file would be the output or inside it"),
    ):
        result = runner.invoke(app, ["score", str(src), "--model", str(bundle), *extra])
        assert result.exit_code == 2 and message in result.output, result.output
        assert src.read_bytes() == before and not out.exists()


def test_stdout_output_needs_a_rejects_file_and_keeps_the_summary_off_stdout(tmp_path: Path, bundle: Path) -> None:
    runner = CliRunner()
    src = posts_file(tmp_path, n=24, broken=True)
    result = runner.invoke(app, ["score", str(src), "-o", "-", "--model", str(bundle)])
    assert result.exit_code == 2 and "need a --rejects file" in result.output
    rejects = tmp_path / "rej.jsonl"
    result = runner.invoke(app, ["score", str(src), "-o", "-", "--model", str(bundle), "--rejects", str(rejects), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 21 and all("p_promotion" in r for r in rows)
    assert json.loads(result.stderr.strip().splitlines()[-1])["rejected"] == 3


def test_rescoring_a_scored_row_keeps_every_earlier_field(model: KocscopeModel) -> None:
    first = next(score_records([{"id": "a", "text": "广告 私信领券", "label": "GOLD"}], model))
    assert first["input_label"] == "GOLD"
    again = next(score_records([first], model))
    assert again["input_label"] == "GOLD"  # passed through under its own name
    assert again["input_input_label"] == first["label"]  # the first run's label, not shadowed
    assert again["input_p_promotion"] == first["p_promotion"]


def test_a_column_parquet_cannot_hold_fails_cleanly(tmp_path: Path, bundle: Path) -> None:
    src = tmp_path / "mixed.jsonl"
    src.write_text('{"id": "t1", "text": "hello there", "extra": 1}\n{"id": "t2", "text": "hello again", "extra": "two"}\n',
                   encoding="utf-8")
    out = tmp_path / "out" / "mixed.parquet"
    result = CliRunner().invoke(app, ["score", str(src), "-o", str(out), "--model", str(bundle)])
    assert result.exit_code == 2 and "'extra' mixes value types" in result.output and "score to .jsonl" in result.output
    assert list((tmp_path / "out").iterdir()) == []  # neither the output nor hidden work files
    result = CliRunner().invoke(app, ["score", str(src), "-o", str(tmp_path / "out" / "mixed.jsonl"), "--model", str(bundle)])
    assert result.exit_code == 0, result.output
