"""Real-data check of the lexical model on ZHIHU-16K: train on train.jsonl, report on val.jsonl.

Prints figures for the team, it is not a test. The test split is never read.

Thresholds: the honest F1 uses a threshold chosen by k-fold cross-validation on
train (out-of-fold scores, F1-optimal); "F1 @ val-best" picks the threshold on
val itself and is optimistic, shown only for comparison with papers that do so.
The plain baseline (sklearn char 1-3-gram TF-IDF + logistic regression, default
settings) is fitted and scored the same way in the same run. Length is a strong
confound in this corpus, so every model is also shown per length bucket, next
to a model that sees log(length) only.

    .venv/bin/python benchmarks/zhihu_lexical.py [--data DIR] [--folds 5] [--ablations]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kocscope.models.base import sigmoid
from kocscope.models.lexical import LexicalModel, dense_feature_names
from kocscope.training.calibration import choose_threshold
from kocscope.training.metrics import LENGTH_BUCKETS, classification_metrics, length_bucket

Scorer = Callable[
    [Sequence[str], np.ndarray, Sequence[str]], np.ndarray
]  # (train texts, y, eval texts) -> logits


def read_split(path: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            row = json.loads(line)
            if not isinstance(row.get("text"), str) or row.get("label") not in (0, 1):
                raise ValueError(f"{path}:{lineno}: needs a string 'text' and a 0/1 'label'")
            texts.append(row["text"])
            labels.append(row["label"])
    return texts, np.asarray(labels)


def lexical(**settings: object) -> Scorer:
    def score(train: Sequence[str], y: np.ndarray, test: Sequence[str]) -> np.ndarray:
        return LexicalModel(**settings).fit(train, y).predict_outputs(test).logits

    return score


def plain_baseline(train: Sequence[str], y: np.ndarray, test: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3))
    model = LogisticRegression(max_iter=1000).fit(vec.fit_transform(train), y)
    return model.decision_function(vec.transform(test))


def length_only(train: Sequence[str], y: np.ndarray, test: Sequence[str]) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    def feat(texts: Sequence[str]) -> np.ndarray:
        return np.log1p([len(t) for t in texts])[:, None]

    return LogisticRegression().fit(feat(train), y).decision_function(feat(test))


def cv_threshold(score: Scorer, texts: list[str], y: np.ndarray, folds: int, seed: int) -> float:
    """F1-optimal probability threshold on out-of-fold train scores."""
    from sklearn.model_selection import StratifiedKFold

    oof = np.empty(len(texts))
    for fit_idx, held_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        texts, y
    ):
        oof[held_idx] = score([texts[i] for i in fit_idx], y[fit_idx], [texts[i] for i in held_idx])
    return choose_threshold(y, sigmoid(oof)).threshold


def fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def report(
    name: str, y: np.ndarray, p: np.ndarray, threshold: float, buckets: np.ndarray, seconds: float
) -> None:
    honest = classification_metrics(y, p, threshold)
    best = choose_threshold(y, p)
    print(
        f"{name:34s} ROC-AUC {fmt(honest['roc_auc'])}  PR-AUC {fmt(honest['pr_auc'])}  "
        f"F1 @ cv-threshold {fmt(honest['f1'])} (P {fmt(honest['precision'])} R {fmt(honest['recall'])}, "
        f"t={threshold:.3f})  F1 @ val-best {fmt(best.f1)} (optimistic)  [{seconds:.0f}s]"
    )
    cells = []
    for bucket in LENGTH_BUCKETS:
        mask = buckets == bucket
        m = classification_metrics(y[mask], p[mask], threshold)
        cells.append(
            f"{bucket} n={m['n']} ad={m['n_promotion']}: F1 {fmt(m['f1'])} AUC {fmt(m['roc_auc'])}"
        )
    print("    by length: " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/zhihu16k")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ablations", action="store_true", help="also jieba words, no cues/length, no tail n-grams"
    )
    args = parser.parse_args()

    train, y_train = read_split(args.data / "train.jsonl")
    val, y_val = read_split(args.data / "val.jsonl")
    buckets = np.array([length_bucket(len(t)) for t in val])
    print(
        f"train {len(train)} posts ({int(y_train.sum())} promotion), val {len(val)} ({int(y_val.sum())} promotion)"
    )
    print(f"threshold: F1-optimal on {args.folds}-fold out-of-fold train scores; metrics on val\n")

    models: list[tuple[str, Scorer]] = [
        ("log(length) only", length_only),
        ("plain char1-3 TF-IDF + LR", plain_baseline),
        ("LexicalModel (defaults)", lexical()),
    ]
    if args.ablations:
        models += [
            ("LexicalModel word_tokens=all", lexical(word_tokens="all")),
            ("LexicalModel use_cues=False", lexical(use_cues=False)),
            ("LexicalModel tail_fraction=0", lexical(tail_fraction=0.0)),
        ]
    for name, score in models:
        start = time.perf_counter()
        threshold = cv_threshold(score, train, y_train, args.folds, args.seed)
        p = sigmoid(score(train, y_train, val))
        report(name, y_val, p, threshold, buckets, time.perf_counter() - start)

    # How far each feature group moves the logit across val posts: length must
    # be one voice among many, not the one that decides.
    model = LexicalModel().fit(train, y_train)
    features = model.transform(val)
    n_dense = len(dense_feature_names(model.use_cues))
    n_words = features.shape[1] - model.n_features - n_dense
    groups = {
        "char n-grams": slice(0, model.n_features),
        "word tokens": slice(model.n_features, model.n_features + n_words),
    }
    start = model.n_features + n_words
    groups["log_length"] = slice(start, start + 1)
    groups["cue features"] = slice(start + 1, start + n_dense)
    print(
        "\nLexicalModel (defaults): std over val posts of each feature group's logit contribution"
    )
    print(
        "    "
        + ", ".join(
            f"{name} {np.std(features[:, cols] @ model.coef_[cols].astype(np.float64)):.2f}"
            for name, cols in groups.items()
        )
    )
    print(
        f"    log_length coefficient {model.coef_[start]:+.2f} (feature = log1p(chars) / log1p(10000))"
    )


if __name__ == "__main__":
    main()
