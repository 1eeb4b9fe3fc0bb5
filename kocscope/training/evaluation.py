"""One evaluation of `promotion` probabilities: overall, per slice, and the worst mistakes.

It takes arrays, not a model, so validation after training, ``kocscope
evaluate`` and every cross-validation fold go through the same code. Slices
(language, length bucket, user group columns such as topic or platform) exist
because an overall F1 hides where a model fails: length in particular is a known
confound in real corpora.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kocscope.models.base import LABELS
from kocscope.training.metrics import (
    LENGTH_BUCKETS,
    LENGTH_EDGES,
    as_labels,
    as_probabilities,
    bootstrap_intervals,
    classification_metrics,
    length_bucket,
    pr_curve,
    reliability_bins,
    seeding_metrics,
)

LANGUAGE_ORDER = ("zh", "en", "mixed", "other")
MISSING = "(missing)"
OTHER_VALUES = "(other values)"
SCORE_BINS = 20


@dataclass
class SliceMetrics:
    """Metrics on the rows sharing one value of a slicing column."""

    value: str
    metrics: dict[str, Any]
    seeding: dict[str, Any] | None = None


@dataclass
class ErrorExample:
    """A confident mistake, kept so people can read what the model gets wrong."""

    row: int
    id: str | None
    p_promotion: float
    label: str
    predicted: str
    lang: str
    n_chars: int
    text: str | None


@dataclass
class EvaluationResult:
    """Everything a report or a cross-validation summary needs; ``to_dict`` is plain JSON."""

    threshold: float
    metrics: dict[str, Any]
    intervals: dict[str, list[float] | None]
    seeding: dict[str, Any] | None
    by_language: list[SliceMetrics]
    by_length: list[SliceMetrics]
    by_group: dict[str, list[SliceMetrics]]
    pr_curve: list[dict[str, float]]
    reliability: list[dict[str, float | int]]
    score_histogram: dict[str, list[float] | list[int]]
    false_positives: list[ErrorExample]
    false_negatives: list[ErrorExample]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Rebuild from ``to_dict`` output (e.g. a metrics.json), ignoring unknown keys."""
        try:
            return cls(
                threshold=float(data["threshold"]),
                metrics=dict(data["metrics"]),
                intervals=dict(data["intervals"]),
                seeding=data["seeding"],
                by_language=[SliceMetrics(**s) for s in data["by_language"]],
                by_length=[SliceMetrics(**s) for s in data["by_length"]],
                by_group={k: [SliceMetrics(**s) for s in v] for k, v in data["by_group"].items()},
                pr_curve=list(data["pr_curve"]),
                reliability=list(data["reliability"]),
                score_histogram=dict(data["score_histogram"]),
                false_positives=[ErrorExample(**e) for e in data["false_positives"]],
                false_negatives=[ErrorExample(**e) for e in data["false_negatives"]],
                settings=dict(data.get("settings") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an evaluation result ({type(exc).__name__}: {exc})") from exc


def _lengths(texts_or_lengths: Sequence[str | int]) -> np.ndarray:
    out = np.empty(len(texts_or_lengths), dtype=np.int64)
    for i, item in enumerate(texts_or_lengths):
        if isinstance(item, str):
            out[i] = len(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and item >= 0:
            out[i] = int(item)
        else:
            raise ValueError(
                f"texts_or_lengths[{i}] = {item!r}: expected a text or a non-negative character count"
            )
    return out


def _category(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return MISSING
    return str(value)


def _ordered_values(
    values: list[str], first: Sequence[str] = (), max_values: int | None = None
) -> tuple[list[str], dict[str, str]]:
    """Slice order (known values first, then by count) and a mapping that pools the rare tail."""
    counts = Counter(values)
    rest = sorted(
        (v for v in counts if v not in first and v != MISSING), key=lambda v: (-counts[v], v)
    )
    order = [v for v in first if v in counts] + rest
    pooled: dict[str, str] = {}
    if max_values is not None and len(order) > max_values:
        for v in order[max_values:]:
            pooled[v] = OTHER_VALUES
        order = order[:max_values] + [OTHER_VALUES]
    if MISSING in counts:
        order.append(MISSING)
    return order, pooled


def _slices(
    keys: list[str],
    order: list[str],
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    n_bins: int,
    seeding: tuple[np.ndarray, np.ndarray] | None,
) -> list[SliceMetrics]:
    arr = np.asarray(keys, dtype=object)
    out = []
    for value in order:
        mask = arr == value
        if not mask.any():
            continue
        out.append(
            SliceMetrics(
                value=value,
                metrics=classification_metrics(y[mask], p[mask], threshold, n_bins),
                seeding=seeding_metrics(seeding[0][mask], seeding[1][mask]) if seeding else None,
            )
        )
    return out


def _examples(
    rows: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    ids: Sequence[Any] | None,
    texts: Sequence[str] | None,
    langs: list[str],
    lengths: np.ndarray,
    excerpt_chars: int,
) -> list[ErrorExample]:
    out = []
    for i in rows:
        i = int(i)
        text = None
        if texts is not None:
            full = str(texts[i])
            text = full if len(full) <= excerpt_chars else full[:excerpt_chars] + "…"
        out.append(
            ErrorExample(
                row=i,
                id=None if ids is None or ids[i] is None else str(ids[i]),
                p_promotion=float(p[i]),
                label=LABELS[int(y[i])],
                predicted=LABELS[int(p[i] >= threshold)],
                lang=langs[i],
                n_chars=int(lengths[i]),
                text=text,
            )
        )
    return out


def evaluate(
    texts_or_lengths: Sequence[str | int],
    langs: Sequence[str | None],
    y_true: Sequence[int] | np.ndarray,
    p_promotion: Sequence[float] | np.ndarray,
    threshold: float,
    *,
    seeding_true: Sequence[float] | np.ndarray | None = None,
    seeding_pred: Sequence[float] | np.ndarray | None = None,
    groups: Mapping[str, Sequence[Any]] | None = None,
    ids: Sequence[Any] | None = None,
    texts: Sequence[str] | None = None,
    n_bins: int = 15,
    n_worst: int = 10,
    excerpt_chars: int = 300,
    max_group_values: int = 30,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate calibrated probabilities ``p_promotion`` (1 = promotion) at ``threshold``.

    ``texts_or_lengths`` gives each row's model-input text or its length in
    characters (for length buckets); excerpts of mistakes come from ``texts``,
    or from ``texts_or_lengths`` when it holds texts. ``seeding_true`` is
    grade / 4 with NaN for ungraded rows (``seeding_pred`` alone is ignored:
    nothing to compare it with). A group column with more than
    ``max_group_values`` values keeps the most frequent ones and pools the rest,
    so a per-author grouping cannot bury the report. ``n_bootstrap=0`` skips the
    confidence intervals (e.g. inside cross-validation).
    """
    y = as_labels(y_true)
    p = as_probabilities(p_promotion)
    n = len(y)
    named: dict[str, Sequence[Any] | np.ndarray | None] = {
        "texts_or_lengths": texts_or_lengths,
        "langs": langs,
        "p_promotion": p,
        "seeding_true": seeding_true,
        "seeding_pred": seeding_pred,
        "ids": ids,
        "texts": texts,
        **{f"groups[{name!r}]": values for name, values in (groups or {}).items()},
    }
    for name, values in named.items():
        if values is not None and len(values) != n:
            raise ValueError(
                f"{name} has {len(values)} entries but y_true has {n}; give one per row"
            )
    if seeding_true is not None and seeding_pred is None:
        raise ValueError(
            "seeding_true is given without seeding_pred; pass the model's seeding scores too"
        )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")

    lengths = _lengths(texts_or_lengths)
    if texts is None and all(isinstance(t, str) for t in texts_or_lengths):
        texts = [str(t) for t in texts_or_lengths]
    lang_keys = [_category(v) for v in langs]
    length_keys = [length_bucket(int(k)) for k in lengths]
    seeding = None
    if seeding_true is not None and seeding_pred is not None:
        seeding = (
            np.asarray(seeding_true, dtype=np.float64),
            np.asarray(seeding_pred, dtype=np.float64),
        )

    lang_order, _ = _ordered_values(lang_keys, LANGUAGE_ORDER)
    by_group: dict[str, list[SliceMetrics]] = {}
    for name, values in (groups or {}).items():
        keys = [_category(v) for v in values]
        order, pooled = _ordered_values(keys, max_values=max_group_values)
        keys = [pooled.get(k, k) for k in keys]
        by_group[name] = _slices(keys, order, y, p, threshold, n_bins, seeding)

    flagged = p >= threshold
    fp_rows = np.flatnonzero(flagged & (y == 0))
    fn_rows = np.flatnonzero(~flagged & (y == 1))
    fp_rows = fp_rows[np.argsort(-p[fp_rows], kind="mergesort")][:n_worst]
    fn_rows = fn_rows[np.argsort(p[fn_rows], kind="mergesort")][:n_worst]
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    hist_index = np.clip((p * SCORE_BINS).astype(int), 0, SCORE_BINS - 1)
    return EvaluationResult(
        threshold=float(threshold),
        metrics=classification_metrics(y, p, threshold, n_bins),
        intervals=bootstrap_intervals(y, p, threshold, n_bootstrap, seed),
        seeding=seeding_metrics(*seeding) if seeding else None,
        by_language=_slices(lang_keys, lang_order, y, p, threshold, n_bins, seeding),
        by_length=_slices(length_keys, list(LENGTH_BUCKETS), y, p, threshold, n_bins, seeding),
        by_group=by_group,
        pr_curve=pr_curve(y, p),
        reliability=reliability_bins(y, p, n_bins),
        score_histogram={
            "edges": edges.tolist(),
            "genuine": np.bincount(hist_index[y == 0], minlength=SCORE_BINS).tolist(),
            "promotion": np.bincount(hist_index[y == 1], minlength=SCORE_BINS).tolist(),
        },
        false_positives=_examples(
            fp_rows, y, p, threshold, ids, texts, lang_keys, lengths, excerpt_chars
        ),
        false_negatives=_examples(
            fn_rows, y, p, threshold, ids, texts, lang_keys, lengths, excerpt_chars
        ),
        settings={
            "n_bins": n_bins,
            "reliability_bins": "uniform",
            "length_edges_chars": list(LENGTH_EDGES),
            "n_bootstrap": n_bootstrap,
            "seed": seed,
            "max_group_values": max_group_values,
            "n_worst": n_worst,
        },
    )
