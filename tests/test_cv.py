"""Cross-validation: one honest result per fold, correct summaries, clear errors on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_trainer import build_tiny_encoder, make_config, make_rows, write_jsonl

from kocscope.training.cv import SUMMARY_METRICS, CVResult, cross_validate
from kocscope.training.dataset import DataError


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def test_one_result_per_fold_with_summaries(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(tmp_path, "transformer", encoder=tiny_encoder, epochs=1)
    result = cross_validate(config, folds=3)
    assert isinstance(result, CVResult)
    assert [f.fold for f in result.folds] == [1, 2, 3]
    assert result.n_rows == 55 and result.n_promotion == 19  # 40 training + 15 validation rows
    assert sum(f.n_test for f in result.folds) == 55
    for fold in result.folds:
        # the test fold is never trained, validated or calibrated on
        assert fold.n_train + fold.n_validation + fold.n_test == 55
        assert fold.metrics["n"] == fold.n_test
        assert 0.0 <= fold.threshold <= 1.0 and fold.steps == 5
    for key in SUMMARY_METRICS:
        values = [f.metrics[key] for f in result.folds if f.metrics[key] is not None]
        assert result.n_folds_defined[key] == len(values)
        if len(values) > 1:
            assert result.mean[key] == pytest.approx(np.mean(values))
            assert result.std[key] == pytest.approx(np.std(values, ddof=1))
    saved = json.loads((Path(config.output) / "cv_results.json").read_text(encoding="utf-8"))
    assert saved["mean"] == result.mean and len(saved["folds"]) == 3


def test_folds_are_reproducible(tmp_path: Path, tiny_encoder: str) -> None:
    first = cross_validate(
        make_config(tmp_path / "a", "transformer", encoder=tiny_encoder, max_steps=2), folds=2
    )
    second = cross_validate(
        make_config(tmp_path / "b", "transformer", encoder=tiny_encoder, max_steps=2), folds=2
    )
    assert [f.metrics for f in first.folds] == [f.metrics for f in second.folds]


def test_too_few_rows_per_class_for_the_folds(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(tmp_path, "transformer", encoder=tiny_encoder)
    # 19 promotion rows in all (40 training + 15 validation rows, every third one promotion)
    with pytest.raises(
        DataError,
        match="20-fold cross-validation needs at least 20 rows of each class.*19 promotion",
    ):
        cross_validate(config, folds=20)
    write_jsonl(Path(config.data.train[0]), make_rows(6, seed=1, every=6))
    write_jsonl(Path(config.data.validation[0]), make_rows(3, seed=2, every=10))
    with pytest.raises(
        DataError, match="needs at least 5 rows of each class.*2 promotion and 7 genuine"
    ):
        cross_validate(config, folds=5)


def test_lexical_recipe(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, "lexical", settings={"n_features": 2**12, "n_word_features": 2**10}
    )
    result = cross_validate(config, folds=3)
    assert len(result.folds) == 3 and all(f.steps == 1 for f in result.folds)
    assert result.mean["roc_auc"] is not None and result.mean["roc_auc"] >= 0.8
