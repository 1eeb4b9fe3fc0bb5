"""Building blocks for self-contained HTML reports: one file, no network.

Reports are opened offline and mailed around, so every page carries its own
CSS and draws charts as inline SVG; nothing references a CDN, a font or a
script. Everything that is not :class:`Html` is escaped on the way in, which
keeps user text (post bodies, author ids, labels) from ever becoming markup.
"""

from __future__ import annotations

import html as _html
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PALETTE", "Html", "esc", "highlight_spans", "page", "svg_bars", "svg_heatmap", "svg_histogram", "svg_line",
    "table", "write_page",
]

# colour-blind-safe (Okabe-Ito); series cycle through it
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#ffffff; --soft:#f6f8fa; --accent:#0072B2; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", "Helvetica Neue", Arial, "PingFang SC", "Microsoft YaHei", sans-serif;
       color: var(--fg); background: var(--bg); margin: 0 auto; max-width: 1180px; padding: 24px; line-height: 1.45; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { font-size: 1.25em; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 16px 0 6px; }
.muted, .subtitle { color: var(--muted); } .subtitle { margin-bottom: 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card .value { font-size: 1.5em; font-weight: 600; } .card .label { color: var(--muted); font-size: .9em; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; } figcaption { color: var(--muted); font-size: .85em; }
table { border-collapse: collapse; margin: 8px 0; font-size: .92em; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.post { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.post .meta { color: var(--muted); font-size: .85em; margin-bottom: 4px; }
.post .text { white-space: pre-wrap; word-break: break-word; max-height: 18em; overflow: auto; }
mark { background: #fff3b0; padding: 0 1px; border-radius: 2px; }
mark.cue-disclosure { background: #ffd6cc; } mark.cue-gift { background: #ffe0f0; }
mark.cue-affiliate { background: #ffe7b3; } mark.cue-recommendation { background: #d6f5d6; }
mark.cue-dissuasion { background: #d9e8ff; } mark.cue-experience { background: #e8e0ff; }
.legend span { margin-right: 10px; }
details { margin: 4px 0; } summary { cursor: pointer; }
svg text { font-family: inherit; }
"""


class Html(str):
    """A string already rendered as safe HTML; :func:`esc` and :func:`table` pass it through."""

    __slots__ = ()


def esc(text: Any) -> Html:
    """Escape anything for HTML text and attribute values (quotes included)."""
    if isinstance(text, Html):
        return text
    return Html(_html.escape("" if text is None else str(text), quote=True))


def highlight_spans(text: str, spans: Iterable[tuple[int, int, str]]) -> Html:
    """``text`` escaped piece by piece, with each ``(start, end, category)`` span wrapped in
    ``<mark class="cue-CATEGORY">``. Offsets index the raw text, so highlighting happens
    before escaping (escaping first would shift them); a span overlapping an earlier one is dropped."""
    out, pos = [], 0
    for start, end, category in sorted(spans, key=lambda s: (s[0], -s[1])):
        end = min(end, len(text))
        if start < pos or start >= end:  # overlaps a span already marked, or empty
            continue
        css = re.sub(r"[^a-z0-9_-]", "", str(category).lower()) or "other"
        out.append(esc(text[pos:start]))
        out.append(f'<mark class="cue-{css}" title="{esc(category)}">{esc(text[start:end])}</mark>')
        pos = end
    out.append(esc(text[pos:]))
    return Html("".join(out))


def write_page(path: str | os.PathLike[str], document: str) -> Path:
    """Write a page atomically (temp file in the same folder + os.replace), so a browser or a
    mail client never picks up half a report."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a plain exclusive open (not mkstemp) so the page gets the usual umask permissions
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(document)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def page(title: str, body_html: str, *, subtitle: str | None = None) -> str:
    """A complete standalone HTML document; ``body_html`` must already be safe HTML."""
    head = f"<h1>{esc(title)}</h1>"
    if subtitle:
        head += f'<div class="subtitle">{esc(subtitle)}</div>'
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{head}\n{body_html}\n</body>\n</html>\n"
    )


def _cell(value: Any, float_format: str) -> tuple[str, bool]:
    """Render one table cell; returns (html, is_numeric) so numbers align right."""
    if isinstance(value, Html):
        return value, False
    if value is None:
        return "—", False
    if isinstance(value, bool):
        return esc(value), False
    if isinstance(value, float):
        return ("—" if math.isnan(value) else esc(format(value, float_format))), True
    if isinstance(value, int):
        return esc(value), True
    return esc(value), False


def table(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]],
    columns: Sequence[str | tuple[str, str]],
    *,
    float_format: str = ".3g",
    caption: str | None = None,
) -> Html:
    """An HTML table; ``columns`` are keys (or ``(key, header)`` pairs) for mapping rows,
    or headers for sequence rows. Cells are escaped unless they are :class:`Html`."""
    specs = [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for _, h in specs) + "</tr></thead><tbody>")
    for row in rows:
        if isinstance(row, Mapping):
            values = [row.get(key) for key, _ in specs]
        else:
            values = list(row)
            if len(values) != len(specs):
                raise ValueError(f"table row has {len(values)} cells but {len(specs)} columns: {values!r}")
        cells = []
        for value in values:
            text, numeric = _cell(value, float_format)
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return Html("".join(out))


# ---------------------------------------------------------------------------
# SVG charts
# ---------------------------------------------------------------------------
_M_LEFT, _M_RIGHT, _M_TOP, _M_BOTTOM = 56, 16, 30, 44


def _num(x: float) -> str:
    """Compact coordinates keep the inline SVG small."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


class _Frame:
    """Plot area with linear scales, axes, ticks and labels, shared by the charts."""

    def __init__(self, width: int, height: int, x_range: tuple[float, float], y_range: tuple[float, float]):
        self.width, self.height = width, height
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0
        self.left, self.right = _M_LEFT, width - _M_RIGHT
        self.top, self.bottom = _M_TOP, height - _M_BOTTOM

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, v: float) -> float:
        return self.bottom - (v - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def axes(self, title: str | None, x_label: str | None, y_label: str | None, x_ticks: bool = True) -> list[str]:
        parts = [
            f'<line x1="{_num(self.left)}" y1="{_num(self.bottom)}" x2="{_num(self.right)}" y2="{_num(self.bottom)}" stroke="#888"/>',
            f'<line x1="{_num(self.left)}" y1="{_num(self.top)}" x2="{_num(self.left)}" y2="{_num(self.bottom)}" stroke="#888"/>',
        ]
        for t in _ticks(self.y0, self.y1):
            yy = self.y(t)
            parts.append(
                f'<line x1="{_num(self.left - 4)}" y1="{_num(yy)}" x2="{_num(self.right)}" y2="{_num(yy)}" stroke="#eee"/>'
                f'<text x="{_num(self.left - 6)}" y="{_num(yy + 4)}" font-size="11" text-anchor="end" fill="#555">'
                f"{esc(_tick_label(t))}</text>"
            )
        if x_ticks:
            for t in _ticks(self.x0, self.x1):
                xx = self.x(t)
                parts.append(
                    f'<line x1="{_num(xx)}" y1="{_num(self.bottom)}" x2="{_num(xx)}" y2="{_num(self.bottom + 4)}" stroke="#888"/>'
                    f'<text x="{_num(xx)}" y="{_num(self.bottom + 16)}" font-size="11" text-anchor="middle" fill="#555">'
                    f"{esc(_tick_label(t))}</text>"
                )
        if title:
            parts.append(f'<text x="{_num(self.width / 2)}" y="18" font-size="13" text-anchor="middle" font-weight="600">{esc(title)}</text>')
        if x_label:
            parts.append(
                f'<text x="{_num((self.left + self.right) / 2)}" y="{_num(self.height - 8)}" font-size="12" '
                f'text-anchor="middle" fill="#333">{esc(x_label)}</text>'
            )
        if y_label:
            cy = (self.top + self.bottom) / 2
            parts.append(
                f'<text x="14" y="{_num(cy)}" font-size="12" text-anchor="middle" fill="#333" '
                f'transform="rotate(-90 14 {_num(cy)})">{esc(y_label)}</text>'
            )
        return parts


def _svg(width: int, height: int, parts: list[str], aria: str | None) -> Html:
    label = f' role="img" aria-label="{esc(aria)}"' if aria else ""
    return Html(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"{label}>' + "".join(parts) + "</svg>"
    )


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def svg_histogram(
    values: Iterable[float | None],
    bins: int = 20,
    *,
    value_range: tuple[float, float] | None = None,
    title: str | None = None,
    x_label: str | None = None,
    y_label: str | None = "count",
    color: str = PALETTE[0],
    width: int = 460,
    height: int = 260,
) -> Html:
    """Histogram of the finite values (None/NaN ignored); values outside ``value_range`` are clipped
    into the edge bins so the counts always add up to the number of values."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    data = _finite(values)
    lo, hi = value_range if value_range is not None else ((min(data), max(data)) if data else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    counts = [0] * bins
    for v in data:
        i = int((v - lo) / (hi - lo) * bins)
        counts[min(max(i, 0), bins - 1)] += 1
    frame = _Frame(width, height, (lo, hi), (0.0, float(max(counts) if counts and max(counts) else 1)))
    parts = frame.axes(title, x_label, y_label)
    step = (hi - lo) / bins
    for i, c in enumerate(counts):
        if not c:
            continue
        x_a, x_b = frame.x(lo + i * step), frame.x(lo + (i + 1) * step)
        y_c = frame.y(c)
        tip = f"{_tick_label(lo + i * step)}–{_tick_label(lo + (i + 1) * step)}: {c}"
        parts.append(
            f'<rect x="{_num(x_a + 0.5)}" y="{_num(y_c)}" width="{_num(max(x_b - x_a - 1, 0.5))}" '
            f'height="{_num(frame.bottom - y_c)}" fill="{esc(color)}"><title>{esc(tip)}</title></rect>'
        )
    return _svg(width, height, parts, title or "histogram")


def svg_bars(
    labels: Sequence[Any],
    values: Sequence[float],
    *,
    title: str | None = None,
    value_format: str = ".0%",
    max_value: float | None = None,
    annotations: Sequence[str] | None = None,
    color: str = PALETTE[1],
    width: int = 460,
    bar_height: int = 20,
    label_width: int = 120,
) -> Html:
    """Horizontal bars, one per label: readable for long and CJK category names.
    ``annotations`` (e.g. ``"n=120"``) are printed after each value."""
    if len(labels) != len(values):
        raise ValueError(f"svg_bars: {len(labels)} labels but {len(values)} values")
    if annotations is not None and len(annotations) != len(labels):
        raise ValueError(f"svg_bars: {len(labels)} labels but {len(annotations)} annotations")
    vals = [float(v) for v in values]
    top = max_value if max_value is not None else max([v for v in vals if math.isfinite(v)] or [1.0])
    top = top if top > 0 else 1.0
    title_h = 26 if title else 6
    height = title_h + len(vals) * (bar_height + 6) + 6
    x0, x1 = label_width, width - 110
    parts = []
    if title:
        parts.append(f'<text x="{_num(width / 2)}" y="18" font-size="13" text-anchor="middle" font-weight="600">{esc(title)}</text>')
    for i, (label, v) in enumerate(zip(labels, vals)):
        y = title_h + i * (bar_height + 6)
        w = 0.0 if not math.isfinite(v) else max(0.0, min(v / top, 1.0)) * (x1 - x0)
        text = "—" if not math.isfinite(v) else format(v, value_format)
        if annotations is not None:
            text += f"  {annotations[i]}"
        label_text = str(label)
        shown = label_text if len(label_text) <= 18 else label_text[:17] + "…"
        parts.append(
            f'<text x="{x0 - 6}" y="{_num(y + bar_height * 0.72)}" font-size="12" text-anchor="end">'
            f"<title>{esc(label_text)}</title>{esc(shown)}</text>"
            f'<rect x="{x0}" y="{y}" width="{_num(w)}" height="{bar_height}" fill="{esc(color)}"/>'
            f'<text x="{_num(x0 + w + 4)}" y="{_num(y + bar_height * 0.72)}" font-size="11" fill="#333">{esc(text)}</text>'
        )
    return _svg(width, height, parts, title or "bar chart")


def _is_multi(seq: Any) -> bool:
    return len(seq) > 0 and all(isinstance(s, Iterable) and not isinstance(s, (str, bytes)) for s in seq)


def svg_line(
    xs: Sequence[float] | Sequence[Sequence[float]],
    ys: Sequence[float | None] | Sequence[Sequence[float | None]],
    *,
    series_labels: Sequence[str] | None = None,
    title: str | None = None,
    x_label: str | None = None,
    y_label: str | None = None,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    markers: bool = False,
    width: int = 460,
    height: int = 320,
) -> Html:
    """Line chart of one series (``xs``, ``ys`` flat) or several (lists of lists, one per series;
    a flat ``xs`` is shared by every y series).

    None/NaN in ``ys`` breaks the line (e.g. an empty reliability bin). ``diagonal`` draws the
    y = x reference (perfect calibration); ``markers`` adds a dot per point.
    """
    ys_list = [list(s) for s in ys] if _is_multi(ys) else [list(ys)]
    # one shared x sequence may serve several y series
    xs_list = [list(s) for s in xs] if _is_multi(xs) else [list(xs)] * len(ys_list)
    if len(xs_list) != len(ys_list):
        raise ValueError(f"svg_line: {len(xs_list)} x series but {len(ys_list)} y series")
    for i, (sx, sy) in enumerate(zip(xs_list, ys_list)):
        if len(sx) != len(sy):
            raise ValueError(f"svg_line: series {i} has {len(sx)} x values but {len(sy)} y values")
    if series_labels is not None and len(series_labels) != len(xs_list):
        raise ValueError(f"svg_line: {len(xs_list)} series but {len(series_labels)} labels")
    all_x = _finite(x for s in xs_list for x in s)
    all_y = _finite(y for s in ys_list for y in s)
    xr = x_range or ((min(all_x), max(all_x)) if all_x else (0.0, 1.0))
    yr = y_range or ((min(all_y + [0.0]), max(all_y)) if all_y else (0.0, 1.0))
    frame = _Frame(width, height, xr, yr)
    parts = frame.axes(title, x_label, y_label)
    if diagonal:
        lo, hi = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        if hi > lo:
            parts.append(
                f'<line x1="{_num(frame.x(lo))}" y1="{_num(frame.y(lo))}" x2="{_num(frame.x(hi))}" '
                f'y2="{_num(frame.y(hi))}" stroke="#999" stroke-dasharray="4 4"/>'
            )
    for i, (sx, sy) in enumerate(zip(xs_list, ys_list)):
        color = PALETTE[i % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(sx, sy):
            ok = x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))
            if ok:
                runs[-1].append((frame.x(float(x)), frame.y(float(y))))
            elif runs[-1]:
                runs.append([])
        for run in runs:
            if len(run) > 1:
                pts = " ".join(f"{_num(px)},{_num(py)}" for px, py in run)
                parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
            if markers or len(run) == 1:
                parts.extend(f'<circle cx="{_num(px)}" cy="{_num(py)}" r="3" fill="{color}"/>' for px, py in run)
    if series_labels:
        for i, name in enumerate(series_labels):
            ly = frame.top + 4 + i * 16
            parts.append(
                f'<rect x="{_num(frame.right - 120)}" y="{_num(ly)}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                f'<text x="{_num(frame.right - 106)}" y="{_num(ly + 9)}" font-size="11">{esc(name)}</text>'
            )
    return _svg(width, height, parts, title or "line chart")


def svg_heatmap(
    values: Sequence[Sequence[float]],
    row_labels: Sequence[Any],
    col_labels: Sequence[Any],
    *,
    cell_text: Sequence[Sequence[str]] | None = None,
    title: str | None = None,
    row_title: str | None = None,
    col_title: str | None = None,
    color: str = PALETTE[0],
    cell_size: int = 90,
    label_width: int = 110,
) -> Html:
    """Grid of cells shaded by value / max (e.g. a confusion matrix); ``cell_text``
    replaces the printed value, so counts and shares can share a cell."""
    grid = [[float(v) for v in row] for row in values]
    if len(grid) != len(row_labels) or any(len(r) != len(col_labels) for r in grid):
        raise ValueError(f"svg_heatmap: values must be {len(row_labels)} rows x {len(col_labels)} columns")
    if cell_text is not None and [len(r) for r in cell_text] != [len(r) for r in grid]:
        raise ValueError("svg_heatmap: cell_text must have the same shape as values")
    top = max([v for r in grid for v in r if math.isfinite(v)] or [0.0]) or 1.0
    head = (26 if title else 6) + (18 if col_title else 0) + 20
    width = label_width + len(col_labels) * cell_size + 10
    height = head + len(row_labels) * cell_size + 10
    parts = []
    if title:
        parts.append(f'<text x="{_num(width / 2)}" y="18" font-size="13" text-anchor="middle" font-weight="600">{esc(title)}</text>')
    grid_mid = label_width + len(col_labels) * cell_size / 2
    if col_title:
        parts.append(f'<text x="{_num(grid_mid)}" y="{head - 24}" font-size="12" text-anchor="middle" fill="#333">{esc(col_title)}</text>')
    if row_title:
        parts.append(f'<text x="6" y="{head - 6}" font-size="12" fill="#333">{esc(row_title)}</text>')
    for j, label in enumerate(col_labels):
        cx = label_width + (j + 0.5) * cell_size
        parts.append(f'<text x="{_num(cx)}" y="{head - 6}" font-size="12" text-anchor="middle">{esc(label)}</text>')
    for i, (label, row) in enumerate(zip(row_labels, grid)):
        y = head + i * cell_size
        parts.append(f'<text x="{label_width - 8}" y="{_num(y + cell_size / 2 + 4)}" font-size="12" text-anchor="end">{esc(label)}</text>')
        for j, v in enumerate(row):
            share = max(0.0, min(v / top, 1.0)) if math.isfinite(v) else 0.0
            x = label_width + j * cell_size
            text = cell_text[i][j] if cell_text is not None else _tick_label(v)
            ink = "#fff" if share > 0.55 else "#1f2328"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_size}" height="{cell_size}" fill="{esc(color)}" '
                f'fill-opacity="{share * 0.9 + 0.05:.3f}" stroke="#fff"/>'
            )
            lines = str(text).split("\n")
            for k, line in enumerate(lines):
                dy = (k - (len(lines) - 1) / 2) * 15
                parts.append(
                    f'<text x="{_num(x + cell_size / 2)}" y="{_num(y + cell_size / 2 + 4 + dy)}" '
                    f'font-size="12" text-anchor="middle" fill="{ink}">{esc(line)}</text>'
                )
    return _svg(width, height, parts, title or "heatmap")
