"""Stratified k-fold cross-validation of a training recipe.

One validation split says little on a few hundred rows; k folds show how much
the metrics move. Each fold runs the same recipe as ``kocscope train``: the
fold's training part is split again (``split.val_fraction``) into rows to fit
on and rows for early stopping, calibration and the threshold, and the
held-out fold is only ever scored. So fold metrics are honest estimates, unlike
the validation metrics of a single training run. All labelled rows (training
and validation sources) take part. No bundles are saved.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kocscope.training.dataset import (
    load_all_labelled,
    stratified_folds,
    stratified_split,
    stratified_subsample,
)
from kocscope.training.trainer import (
    check_output_folder,
    calibrate,
    evaluate_estimator,
    fit_estimator,
    stderr_log,
    torch_threads,
    write_json,
)
from kocscope.training.training_args import ConfigError, TrainConfig

__all__ = ["SUMMARY_METRICS", "CVResult", "FoldResult", "cross_validate"]

# the metrics averaged over folds (all present in classification_metrics)
SUMMARY_METRICS = (
    "f1",
    "precision",
    "recall",
    "macro_f1",
    "roc_auc",
    "pr_auc",
    "ece",
    "brier",
    "accuracy",
)


@dataclass
class FoldResult:
    """One fold: sizes, the threshold chosen on its validation part, and test-fold metrics."""

    fold: int
    n_train: int
    n_validation: int
    n_test: int
    n_test_promotion: int
    threshold: float
    calibration: dict[str, Any]
    metrics: dict[str, Any]
    seeding: dict[str, Any] | None
    steps: int
    seconds: float


@dataclass
class CVResult:
    """Per-fold results and the mean and standard deviation (ddof=1) of each summary metric.

    A metric a fold cannot define (None) is left out of that metric's mean;
    ``n_folds_defined`` says how many folds each mean rests on.
    """

    folds: list[FoldResult]
    mean: dict[str, float | None]
    std: dict[str, float | None]
    n_folds_defined: dict[str, int]
    n_rows: int
    n_promotion: int
    seed: int
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summarise(
    folds: list[FoldResult],
) -> tuple[dict[str, float | None], dict[str, float | None], dict[str, int]]:
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    defined: dict[str, int] = {}
    for key in SUMMARY_METRICS:
        values = np.array(
            [f.metrics[key] for f in folds if f.metrics.get(key) is not None], dtype=np.float64
        )
        defined[key] = int(values.size)
        mean[key] = float(values.mean()) if values.size else None
        std[key] = float(values.std(ddof=1)) if values.size > 1 else None
    return mean, std, defined


def cross_validate(config: TrainConfig, folds: int = 5, *, progress: bool = False) -> CVResult:
    """Stratified ``folds``-fold CV of ``config``'s recipe; writes cv_results.json into ``config.output`` if set."""
    if config.model.kind == "stack":
        raise ConfigError(
            "model.kind: kocscope cv cross-validates one model (lexical or transformer); a stack's "
            "honest figures are its cross-fitted validation metrics, in the card `kocscope train` writes"
        )
    check_output_folder(config.output)
    log = stderr_log(progress)
    data, _ = load_all_labelled(config)
    splits = stratified_folds(data, folds, config.split.seed)
    results: list[FoldResult] = []
    with torch_threads(config.training.threads):
        for k, (train_idx, test_idx) in enumerate(splits, 1):
            started = time.perf_counter()
            part, test = data.subset(train_idx), data.subset(test_idx)
            fit_part, val = stratified_split(part, config.split)
            if config.training.max_train_rows is not None:
                fit_part = stratified_subsample(
                    fit_part, config.training.max_train_rows, config.training.seed
                )
            log(
                f"fold {k}/{folds}: fit on {len(fit_part):,}, validate on {len(val):,}, test on {len(test):,}"
            )
            fit = fit_estimator(config, fit_part, val, progress=progress, log=log)
            _, choice = calibrate(fit.estimator, val, config)
            result = evaluate_estimator(fit.estimator, test, n_bootstrap=0)
            results.append(
                FoldResult(
                    fold=k,
                    n_train=len(fit_part),
                    n_validation=len(val),
                    n_test=len(test),
                    n_test_promotion=test.n_promotion,
                    threshold=choice.threshold,
                    calibration=fit.estimator.calibration_config()["calibration"],
                    metrics=result.metrics,
                    seeding=result.seeding,
                    steps=fit.steps,
                    seconds=round(time.perf_counter() - started, 3),
                )
            )
            shown = ", ".join(
                f"{m} {result.metrics[m]:.4f}"
                for m in ("f1", "roc_auc", "pr_auc")
                if result.metrics.get(m) is not None
            )
            log(f"fold {k}: {shown}")
    mean, std, defined = _summarise(results)
    cv = CVResult(
        folds=results,
        mean=mean,
        std=std,
        n_folds_defined=defined,
        n_rows=len(data),
        n_promotion=data.n_promotion,
        seed=config.split.seed,
        config=config.to_dict(),
    )
    if config.output:
        write_json(Path(config.output) / "cv_results.json", cv.to_dict())
    return cv
