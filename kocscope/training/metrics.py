"""Metrics for `promotion` detection and seeding strength, honest on small slices.

Every function takes plain arrays so the same code scores a validation split, a
cross-validation fold or a slice of either. A metric that a slice cannot define
(ROC-AUC with one class, precision with nothing flagged) is ``None``: a made-up
0 or 1 would read as a real result in a per-topic table.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import numpy as np

# Length is a known confound (long promotional posts, short genuine notes), so
# every report slices by it. Edges in characters of the model input text.
LENGTH_EDGES = (200, 500, 1000, 2000)
LENGTH_BUCKETS = ("<200", "200-499", "500-999", "1000-1999", ">=2000")

_EPS = 1e-12
# metrics that get a bootstrap interval: the ones people compare models on
INTERVAL_METRICS = ("precision", "recall", "f1", "roc_auc", "pr_auc")


def length_bucket(n_chars: int) -> str:
    """Bucket label for a text length; edges are LENGTH_EDGES (lower bound inclusive)."""
    if n_chars < 0:
        raise ValueError(f"text length must be >= 0, got {n_chars}")
    return LENGTH_BUCKETS[bisect_right(LENGTH_EDGES, n_chars)]


def as_labels(y_true: Sequence[int] | Sequence[str] | np.ndarray, name: str = "y_true") -> np.ndarray:
    """0/1 labels (1 = promotion) as an int array; the names ``genuine`` / ``promotion``
    (what ``predict`` returns, so sklearn's scorers round-trip) become 0/1 too.
    Anything else is a caller bug."""
    from kocscope.models.base import LABELS

    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int64)
    if y.size and not np.issubdtype(y.dtype, np.number):
        named = np.isin(y, LABELS)
        if not named.all():
            i = int(np.flatnonzero(~named)[0])
            raise ValueError(
                f"{name}[{i}] = {y[i].item()!r}: labels must be 0 / 'genuine' or 1 / 'promotion'"
            )
        return (y == LABELS[1]).astype(np.int64)
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{i}] = {y[i].item()!r}: labels must be 0 / 'genuine' or 1 / 'promotion'"
        )
    return y.astype(np.int64)


def as_probabilities(p: Sequence[float] | np.ndarray, name: str = "p_promotion") -> np.ndarray:
    """Probabilities as a float array, rejecting NaN and values outside [0, 1]."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{i}] = {arr[i].item()!r}: probabilities must be finite and within [0, 1]"
        )
    return arr


def _check_same_length(**arrays: Any) -> int:
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{name} has {size}" for name, size in sizes.items())
        raise ValueError(f"inputs must have one entry per row: {detail}")
    return next(iter(sizes.values()), 0)


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _bin_index(p: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin i holds edges[i] <= p < edges[i+1]; p == 1 falls in the last bin."""
    return np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)


def reliability_bins(
    y_true: Sequence[int] | np.ndarray,
    p_promotion: Sequence[float] | np.ndarray,
    n_bins: int = 15,
    strategy: str = "uniform",
) -> list[dict[str, float | int]]:
    """Non-empty bins of a reliability diagram: range, count, mean p, observed promotion share.

    ``uniform`` bins split [0, 1] evenly; ``quantile`` bins hold about equal
    counts, which keeps bins populated when scores crowd near 0 and 1.
    """
    y, p = as_labels(y_true), as_probabilities(p_promotion)
    _check_same_length(y_true=y, p_promotion=p)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = (
            np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)) if p.size else np.array([0.0, 1.0])
        )
        edges = np.unique(np.concatenate([[0.0], edges[1:-1], [1.0]]))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    index = _bin_index(p, edges)
    bins = []
    for i in range(len(edges) - 1):
        mask = index == i
        count = int(mask.sum())
        if count:
            bins.append(
                {
                    "lo": float(edges[i]),
                    "hi": float(edges[i + 1]),
                    "count": count,
                    "mean_p": float(p[mask].mean()),
                    "frac_promotion": float(y[mask].mean()),
                }
            )
    return bins


def expected_calibration_error(
    y_true: Sequence[int] | np.ndarray,
    p_promotion: Sequence[float] | np.ndarray,
    n_bins: int = 15,
    strategy: str = "uniform",
) -> float | None:
    """Count-weighted mean gap between predicted and observed promotion share; None when empty."""
    bins = reliability_bins(y_true, p_promotion, n_bins, strategy)
    total = sum(b["count"] for b in bins)
    if not total:
        return None
    return float(sum(b["count"] * abs(b["mean_p"] - b["frac_promotion"]) for b in bins) / total)


def ece_floor(
    p_promotion: Sequence[float] | np.ndarray, n_bins: int = 15, draws: int = 100, seed: int = 0
) -> float | None:
    """Mean ECE that a perfectly calibrated model with these very probabilities shows on
    this many rows (labels drawn as Bernoulli(p), uniform bins as in ECE); None when empty.

    Sampling noise alone pushes ECE up on a few hundred rows: with 130 posts
    it can be 0.05 or more, so an ECE near its floor is no evidence of miscalibration.
    """
    p = as_probabilities(p_promotion)
    if not p.size:
        return None
    index = _bin_index(p, np.linspace(0.0, 1.0, n_bins + 1))  # the uniform bins of reliability_bins
    expected = np.bincount(index, weights=p, minlength=n_bins)
    rng = np.random.default_rng(seed)
    gaps = [
        np.abs(np.bincount(index, weights=rng.random(p.size) < p, minlength=n_bins) - expected).sum()
        for _ in range(draws)
    ]
    return float(np.mean(gaps) / p.size)


def precision_recall_points(
    y_true: Sequence[int] | np.ndarray, p_promotion: Sequence[float] | np.ndarray
) -> dict[str, np.ndarray]:
    """Every distinct cut, highest first: threshold, tp, fp, precision, recall, f1.

    A cut flags rows with ``p >= threshold``. Thresholds sit halfway between
    adjacent distinct scores (the lowest cut at the lowest score), so a cut
    chosen here keeps a margin from the rows on either side of it.
    """
    y, p = as_labels(y_true), as_probabilities(p_promotion)
    _check_same_length(y_true=y, p_promotion=p)
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    # last index of each run of equal scores: the cut just below that score
    last = (
        np.flatnonzero(np.r_[p_sorted[1:] != p_sorted[:-1], True])
        if p.size
        else np.array([], dtype=int)
    )
    tp = np.cumsum(y_sorted)[last].astype(np.float64)
    fp = (last + 1 - tp).astype(np.float64)
    scores = p_sorted[last]
    below = np.r_[scores[1:], scores[-1:]] if scores.size else scores
    thresholds = np.where(np.arange(scores.size) < scores.size - 1, (scores + below) / 2.0, scores)
    n_pos = float(y.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / (tp + fp)
        recall = tp / n_pos if n_pos else np.full_like(tp, np.nan)
        f1 = 2 * tp / (tp + fp + n_pos)
    return {
        "threshold": thresholds,
        "tp": tp,
        "fp": fp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _tie_groups(p_sorted: np.ndarray) -> np.ndarray:
    """Start index of each run of equal scores in descending-sorted scores."""
    if not p_sorted.size:
        return np.array([], dtype=np.intp)
    return np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])


def _sorted_ranking_scores(
    pos_w: np.ndarray, neg_w: np.ndarray, starts: np.ndarray
) -> tuple[float | None, float | None]:
    """ROC-AUC and average precision from per-row positive / negative weights in descending
    score order, ``starts`` marking tie groups."""
    if not starts.size:
        return None, None
    pos, neg = np.add.reduceat(pos_w, starts), np.add.reduceat(neg_w, starts)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos <= 0 or n_neg <= 0:
        return None, None
    cum_pos, cum_neg = np.cumsum(pos), np.cumsum(neg)
    # a promotion row beats every genuine row scored lower and half of those tied with it
    roc_auc = float(np.sum(pos * (n_neg - cum_neg + 0.5 * neg)) / (n_pos * n_neg))
    seen = cum_pos + cum_neg  # 0 only before any weighted row, where pos is 0 too
    precision = np.divide(cum_pos, seen, out=np.zeros_like(seen), where=seen > 0)
    return roc_auc, float(np.sum(pos / n_pos * precision))


def roc_pr_auc(
    y_true: Sequence[int] | np.ndarray,
    p_promotion: Sequence[float] | np.ndarray,
    sample_weight: Sequence[float] | np.ndarray | None = None,
) -> tuple[float | None, float | None]:
    """ROC-AUC and PR-AUC (average precision, step-wise as in scikit-learn); None unless
    both classes carry weight."""
    y, p = as_labels(y_true), as_probabilities(p_promotion)
    w = np.ones(y.size) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    _check_same_length(y_true=y, p_promotion=p, sample_weight=w)
    if not (np.isfinite(w) & (w >= 0)).all():
        raise ValueError("sample_weight must be finite and >= 0")
    order = np.argsort(-p, kind="stable")
    w, y = w[order], y[order]
    return _sorted_ranking_scores(w * y, w * (1 - y), _tie_groups(p[order]))


def bootstrap_intervals(
    y_true: Sequence[int] | np.ndarray,
    p_promotion: Sequence[float] | np.ndarray,
    threshold: float,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, list[float] | None]:
    """Percentile 95% intervals of INTERVAL_METRICS over bootstrap resamples of the rows.

    A validation set of a few hundred rows moves F1 by several points, and a
    difference between two models inside that spread is not a finding. A
    resample is drawn as per-row multiplicities on rows sorted once, so each
    costs O(n). A metric gets None when fewer than half the resamples define it.
    """
    y, p = as_labels(y_true), as_probabilities(p_promotion)
    _check_same_length(y_true=y, p_promotion=p)
    if n_bootstrap <= 0 or not y.size:
        return {m: None for m in INTERVAL_METRICS}
    order = np.argsort(-p, kind="stable")
    y, p = y[order], p[order]
    starts = _tie_groups(p)
    flagged_pos = (p >= threshold) & (y == 1)
    flagged, is_pos = p >= threshold, y == 1
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in INTERVAL_METRICS}
    for _ in range(n_bootstrap):
        w = np.bincount(rng.integers(0, y.size, y.size), minlength=y.size).astype(np.float64)
        tp, n_flag, n_pos = w[flagged_pos].sum(), w[flagged].sum(), w[is_pos].sum()
        if n_flag:
            draws["precision"].append(tp / n_flag)
        if n_pos:
            draws["recall"].append(tp / n_pos)
            draws["f1"].append(2 * tp / (n_flag + n_pos))
        pos_w = w * y
        roc_auc, pr_auc = _sorted_ranking_scores(pos_w, w - pos_w, starts)
        if roc_auc is not None and pr_auc is not None:
            draws["roc_auc"].append(roc_auc)
            draws["pr_auc"].append(pr_auc)
    return {
        m: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
        if len(v) * 2 >= n_bootstrap
        else None
        for m, v in draws.items()
    }


def pr_curve(
    y_true: Sequence[int] | np.ndarray,
    p_promotion: Sequence[float] | np.ndarray,
    max_points: int = 200,
) -> list[dict[str, float]]:
    """PR curve points (recall ascending) thinned to ``max_points`` for plots and JSON; [] without promotion rows."""
    pts = precision_recall_points(y_true, p_promotion)
    if not pts["tp"].size or not np.isfinite(pts["recall"]).all():
        return []
    keep = np.unique(
        np.linspace(0, pts["tp"].size - 1, min(max_points, pts["tp"].size)).round().astype(int)
    )
    return [
        {
            "threshold": float(pts["threshold"][i]),
            "precision": float(pts["precision"][i]),
            "recall": float(pts["recall"][i]),
        }
        for i in keep
    ]


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    p_promotion: Sequence[float] | np.ndarray,
    threshold: float = 0.5,
    n_bins: int = 15,
) -> dict[str, Any]:
    """Headline metrics of the `promotion` class at ``threshold`` (flag when p >= threshold).

    None marks what the rows cannot define: precision with nothing flagged,
    recall / F1 without promotion rows, ROC-AUC / PR-AUC / macro-F1 unless
    both classes occur, and everything but counts on an empty slice.
    """
    y, p = as_labels(y_true), as_probabilities(p_promotion)
    n = _check_same_length(y_true=y, p_promotion=p)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    flagged = p >= threshold
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    tn = int((~flagged & (y == 0)).sum())
    n_pos = tp + fn
    both = 0 < n_pos < n
    # F1 needs recall, so it is None without promotion rows; flagging nothing
    # when promotion rows exist scores 0, as it should.
    f1_promotion = _ratio(2 * tp, 2 * tp + fp + fn) if n_pos else None
    # both classes present, so both per-class F1 denominators are > 0
    macro_f1 = (2 * tp / (2 * tp + fp + fn) + 2 * tn / (2 * tn + fn + fp)) / 2 if both else None
    roc_auc, pr_auc = roc_pr_auc(y, p)
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return {
        "n": n,
        "n_promotion": n_pos,
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, n),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, n_pos),
        "f1": f1_promotion,
        "macro_f1": macro_f1,
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "ece": expected_calibration_error(y, p, n_bins),
        "ece_floor": ece_floor(p, n_bins),
        "brier": float(np.mean((p - y) ** 2)) if n else None,
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
        if n
        else None,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def seeding_metrics(
    true01: Sequence[float] | np.ndarray, pred01: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """MAE and Spearman rank correlation of seeding strength on the rows that carry a grade (NaN = ungraded).

    Spearman is None with fewer than 2 graded rows or when either side is
    constant: no ranking to compare.
    """
    t = np.asarray(true01, dtype=np.float64)
    q = np.asarray(pred01, dtype=np.float64)
    _check_same_length(seeding_true=t, seeding_pred=q)
    graded = ~np.isnan(t)
    for name, arr, mask in (("seeding_true", t, graded), ("seeding_pred", q, graded)):
        bad = mask & (~np.isfinite(arr) | (arr < 0) | (arr > 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name}[{i}] = {arr[i].item()!r}: seeding strength must be within [0, 1] (grade / 4)"
            )
    t, q = t[graded], q[graded]
    n = int(t.size)
    spearman = None
    if n >= 2 and np.ptp(t) > 0 and np.ptp(q) > 0:
        from scipy.stats import spearmanr

        spearman = float(spearmanr(t, q).statistic)
    return {"n": n, "mae": float(np.mean(np.abs(t - q))) if n else None, "spearman": spearman}
