"""The analyst report: one self-contained HTML page about a set of scored posts.

It answers what a marketing analyst asks of an export: how much of it is
promotion, how hard it seeds, where promotion concentrates (language,
platform), which authors are real KOCs and why, and what typical posts look
like, with the cues that drove the judgement highlighted. The page has no
scripts and loads nothing (inline CSS, inline SVG), and every piece of user
text in it is escaped.

The posts are held in memory while the page is built (the examples and the
leaderboard need their text); for exports of millions of posts, sample first.
"""

from __future__ import annotations

import heapq
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kocscope.data.text import detect_lang, normalize
from kocscope.html import (
    esc,
    highlight_spans,
    page,
    svg_bars,
    svg_histogram,
    table,
    write_page,
)
from kocscope.inference.kocs import AuthorScore, KocRanking, post_key, rank_kocs
from kocscope.models.base import LABELS

__all__ = ["post_cues", "render_report", "write_report"]

MAX_TEXT_CHARS = 2000  # per post shown; the rest is cut with a note
MAX_GROUPS = 12  # bars per chart; smaller groups are pooled as "other"


def _decode_cues(value: Any) -> list[Mapping[str, Any]] | None:
    """Cues as the scorer wrote them: a list, or JSON text of one (CSV cells)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return []
    if not isinstance(value, list):
        return []
    return [c for c in value if isinstance(c, Mapping)]


def _spans_on(text: str, cues: Sequence[Mapping[str, Any]]) -> list[tuple[int, int, str]]:
    """The cues whose offsets really cover their matched text in ``text``."""
    spans = []
    for cue in cues:
        start, end = cue.get("start"), cue.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            continue
        if "text" in cue and text[start:end] != cue["text"]:
            continue
        spans.append((start, end, str(cue.get("category", "other"))))
    return spans


def post_cues(row: Mapping[str, Any]) -> tuple[str, list[tuple[int, int, str]]]:
    """(text to show, cue spans on it) for one post.

    Offsets from ``kocscope score --explain`` index the normalized text; older or
    foreign files may index the raw text. Whichever of the two the cues fit is
    shown, and a cue whose span does not cover its matched text is dropped
    rather than highlighted in the wrong place. Without a ``cues`` field the cues
    are found here, on the normalized text.
    """
    raw = str(row.get("text") or "")
    norm = normalize(raw)
    cues = _decode_cues(row.get("cues"))
    if cues is None:
        from kocscope.data.cues import find_cues

        return norm, [(c.start, c.end, c.category) for c in find_cues(norm)]
    best = max(((norm, _spans_on(norm, cues)), (raw, _spans_on(raw, cues))), key=lambda tc: len(tc[1]))
    return best


def _post_card(row: Mapping[str, Any]) -> str:
    text, spans = post_cues(row)
    cut = ""
    if len(text) > MAX_TEXT_CHARS:
        cut = f" … ({len(text) - MAX_TEXT_CHARS} more characters)"
        spans = [s for s in spans if s[1] <= MAX_TEXT_CHARS]
        text = text[:MAX_TEXT_CHARS]
    meta = [
        f"id {esc(row.get('id', '—'))}",
        f"author {esc(row.get('author_id') or '—')}",
        f"<b>{esc(row.get('label'))}</b>",
        f"p_promotion {float(row['p_promotion']):.2f}",
        f"seeding {float(row['seeding']):.2f}",
    ]
    for key in ("lang", "platform", "created_at"):
        if row.get(key) not in (None, ""):
            meta.append(f"{key} {esc(row[key])}")
    cats = sorted({c for _, _, c in spans})
    cue_line = f'<div class="meta">cues: {esc(", ".join(cats))}</div>' if cats else ""
    return (
        f'<div class="post"><div class="meta">{" · ".join(meta)}</div>{cue_line}'
        f'<div class="text">{highlight_spans(text, spans)}{esc(cut)}</div></div>'
    )


def _group_shares(rows: Sequence[Mapping[str, Any]], key_of) -> tuple[list[str], list[float], list[str]]:
    """Promotion share per group, largest groups first, small ones pooled as 'other'."""
    total: Counter[str] = Counter()
    promo: Counter[str] = Counter()
    for row in rows:
        key = key_of(row)
        total[key] += 1
        promo[key] += row["label"] == LABELS[1]
    groups = [g for g, _ in total.most_common()]
    if len(groups) > MAX_GROUPS:
        keep, rest = groups[: MAX_GROUPS - 1], groups[MAX_GROUPS - 1 :]
        total["other"] = sum(total[g] for g in rest) + (total.get("other", 0) if "other" in keep else 0)
        promo["other"] = sum(promo[g] for g in rest) + (promo.get("other", 0) if "other" in keep else 0)
        groups = [g for g in keep if g != "other"] + ["other"]
    return groups, [promo[g] / total[g] for g in groups], [f"n={total[g]}" for g in groups]


def _lang(row: Mapping[str, Any]) -> str:
    lang = row.get("lang")
    return str(lang) if lang not in (None, "") else detect_lang(normalize(str(row.get("text") or "")))


def _infer_threshold(rows: Sequence[Mapping[str, Any]]) -> float:
    """The model's decision threshold lies between the highest genuine and the lowest promotion
    p_promotion; scored files do not carry it, so take the midpoint (0.5 when one class is absent
    or files from different models overlap)."""
    gen = [float(r["p_promotion"]) for r in rows if r["label"] == LABELS[0]]
    pro = [float(r["p_promotion"]) for r in rows if r["label"] == LABELS[1]]
    if gen and pro and max(gen) < min(pro):
        return (max(gen) + min(pro)) / 2.0
    return 0.5


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _followers(n: float | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k" if n >= 1e3 else f"{n:.0f}"


def _leaderboard(ranking: KocRanking, by_id: Mapping[str, Mapping[str, Any]]) -> str:
    if not ranking.authors:
        text = ("No author has enough posts to rank." if not ranking.n_ranked
                else f"{ranking.n_ranked:,} authors ranked; --top 0 shows none of them here.")
        return f'<p class="muted">{text}</p>'
    rows = []
    for a in ranking.authors:
        rows.append({
            "rank": a.rank,
            "author": a.author_id,
            "score": a.score,
            "posts": a.n_posts,
            "promotion": f"{a.share_promotion:.0%}",
            "auth_lb": a.authenticity_lower,
            "seeding": a.seeding_genuine,
            "followers": _followers(a.followers),
            "engagement": _fmt(a.engagement_rate, ".1%"),
            "activity": a.activity,
            "reason": a.reasons[0] if a.reasons else "",
        })
    columns = [("rank", "#"), ("author", "author"), ("score", "score"), ("posts", "posts"),
               ("promotion", "% promotion"), ("auth_lb", "authenticity (lower bound)"),
               ("seeding", "seeding of genuine posts"), ("followers", "followers"),
               ("engagement", "engagement / follower"), ("activity", "activity"), ("reason", "top reason")]
    parts = [table(rows, columns, float_format=".2f")]
    for a in ranking.authors:
        parts.append(_author_details(a, by_id))
    return "".join(parts)


def _author_details(a: AuthorScore, by_id: Mapping[str, Mapping[str, Any]]) -> str:
    factors = table(
        [{"factor": k, "value": v} for k, v in a.factors.items()], [("factor", "factor"), ("value", "value (0-1)")],
        float_format=".2f",
    )
    reasons = "".join(f"<li>{esc(r)}</li>" for r in a.reasons)
    posts = "".join(_post_card(by_id[pid]) for pid in a.top_post_ids if pid in by_id)
    return (
        f"<details><summary>#{a.rank} {esc(a.author_id)} — score {a.score:.2f}, {a.n_posts} posts</summary>"
        f'<div style="margin-left:1em"><ul>{reasons}</ul>{factors}'
        f"<h3>Posts that drove the score</h3>{posts or '<p class=muted>none genuine</p>'}</div></details>"
    )


def _examples(rows: Sequence[Mapping[str, Any]], n: int, threshold: float) -> str:
    def p(r: Mapping[str, Any]) -> float:
        return float(r["p_promotion"])

    most_promo = heapq.nlargest(n, rows, key=p)
    genuine = (r for r in rows if r["label"] == LABELS[0])
    seeding = heapq.nlargest(n, genuine, key=lambda r: (1.0 - p(r)) * float(r["seeding"]))
    borderline = heapq.nsmallest(n, rows, key=lambda r: abs(p(r) - threshold))
    groups = (
        ("Most promotional", "highest p_promotion", most_promo),
        ("Strongest genuine seeding", "posts labelled genuine with the highest authenticity × seeding", seeding),
        ("Borderline", f"closest to the decision threshold (≈{threshold:.2f}, inferred from the labels)", borderline),
    )
    out = []
    for title, note, chosen in groups:
        out.append(f"<h3>{esc(title)}</h3><p class='muted'>{esc(note)}</p>")
        out.append("".join(_post_card(r) for r in chosen) or "<p class='muted'>none</p>")
    return "".join(out)


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="value">{esc(v)}</div><div class="label">{esc(k)}</div></div>' for k, v in items
    ) + "</div>"


def render_report(
    scored_posts: Iterable[Mapping[str, Any]],
    *,
    top: int = 20,
    examples: int = 12,
    title: str = "kocscope report",
    sources: Sequence[str] = (),
    **rank_options: Any,
) -> str:
    """The report page as a string; ``rank_options`` go to :func:`rank_kocs` (min_posts, followers, weights ...).

    Every post is validated by the ranking first (a bad post raises RecordError
    naming it), so the rest of the page can rely on the score fields.
    """
    if top < 0 or examples < 0:
        raise ValueError(f"top and examples must be >= 0, got top={top}, examples={examples}")
    rows = list(scored_posts)
    ranking = rank_kocs(rows, top=top, **rank_options)
    n = len(rows)
    n_promo = sum(r["label"] == LABELS[1] for r in rows)
    seeding = [float(r["seeding"]) for r in rows]
    auth = [1.0 - float(r["p_promotion"]) for r in rows]
    gen_seed = [float(r["seeding"]) for r in rows if r["label"] == LABELS[0]]
    body: list[str] = []
    body.append(_cards([
        ("posts", f"{n:,}"),
        ("authors", f"{ranking.n_ranked + ranking.skipped.authors_below_min_posts:,}"),
        ("judged promotion", f"{n_promo / n:.1%}" if n else "—"),
        ("mean seeding", f"{sum(seeding) / n:.2f}" if n else "—"),
        ("mean seeding, genuine posts", f"{sum(gen_seed) / len(gen_seed):.2f}" if gen_seed else "—"),
        ("authors ranked", f"{ranking.n_ranked:,}"),
    ]))
    if n == 0:
        body.append('<p class="muted">The input holds no posts.</p>')
    else:
        body.append("<h2>Distributions</h2><div class='charts'>")
        body.append(f"<figure>{svg_histogram(auth, 20, value_range=(0, 1), title='Authenticity', x_label='authenticity = 1 - p_promotion', y_label='posts')}</figure>")
        body.append(f"<figure>{svg_histogram(seeding, 20, value_range=(0, 1), title='Seeding strength (种草力度)', x_label='seeding', y_label='posts', color='#009E73')}</figure>")
        body.append("</div><h2>Where promotion concentrates</h2><div class='charts'>")
        for name, key_of in (("language", _lang), ("platform", lambda r: str(r.get("platform") or "(not given)"))):
            labels, shares, notes = _group_shares(rows, key_of)
            body.append(f"<figure>{svg_bars(labels, shares, title=f'Share judged promotion by {name}', max_value=1.0, annotations=notes)}</figure>")
        body.append("</div>")
    s = ranking.settings
    band = "–".join("open" if e is None else _followers(e) for e in s["followers"])
    body.append("<h2>KOC leaderboard</h2>")
    body.append(
        f"<p class='muted'>Authors with at least {s['min_posts']} posts; follower band {esc(band)}; "
        f"authenticity is the {s['confidence']:.0%}-confidence lower bound; weights "
        f"{esc(', '.join(f'{k} {v:g}' for k, v in s['weights'].items()))}. "
        f"Not ranked: {ranking.skipped.posts_without_author} posts without author_id, "
        f"{ranking.skipped.authors_below_min_posts} authors with fewer than {s['min_posts']} posts"
        + (f"; {ranking.skipped.duplicate_posts} repeated posts (same author and id) counted once"
           if ranking.skipped.duplicate_posts else "")
        + ".</p>"
    )
    wanted = {pid for a in ranking.authors for pid in a.top_post_ids}
    by_id = {key: r for i, r in enumerate(rows) if (key := post_key(r, i)) in wanted}
    body.append(_leaderboard(ranking, by_id))
    if n and examples:
        body.append("<h2>Example posts</h2>")
        from kocscope.data.cues import CUE_CATEGORIES

        legend = " ".join(f'<mark class="cue-{esc(c)}">{esc(c)}</mark>' for c in CUE_CATEGORIES)
        body.append(f"<p class='legend muted'>Highlighted cues: {legend}</p>")
        body.append(_examples(rows, examples, _infer_threshold(rows)))
    import kocscope

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body.append(f"<p class='muted'>kocscope {esc(kocscope.__version__)} · generated {esc(stamp)}</p>")
    subtitle = ("from " + ", ".join(os.path.basename(str(x)) for x in sources)) if sources else None
    return page(title, "\n".join(body), subtitle=subtitle)


def write_report(path: str | os.PathLike[str], scored_posts: Iterable[Mapping[str, Any]], **options: Any) -> Path:
    """Render and write the report atomically; options as for :func:`render_report`."""
    return write_page(path, render_report(scored_posts, **options))
