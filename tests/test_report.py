"""The shared HTML/SVG helpers and the analyst report: self-contained, escaped, correct numbers."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from kocscope.data.text import normalize
from kocscope.html import (
    Html,
    esc,
    highlight_spans,
    page,
    svg_bars,
    svg_histogram,
    svg_line,
    table,
    write_page,
)
from kocscope.inference.report import _infer_threshold, post_cues, render_report, write_report

XSS_TEXT = '<script>alert(1)</script> 感谢品牌方寄样，真的闭眼入！链接在评论区 "><img src=x onerror=alert(1)>'
XSS_AUTHOR = '"><img src=x onerror=alert(2)><script>alert(3)</script>'


class _Tags(HTMLParser):
    """Collects the tags and attributes a browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)


def parsed(document: str) -> _Tags:
    parser = _Tags()
    parser.feed(document)
    return parser


def assert_inert(document: str) -> None:
    """No script, no event handler, no element that loads anything from anywhere."""
    tags = parsed(document)
    assert not {"script", "img", "iframe", "link", "object", "embed"} & set(tags.tags)
    assert not [name for name, _ in tags.attrs if name.startswith("on") or name in ("src", "href")]
    urls = set(re.findall(r"https?://[^\s\"'<>]+", document))
    assert urls <= {"http://www.w3.org/2000/svg"}


# -- kocscope.html ---------------------------------------------------------------------
def test_esc_and_html_passthrough():
    assert esc('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert esc(None) == "" and esc(3) == "3"
    assert esc(Html("<b>ok</b>")) == "<b>ok</b>"


def test_table_escapes_cells_and_formats_numbers():
    html = table(
        [
            {
                "name": "<script>x</script>",
                "n": 3,
                "share": 0.12345,
                "note": Html("<i>ok</i>"),
                "none": None,
            }
        ],
        ["name", ("n", "count"), "share", "note", "none"],
    )
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert '<td class="num">3</td>' in html and '<td class="num">0.123</td>' in html
    assert "<i>ok</i>" in html and "<th>count</th>" in html and "<td>—</td>" in html
    assert "<td>a</td>" in table([["a", 1]], ["x", "y"])
    with pytest.raises(ValueError):
        table([["a"]], ["x", "y"])


def test_page_is_self_contained():
    doc = page("Title <x>", "<p>body</p>", subtitle="sub & co")
    assert (
        doc.startswith("<!DOCTYPE html>") and "<style>" in doc and '<meta charset="utf-8">' in doc
    )
    assert "<title>Title &lt;x&gt;</title>" in doc and "sub &amp; co" in doc
    assert_inert(doc)


def _rect_counts(svg: str) -> list[int]:
    return [int(m) for m in re.findall(r"<title>[^<]*: (\d+)</title></rect>", svg)]


def test_histogram_counts_every_value_and_escapes_labels():
    values = [0.0, 0.05, 0.5, 0.99, 1.0, 1.7, -3, None, float("nan")]
    svg = svg_histogram(values, 10, value_range=(0, 1), title="<t>", x_label="x&y")
    assert sum(_rect_counts(svg)) == 7  # None/NaN ignored, out-of-range clipped into edge bins
    assert "&lt;t&gt;" in svg and "x&amp;y" in svg and "<t>" not in svg
    assert svg_histogram([], 5).startswith("<svg")
    with pytest.raises(ValueError):
        svg_histogram([1], 0)


def test_bars_escape_and_check_lengths():
    svg = svg_bars(["<zh>", "平台 B"], [0.25, 0.5], title="share", annotations=["n=4", "n=<2>"])
    assert "&lt;zh&gt;" in svg and "平台 B" in svg and "25%" in svg and "n=&lt;2&gt;" in svg
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)"', svg)]
    assert widths[1] == pytest.approx(2 * widths[0], rel=0.02)
    with pytest.raises(ValueError):
        svg_bars(["a"], [1, 2])
    with pytest.raises(ValueError):
        svg_bars(["a"], [1], annotations=[])


def test_line_supports_series_gaps_diagonal_and_shared_x():
    svg = svg_line(
        [0, 0.5, 1],
        [[0, None, 1], [0.2, 0.4, 0.9]],
        series_labels=["model <m>", "base"],
        diagonal=True,
        markers=True,
        x_label="p",
        y_label="observed",
    )
    assert svg.count("<polyline") == 1  # series 1 has a gap, so only series 2 is one line
    assert svg.count("<circle") == 5  # 2 lone points + 3 markers
    assert 'stroke-dasharray="4 4"' in svg and "model &lt;m&gt;" in svg
    single = svg_line([0, 1, 2], [1, 2, 3])
    assert single.count("<polyline") == 1 and "stroke-dasharray" not in single
    with pytest.raises(ValueError):
        svg_line([[0, 1]], [[1, 2], [3, 4]])
    with pytest.raises(ValueError):
        svg_line([0, 1], [1, 2, 3])
    with pytest.raises(ValueError):
        svg_line([0, 1], [1, 2], series_labels=["a", "b"])


def test_highlight_spans_marks_raw_offsets_and_escapes_each_piece():
    text = 'a<b>"广告"&c'
    out = highlight_spans(text, [(4, 8, "disclosure"), (5, 6, "gift"), (0, 1, 'x" onmouseover="y')])
    assert out == (
        '<mark class="cue-xonmouseovery" title="x&quot; onmouseover=&quot;y">a</mark>&lt;b&gt;'
        '<mark class="cue-disclosure" title="disclosure">&quot;广告&quot;</mark>&amp;c'
    )
    assert (
        highlight_spans("abc", [(2, 99, "x"), (1, 1, "y")])
        == 'ab<mark class="cue-x" title="x">c</mark>'
    )


def test_write_page_is_atomic_and_overwrites(tmp_path):
    target = tmp_path / "sub" / "r.html"
    write_page(target, "one")
    write_page(target, "two")
    assert target.read_text(encoding="utf-8") == "two"
    assert [p.name for p in target.parent.iterdir()] == ["r.html"]


# -- cues on posts ------------------------------------------------------------------
def test_post_cues_found_on_normalized_text_when_absent():
    row = {"text": "Ｆｕｌｌ　width 广告 #ad link in bio"}
    text, spans = post_cues(row)
    assert text == normalize(row["text"])
    assert {text[s:e] for s, e, _ in spans} >= {"广告", "#ad", "link in bio"}


def test_post_cues_from_the_scorer_keep_only_spans_that_fit():
    raw = "Ｆｕｌｌ　width 广告 and more"
    norm = normalize(raw)
    start = norm.index("广告")
    cues = [
        {"category": "disclosure", "text": "广告", "start": start, "end": start + 2},
        {"category": "gift", "text": "寄样", "start": 0, "end": 2},  # wrong offsets: dropped
        {"category": "gift", "start": "x", "end": 2},
    ]  # malformed: dropped
    text, spans = post_cues({"text": raw, "cues": cues})
    assert text == norm and spans == [(start, start + 2, "disclosure")]
    import json

    assert post_cues({"text": raw, "cues": json.dumps(cues)}) == (text, spans)  # CSV cell
    assert post_cues({"text": raw, "cues": []}) == (norm, [])


def test_post_cues_on_raw_offsets():
    raw = "ＡＢ 广告"  # normalization shortens nothing here but changes the letters
    start = raw.index("广告")
    _, spans = post_cues(
        {
            "text": raw,
            "cues": [{"category": "disclosure", "text": "广告", "start": start, "end": start + 2}],
        }
    )
    assert spans == [(start, start + 2, "disclosure")]


# -- the report ----------------------------------------------------------------------
def scored(author, i, p, seeding, **extra):
    row = {
        "id": f"{author}-{i}",
        "author_id": author,
        "text": f"post {i} by {author}",
        "p_promotion": p,
        "authenticity": 1 - p,
        "label": "promotion" if p >= 0.5 else "genuine",
        "seeding": seeding,
    }
    row.update(extra)
    return row


def corpus():
    rows = [
        scored(
            "koc",
            i,
            0.05,
            0.8,
            followers=20_000,
            likes=900,
            lang="zh",
            platform="xhs",
            created_at=f"2024-05-{i + 1:02d}",
        )
        for i in range(6)
    ]
    rows += [
        scored("shill", i, 0.9, 0.9, followers=30_000, lang="en", platform="ig") for i in range(4)
    ]
    rows.append(
        scored(XSS_AUTHOR, 0, 0.48, 0.5, text=XSS_TEXT, lang="zh", platform='<b onclick="x">')
    )
    rows += [scored(XSS_AUTHOR, i, 0.1, 0.6, lang="zh") for i in (1, 2)]
    rows.append({**scored("nobody", 0, 0.3, 0.2), "author_id": None})
    return rows


def test_report_escapes_all_user_text():
    doc = render_report(corpus(), min_posts=3)
    assert_inert(doc)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in doc  # the author id, escaped
    assert "&lt;b onclick=&quot;x&quot;&gt;" in doc  # a platform name in the bar chart
    # the XSS author is ranked and its cues are highlighted around escaped text
    assert '<mark class="cue-gift"' in doc and '<mark class="cue-affiliate"' in doc


def test_report_headline_numbers_and_sections():
    rows = corpus()
    doc = render_report(rows, min_posts=3, top=5, examples=2)
    values = {
        label: value
        for value, label in re.findall(
            r'<div class="value">([^<]*)</div><div class="label">([^<]*)</div>', doc
        )
    }
    assert values["posts"] == "14" and values["authors"] == "3"
    assert values["judged promotion"] == f"{4 / 14:.1%}"
    assert values["authors ranked"] == "3"
    for heading in (
        "Distributions",
        "Where promotion concentrates",
        "KOC leaderboard",
        "Example posts",
        "Most promotional",
        "Strongest genuine seeding",
        "Borderline",
    ):
        assert heading in doc
    assert "1 posts without author_id" in doc
    # the leaderboard's first row is the planted KOC, with its top post shown in its details
    first_row = re.search(r"<tbody><tr><td class=\"num\">1</td><td>([^<]*)</td>", doc)
    assert first_row and first_row.group(1) == "koc"
    assert "post 0 by koc" in doc
    assert (
        doc.count('<div class="post">') <= 5 * 3 + 3 * 2
    )  # top posts per author + examples per group


def test_report_language_and_platform_shares():
    doc = render_report(corpus(), min_posts=3)
    bars = re.findall(
        r"<title>([^<]*)</title>[^<]*</text><rect[^>]*/><text[^>]*>([^<]*)</text>", doc
    )
    shares = {label: value for label, value in bars}
    # lang given on all but one post, which detect_lang reads as English
    assert shares["en"] == "80%  n=5" and shares["zh"] == "0%  n=9"
    assert (
        shares["ig"] == "100%  n=4"
        and shares["xhs"] == "0%  n=6"
        and shares["(not given)"] == "0%  n=3"
    )
    assert shares["&lt;b onclick=&quot;x&quot;&gt;"] == "0%  n=1"


def test_report_on_empty_input():
    doc = render_report([])
    assert "The input holds no posts." in doc and "No author has enough posts to rank." in doc
    assert_inert(doc)


def test_report_rejects_bad_rows_and_options():
    from kocscope.data.records import RecordError

    with pytest.raises(RecordError, match="post 2, field 'seeding'"):
        render_report([scored("a", 0, 0.1, 0.5), scored("a", 1, 0.1, 7)])
    with pytest.raises(ValueError):
        render_report([], top=-1)


def test_write_report(tmp_path):
    out = write_report(
        tmp_path / "r.html", corpus(), title="Q2 <audit>", sources=["a/b/scored.jsonl"]
    )
    doc = out.read_text(encoding="utf-8")
    assert "<title>Q2 &lt;audit&gt;</title>" in doc and "from scored.jsonl" in doc
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_infer_threshold():
    rows = [
        {"p_promotion": p, "label": "promotion" if p >= 0.4 else "genuine"}
        for p in (0.1, 0.3, 0.45, 0.9)
    ]
    assert _infer_threshold(rows) == pytest.approx(0.375)
    assert _infer_threshold(rows[:2]) == 0.5


def test_many_groups_are_pooled():
    from kocscope.inference.report import MAX_GROUPS, _group_shares

    rows = [
        {"platform": f"p{i}", "label": "promotion" if i % 2 else "genuine"}
        for i in range(20)
        for _ in range(20 - i)
    ]
    labels, shares, notes = _group_shares(rows, lambda r: r["platform"])
    assert len(labels) == MAX_GROUPS and labels[-1] == "other" and labels[0] == "p0"
    pooled = range(MAX_GROUPS - 1, 20)
    n_other = sum(20 - i for i in pooled)
    assert notes[-1] == f"n={n_other}"
    assert shares[-1] == pytest.approx(sum(20 - i for i in pooled if i % 2) / n_other)
