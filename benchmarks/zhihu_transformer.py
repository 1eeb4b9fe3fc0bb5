"""Heads-only transformer on ZHIHU-16K: frozen e5-small, cached window embeddings.

Prints figures for benchmarks/RESULTS-zhihu.md; it is not a test. Trains on
train.jsonl, reports on val.jsonl; the test split is never read. Two stages,
each its own process so that peak memory is per run (the runs of
benchmarks/RESULTS-zhihu.md):

    nice -n 5 .venv/bin/python benchmarks/zhihu_transformer.py fit --long-text head --train-rows 3000
    nice -n 5 .venv/bin/python benchmarks/zhihu_transformer.py fit --long-text windows --train-rows 3000 --lr 1e-2
    nice -n 5 .venv/bin/python benchmarks/zhihu_transformer.py compare --train-rows 3000

``fit`` trains through kocscope's own trainer (fit_estimator, finetune="heads",
so the embedding cache); all runs share one store under --work, so a strategy
only embeds the windows no earlier run had (short posts are one identical
window under every strategy, and the first window of "windows" is the "head"
window). It then retrains the heads on 5 folds of the train rows (vectors from
the store) for out-of-fold logits, and saves val and out-of-fold logits.
``compare`` adds the plain char 1-3-gram TF-IDF + LR baseline and LexicalModel
(both with 5-fold out-of-fold logits) and blends each transformer run with the
lexical model, then prints one markdown table.

Thresholds: "F1 @ cv" uses the F1-optimal threshold on out-of-fold train
scores (honest); "F1 @ val-best" chooses it on val itself (optimistic). ECE is
after Platt scaling fitted on val (optimistic) and on the out-of-fold train
logits (honest). Fold models validate (early stopping) on their own training
part, so no held-out row steers them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from kocscope.models.base import sigmoid
from kocscope.training.calibration import choose_threshold, fit_platt
from kocscope.training.metrics import (
    LENGTH_BUCKETS,
    classification_metrics,
    expected_calibration_error,
    length_bucket,
    roc_pr_auc,
)
from kocscope.training.trainer import peak_memory_mb

DATA = Path(__file__).resolve().parents[2] / "shared/data/zhihu16k"
WORK = Path(os.environ.get("TMPDIR", "/tmp")) / "kocscope-zhihu-transformer"
FOLDS = 5
SEED = 0


def out_of_fold(y: np.ndarray, fit_predict: Any, seed: int = SEED) -> np.ndarray:
    """Out-of-fold scores: ``fit_predict(fit_rows, held_rows)`` returns the held rows' logits."""
    from sklearn.model_selection import StratifiedKFold

    oof = np.empty(len(y))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    for k, (fit_idx, held_idx) in enumerate(folds, 1):
        started = time.perf_counter()
        oof[held_idx] = fit_predict(fit_idx, held_idx)
        print(f"  fold {k}/{FOLDS}: {time.perf_counter() - started:.0f}s", flush=True)
    return oof


def figures(
    y: np.ndarray, z: np.ndarray, y_oof: np.ndarray, z_oof: np.ndarray, lengths: np.ndarray
) -> dict[str, Any]:
    """Val figures of logits ``z``, threshold and honest calibration from out-of-fold ``z_oof``."""
    threshold = choose_threshold(y_oof, sigmoid(z_oof)).threshold
    p = sigmoid(z)
    at_cv = classification_metrics(y, p, threshold)
    a, b = fit_platt(z, y)
    a_oof, b_oof = fit_platt(z_oof, y_oof)
    buckets = np.array([length_bucket(n) for n in lengths])
    oof = classification_metrics(y_oof, sigmoid(z_oof))
    return {
        "oof_roc_auc": oof["roc_auc"],
        "oof_pr_auc": oof["pr_auc"],
        "roc_auc": at_cv["roc_auc"],
        "pr_auc": at_cv["pr_auc"],
        "f1_cv": at_cv["f1"],
        "precision_cv": at_cv["precision"],
        "recall_cv": at_cv["recall"],
        "f1_val_best": choose_threshold(y, p).f1,
        "ece_platt_val": expected_calibration_error(y, sigmoid(a * z + b)),
        "ece_platt_oof": expected_calibration_error(y, sigmoid(a_oof * z + b_oof)),
        "f1_cv_by_length": {
            name: classification_metrics(y[buckets == name], p[buckets == name], threshold)["f1"]
            for name in LENGTH_BUCKETS
        },
    }


def train_config(args: argparse.Namespace) -> Any:
    from kocscope.training.training_args import config_from_dict

    return config_from_dict(
        {
            "data": {
                "train": [str(args.data / "train.jsonl")],
                "validation": str(args.data / "val.jsonl"),
                "positive_label": 1,
            },
            "model": {
                "kind": "transformer",
                "settings": {
                    "finetune": "heads",
                    "max_length": 256,
                    "long_text": args.long_text,
                    "max_windows": 4,
                    "window_pooling": args.window_pooling,
                },
            },
            "training": {
                "epochs": args.epochs,
                "batch_size": 32,
                "lr": args.lr,
                "early_stopping_patience": 4,
                "seed": args.seed,
            },
        }
    )


def fit_stage(args: argparse.Namespace) -> None:
    from kocscope.training.dataset import load_training_data, stratified_subsample
    from kocscope.training.embedding_cache import EmbeddingStore, embed_posts
    from kocscope.training.trainer import fit_estimator, torch_threads

    tag = args.tag or (
        f"{args.long_text}-{args.window_pooling}"
        + (f"-{args.train_rows}rows" if args.train_rows else "")
    )
    config = train_config(args)
    cache = args.work / "embedding_cache"
    with torch_threads(None) as threads:
        data = load_training_data(config)
        train, val = data.train, data.validation
        if args.train_rows:
            train = stratified_subsample(train, args.train_rows, args.seed)
        print(f"[{tag}] train {len(train)} posts ({train.n_promotion} promotion), val {len(val)}")
        started = time.perf_counter()
        fit = fit_estimator(config, train, val, cache_dir=cache, log=print)
        fit_seconds = time.perf_counter() - started
        cached = fit.embedding_cache
        embed_seconds = sum(part["seconds"] for part in cached.values())
        store = EmbeddingStore(cache, fit.estimator.base_encoder_fingerprint_)
        embeddings, _ = embed_posts(fit.estimator, val.texts, store)
        z_val = embeddings.outputs(fit.estimator.module_).logits
        # the cache must score like the model itself: check a few posts through predict_outputs
        probe = [int(i) for i in np.linspace(0, len(val) - 1, 16)]
        direct = fit.estimator.predict_outputs([val.texts[i] for i in probe]).logits
        gap = float(np.max(np.abs(direct - z_val[probe])))
        print(f"max |predict_outputs - cached| logit gap on {len(probe)} val posts: {gap:.2e}")

        def fold(fit_idx: np.ndarray, held_idx: np.ndarray) -> np.ndarray:
            part, held = train.subset(fit_idx), train.subset(held_idx)
            model = fit_estimator(config, part, part, cache_dir=cache).estimator
            vectors, _ = embed_posts(model, held.texts, store)
            return vectors.outputs(model.module_).logits

        started = time.perf_counter()
        z_oof = out_of_fold(train.y, fold, args.seed)
        cv_seconds = time.perf_counter() - started
    run = {
        "tag": tag,
        "settings": config.model.settings,
        "training": {k: getattr(config.training, k) for k in ("epochs", "batch_size", "lr")},
        "threads": threads,
        "train_rows": len(train),
        "steps": fit.steps,
        "best_step": fit.best_step,
        "stopped_early": fit.stopped_early,
        "embedding_cache": cached,
        "seconds": {
            "embed": round(embed_seconds, 1),
            "heads": round(fit_seconds - embed_seconds, 1),
            "cv_folds": round(cv_seconds, 1),
        },
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "cache_vs_predict_outputs_max_gap": gap,
        "figures": figures(val.y, z_val, train.y, z_oof, np.array([len(t) for t in val.texts])),
    }
    args.work.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.work / f"{tag}.npz",
        train_ids=np.array(train.ids),
        y_oof=train.y,
        z_oof=z_oof,
        val_ids=np.array(val.ids),
        z_val=z_val,
    )
    (args.work / f"{tag}.json").write_text(json.dumps(run, indent=1), encoding="utf-8")
    print(json.dumps(run, indent=1))


# --- compare -------------------------------------------------------------------------------


def text_scores(path: Path, train: Any, val: Any, make: Any) -> dict[str, np.ndarray]:
    """Out-of-fold train logits and val logits of a text model fitted on all of ``train``;
    kept in ``path`` so that ``compare`` can be rerun cheaply."""
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return dict(saved)
    print(f"{path.stem}: {FOLDS}-fold out-of-fold + full fit", flush=True)
    texts, y = train.texts, train.y
    started = time.perf_counter()
    z_oof = out_of_fold(y, lambda f, h: make([texts[i] for i in f], y[f], [texts[i] for i in h]))
    z_val = make(texts, y, val.texts)
    scores = {"z_oof": z_oof, "z_val": z_val, "seconds": np.array(time.perf_counter() - started)}
    np.savez(path, **scores)
    return scores


def lexical_logits(train: list[str], y: np.ndarray, test: list[str]) -> np.ndarray:
    from kocscope.models.lexical import LexicalModel

    return LexicalModel().fit(train, y).predict_outputs(test).logits.astype(np.float64)


def mean_logit(pairs: np.ndarray, platts: list[tuple[float, float]]) -> np.ndarray:
    """Logit of the mean of each column's Platt-calibrated probability."""
    p = np.mean([sigmoid(a * pairs[:, j] + b) for j, (a, b) in enumerate(platts)], axis=0)
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def pr_auc_gain(y: np.ndarray, z: np.ndarray, z_ref: np.ndarray, n_boot: int = 1000) -> str:
    """Val PR-AUC of ``z`` minus that of ``z_ref``, with a paired bootstrap 95% interval:
    190 promotion rows leave differences of a point or two within noise."""
    rng = np.random.default_rng(SEED)
    p, q = sigmoid(z), sigmoid(z_ref)

    def gain(idx: np.ndarray) -> float:
        return roc_pr_auc(y[idx], p[idx])[1] - roc_pr_auc(y[idx], q[idx])[1]

    draws = [gain(rng.integers(0, len(y), len(y))) for _ in range(n_boot)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return f"PR-AUC vs LexicalModel (all rows) {gain(np.arange(len(y))):+.3f} [{low:+.3f}, {high:+.3f}]"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def row(name: str, rows: int, fig: dict[str, Any], note: str) -> str:
    buckets = " / ".join(fmt(fig["f1_cv_by_length"][b]) for b in LENGTH_BUCKETS)
    return (
        f"| {name} | {rows} | {fmt(fig['roc_auc'])} | {fmt(fig['pr_auc'])} | "
        f"{fmt(fig['f1_cv'])} ({fmt(fig['precision_cv'])}/{fmt(fig['recall_cv'])}) | "
        f"{fmt(fig['f1_val_best'])} | {fmt(fig['ece_platt_val'])} | {fmt(fig['ece_platt_oof'])} | "
        f"{buckets} | {fmt(fig['oof_pr_auc'])} | {note} |"
    )


def compare_stage(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression
    from zhihu_lexical import plain_baseline

    from kocscope.training.dataset import load_training_data, stratified_subsample

    data = load_training_data(train_config(args))
    train, val = data.train, data.validation
    y, y_val = train.y, val.y
    position = {i: k for k, i in enumerate(train.ids)}
    lengths = np.array([len(t) for t in val.texts])
    lines = [
        "| model | train rows | ROC-AUC | PR-AUC | F1 @ cv (P/R) | F1 @ val-best | "
        "ECE Platt@val | ECE Platt@oof | F1 @ cv by length "
        + " / ".join(LENGTH_BUCKETS)
        + " | train out-of-fold PR-AUC | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    # the text models on all train rows, and on the transformer runs' subsample (same rows)
    parts = [("", train)]
    if args.train_rows:
        parts.append(
            (f"-{args.train_rows}rows", stratified_subsample(train, args.train_rows, args.seed))
        )
    scores = {}
    for suffix, rows_used in parts:
        for name, make in (("baseline", plain_baseline), ("lexical", lexical_logits)):
            key = name + suffix
            scores[key] = text_scores(args.work / f"{key}.npz", rows_used, val, make)
            y_rows = rows_used.y
            fig = figures(y_val, scores[key]["z_val"], y_rows, scores[key]["z_oof"], lengths)
            label = {"baseline": "char 1-3 TF-IDF + LR", "lexical": "LexicalModel (defaults)"}[name]
            seconds = float(scores[key]["seconds"])
            lines.append(row(label, len(rows_used), fig, f"{seconds:.0f}s ({FOLDS + 1} fits)"))
    lex = scores["lexical"]
    for path in sorted(args.work.glob("*.json")):  # the transformer runs of `fit`
        run = json.loads(path.read_text(encoding="utf-8"))
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as saved:
            tr = dict(saved)
        s = run["seconds"]
        note = (
            f"embed {s['embed']:.0f}s + heads {s['heads']:.0f}s (+ cv {s['cv_folds']:.0f}s), "
            f"peak {run['peak_memory_mb']:.0f} MB"
        )
        rows = np.array([position[i] for i in tr["train_ids"]])
        y_oof = y[rows]
        fig = figures(y_val, tr["z_val"], y_oof, tr["z_oof"], lengths)
        lines.append(row(f"transformer {run['tag']}", run["train_rows"], fig, note))
        pair_oof = np.column_stack([tr["z_oof"], lex["z_oof"][rows]])
        pair_val = np.column_stack([tr["z_val"], lex["z_val"]])
        # mean of the two Platt-calibrated probabilities (Platt fitted on out-of-fold train logits)
        platts = [fit_platt(pair_oof[:, j], y_oof) for j in range(2)]
        z_mean = mean_logit(pair_val, platts)
        fig = figures(y_val, z_mean, y_oof, mean_logit(pair_oof, platts), lengths)
        note = pr_auc_gain(y_val, z_mean, lex["z_val"])
        lines.append(row(f"mean(p) lexical + {run['tag']}", run["train_rows"], fig, note))
        stack = LogisticRegression().fit(pair_oof, y_oof)
        z_stack = stack.decision_function(pair_val)
        fig = figures(y_val, z_stack, y_oof, stack.decision_function(pair_oof), lengths)
        weights = ", ".join(f"{w:+.2f}" for w in stack.coef_[0])
        note = (
            f"{pr_auc_gain(y_val, z_stack, lex['z_val'])}; weights (transformer, lexical) {weights}"
        )
        lines.append(row(f"stack LR lexical + {run['tag']}", run["train_rows"], fig, note))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("fit", "compare"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=WORK, help="embedding store and saved logits")
    parser.add_argument("--long-text", default="head", choices=("head", "head_tail", "windows"))
    parser.add_argument("--window-pooling", default="max", choices=("max", "mean"))
    parser.add_argument(
        "--train-rows", type=int, default=None, help="stratified subsample of train"
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--tag", default=None, help="name of the run (default from the settings)")
    args = parser.parse_args()
    if args.stage == "fit":
        fit_stage(args)
    else:
        compare_stage(args)


if __name__ == "__main__":
    main()
