"""Train a stacked model (``model.kind: stack``): components first, then the combiner.

One recipe: each component in ``model.components`` trains with the ordinary
trainer on the stack's data section (its own model and training overrides),
under ``<output>/components/<name>/`` (bundle in ``model/``, embedding cache,
checkpoint, report). Then the components' raw logits on the validation rows fit
the combiner (kocscope.models.stacking) and the threshold is chosen there by
the configured rule. ``data.combiner_validation`` adds validation rows that
only the combiners see: the components neither train, stop early nor
calibrate on them, so posts unlike the training data (other writers, other
platforms) teach the combiners how far to trust the components.

Those validation figures reuse the rows the combiner was fitted on, so they are
optimistic. The honest ones are cross-fitted: the validation rows are split
into stratified folds (by label and Chinese / not), and for each fold the
combiner and threshold are fitted on the others and applied to it; the same is
done for each component alone (a one-logit combiner is a recalibration), so
the gain of stacking shows on equal terms. The seeding combiner is cross-fitted
the same way on the graded validation rows and compared with the components'
mean by Spearman (``seeding``). They go to ``train_result.json``, the bundle's
config and its card as ``cross_fitted_metrics``.

A component's ``train`` files replace ``data.train`` for it, and its
``train_extra`` files are added to its own training data only: for example a
transformer that goes on from a GPU-trained bundle (``training.init_from``) with
new short posts only, on a CPU, while the lexical model refits on everything.

``--resume``: a component whose bundle exists and whose record
(``stack_component.json``: its resolved config, less what the trainer lets a
resume change, and a hash of the training and validation rows) matches is not
retrained; any other component is trained with
``resume``, so an interrupted transformer continues from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kocscope.training.trainer import (
    CHECKPOINT_DIR,
    MODEL_DIR,
    REPORT_DIR,
    RESULT_FILE,
    STATE_FILE,
    TrainResult,
    _config_fingerprint,
    _data_fingerprint,
    _lexical_settings,
    evaluate_estimator,
    init_bundle,
    make_estimator,
    peak_memory_mb,
    stderr_log,
    torch_threads,
    write_json,
)
from kocscope.training.training_args import ConfigError, TrainConfig, component_config, portable_paths

__all__ = [
    "COMPONENTS_DIR",
    "StackTrainResult",
    "cross_fitted_metrics",
    "cross_fitted_seeding",
    "train_stack",
]

COMPONENTS_DIR = "components"
RECORD_FILE = "stack_component.json"
_COUNT_METRICS = ("accuracy", "precision", "recall", "f1", "macro_f1", "confusion")
_CROSSFIT_NOTE = (
    "cross-fitted on the validation rows: for each of k stratified folds, combiner and threshold "
    "are fitted on the other folds and applied to it; components alone are recalibrated the same way"
)


@dataclass
class StackTrainResult(TrainResult):
    """A TrainResult plus the stack's honest figures and each component's own result."""

    cross_fitted_metrics: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)  # name -> TrainResult.to_dict()


def _metrics(y: np.ndarray, p: np.ndarray, flagged: np.ndarray) -> dict[str, Any]:
    """Ranking and calibration metrics of ``p``; counts of ``flagged`` (thresholds differ per fold)."""
    from kocscope.training.metrics import classification_metrics

    out = classification_metrics(y, p, 0.5)
    counts = classification_metrics(y, flagged.astype(np.float64), 0.5)
    out.update({k: counts[k] for k in _COUNT_METRICS})
    del out["threshold"]
    return out


def cross_fitted_metrics(
    features: np.ndarray,
    y: np.ndarray,
    langs: list[str],
    *,
    C: float,
    folds: int = 10,
    seed: int = 0,
    rule: str = "f1",
    target_precision: float = 0.9,
    columns: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Honest metrics of a combiner fitted on ``features`` (see the module docstring).

    ``columns``: extra feature subsets to cross-fit the same way (e.g. one
    component's logit alone), reported under ``subsets``.
    """
    from sklearn.model_selection import StratifiedKFold

    from kocscope.models.base import sigmoid
    from kocscope.models.stacking import fit_combiner
    from kocscope.training.calibration import choose_threshold

    y = np.asarray(y, dtype=np.int64)
    lang = np.asarray(langs)
    k = min(int(folds), int(np.bincount(y, minlength=2).min()))
    if k < 2:
        return {
            "note": f"not computed: a class has {k} validation row(s), fewer than the 2 folds needed"
        }
    strata = y * 2 + (lang != "zh")  # label x Chinese / not, while every stratum fills the folds
    if np.unique(strata, return_counts=True)[1].min() < k:
        strata = y
    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(features, strata))

    def crossfit(x: np.ndarray) -> dict[str, Any]:
        p = np.empty(len(y))
        flagged = np.zeros(len(y), dtype=bool)
        for fit_rows, held in splits:
            coef, intercept = fit_combiner(x[fit_rows], y[fit_rows], C, seed)
            threshold = choose_threshold(
                y[fit_rows], sigmoid(x[fit_rows] @ coef + intercept), rule, target_precision
            ).threshold
            p[held] = sigmoid(x[held] @ coef + intercept)
            flagged[held] = p[held] >= threshold
        by_language = {
            value: _metrics(y[lang == value], p[lang == value], flagged[lang == value])
            for value in sorted(set(langs))
        }
        return {"all": _metrics(y, p, flagged), "by_language": by_language}

    result = {
        "folds": k,
        "seed": seed,
        "note": _CROSSFIT_NOTE,
        **crossfit(np.asarray(features, dtype=np.float64)),
    }
    if columns:
        result["subsets"] = {
            name: crossfit(features[:, cols])["all"] for name, cols in columns.items()
        }
    return result


def cross_fitted_seeding(
    features: np.ndarray,
    mean_seeding: np.ndarray,
    grades: np.ndarray,
    langs: list[str],
    *,
    folds: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Seeding figures on the graded validation rows: the seeding combiner fitted on the
    other folds (``combiner``) against the components' mean (``mean``), overall and by language."""
    from sklearn.model_selection import KFold

    from kocscope.models.stacking import SEEDING_MIN_GRADED, fit_seeding_combiner
    from kocscope.training.metrics import seeding_metrics

    graded = ~np.isnan(np.asarray(grades, dtype=np.float64))
    n = int(graded.sum())
    if n < SEEDING_MIN_GRADED:
        return {"note": f"not computed: {n} graded validation row(s), fewer than {SEEDING_MIN_GRADED}"}
    x, g = np.asarray(features, dtype=np.float64)[graded], np.asarray(grades, dtype=np.float64)[graded]
    lang, mean = np.asarray(langs)[graded], np.asarray(mean_seeding, dtype=np.float64)[graded]
    k = min(int(folds), n)
    predicted = np.empty(n)
    for fit_rows, held in KFold(k, shuffle=True, random_state=seed).split(x):
        if np.ptp(g[fit_rows]) > 0:
            coef, intercept = fit_seeding_combiner(x[fit_rows], g[fit_rows])
            predicted[held] = np.clip(x[held] @ coef + intercept, 0.0, 1.0)
        else:  # one grade in the fitting folds: nothing to rank by
            predicted[held] = g[fit_rows][0]

    def figures(q: np.ndarray) -> dict[str, Any]:
        return {
            "all": seeding_metrics(g, q),
            "by_language": {v: seeding_metrics(g[lang == v], q[lang == v]) for v in sorted(set(lang))},
        }

    return {"n": n, "folds": k, "seed": seed, "combiner": figures(predicted), "mean": figures(mean)}


def _component_configs(config: TrainConfig) -> dict[str, TrainConfig]:
    """Each component's resolved config, its model settings checked before anything trains."""
    configs = {}
    for name in config.model.components:
        sub = component_config(config, name)
        try:
            settings = (
                _lexical_settings(sub) if sub.model.kind == "lexical" else dict(sub.model.settings)
            )
            make_estimator(sub.model.kind, settings)
            if sub.training.init_from:
                init_bundle(sub.training.init_from)
        except ConfigError as exc:
            raise ConfigError(f"model.components.{name}: {exc}") from exc
        configs[name] = sub
    return configs


def _record(sub: TrainConfig, data_sha256: str) -> dict[str, Any]:
    """What a reusable component must match: its settings less those a resume may change
    (threads, device, file locations: the trainer's own rule), the rows by content, and the
    weights it went on from (training.init_from) by content."""
    from kocscope.models.bundle import sha256_file
    from kocscope.models.modeling import ADAPTER_FILE

    record = {"config": json.loads(json.dumps(_config_fingerprint(sub))), "data_sha256": data_sha256}
    if sub.training.init_from:
        record["init_sha256"] = sha256_file(init_bundle(sub.training.init_from) / ADAPTER_FILE)
    return record


def _reusable(folder: Path, record: dict[str, Any]) -> TrainResult | None:
    """The finished result of a component trained with the same config and data, else None."""
    from kocscope.models.bundle import BundleError, read_bundle_config

    try:
        saved = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        result = TrainResult.from_dict(
            json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        )
        # the bundle where it is now: a run folder may have moved, or come from a GPU machine
        result = dataclasses.replace(result, bundle_path=folder / MODEL_DIR, output_dir=folder)
        read_bundle_config(result.bundle_path)
    except (OSError, ValueError, TypeError, KeyError, BundleError):
        return None
    return result if saved == record else None


def train_stack(
    config: TrainConfig, *, resume: bool = False, progress: bool = True
) -> StackTrainResult:
    """Train the components, fit the combiner and threshold, cross-fit, evaluate, report, save."""
    from kocscope.models.bundle import load_estimator, read_bundle_config
    from kocscope.models.stacking import CALIBRATION_METHOD, StackedModel
    from kocscope.training.dataset import LabelledData, load_labelled, load_training_data
    from kocscope.training.distributed import launch_env
    from kocscope.training.report import write_report
    from kocscope.training.trainer import train

    if config.model.kind != "stack":
        raise ConfigError(f"train_stack needs model.kind stack, got {config.model.kind!r}")
    if not config.output:
        raise ConfigError("no output folder: set `output` in the config or pass --output")
    if launch_env() is not None:
        raise ConfigError(
            "a stack trains its components one after another in one process; run kocscope train without torchrun "
            "(or train a transformer component alone under torchrun first)"
        )
    out = Path(config.output)
    log = stderr_log(progress)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    subs = _component_configs(config)
    data = load_training_data(config)
    data_sha = _data_fingerprint(data.train, data.validation)  # the rows the components see
    if config.data.combiner_validation:
        extra, _ = load_labelled(
            config.data.combiner_validation, config.data, mapping=data.mapping, check_optional=False
        )
        data = dataclasses.replace(
            data,
            validation=LabelledData.concat([data.validation, extra]),
            validation_from=f"{data.validation_from}, plus {len(extra):,} combiner-only rows "
            "(data.combiner_validation) the components never saw",
        )
    log(
        f"stack of {', '.join(f'{n} ({s.model.kind})' for n, s in subs.items())}; data: {data.summary()}"
    )

    results: dict[str, TrainResult] = {}
    reused_names: set[str] = set()
    for name, sub in subs.items():
        t = time.perf_counter()
        folder = out / COMPONENTS_DIR / name
        own_sha = data_sha
        if sub.data.train != config.data.train:  # train / train_extra: the component's own rows
            own = load_training_data(sub)
            own_sha = _data_fingerprint(own.train, own.validation)
        record = _record(sub, own_sha)
        reused = _reusable(folder, record) if resume else None
        if reused is not None:
            log(f"component {name}: its bundle matches config and data; not retrained (--resume)")
            results[name] = reused
            reused_names.add(name)
            continue  # its own training time is in its record, not in this run's
        log(f"component {name}: training a {sub.model.kind} model into {folder}")
        # --resume continues a component that was interrupted (a checkpoint, no bundle yet); one
        # that never began, or whose finished bundle no longer matches, trains afresh
        interrupted = (folder / CHECKPOINT_DIR / STATE_FILE).is_file() and not (folder / MODEL_DIR).exists()
        results[name] = train(sub, resume=resume and interrupted, progress=progress)
        write_json(folder / RECORD_FILE, record)
        timings[f"component:{name}"] = time.perf_counter() - t

    val = data.validation
    with torch_threads(config.training.threads):
        t = time.perf_counter()
        components = {name: load_estimator(results[name].bundle_path) for name in subs}
        stack = StackedModel(components, **config.model.settings)
        outputs = stack.component_outputs(val.texts)
        features = stack.stack_features(val.texts, outputs)
        stack.fit(val.texts, val.y, seeding=val.seeding, outputs=outputs)
        log(
            "seeding: "
            + (
                f"combiner fitted on {stack.seeding_graded_rows_:,} graded validation rows"
                if stack.seeding_coef_ is not None
                else f"the components' mean ({stack.seeding_graded_rows_:,} graded validation rows)"
            )
        )
        stacked = stack.outputs_from_components(val.texts, outputs)
        choice = _threshold_choice(val.y, stack.p_promotion(stacked.logits), config)
        stack.set_calibration(1.0, 0.0, choice.threshold, CALIBRATION_METHOD)
        timings["combine"] = time.perf_counter() - t
        t = time.perf_counter()
        names = stack.component_names
        crossfit = cross_fitted_metrics(
            features,
            val.y,
            val.langs,
            C=stack.C,
            folds=stack.cv_folds,
            seed=stack.seed,
            rule=config.threshold.rule,
            target_precision=config.threshold.target_precision,
            columns={name: [i] for i, name in enumerate(names)},
        )
        crossfit["seeding"] = cross_fitted_seeding(
            stack.seeding_features(outputs),
            np.mean([outputs[n].seeding for n in names], axis=0),
            val.seeding,
            val.langs,
            folds=stack.cv_folds,
            seed=stack.seed,
        )
        timings["cross_fit"] = time.perf_counter() - t
        t = time.perf_counter()
        evaluation = evaluate_estimator(stack, val, outputs=stacked, seed=config.training.seed)
        timings["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    component_runs = {name: results[name].to_dict() for name in names}
    run = {
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "device": "cpu",  # the combiner's own steps; each component's device is below
        "threshold_choice": choice.to_dict(),
        "data": data.describe(),
        "components": {
            name: {
                "bundle": r["bundle_path"],
                "metrics": r["metrics"],
                "threshold": r["threshold"],
                "steps": r["steps"],
                "device": r["device"],
                "train_seconds": (r.get("timings") or {}).get("total"),
                "reused": name in reused_names,
                "init_from": (read_bundle_config(r["bundle_path"]).get("training_run") or {}).get("init_from"),
            }
            for name, r in component_runs.items()
        },
        "metrics_note": "combiner, threshold and metrics all use the validation rows: optimistic; "
        "see cross_fitted_metrics for honest figures",
    }
    stack.metrics_ = evaluation.metrics
    stack.cross_fitted_metrics_ = crossfit
    stack.training_data_ = data.summary()
    stack.train_config_ = portable_paths(config.to_dict())
    stack.training_run_ = portable_paths(run)
    bundle = stack.save_pretrained(out / MODEL_DIR)
    timings["save"] = time.perf_counter() - t
    t = time.perf_counter()
    headline = crossfit.get("all") or {}
    paths = write_report(
        evaluation,
        out / REPORT_DIR,
        title="kocscope stack model: validation",
        model_info={
            "kind": "stack",
            "bundle": str(bundle),
            "components": ", ".join(f"{n} ({c.kind})" for n, c in components.items()),
            "combiner": stack.combiner_config(),
            "threshold": choice.to_dict(),
            "cross-fitted validation metrics": {
                k: headline.get(k) for k in ("macro_f1", "f1", "pr_auc", "roc_auc", "ece")
            },
            "training data": data.summary(),
            "note": run["metrics_note"],
        },
    )
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    config.save(out / "train_config.json")
    result = StackTrainResult(
        bundle_path=bundle,
        output_dir=out,
        report_paths=paths,
        metrics=evaluation.metrics,
        calibration=stack.calibration_config()["calibration"],
        threshold=choice.to_dict(),
        timings={k: round(v, 3) for k, v in timings.items()},
        peak_memory_mb=round(peak_memory_mb(), 1),
        steps=sum(r.steps for r in results.values()),
        epochs_completed=max(r.epochs_completed for r in results.values()),
        best_step=None,
        stopped_early=any(r.stopped_early for r in results.values()),
        resumed_from_step=None,
        device=", ".join(sorted({r.device for r in results.values()})),
        history=[],
        data=data.describe(),
        cross_fitted_metrics=crossfit,
        components=component_runs,
    )
    write_json(out / RESULT_FILE, result.to_dict())
    return result


def _threshold_choice(y: np.ndarray, p: np.ndarray, config: TrainConfig) -> Any:
    from kocscope.training.calibration import choose_threshold
    from kocscope.training.trainer import TrainingError

    try:
        return choose_threshold(y, p, config.threshold.rule, config.threshold.target_precision)
    except ValueError as exc:
        raise TrainingError(
            f"choosing the stack's threshold on the validation rows failed: {exc}"
        ) from exc
