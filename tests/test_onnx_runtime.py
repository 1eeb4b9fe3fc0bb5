"""The ONNX Runtime engine: export, int8, the agreement check and optimized bundles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import test_modeling
import torch
from test_modeling import long_text, make_model, train_steps
from typer.testing import CliRunner

from kocscope.cli import app
from kocscope.data.records import RecordError
from kocscope.inference import onnx_runtime
from kocscope.inference.api import load_model
from kocscope.inference.onnx_runtime import (
    ONNX_FILE,
    AgreementError,
    CheckSet,
    OnnxEncoder,
    export_encoder,
    fuse_encoder,
    optimize_bundle,
    quantize_int8,
    read_check_set,
)
from kocscope.models.bundle import BundleError, read_bundle_config
from kocscope.models.modeling import TransformerPostModel

tiny_encoder = test_modeling.tiny_encoder  # the shared session fixture

PROMO = [
    "buy now link code discount",
    "sponsored ad shoes coupon",
    "code discount buy link",
    "ad coupon now",
]
GENUINE = ["i love my cream", "honest meh week returned", "i tried my phone", "love my lamp week"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def check_set(n: int = 24) -> CheckSet:
    texts = [(PROMO if i % 2 else GENUINE)[i % 4] + f" w{i}" for i in range(n)]
    texts[3] = long_text(70)  # several windows under the windows strategy
    return CheckSet(
        texts=texts,
        ids=[f"p{i}" for i in range(n)],
        y=np.array([i % 2 for i in range(n)]),
        sources=["t"],
    )


@pytest.fixture(scope="module")
def bundle(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained LoRA bundle whose windows pool by max, with a threshold inside its outputs."""
    model = make_model(tiny_encoder, long_text="windows", window_pooling="max")
    train_steps(model, steps=15)
    p = model.p_promotion(model.predict_outputs(check_set().texts).logits)
    model.set_calibration(a=1.0, b=0.0, threshold=float(np.median(p)))
    return model.save_pretrained(tmp_path_factory.mktemp("src") / "bundle")


@pytest.fixture(scope="module")
def optimized(bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("opt") / "int8"
    return optimize_bundle(bundle, out, check_set(), int8=True, threads=1)


@pytest.mark.parametrize(
    "settings", [{"long_text": "windows", "window_pooling": "mean"}, {"finetune": "heads"}]
)
def test_fp32_graph_matches_torch(tiny_encoder: str, tmp_path: Path, settings: dict) -> None:
    model = make_model(tiny_encoder, **settings)
    train_steps(model, steps=3)
    texts = check_set().texts
    reference = model.predict_outputs(texts)
    graph = export_encoder(model, tmp_path / "fp32.onnx")
    encoder = OnnxEncoder(graph, threads=1)
    # batch and sequence sizes the export never saw, with padding
    batch = model.encode(texts[:5])
    with torch.inference_mode():
        pooled = model.module_.embed(batch["input_ids"], batch["attention_mask"]).numpy()
    np.testing.assert_allclose(
        encoder.embed(batch["input_ids"].numpy(), batch["attention_mask"].numpy()),
        pooled,
        atol=1e-5,
    )
    model.use_onnx(encoder)
    out = model.predict_outputs(texts, batch_size=3)
    assert model.runtime_ == "onnx"
    assert np.max(np.abs(out.logits - reference.logits)) < 1e-4
    assert np.max(np.abs(out.seeding - reference.seeding)) < 1e-4


def test_fusion_keeps_the_outputs(tiny_encoder: str, tmp_path: Path) -> None:
    model = make_model(tiny_encoder)
    reference = model.predict_outputs(check_set().texts)
    graph = export_encoder(model, tmp_path / "fp32.onnx")
    fused = fuse_encoder(model, graph)
    # 2 layers: each attention block, and each residual + LayerNorm pair, becomes one kernel
    assert fused.get("SkipLayerNormalization") == 4 and fused.get("Attention") == 2, fused
    model.use_onnx(OnnxEncoder(graph, threads=1))
    out = model.predict_outputs(check_set().texts)
    assert np.max(np.abs(out.logits - reference.logits)) < 1e-4


def test_int8_quantizes_all_but_the_narrowing_matmuls(tiny_encoder: str, tmp_path: Path) -> None:
    model = make_model(tiny_encoder)
    reference = model.predict_outputs(check_set().texts)
    graph = export_encoder(model, tmp_path / "fp32.onnx")
    record = quantize_int8(graph, tmp_path / "int8.onnx")
    # 2 layers x (q, k, v, attention out, FFN up) quantized; the 2 FFN down-projections kept
    assert record["matmuls_quantized"] == 10 and record["matmuls_kept_fp32"] == 2
    model.use_onnx(OnnxEncoder(tmp_path / "int8.onnx", threads=1))
    out = model.predict_outputs(check_set().texts)
    diff = np.abs(out.logits - reference.logits)
    assert 0 < diff.max() < 0.05  # int8 moves outputs, a little


def test_optimized_bundle_records_runtime_and_loads_on_ort(bundle: Path, optimized) -> None:
    config = read_bundle_config(optimized.bundle, expected_kind="transformer")
    runtime = config["runtime"]
    assert runtime["engine"] == "onnxruntime" and runtime["onnx_file"] == ONNX_FILE
    assert runtime["quantization"] == "dynamic-int8" and runtime["opset"] == onnx_runtime.OPSET
    assert runtime["fused_ops"].get("SkipLayerNormalization") == 4
    assert runtime["onnxruntime_version"] == sys.modules["onnxruntime"].__version__
    assert runtime["agreement"]["passed"] and runtime["forced"] is False
    assert runtime["agreement"]["n_posts"] == 24 and runtime["agreement"]["max_abs_p_diff"] > 0
    manifest = json.loads((optimized.bundle / "manifest.json").read_text(encoding="utf-8"))
    assert ONNX_FILE in manifest["files"]
    assert "runtime" not in read_bundle_config(bundle)  # the source is untouched

    texts = check_set().texts
    on_ort = load_model(optimized.bundle)
    assert on_ort.estimator.runtime_ == "onnx"
    on_torch = load_model(optimized.bundle, runtime="torch")
    assert on_torch.estimator.runtime_ == "torch"
    source = load_model(bundle)
    assert source.estimator.runtime_ == "torch"
    a, b, c = on_ort.score(texts), on_torch.score(texts), source.score(texts)
    assert [s.id for s in a] == [s.id for s in b]
    assert [s.p_promotion for s in b] == [s.p_promotion for s in c]  # torch path unchanged
    diffs = [abs(x.p_promotion - y.p_promotion) for x, y in zip(a, b)]
    assert max(diffs) == pytest.approx(optimized.agreement.max_abs_p_diff, abs=1e-6)
    # generic loading (what kocscope evaluate uses) resolves to ORT at the first prediction
    lazy = TransformerPostModel.from_pretrained(optimized.bundle)
    lazy.predict_outputs(texts[:2])
    assert lazy.runtime_ == "onnx"


def test_tampered_graph_is_refused(optimized, tmp_path: Path) -> None:
    import shutil

    copy = shutil.copytree(optimized.bundle, tmp_path / "copy")
    with open(copy / ONNX_FILE, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match="sha256"):
        load_model(copy)


def test_runtime_onnx_on_a_torch_bundle_is_an_error(bundle: Path) -> None:
    with pytest.raises(ValueError, match="kocscope optimize"):
        load_model(bundle, runtime="onnx")
    with pytest.raises(ValueError, match="runtime must be one of"):
        load_model(bundle, runtime="tensorrt")


def test_missing_onnxruntime_says_how_to_fix(optimized, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"kocscope\[onnx\].*--runtime torch"):
        load_model(optimized.bundle)
    assert load_model(optimized.bundle, runtime="torch").estimator.runtime_ == "torch"


def test_broken_path_is_refused_and_nothing_written(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)

    def garbage(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return rng.normal(0, 5, size=(input_ids.shape[0], 32)).astype(np.float32)

    monkeypatch.setattr(OnnxEncoder, "embed", garbage)
    with pytest.raises(AgreementError, match="moves F1") as info:
        optimize_bundle(bundle, tmp_path / "bad", check_set(), int8=False, threads=1)
    assert not info.value.agreement.passed and info.value.agreement.labels_flipped > 0
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary leftovers either
    forced = optimize_bundle(
        bundle, tmp_path / "forced", check_set(), int8=False, threads=1, force=True
    )
    assert forced.runtime["forced"] is True and not forced.runtime["agreement"]["passed"]
    assert forced.runtime["quantization"] == "none"


def test_an_output_inside_around_or_on_the_source_is_refused(bundle: Path, tmp_path: Path) -> None:
    import shutil

    from kocscope.models.bundle import read_bundle_config

    source = tmp_path / "stack"
    shutil.copytree(bundle, source)
    before = sorted(p.name for p in source.iterdir())

    for target in (source, source / "opt", tmp_path):
        with pytest.raises(ValueError, match="outside its source"):
            optimize_bundle(source, target, check_set(), threads=1)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("x", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not a kocscope bundle"):
        optimize_bundle(source, tmp_path / "notes", check_set(), threads=1)
    assert sorted(p.name for p in source.iterdir()) == before
    assert read_bundle_config(source)["kind"] == "transformer"


def test_check_set_needs_both_classes(bundle: Path, tmp_path: Path) -> None:
    one_class = CheckSet(texts=["a", "b"], ids=["1", "2"], y=np.array([1, -1]), sources=["x.jsonl"])
    with pytest.raises(ValueError, match="both classes"):
        optimize_bundle(bundle, tmp_path / "o", one_class, threads=1)
    assert not (tmp_path / "o").exists()


def test_read_check_set_joins_labels_by_id_and_names_bad_rows(tmp_path: Path) -> None:
    posts = write_jsonl(
        tmp_path / "posts.jsonl",
        [
            {"id": "a", "text": "buy now"},
            {"id": "b", "text": "i love it"},
            {"id": "c", "text": "meh", "label": "promotion"},
        ],
    )
    labels = write_jsonl(
        tmp_path / "labels.jsonl",
        [{"id": "a", "label": "promotion"}, {"id": "b", "label": "genuine"}],
    )
    got = read_check_set([posts], labels)
    assert got.ids == ["a", "b", "c"] and got.y.tolist() == [1, 0, 1]
    unlabelled = read_check_set([posts])
    assert unlabelled.y.tolist() == [-1, -1, 1]
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"id": "a", "label": "promotion"}, {"id": "b", "label": "spam"}]
    )
    with pytest.raises(RecordError, match=r"bad.jsonl, line 2: field 'label' is 'spam'"):
        read_check_set([posts], bad)
    stray = write_jsonl(tmp_path / "stray.jsonl", [{"id": "zz", "label": "genuine"}])
    with pytest.raises(RecordError, match="match no post id"):
        read_check_set([posts], stray)
    numbered = write_jsonl(tmp_path / "n.jsonl", [{"id": 7, "text": "buy now"}, {"id": 8, "text": "i love it"}])
    by_number = write_jsonl(tmp_path / "nl.jsonl", [{"id": 7, "label": "promotion"}, {"id": 8, "label": "genuine"}])
    assert read_check_set([numbered], by_number).y.tolist() == [1, 0]  # numeric ids join as posts' do


def test_examples_are_a_valid_check_set() -> None:
    root = Path(__file__).resolve().parents[1] / "examples"
    got = read_check_set([root / "posts.jsonl"], root / "posts_labels.jsonl")
    assert got.n_labelled == len(got.y) == 44 and 0 < got.y.sum() < 44


def test_cli_optimize_round_trip(bundle: Path, tmp_path: Path) -> None:
    cs = check_set()
    rows = [{"id": i, "text": t, "label": int(y)} for i, t, y in zip(cs.ids, cs.texts, cs.y)]
    check = write_jsonl(tmp_path / "check.jsonl", rows)
    out = tmp_path / "opt"
    runner = CliRunner()
    args = [
        "optimize",
        str(bundle),
        "-o",
        str(out),
        "--check",
        str(check),
        "--positive-label",
        "1",
        "--negative-label",
        "0",
        "--no-int8",
        "--threads",
        "1",
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["written"] and payload["runtime"]["quantization"] == "none"
    assert (
        payload["agreement"]["max_abs_logit_diff"] < 1e-4
        and payload["agreement"]["labels_flipped"] == 0
    )
    posts = write_jsonl(
        tmp_path / "posts.jsonl", [{"id": r["id"], "text": r["text"]} for r in rows]
    )
    for runtime in ("auto", "torch"):
        scored = tmp_path / f"scored-{runtime}.jsonl"
        result = runner.invoke(
            app,
            [
                "score",
                str(posts),
                "-o",
                str(scored),
                "--model",
                str(out),
                "--runtime",
                runtime,
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
    ort_rows = [
        json.loads(line) for line in (tmp_path / "scored-auto.jsonl").read_text().splitlines()
    ]
    torch_rows = [
        json.loads(line) for line in (tmp_path / "scored-torch.jsonl").read_text().splitlines()
    ]
    assert len(ort_rows) == len(torch_rows) == len(rows)
    assert (
        max(abs(a["p_promotion"] - b["p_promotion"]) for a, b in zip(ort_rows, torch_rows)) < 1e-4
    )
    # a bad label value is a bad row (exit 1, as --help says) naming the file; nothing is written
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "text": "a", "label": "maybe"}])
    result = runner.invoke(
        app, ["optimize", str(bundle), "-o", str(tmp_path / "o2"), "--check", str(bad)]
    )
    assert result.exit_code == 1 and "bad.jsonl" in result.output and not (tmp_path / "o2").exists()


def test_cli_optimize_refuses_a_failed_check(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        OnnxEncoder, "embed", lambda self, ids, mask: np.full((ids.shape[0], 32), 9.0, np.float32)
    )
    cs = check_set()
    check = write_jsonl(
        tmp_path / "check.jsonl",
        [
            {"id": i, "text": t, "label": "promotion" if y else "genuine"}
            for i, t, y in zip(cs.ids, cs.texts, cs.y)
        ],
    )
    result = CliRunner().invoke(
        app,
        ["optimize", str(bundle), "-o", str(tmp_path / "o"), "--check", str(check), "--no-int8"],
    )
    assert result.exit_code == 1 and "nothing written" in result.output
    assert not (tmp_path / "o").exists()
