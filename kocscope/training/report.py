"""The evaluation report: metrics.json for machines, report.html and figures for people.

The HTML is one self-contained file (inline CSS and SVG, no scripts, no
network) so it can be mailed or archived with the model; every piece of user
text in it (post excerpts, ids, group values, model info) is escaped. Figures
are also written as standalone SVG files, and as PNG when matplotlib happens to
be installed (it is not a kocscope dependency).
"""

from __future__ import annotations

import json
import os
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any

from kocscope.html import Html, esc, page, svg_heatmap, svg_line, table, write_page
from kocscope.models.base import LABELS
from kocscope.training.evaluation import ErrorExample, EvaluationResult, SliceMetrics
from kocscope.training.metrics import LENGTH_BUCKETS

# slices below these sizes get a "noisy" mark: their metrics swing with a few rows
SMALL_SLICE_ROWS = 30
SMALL_SLICE_CLASS = 5

_HEADLINE = (
    ("f1", "F1 of promotion at the threshold"),
    ("precision", "share of flagged posts that are promotion (1 - false accusation rate)"),
    ("recall", "share of promotion posts that get flagged"),
    ("macro_f1", "mean F1 of genuine and promotion"),
    ("accuracy", "share of posts labelled correctly; misleading when classes are unbalanced"),
    ("roc_auc", "ranking quality without a threshold; 0.5 is chance"),
    ("pr_auc", "average precision without a threshold; chance is the promotion share"),
    (
        "ece",
        "expected calibration error: mean gap between p_promotion and the observed share (lower is better)",
    ),
    (
        "ece_floor",
        "the ECE a perfectly calibrated model with these scores would show on this many rows, from "
        "sampling noise alone: an ECE near it is no sign of miscalibration",
    ),
    ("brier", "mean squared error of p_promotion (lower is better)"),
    ("log_loss", "negative log-likelihood of p_promotion (lower is better)"),
)
_SLICE_COLUMNS = ("n", "n_promotion", "precision", "recall", "f1", "roc_auc", "pr_auc", "ece", "ece_floor")


def _plain(value: Any) -> Any:
    """JSON fallback for model_info values: numpy scalars become numbers, paths and the rest text."""
    return value.item() if hasattr(value, "item") else str(value)


# -- figures --------------------------------------------------------------------
def _operating_point(result: EvaluationResult) -> tuple[float | None, float | None]:
    return result.metrics.get("recall"), result.metrics.get("precision")


def pr_curve_svg(result: EvaluationResult) -> Html:
    xs = [[pt["recall"] for pt in result.pr_curve]]
    ys = [[pt["precision"] for pt in result.pr_curve]]
    labels = ["PR curve"]
    recall, precision = _operating_point(result)
    if recall is not None and precision is not None:
        xs.append([recall])
        ys.append([precision])
        labels.append(f"threshold {result.threshold:.3f}")
    n, n_pos = result.metrics["n"], result.metrics["n_promotion"]
    if n:
        xs.append([0.0, 1.0])
        ys.append([n_pos / n, n_pos / n])
        labels.append("chance")
    return svg_line(
        xs,
        ys,
        series_labels=labels,
        title="Precision-recall curve (promotion)",
        x_label="recall",
        y_label="precision",
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
    )


def reliability_svg(result: EvaluationResult) -> Html:
    bins = result.reliability
    return svg_line(
        [b["mean_p"] for b in bins],
        [b["frac_promotion"] for b in bins],
        series_labels=["model"],
        title="Reliability diagram",
        x_label="mean p_promotion in bin",
        y_label="observed promotion share",
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        diagonal=True,
        markers=True,
    )


def confusion_svg(result: EvaluationResult) -> Html:
    c = result.metrics["confusion"]
    grid = [[c["tn"], c["fp"]], [c["fn"], c["tp"]]]
    text = [
        [f"{v}\n{v / sum(row):.1%} of row" if sum(row) else f"{v}" for v in row] for row in grid
    ]
    return svg_heatmap(
        grid,
        list(LABELS),
        list(LABELS),
        cell_text=text,
        title=f"Confusion matrix at threshold {result.threshold:.3f}",
        row_title="true label",
        col_title="predicted label",
        label_width=120,
    )


def score_distribution_svg(result: EvaluationResult) -> Html:
    hist = result.score_histogram
    edges = hist["edges"]
    centers = [(a + b) / 2 for a, b in pairwise(edges)]
    series = []
    for label in LABELS:
        counts = hist[label]
        total = sum(counts)
        series.append([c / total for c in counts] if total else [None] * len(counts))
    return svg_line(
        centers,
        series,
        series_labels=[f"true {label}" for label in LABELS],
        title="p_promotion by true label",
        x_label="p_promotion",
        y_label="share of the class",
        x_range=(0.0, 1.0),
        markers=True,
    )


def _write_pngs(result: EvaluationResult, out: Path) -> dict[str, Path]:
    """PNG copies for slides; only when matplotlib is importable. Uses the object API, not pyplot,
    so the caller's matplotlib backend and global state stay untouched."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return {}
    written: dict[str, Path] = {}

    def save(fig: Any, name: str) -> None:
        FigureCanvasAgg(fig)
        path = out / name
        tmp = path.with_name(f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:  # savefig needs a path, hence not write_page
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        written[name] = path

    fig = Figure(figsize=(4.8, 3.6))
    ax = fig.add_subplot()
    ax.plot(
        [pt["recall"] for pt in result.pr_curve],
        [pt["precision"] for pt in result.pr_curve],
        label="PR curve",
    )
    recall, precision = _operating_point(result)
    if recall is not None and precision is not None:
        ax.plot([recall], [precision], "o", label=f"threshold {result.threshold:.3f}")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="recall",
        ylabel="precision",
        title="Precision-recall curve (promotion)",
    )
    ax.legend(loc="lower left")
    save(fig, "pr_curve.png")

    fig = Figure(figsize=(4.8, 3.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color="#999", label="perfect calibration")
    ax.plot(
        [b["mean_p"] for b in result.reliability],
        [b["frac_promotion"] for b in result.reliability],
        "o-",
        label="model",
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean p_promotion in bin",
        ylabel="observed promotion share",
        title="Reliability diagram",
    )
    ax.legend(loc="upper left")
    save(fig, "reliability.png")

    c = result.metrics["confusion"]
    fig = Figure(figsize=(3.8, 3.4))
    ax = fig.add_subplot()
    grid = [[c["tn"], c["fp"]], [c["fn"], c["tp"]]]
    ax.imshow(grid, cmap="Blues")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=LABELS,
        yticklabels=LABELS,
        xlabel="predicted",
        ylabel="true",
        title=f"Confusion at threshold {result.threshold:.3f}",
    )
    save(fig, "confusion.png")
    return written


# -- HTML sections --------------------------------------------------------------
def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _interval(result: EvaluationResult, key: str) -> str | None:
    ci = result.intervals.get(key)
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else None


def _headline(result: EvaluationResult) -> str:
    m = result.metrics
    cards = "".join(
        f'<div class="card"><div class="value">{esc(_fmt(m.get(key)))}</div><div class="label">{esc(label)}</div></div>'
        for key, label in (
            ("f1", "F1 (promotion)"),
            ("precision", "precision"),
            ("recall", "recall"),
            ("pr_auc", "PR-AUC"),
            ("roc_auc", "ROC-AUC"),
            ("ece", "ECE"),
        )
    )
    rows = [
        {"metric": key, "value": m.get(key), "ci": _interval(result, key), "meaning": meaning}
        for key, meaning in _HEADLINE
    ]
    n_boot = result.settings.get("n_bootstrap", 0)
    caption = (
        f"95% intervals from {n_boot} bootstrap resamples of the rows"
        if n_boot
        else "no bootstrap intervals computed"
    )
    return f'<div class="cards">{cards}</div>' + table(
        rows,
        [
            ("metric", "metric"),
            ("value", "value"),
            ("ci", "95% interval"),
            ("meaning", "what it tells"),
        ],
        float_format=".4f",
        caption=caption,
    )


def _small(metrics: dict[str, Any]) -> str:
    n, n_pos = metrics["n"], metrics["n_promotion"]
    return (
        "small: noisy" if n < SMALL_SLICE_ROWS or min(n_pos, n - n_pos) < SMALL_SLICE_CLASS else ""
    )


def _slice_table(slices: list[SliceMetrics], heading: str, with_seeding: bool) -> str:
    rows = []
    for s in slices:
        row = {
            "value": s.value,
            **{k: s.metrics.get(k) for k in _SLICE_COLUMNS},
            "note": _small(s.metrics),
        }
        if with_seeding and s.seeding:
            row.update(
                seed_n=s.seeding["n"], seed_mae=s.seeding["mae"], seed_rho=s.seeding["spearman"]
            )
        rows.append(row)
    columns: list[tuple[str, str]] = [
        ("value", heading),
        ("n", "posts"),
        ("n_promotion", "promotion"),
    ]
    columns += [(k, k.replace("_", "-")) for k in _SLICE_COLUMNS[2:]]
    if with_seeding:
        columns += [
            ("seed_n", "graded"),
            ("seed_mae", "seeding MAE"),
            ("seed_rho", "seeding Spearman"),
        ]
    columns.append(("note", "note"))
    return table(rows, columns, float_format=".3f")


def _error_cards(examples: list[ErrorExample], kind: str) -> str:
    if not examples:
        return f'<p class="muted">No {esc(kind)} at this threshold.</p>'
    parts = []
    for rank, e in enumerate(examples, 1):
        meta = (
            f"#{rank} · row {e.row}"
            + (f" · id {e.id}" if e.id is not None else "")
            + f" · p_promotion {e.p_promotion:.3f} · true {e.label} · predicted {e.predicted}"
            + f" · lang {e.lang} · {e.n_chars} chars"
        )
        body = (
            esc(e.text)
            if e.text is not None
            else Html('<span class="muted">(text not passed to evaluate)</span>')
        )
        parts.append(
            f'<div class="post"><div class="meta">{esc(meta)}</div><div class="text">{body}</div></div>'
        )
    return "".join(parts)


def _model_info(model_info: dict[str, Any] | None) -> str:
    if not model_info:
        return '<p class="muted">No model information given.</p>'
    rows = [
        {
            "key": k,
            "value": v
            if isinstance(v, (str, int, float, bool)) or v is None
            else json.dumps(v, ensure_ascii=False, sort_keys=True, default=_plain),
        }
        for k, v in model_info.items()
    ]
    return table(rows, [("key", "field"), ("value", "value")], float_format=".4g")


def _figure(svg: Html, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def render_html(
    result: EvaluationResult,
    *,
    title: str,
    model_info: dict[str, Any] | None = None,
    png_note: str = "",
) -> str:
    """The report page as one string (also handy for embedding)."""
    m = result.metrics
    n, n_pos = m["n"], m["n_promotion"]
    share = f" ({n_pos / n:.1%})" if n else ""
    subtitle = (
        f"{n} posts, {n_pos} promotion{share}; decision threshold {result.threshold:.3f} "
        "(promotion when p_promotion >= threshold)"
    )
    seeding = result.seeding is not None
    body = ["<h2>Headline metrics</h2>", _headline(result)]
    body += [
        "<h2>Figures</h2>",
        '<div class="charts">',
        _figure(
            confusion_svg(result),
            "Rows: true label; columns: predicted label at the decision threshold.",
        ),
        _figure(
            pr_curve_svg(result),
            "Precision and recall at every threshold; the dot is the stored threshold, "
            "the flat line the promotion share (chance).",
        ),
        _figure(
            reliability_svg(result),
            "Points on the dashed diagonal mean p_promotion can be read as a probability.",
        ),
        _figure(
            score_distribution_svg(result),
            "Overlap between the two curves is where mistakes come from.",
        ),
        "</div>",
        "<details><summary>Reliability bins</summary>",
        table(
            result.reliability,
            [
                ("lo", "from"),
                ("hi", "to"),
                ("count", "posts"),
                ("mean_p", "mean p_promotion"),
                ("frac_promotion", "observed promotion share"),
            ],
            float_format=".3f",
        ),
        "</details>",
    ]
    if result.seeding is not None:
        s = result.seeding
        mae_grades = None if s["mae"] is None else s["mae"] * 4
        body += [
            "<h2>Seeding strength (种草力度)</h2>",
            "<p>On posts that carry a seeding grade; the model outputs grade / 4.</p>",
            table(
                [{"n": s["n"], "mae": s["mae"], "mae4": mae_grades, "rho": s["spearman"]}],
                [
                    ("n", "graded posts"),
                    ("mae", "MAE (0-1)"),
                    ("mae4", "MAE (grades 0-4)"),
                    ("rho", "Spearman"),
                ],
                float_format=".3f",
            ),
        ]
    edges = ", ".join(LENGTH_BUCKETS)
    body += [
        "<h2>By language</h2>",
        _slice_table(result.by_language, "language", seeding),
        "<h2>By length</h2>",
        (
            f'<p class="muted">Characters of the model input text; buckets {esc(edges)}. '
            "Length is a known confound: check that neither end is carried by length alone.</p>"
        ),
        _slice_table(result.by_length, "length", seeding),
    ]
    for name, slices in result.by_group.items():
        body += [f"<h2>By {esc(name)}</h2>", _slice_table(slices, name, seeding)]
    body += [
        (
            f'<p class="muted">Slices with fewer than {SMALL_SLICE_ROWS} posts or fewer than '
            f"{SMALL_SLICE_CLASS} of either class are marked noisy. — marks a metric the slice "
            "cannot define (e.g. ROC-AUC with one class).</p>"
        ),
        "<h2>Most confident mistakes</h2>",
        "<h3>False positives: genuine posts judged promotion</h3>",
        _error_cards(result.false_positives, "false positives"),
        "<h3>False negatives: promotion posts judged genuine</h3>",
        _error_cards(result.false_negatives, "false negatives"),
        "<h2>Model</h2>",
        _model_info(model_info),
        "<h2>About this report</h2>",
        f"<p>Figures are also saved next to this file as SVG. {esc(png_note)}</p>",
        f"<p>Settings: {esc(json.dumps(result.settings, sort_keys=True))}</p>",
    ]
    return page(title, "\n".join(body), subtitle=subtitle)


def write_report(
    result: EvaluationResult,
    out_dir: str | os.PathLike[str],
    *,
    title: str = "kocscope evaluation",
    model_info: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write metrics.json, report.html and the figures into ``out_dir``; returns file name -> path.

    metrics.json holds ``result.to_dict()`` plus ``title`` and ``model_info``;
    ``EvaluationResult.from_dict`` reads it back.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, svg in (
        ("pr_curve.svg", pr_curve_svg(result)),
        ("reliability.svg", reliability_svg(result)),
        ("confusion.svg", confusion_svg(result)),
        ("score_distribution.svg", score_distribution_svg(result)),
    ):
        write_page(out / name, '<?xml version="1.0" encoding="utf-8"?>\n' + svg + "\n")
        written[name] = out / name
    pngs = _write_pngs(result, out)
    written.update(pngs)
    png_note = (
        "PNG copies were written too (matplotlib is installed)."
        if pngs
        else "No PNG copies: matplotlib is not installed (optional; install it to get PNGs)."
    )
    payload = {"title": title, "model_info": model_info or {}, **result.to_dict()}
    write_page(
        out / "metrics.json",
        json.dumps(payload, ensure_ascii=False, indent=2, allow_nan=False, default=_plain) + "\n",
    )
    written["metrics.json"] = out / "metrics.json"
    write_page(
        out / "report.html",
        render_html(result, title=title, model_info=model_info, png_note=png_note),
    )
    written["report.html"] = out / "report.html"
    return written
