"""LexicalModel: features, learning on toy bilingual corpora, seeding heads, bundles, bad input."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from kocscope.data.cues import CUE_CATEGORIES
from kocscope.models.base import LABELS
from kocscope.models.bundle import CONFIG_FILE, BundleError, load_estimator, save_bundle, sha256_file
from kocscope.models.lexical import (
    WEIGHTS_FILE,
    LexicalModel,
    char_ngram_counts,
    cue_prior_seeding,
    dense_feature_names,
)
from paths import ZHIHU  # tests/ is on sys.path under pytest

# Class-specific phrases; fillers are shared, so the model must find the phrases.
PROMO = [
    "感谢品牌方寄来的样品",
    "链接在评论区，私信领券",
    "闭眼入，必买",
    "use my code SAVE20 at checkout",
    "#ad thanks to the brand for sending",
    "link in bio for the discount",
]
GENUINE = [
    "自己花钱买的",
    "用了一个月说说感受",
    "没有人给我钱",
    "bought it myself last year",
    "my honest take after a month",
    "paid full price at the store",
]
FILLER = [
    "这款面霜",
    "今天下雨",
    "质地很清爽",
    "the packaging is blue",
    "it smells like citrus",
    "我的皮肤是混油",
    "shipping took a week",
    "颜色比图片深一点",
]


def toy_corpus(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        phrase = (PROMO if label else GENUINE)[rng.integers(6)]
        parts = [FILLER[j] for j in rng.choice(len(FILLER), size=3, replace=False)]
        parts.insert(int(rng.integers(4)), phrase)
        texts.append("，".join(parts))
        labels.append(label)
    return texts, np.array(labels)


def small(**settings: object) -> LexicalModel:
    """Small hash spaces keep each fit well under a second."""
    return LexicalModel(**{"n_features": 2**14, "n_word_features": 2**10, **settings})


@pytest.fixture(scope="module")
def fitted() -> LexicalModel:
    texts, y = toy_corpus(80, seed=1)
    return small().fit(texts, y)


# -- features --------------------------------------------------------------------------------


def test_char_ngrams_stay_inside_each_text_and_do_not_depend_on_the_batch() -> None:
    texts = ["abcd", "", "种草了", "x"]
    batch = char_ngram_counts(texts, (1, 3), 2**16)
    # 1..3-grams of a text of length L: L + (L-1) + (L-2), none across the joins
    assert batch.sum(axis=1).A1.tolist() == [4 + 3 + 2, 0, 3 + 2 + 1, 1]
    for i, text in enumerate(texts):
        alone = char_ngram_counts([text], (1, 3), 2**16)
        assert (alone != batch[i]).nnz == 0


def test_tail_ngrams_count_the_end_of_the_text_twice() -> None:
    plain = char_ngram_counts(["abcdefghij"], (1, 1), 2**16)
    tail = char_ngram_counts(["abcdefghij"], (1, 1), 2**16, tail_fraction=0.2)
    assert plain.sum() == 10 and tail.sum() == 12  # "i" and "j" again, in other columns
    assert tail.nnz == 12


def test_dense_feature_names_match_the_feature_matrix(fitted: LexicalModel) -> None:
    texts, _ = toy_corpus(6, seed=2)
    features = fitted.transform(texts)
    names = dense_feature_names(True)
    assert names[0] == "log_length" and len(names) == 1 + 2 * len(CUE_CATEGORIES)
    assert features.shape == (6, fitted.n_features + fitted.n_word_features + len(names))


# -- fit and predict -------------------------------------------------------------------------


@pytest.mark.parametrize("word_tokens", ["none", "non_chinese", "all"])
def test_fit_predict_shapes(word_tokens: str) -> None:
    texts, y = toy_corpus(30, seed=3)
    model = small(word_tokens=word_tokens).fit(texts, y)
    out = model.predict_outputs(texts[:7])
    assert out.logits.shape == (7,) and out.seeding.shape == (7,)
    assert np.isfinite(out.logits).all() and ((out.seeding >= 0) & (out.seeding <= 1)).all()
    proba = model.predict_proba(texts[:7])
    assert proba.shape == (7, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(texts[:7])) <= set(LABELS)


def test_learns_a_separable_bilingual_corpus() -> None:
    texts, y = toy_corpus(240, seed=4)
    model = small().fit(texts[:160], y[:160])
    held_texts, held_y = texts[160:], y[160:]
    predicted = (model.predict(held_texts) == LABELS[1]).astype(int)
    assert np.mean(predicted == held_y) >= 0.9  # chance is 0.5


def test_scores_do_not_depend_on_batch_size(fitted: LexicalModel) -> None:
    texts, _ = toy_corpus(25, seed=5)
    one = fitted.predict_outputs(texts, batch_size=1)
    many = fitted.predict_outputs(texts, batch_size=10)
    all_at_once = fitted.predict_outputs(texts)
    for other in (many, all_at_once):
        np.testing.assert_allclose(one.logits, other.logits, rtol=0, atol=1e-12)
        np.testing.assert_allclose(one.seeding, other.seeding, rtol=0, atol=1e-12)


def test_empty_input_gives_empty_outputs(fitted: LexicalModel) -> None:
    out = fitted.predict_outputs([])
    assert out.logits.shape == (0,) and out.seeding.shape == (0,)
    assert fitted.predict([]).shape == (0,)
    assert fitted.transform([]).shape[0] == 0


def test_empty_and_whitespace_posts_are_scored(fitted: LexicalModel) -> None:
    out = fitted.predict_outputs(["", "   \n ", "\u200b"])
    assert np.isfinite(out.logits).all() and out.logits.shape == (3,)


def test_refit_resets_calibration() -> None:
    texts, y = toy_corpus(30, seed=6)
    model = small().fit(texts, y)
    model.set_calibration(2.0, -1.0, 0.3, "platt")
    model.fit(texts, y)
    assert model.calibration_config() == {
        "calibration": {"method": "none", "a": 1.0, "b": 0.0},
        "threshold": 0.5,
    }


# -- seeding -----------------------------------------------------------------------------


def graded_corpus(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Seeding grade follows push words (闭眼入, must buy), independent of the label."""
    texts, y = toy_corpus(n, seed)
    rng = np.random.default_rng(seed)
    grades = rng.integers(0, 2, size=n) * 4
    texts = [
        t + ("，闭眼入 must buy" if g == 4 else "，还行吧 it is ok") for t, g in zip(texts, grades)
    ]
    return texts, y, grades / 4.0


def test_seeding_ridge_head_learns_from_graded_rows() -> None:
    texts, y, seeding = graded_corpus(120, seed=7)
    seeding[::3] = np.nan  # ungraded rows are skipped, not read as 0
    model = small().fit(texts[:90], y[:90], seeding=seeding[:90])
    assert model.seeding_head_ == "ridge"
    predicted = model.predict_seeding(texts[90:])
    truth = graded_corpus(120, seed=7)[2][90:]
    assert predicted[truth == 1].mean() - predicted[truth == 0].mean() > 0.5


def test_seeding_falls_back_to_the_cue_prior_without_grades() -> None:
    texts, y = toy_corpus(30, seed=8)
    model = small().fit(texts, y)
    assert model.seeding_head_ == "cue_prior" and model.seeding_coef_ is None
    probe = [
        "这个面霜真的推荐",
        "推荐！链接在评论区",
        "千万别买，拔草了",
        "今天天气不错",
        "用了一个月，感觉还行",
    ]
    np.testing.assert_array_equal(model.predict_seeding(probe), [0.75, 1.0, 0.0, 0.125, 0.5])


def test_too_few_grades_warn_and_use_the_cue_prior() -> None:
    texts, y = toy_corpus(30, seed=9)
    seeding = np.full(30, np.nan)
    seeding[:3] = 1.0
    with pytest.warns(UserWarning, match="only 3 row"):
        model = small().fit(texts, y, seeding=seeding)
    assert model.seeding_head_ == "cue_prior"


def test_cue_prior_rule() -> None:
    idx = {c: i for i, c in enumerate(CUE_CATEGORIES)}
    counts = np.zeros((6, len(CUE_CATEGORIES)))
    counts[1, idx["experience"]] = 1
    counts[2, idx["recommendation"]] = 1
    counts[3, idx["recommendation"]] = 3
    counts[4, [idx["recommendation"], idx["affiliate"]]] = 1
    counts[5, [idx["recommendation"], idx["dissuasion"]]] = [1, 2]
    np.testing.assert_array_equal(cue_prior_seeding(counts), [0.125, 0.5, 0.75, 1.0, 1.0, 0.0])


# -- bundles -------------------------------------------------------------------------------


PROBE = ["感谢品牌方寄来的样品，闭眼入", "bought it myself", "", "链接在评论区 use my code X1"]


@pytest.mark.parametrize("graded", [False, True])
def test_save_load_round_trip_is_bit_identical(tmp_path: Path, graded: bool) -> None:
    texts, y, seeding = graded_corpus(60, seed=10)
    model = small(ngram_range=(2, 4)).fit(texts, y, seeding=seeding if graded else None)
    model.set_calibration(0.8, -0.3, 0.42, "platt")
    model.metrics_ = {"f1": 0.5}
    model.save_pretrained(tmp_path / "bundle")
    for loaded in (
        LexicalModel.from_pretrained(tmp_path / "bundle"),
        load_estimator(tmp_path / "bundle"),
    ):
        assert isinstance(loaded, LexicalModel)
        a, b = model.predict_outputs(PROBE), loaded.predict_outputs(PROBE)
        assert np.array_equal(a.logits, b.logits) and np.array_equal(a.seeding, b.seeding)
        assert loaded.get_params() == model.get_params()
        assert loaded.seeding_head_ == ("ridge" if graded else "cue_prior")
        assert loaded.calibration_config() == model.calibration_config()
        assert loaded.calibration_config()["threshold"] == 0.42
        assert np.array_equal(loaded.predict_proba(PROBE), model.predict_proba(PROBE))
        assert loaded.metrics_ == {"f1": 0.5}
    config = json.loads((tmp_path / "bundle" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config["kind"] == "lexical" and config["seeding_head"] == (
        "ridge" if graded else "cue_prior"
    )
    assert config["lexicon_version"] == model.lexicon_version_


def test_default_size_model_round_trips(tmp_path: Path) -> None:
    texts, y = toy_corpus(40, seed=11)
    model = LexicalModel().fit(texts, y)
    model.save_pretrained(tmp_path / "m")
    loaded = LexicalModel.from_pretrained(tmp_path / "m")
    assert np.array_equal(model.predict_outputs(PROBE).logits, loaded.predict_outputs(PROBE).logits)
    assert not list(tmp_path.glob(".m.*")), "no temporary folder may be left behind"


def test_tampered_weights_are_refused(tmp_path: Path, fitted: LexicalModel) -> None:
    fitted.save_pretrained(tmp_path / "b")
    path = tmp_path / "b" / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        LexicalModel.from_pretrained(tmp_path / "b")


def repack(src: Path, dst: Path, **changes: object) -> None:
    """A bundle with an edited config and a valid manifest, to test checks beyond the hashes."""
    config = json.loads((src / CONFIG_FILE).read_text(encoding="utf-8"))
    config.pop("format")
    config.update(changes)

    def copy(tmp: Path) -> None:
        shutil.copy2(src / WEIGHTS_FILE, tmp / WEIGHTS_FILE)

    save_bundle(dst, config, copy)


def test_weights_that_do_not_fit_the_settings_are_refused(
    tmp_path: Path, fitted: LexicalModel
) -> None:
    fitted.save_pretrained(tmp_path / "b")
    repack(tmp_path / "b", tmp_path / "wide", n_features=2**15)
    with pytest.raises(BundleError, match=r"lexical\.safetensors: tensor char_idf"):
        LexicalModel.from_pretrained(tmp_path / "wide")
    repack(tmp_path / "b", tmp_path / "head", seeding_head="ridge")
    with pytest.raises(BundleError, match="expected"):
        LexicalModel.from_pretrained(tmp_path / "head")
    repack(tmp_path / "b", tmp_path / "bad", word_tokens="jieba")
    with pytest.raises(BundleError, match=r"config\.json: LexicalModel: word_tokens"):
        LexicalModel.from_pretrained(tmp_path / "bad")


def test_other_lexicon_version_warns_on_load(tmp_path: Path, fitted: LexicalModel) -> None:
    fitted.save_pretrained(tmp_path / "b")
    repack(tmp_path / "b", tmp_path / "old", lexicon_version="0.0.1")
    with pytest.warns(UserWarning, match="cue lexicon 0.0.1"):
        LexicalModel.from_pretrained(tmp_path / "old")


def test_unfitted_model_cannot_score_or_save(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        small().predict_outputs(["x"])
    with pytest.raises(NotFittedError):
        small().save_pretrained(tmp_path / "x")


# -- bad input ------------------------------------------------------------------------------


def test_bad_training_input_names_the_row() -> None:
    texts, y = toy_corpus(10, seed=12)
    with pytest.raises(ValueError, match=r"y\[3\] = 2"):
        small().fit(texts, np.where(np.arange(10) == 3, 2, y))
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        small().fit([texts[0], 5, *texts[2:]], y)
    with pytest.raises(ValueError, match="both classes"):
        small().fit(texts, np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match=r"seeding\[2\] = 4\.0"):
        small().fit(texts, y, seeding=[0, 0.5, 4.0] + [np.nan] * 7)
    with pytest.raises(ValueError, match=r"sample_weight\[0\]"):
        small().fit(texts, y, sample_weight=[-1.0] + [1.0] * 9)
    with pytest.raises(ValueError, match="9 labels for 10 texts"):
        small().fit(texts, y[:9])
    with pytest.raises(TypeError, match="not one string"):
        small().fit("one post", [1])


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"ngram_range": (3, 1)}, "ngram_range"),
        ({"word_tokens": "jieba"}, "word_tokens"),
        ({"tail_fraction": 1.0}, "tail_fraction"),
        ({"C": 0}, "C"),
        ({"class_weight": "auto"}, "class_weight"),
        ({"n_features": 2.5}, "n_features"),
    ],
)
def test_bad_settings_name_the_field(settings: dict, field: str) -> None:
    texts, y = toy_corpus(10, seed=13)
    with pytest.raises(ValueError, match=f"LexicalModel: {field}"):
        LexicalModel(**settings).fit(texts, y)


def test_bad_scoring_input(fitted: LexicalModel) -> None:
    with pytest.raises(TypeError, match=r"texts\[0\] is NoneType"):
        fitted.predict_outputs([None])
    with pytest.raises(ValueError, match="batch_size"):
        fitted.predict_outputs(["x"], batch_size=0)


def test_warnings_are_clean_on_a_normal_fit() -> None:
    texts, y = toy_corpus(40, seed=14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small().fit(texts, y)


# -- real corpus ----------------------------------------------------------------------------



@pytest.mark.integration
@pytest.mark.skipif(not (ZHIHU / "val.jsonl").is_file(), reason="zhihu16k corpus not available")
def test_zhihu_subset_ranks_advertorials_well() -> None:
    """A 3,000-post training subset must already rank val advertorials far above chance."""
    from sklearn.metrics import roc_auc_score

    def read(name: str) -> tuple[list[str], np.ndarray]:
        with open(ZHIHU / name, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        return [r["text"] for r in rows], np.array([r["label"] for r in rows])

    train, y_train = read("train.jsonl")
    val, y_val = read("val.jsonl")
    model = LexicalModel().fit(train[:3000], y_train[:3000])
    assert roc_auc_score(y_val, model.predict_outputs(val).logits) > 0.93


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": float("nan")}, "threshold must be a finite number"),
        ({"threshold": 2.0}, r"threshold must lie in \[0, 1\]"),
        ({"calibration": {"method": "platt", "a": "x", "b": 0.0}}, "calibration a must be a finite number"),
        ({"calibration": [1.0, 0.0]}, "calibration must be an object"),
    ],
)
def test_calibration_that_would_break_every_decision_is_refused(
    tmp_path: Path, fitted: LexicalModel, changes: dict, message: str
) -> None:
    fitted.save_pretrained(tmp_path / "b")
    repack(tmp_path / "b", tmp_path / "bad", **changes)
    with pytest.raises(BundleError, match=f"config.json: {message}"):
        LexicalModel.from_pretrained(tmp_path / "bad")


def test_unreadable_or_newer_bundles_are_refused_by_name(tmp_path: Path, fitted: LexicalModel) -> None:
    fitted.save_pretrained(tmp_path / "b")

    def rewrite(folder: Path, name: str, text: str) -> None:
        """Edit one file and re-hash it, so the check under test is the one that fires."""
        (folder / name).write_text(text, encoding="utf-8")
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if name in manifest["files"]:
            manifest["files"][name] = sha256_file(folder / name)
            (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    cases = {
        "newer": (CONFIG_FILE, None, "bundle format 99; this kocscope reads format 1"),
        "notjson": (CONFIG_FILE, "{not json", "config.json: not valid JSON"),
        "list": (CONFIG_FILE, "[1, 2]", "config.json: must hold a JSON object, got list"),
        "manifest": ("manifest.json", '{"format": 1, "files": []}', "unreadable manifest"),
    }
    for name, (file, text, message) in cases.items():
        shutil.copytree(tmp_path / "b", tmp_path / name)
        if text is None:
            config = json.loads((tmp_path / name / CONFIG_FILE).read_text(encoding="utf-8"))
            text = json.dumps({**config, "format": 99})
        rewrite(tmp_path / name, file, text)
        with pytest.raises(BundleError, match=message):
            load_estimator(tmp_path / name)


def test_saving_replaces_only_an_earlier_bundle_or_an_empty_folder(tmp_path: Path, fitted: LexicalModel) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "labels.csv").write_text("id,label\n", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not a kocscope bundle"):
        fitted.save_pretrained(work)
    assert (work / "labels.csv").is_file()
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="is a file"):
        fitted.save_pretrained(tmp_path / "model.bin")
    (tmp_path / "empty").mkdir()
    fitted.save_pretrained(tmp_path / "empty")
    fitted.save_pretrained(tmp_path / "empty")  # an earlier bundle is replaced
    assert np.array_equal(load_estimator(tmp_path / "empty").predict_outputs(PROBE).logits,
                          fitted.predict_outputs(PROBE).logits)


def test_sklearn_tooling_takes_it_as_a_classifier() -> None:
    from sklearn.base import is_classifier
    from sklearn.model_selection import cross_val_score

    texts, y = toy_corpus(40, seed=5)
    names = np.array(LABELS)[y]  # what predict returns, so fit, predict and the scorers agree
    small = LexicalModel(n_features=2**12, n_word_features=2**10)
    assert is_classifier(small)
    by_name = small.fit(texts, names)
    assert list(by_name.classes_) == list(LABELS)
    assert np.array_equal(by_name.predict_outputs(PROBE).logits,
                          LexicalModel(n_features=2**12, n_word_features=2**10).fit(texts, y).predict_outputs(PROBE).logits)
    assert by_name.score(texts, names) > 0.9  # accuracy on its own training rows: a smoke check, not a metric
    auc = cross_val_score(small, texts, names, cv=2, scoring="roc_auc", error_score="raise")
    assert auc.shape == (2,) and (auc > 0.5).all()
    with pytest.raises(ValueError, match="labels must be 0 / 'genuine' or 1 / 'promotion'"):
        LexicalModel(n_features=2**12, n_word_features=2**10).fit(texts, ["ad"] * len(texts))


def test_non_finite_scores_are_an_error_not_a_genuine_label(fitted: LexicalModel) -> None:
    with pytest.raises(BundleError, match="non-finite scores for 1 of 3 posts"):
        fitted.p_promotion(np.array([0.5, np.nan, -1.0]))
