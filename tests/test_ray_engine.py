"""The Ray engine gives what the local engine gives: same rows, scores, rejects and counts.

One local Ray with 2 CPUs serves the module; the shard-reading tests need no Ray.
"""

from __future__ import annotations

import codecs
import json
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kocscope.cli import app
from kocscope.data.io import RecordWriter, iter_rows, read_posts, write_records
from kocscope.data.io import folder_files
from kocscope.data.records import RecordError
from kocscope.inference.api import DEFAULT_MODEL_DIR, load_model
from kocscope.inference.ray_engine import (
    MARKER_FILE,
    bundle_files,
    load_shipped_bundle,
    plan_shards,
    score_files_ray,
    shard_rows,
)
from kocscope.inference.scoring import score_files
from kocscope.models.bundle import BundleError, read_bundle_config
from kocscope.models.lexical import LexicalModel

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
POSTS, BROKEN = EXAMPLES / "posts.jsonl", EXAMPLES / "posts_broken.jsonl"
SCORES = ("p_promotion", "authenticity", "seeding")
runner = CliRunner()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150 << 20, logging_level="ERROR")
    yield ray
    ray.shutdown()


def rows_of(paths) -> list[dict]:
    return [row.data for path in paths for row in iter_rows(path)]


def assert_same_rows(ray_rows: list[dict], local_rows: list[dict]) -> None:
    assert [r["id"] for r in ray_rows] == [r["id"] for r in local_rows]
    for got, want in zip(ray_rows, local_rows):
        assert got.keys() == want.keys()
        for key in want:
            if key in SCORES:
                assert got[key] == pytest.approx(want[key], abs=1e-5)
            else:
                assert got[key] == want[key], key


def summary_counts(summary) -> dict:
    return {k: v for k, v in summary.to_dict().items() if k in ("read", "scored", "rejected", "share_promotion", "reasons")}


# -- shards, without Ray ----------------------------------------------------------------
def row_view(rows) -> list[tuple]:
    return [(r.line, r.data, r.raw, str(r.error) if r.error else None) for r in rows]


def test_jsonl_shards_read_exactly_like_the_whole_file(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"p{i}", "text": f"post {i}"}) for i in range(12)]
    lines[2] = "{not json"
    lines[5] = "   "  # blank: skipped, not counted
    lines[7] = codecs.BOM_UTF8.decode() + lines[7]  # a BOM inside the file is a bad line, not stripped
    lines[9] = json.dumps({"id": "x", "text": 5})
    path = tmp_path / "p.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + "\n".join(lines).encode() + b"\n")
    for block in (1, 40, 10**6):
        shards = plan_shards([path], block_bytes=block)
        assert shards[0].start == 0 and shards[-1].stop == path.stat().st_size
        assert all(a.stop == b.start for a, b in pairwise(shards))
        reader = read_posts(path, on_error="skip")
        got = [row for shard in shards for row in shard_rows(shard, reader)]
        assert row_view(got) == row_view(iter_rows(path))
    assert len(plan_shards([path], block_bytes=1)) == 12


def test_parquet_and_csv_shards_read_like_the_whole_file(tmp_path: Path) -> None:
    records = [{"id": f"p{i}", "text": f"post {i}" if i != 4 else "", "likes": i} for i in range(25)]
    parquet = tmp_path / "p.parquet"
    with RecordWriter(parquet, batch_rows=5) as out:  # five row groups
        for record in records:
            out.write(record)
    csv = tmp_path / "p.csv"
    write_records(csv, records)
    shards = plan_shards([parquet, csv], block_bytes=1)
    assert [(s.kind, s.start, s.stop, s.first_line) for s in shards] == [
        ("row_groups", 0, 1, 1), ("row_groups", 1, 2, 6), ("row_groups", 2, 3, 11), ("row_groups", 3, 4, 16),
        ("row_groups", 4, 5, 21), ("file", 0, 0, 1)]
    for name in (parquet, csv):
        reader = read_posts(name, on_error="skip")
        got = [row for shard in shards if shard.path == str(name) for row in shard_rows(shard, reader)]
        assert row_view(got) == row_view(iter_rows(name))


def test_shipped_bundle_is_verified_and_stays_inside_its_folder(tmp_path: Path) -> None:
    files = bundle_files(None)
    assert {"manifest.json", "config.json"} <= set(files)
    shipped = load_shipped_bundle(files)
    assert shipped.kind == read_bundle_config(DEFAULT_MODEL_DIR)["kind"]
    text = "Bought it myself, honest review: the battery lasts two days."
    assert shipped.score([text])[0].p_promotion == load_model().score([text])[0].p_promotion
    tampered = dict(files, **{"config.json": files["config.json"] + b" "})
    with pytest.raises(BundleError, match="sha256"):
        load_shipped_bundle(tampered)
    with pytest.raises(BundleError, match="outside the bundle"):
        load_shipped_bundle({**files, "../escape.json": b"{}"})


def test_output_folder_checks_before_any_work(tmp_path: Path) -> None:
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not the output of kocscope score"):
        score_files_ray([POSTS], stranger)
    (tmp_path / "file.jsonl").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        score_files_ray([POSTS], tmp_path / "file.jsonl")
    with pytest.raises(ValueError, match="stdin"):
        score_files_ray(["-"], tmp_path / "out")
    assert (stranger / "notes.txt").read_text() == "keep me"
    # the folder replaces all inside it: an input or the rejects file there would be lost
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MARKER_FILE).write_text("{}")  # an earlier run's folder of shards
    inside = tmp_path / "out" / "part-00000.jsonl"
    inside.write_bytes(POSTS.read_bytes())
    with pytest.raises(ValueError, match="the output is also an input"):
        score_files_ray([inside], tmp_path / "out")
    with pytest.raises(ValueError, match="the rejects file would be the output or inside it"):
        score_files_ray([POSTS], tmp_path / "out2", on_error="skip", rejects_path=tmp_path / "out2" / "rej.jsonl")
    assert inside.read_bytes() == POSTS.read_bytes()


def test_a_gpu_asked_of_a_cluster_without_one_fails_instead_of_waiting(tmp_path: Path, ray_cluster) -> None:
    if ray_cluster.cluster_resources().get("GPU"):
        pytest.skip("this machine's Ray has a GPU")
    with pytest.raises(ValueError, match="the Ray cluster has no GPU"):
        score_files_ray([POSTS], tmp_path / "out", device="cuda", model=DEFAULT_MODEL_DIR)
    lexical = score_files_ray([POSTS], tmp_path / "lex", device="cuda", model=DEFAULT_MODEL_DIR / "lexical")
    assert lexical.scored == 44  # a lexical model runs on CPUs whatever the device


def test_missing_ray_is_a_usage_error_naming_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = runner.invoke(app, ["score", str(POSTS), "-o", str(tmp_path / "out"), "--engine", "ray"])
    assert result.exit_code == 2
    assert "pip install 'kocscope[ray]'" in result.output
    assert not (tmp_path / "out").exists()


def test_ray_options_need_the_ray_engine(tmp_path: Path) -> None:
    result = runner.invoke(app, ["score", str(POSTS), "-o", str(tmp_path / "s.jsonl"), "--address", "auto"])
    assert result.exit_code == 2 and "--address" in result.output


# -- on a local Ray with 2 CPUs ---------------------------------------------------------
def test_ray_equals_local_on_the_example_posts(tmp_path: Path, ray_cluster) -> None:
    local = score_files([POSTS], tmp_path / "local.jsonl")
    remote = score_files_ray([POSTS], tmp_path / "ray", block_bytes=4000, workers=2)
    parts = folder_files(tmp_path / "ray")
    assert len(parts) > 1 and parts == sorted(parts)
    assert_same_rows(rows_of(parts), rows_of([tmp_path / "local.jsonl"]))
    assert summary_counts(remote) == summary_counts(local) and remote.read == 44
    marker = json.loads((tmp_path / "ray" / MARKER_FILE).read_text())
    assert marker["shards"] == len(parts) and marker["summary"]["scored"] == 44
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folders left


def test_bad_rows_give_the_same_rejects_and_counts(tmp_path: Path, ray_cluster) -> None:
    inputs = [BROKEN, POSTS]
    local = score_files(inputs, tmp_path / "local.jsonl", on_error="skip")
    remote = score_files_ray(inputs, tmp_path / "ray", on_error="skip", block_bytes=500)
    assert summary_counts(remote) == summary_counts(local)
    assert remote.read == remote.scored + remote.rejected and remote.rejected == 4
    assert remote.rejects == str(tmp_path / "ray.rejects.jsonl")
    assert rows_of([remote.rejects]) == rows_of([local.rejects])
    assert_same_rows(rows_of(folder_files(tmp_path / "ray")), rows_of([tmp_path / "local.jsonl"]))

    with pytest.raises(RecordError) as local_error:
        score_files(inputs, tmp_path / "local2.jsonl", on_error="raise")
    with pytest.raises(RecordError) as ray_error:
        score_files_ray(inputs, tmp_path / "ray2", on_error="raise", block_bytes=500)
    assert str(ray_error.value) == str(local_error.value)
    assert (ray_error.value.line, ray_error.value.field) == (local_error.value.line, local_error.value.field)
    assert not (tmp_path / "ray2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ray2")]

    # a clean rerun into the same outputs leaves no earlier rejects beside them
    clean_local = score_files([POSTS], tmp_path / "local.jsonl", on_error="skip")
    clean_ray = score_files_ray([POSTS], tmp_path / "ray", on_error="skip", block_bytes=500)
    assert clean_local.rejects is None and not (tmp_path / "local.jsonl.rejects.jsonl").exists()
    assert clean_ray.rejects is None and not (tmp_path / "ray.rejects.jsonl").exists()


def test_csv_and_parquet_inputs_into_parquet_shards(tmp_path: Path, ray_cluster) -> None:
    records = [row.data for row in iter_rows(POSTS)]
    records[5] = {**records[5], "followers": -3}  # a bad cell: same reject, same row number
    csv, parquet = tmp_path / "posts.csv", tmp_path / "posts.parquet"
    write_records(csv, records)
    with RecordWriter(parquet, batch_rows=10) as out:
        for record in records:
            out.write(record)
    inputs = [csv, parquet]
    local = score_files(inputs, tmp_path / "local.parquet", on_error="skip")
    remote = score_files_ray(inputs, tmp_path / "ray.parquet", on_error="skip", block_bytes=1)
    parts = folder_files(tmp_path / "ray.parquet")
    assert all(p.endswith(".parquet") for p in parts) and len(parts) == 1 + 5  # the CSV whole, 5 row groups
    assert summary_counts(remote) == summary_counts(local)
    assert rows_of([remote.rejects]) == rows_of([local.rejects])
    rejects = rows_of([remote.rejects])
    assert [(r["source"], r["field"]) for r in rejects] == [(str(csv), "followers"), (str(parquet), "followers")]
    assert rejects[1]["line"] == 6  # a Parquet row number, counted across row groups
    assert_same_rows(rows_of(parts), rows_of([tmp_path / "local.parquet"]))


def test_model_shipped_through_the_object_store(tmp_path: Path, ray_cluster) -> None:
    texts = ["自己买的，用了一个月还行", "退货了，避雷", "I bought it myself, a bit loud",
             "感谢品牌方寄样，评论区领券", "#ad use code SAVE20, link in bio", "合作 | 点击链接下单立减"]
    bundle = LexicalModel(n_features=2**12, n_word_features=2**10).fit(texts, np.array([0, 0, 0, 1, 1, 1]))
    path = bundle.save_pretrained(tmp_path / "tiny")
    local = score_files([POSTS], tmp_path / "local.jsonl", model=load_model(path))
    remote = score_files_ray([POSTS], tmp_path / "ray", model=path, ship_model=True, fmt="csv")
    assert summary_counts(remote) == summary_counts(local)
    parts = folder_files(tmp_path / "ray")
    assert parts[0].endswith(".csv")
    ray_rows, local_rows = rows_of(parts), rows_of([tmp_path / "local.jsonl"])
    assert [r["id"] for r in ray_rows] == [r["id"] for r in local_rows]
    for got, want in zip(ray_rows, local_rows):  # CSV cells are strings
        assert float(got["p_promotion"]) == pytest.approx(want["p_promotion"], abs=1e-5)
        assert got["label"] == want["label"]
    # the tiny model scores differently from the default one: the shipped bundle was used
    default = rows_of([score_files([POSTS], tmp_path / "default.jsonl").output])
    assert any(abs(float(a["p_promotion"]) - b["p_promotion"]) > 1e-3 for a, b in zip(ray_rows, default))


def test_cli_ray_engine_then_kocs_on_the_shard_folder(tmp_path: Path, ray_cluster) -> None:
    local_out, ray_out = tmp_path / "local.jsonl", tmp_path / "ray"
    result = runner.invoke(app, ["score", str(POSTS), str(BROKEN), "-o", str(local_out), "--json"])
    assert result.exit_code == 0, result.output
    local = json.loads(result.output)
    result = runner.invoke(app, ["score", str(POSTS), str(BROKEN), "-o", str(ray_out), "--json",
                                 "--engine", "ray", "--shard-mb", "0.005", "--workers", "2"])
    assert result.exit_code == 0, result.output
    remote = json.loads(result.output.strip().splitlines()[-1])
    assert remote.keys() == local.keys()
    for key in ("read", "scored", "rejected", "share_promotion", "reasons", "resumed_from"):
        assert remote[key] == local[key], key
    assert remote["rejects"] == str(tmp_path / "ray.rejects.jsonl")
    assert len(folder_files(ray_out)) > 1

    kocs = [runner.invoke(app, ["kocs", str(path), "--json", "--min-posts", "1", "--top", "50"])
            for path in (local_out, ray_out)]
    assert all(r.exit_code == 0 for r in kocs), [r.output for r in kocs]
    want, got = (json.loads(r.output) for r in kocs)
    assert got["n_posts"] == want["n_posts"] == 50 and got["n_ranked"] == want["n_ranked"]
    assert [a["author_id"] for a in got["authors"]] == [a["author_id"] for a in want["authors"]]
    for a, b in zip(got["authors"], want["authors"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)

    # a second run replaces the folder whole; a bad row under raise exits 1 and leaves it alone
    result = runner.invoke(app, ["score", str(POSTS), "-o", str(ray_out), "--engine", "ray", "--json"])
    assert result.exit_code == 0, result.output
    assert len(folder_files(ray_out)) == 1
    result = runner.invoke(app, ["score", str(BROKEN), "-o", str(ray_out), "--engine", "ray", "--on-error", "raise"])
    assert result.exit_code == 1 and "posts_broken.jsonl, line 2" in result.output
    assert len(folder_files(ray_out)) == 1


def test_a_worker_that_cannot_load_the_model_fails_the_run_cleanly(tmp_path: Path, ray_cluster) -> None:
    with pytest.raises(RuntimeError, match="on a Ray worker: TypeError: .*no_such_option"):
        score_files_ray([POSTS], tmp_path / "ray", load_options={"no_such_option": 1})
    assert list(tmp_path.iterdir()) == []
