"""Unit tests of the KOC ranking: factors, edge cases and bad input (labels.md section 3)."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timezone

import numpy as np
import pytest
from scipy.stats import beta as beta_dist

from kocscope.data.records import RecordError
from kocscope.inference.kocs import (
    FACTORS,
    KocWeights,
    parse_band,
    parse_timestamp,
    post_key,
    rank_kocs,
)


def post(author="a", p=0.1, seeding=0.6, label=None, **fields):
    row = {
        "id": fields.pop("id", None),
        "author_id": author,
        "text": "t",
        "p_promotion": p,
        "authenticity": 1 - p,
        "label": label or ("promotion" if p >= 0.5 else "genuine"),
        "seeding": seeding,
    }
    row.update(fields)
    return row


def by_id(ranking):
    return {a.author_id: a for a in ranking.authors}


# -- empty and skipped input ---------------------------------------------------------
def test_empty_input():
    ranking = rank_kocs([])
    assert ranking.authors == [] and ranking.n_posts == 0 and ranking.n_ranked == 0
    assert vars(ranking.skipped) == {
        "posts_without_author": 0,
        "authors_below_min_posts": 0,
        "posts_of_authors_below_min_posts": 0,
        "duplicate_posts": 0,
    }


def test_posts_without_author_are_counted_not_merged():
    posts = [post(author=None), post(author=""), post(author="   "), post(author=float("nan"))]
    posts += [post(author="x") for _ in range(3)]
    ranking = rank_kocs(posts)
    assert [a.author_id for a in ranking.authors] == ["x"]
    assert ranking.skipped.posts_without_author == 4
    assert ranking.n_posts == 7


def test_min_posts_filter_reports_what_it_drops():
    posts = [post("big") for _ in range(5)] + [post("small") for _ in range(2)] + [post("one")]
    ranking = rank_kocs(posts, min_posts=3)
    assert [a.author_id for a in ranking.authors] == ["big"]
    assert ranking.skipped.authors_below_min_posts == 2
    assert ranking.skipped.posts_of_authors_below_min_posts == 3
    assert {a.author_id for a in rank_kocs(posts, min_posts=1).authors} == {"big", "small", "one"}


def test_numeric_author_ids_are_strings():
    ranking = rank_kocs([post(author=12345) for _ in range(3)])
    assert ranking.authors[0].author_id == "12345"


def test_a_post_read_twice_counts_once():
    rows = [post(id="dup-1")] * 3 + [post(id="p2"), post(id="p3"), post(author="b", id="dup-1")]
    ranking = rank_kocs(rows, min_posts=1)
    a = by_id(ranking)["a"]
    assert a.n_posts == 3 and sorted(a.top_post_ids) == ["dup-1", "p2", "p3"]
    assert by_id(ranking)["b"].n_posts == 1  # the same id by another author is another post
    assert ranking.skipped.duplicate_posts == 2 and ranking.n_posts == 6
    once = rank_kocs([post(id=f"p{i}", p=0.1 * i) for i in range(4)])
    twice = rank_kocs([post(id=f"p{i}", p=0.1 * i) for i in range(4)] * 2)  # the same file given twice
    assert [a.to_dict() for a in twice.authors] == [a.to_dict() for a in once.authors]
    assert twice.skipped.duplicate_posts == 4


def test_the_first_of_duplicate_rows_is_kept():
    rows = [post(id="x", p=0.1), post(id="x", p=0.9), post(id="y", p=0.1), post(id="z", p=0.1)]
    assert by_id(rank_kocs(rows))["a"].n_promotion == 0


def test_numpy_numbers_from_dataframes_are_read():
    rows = [post(followers=np.int64(12000), likes=np.int32(300), created_at=np.int64(1714521600 + i)) for i in range(3)]
    a = rank_kocs(rows).authors[0]
    assert a.followers == 12000 and a.engagement_rate == pytest.approx(0.025)


# -- the authenticity posterior ------------------------------------------------------
def test_lower_bound_is_the_beta_quantile_of_soft_counts():
    ps = [0.1, 0.2, 0.05, 0.7, 0.3]
    a = rank_kocs([post(p=p) for p in ps], prior=(2.0, 1.0), confidence=0.8).authors[0]
    alpha, beta = 2.0 + sum(1 - p for p in ps), 1.0 + sum(ps)
    assert a.posterior_alpha == pytest.approx(alpha) and a.posterior_beta == pytest.approx(beta)
    assert a.authenticity_lower == pytest.approx(beta_dist.ppf(0.2, alpha, beta))
    assert a.authenticity_mean == pytest.approx(1 - sum(ps) / len(ps))
    assert a.n_promotion == 1 and a.share_promotion == pytest.approx(0.2)
    assert a.factors["authenticity"] == a.authenticity_lower


def test_one_lucky_post_does_not_top_a_long_genuine_record():
    """Same followers, seeding and no dates: only the evidence behind authenticity differs."""
    lucky = [post("lucky", p=0.0, seeding=0.7, followers=5000)]
    steady = [post("steady", p=0.08, seeding=0.7, followers=5000) for _ in range(14)]
    ranking = rank_kocs(lucky + steady, min_posts=1)
    scores = by_id(ranking)
    assert scores["lucky"].authenticity_mean > scores["steady"].authenticity_mean
    assert [a.author_id for a in ranking.authors] == ["steady", "lucky"]
    assert scores["lucky"].authenticity_lower < 0.4
    assert scores["steady"].authenticity_lower > 0.75


def test_higher_confidence_lowers_the_bound():
    posts = [post(p=0.2) for _ in range(5)]
    low = rank_kocs(posts, confidence=0.5).authors[0].authenticity_lower
    high = rank_kocs(posts, confidence=0.99).authors[0].authenticity_lower
    assert high < low


# -- seeding and top posts ---------------------------------------------------------
def test_seeding_counts_only_genuine_posts_and_top_posts_are_genuine():
    posts = [
        post(id="g1", p=0.1, seeding=0.4),
        post(id="g2", p=0.05, seeding=0.9),
        post(id="g3", p=0.3, seeding=0.8),
        post(id="ad", p=0.95, seeding=1.0),
    ]
    a = rank_kocs(posts, top_posts=2).authors[0]
    assert a.seeding_genuine == pytest.approx((0.4 + 0.9 + 0.8) / 3)
    assert a.top_post_ids == ["g2", "g3"]  # 0.95*0.9, 0.7*0.8 > 0.9*0.4; never the ad


def test_label_not_probability_decides_genuine():
    """The model's threshold is in the label; a post at p=0.4 labelled promotion is promotion."""
    a = rank_kocs(
        [post(p=0.4, label="promotion", seeding=0.9)] + [post(p=0.1, seeding=0.2)] * 2
    ).authors[0]
    assert a.n_promotion == 1 and a.seeding_genuine == pytest.approx(0.2)


def test_all_promotion_author_has_zero_seeding_factor():
    a = rank_kocs([post(p=0.9, seeding=1.0) for _ in range(3)]).authors[0]
    assert a.seeding_genuine is None and a.factors["seeding"] == 0.0 and a.top_post_ids == []
    assert "no post reads genuine" in " ".join(a.reasons)


def test_posts_without_id_are_cited_by_position():
    rows = [post(p=0.1, seeding=0.9), post(p=0.1, seeding=0.1), post(p=0.1, seeding=0.5)]
    assert rank_kocs(rows, top_posts=1).authors[0].top_post_ids == ["#1"]
    assert post_key({"id": 0}, 4) == "0" and post_key({}, 4) == "#5"


# -- followers --------------------------------------------------------------------
@pytest.mark.parametrize(
    "followers, expected",
    [
        (1_000, 1.0),
        (50_000, 1.0),
        (100_000, 1.0),
        (1_000_000, math.exp(-2.0)),
        (100, math.exp(-2.0)),
        (5_000_000, math.exp(-0.5 * (math.log10(50) / 0.5) ** 2)),
    ],
)
def test_follower_fit_is_one_inside_the_band_and_decays_in_decades(followers, expected):
    a = rank_kocs([post(followers=followers)] * 3).authors[0]
    assert a.follower_fit == pytest.approx(expected)


def test_open_band_ends():
    rows = [post(followers=50_000_000)] * 3
    assert rank_kocs(rows, followers=(1000, None)).authors[0].follower_fit == 1.0
    assert rank_kocs([post(followers=3)] * 3, followers=(None, 100)).authors[0].follower_fit == 1.0


def test_celebrity_with_perfect_content_ranks_below_a_waist_account_and_says_why():
    celeb = [post("celeb", p=0.02, seeding=0.9, followers=5_000_000) for _ in range(10)]
    waist = [post("waist", p=0.08, seeding=0.7, followers=20_000) for _ in range(10)]
    ranking = rank_kocs(celeb + waist)
    assert [a.author_id for a in ranking.authors] == ["waist", "celeb"]
    celeb_score = by_id(ranking)["celeb"]
    assert celeb_score.reasons[0].startswith("followers 5M above KOC band")
    assert any("inside KOC band" in r for r in by_id(ranking)["waist"].reasons)


def test_missing_followers_redistributes_the_weight():
    rows = [post(p=0.1, seeding=0.6) for _ in range(4)]
    w = KocWeights(authenticity=0.5, seeding=0.3, follower_fit=0.2, engagement=0.1, activity=0.1)
    a = rank_kocs(rows, weights=w).authors[0]
    assert (
        a.followers is None
        and a.follower_fit is None
        and a.engagement_rate is None
        and a.activity is None
    )
    assert a.score == pytest.approx((0.5 * a.authenticity_lower + 0.3 * 0.6) / 0.8)
    assert "followers not given (factor skipped)" in a.reasons


def test_latest_follower_count_when_dated_else_median():
    dated = [
        post(followers=f, created_at=d)
        for f, d in ((900, "2024-01-01"), (5000, "2024-03-01"), (1200, "2024-02-01"))
    ]
    assert rank_kocs(dated).authors[0].followers == 5000
    undated = [post(followers=f) for f in (900, 5000, 1200)]
    assert rank_kocs(undated).authors[0].followers == 1200


# -- engagement -------------------------------------------------------------------
def test_engagement_rate_uses_the_fields_that_exist():
    rows = [
        post(followers=1000, likes=30, comments=10, collects=5, shares=5),  # 5%
        post(followers=1000, likes=10),  # 1%, other fields absent
        post(followers=1000),  # no engagement fields: not part of the mean
    ]
    a = rank_kocs(rows, engagement_half=0.03).authors[0]
    assert a.engagement_rate == pytest.approx(0.03)
    assert a.factors["engagement"] == pytest.approx(0.5)


def test_engagement_falls_back_to_author_followers_and_skips_zero():
    rows = [
        post(followers=2000, likes=100, created_at="2024-05-02"),
        post(likes=100),
        post(likes=40, followers=0, created_at="2024-05-01"),
    ]
    a = rank_kocs(rows).authors[0]
    # the zero-follower post has no defined rate; the one without followers uses the author's latest, 2000
    assert a.engagement_rate == pytest.approx(0.05)


def test_engagement_without_followers_is_unknown():
    a = rank_kocs([post(likes=100)] * 3).authors[0]
    assert a.engagement_rate is None and a.factors["engagement"] is None


def test_csv_style_strings_are_accepted():
    row = {
        "author_id": "a",
        "text": "t",
        "p_promotion": "0.1",
        "authenticity": "0.9",
        "label": "genuine",
        "seeding": "0.5",
        "followers": "1.2万",
        "likes": "1,200",
        "comments": "",
        "created_at": "2024/05/01",
    }
    rows = [row] * 3
    a = rank_kocs(rows).authors[0]
    assert a.followers == 12_000 and a.engagement_rate == pytest.approx(0.1)


# -- activity ---------------------------------------------------------------------
def test_activity_recency_and_regularity():
    weekly = [post(created_at=f"2024-05-{d:02d}") for d in (1, 8, 15, 22, 29)]
    a = rank_kocs(weekly, now="2024-05-29").authors[0]
    assert a.activity == pytest.approx(1.0)  # posted today, perfectly regular
    later = rank_kocs(weekly, now="2024-08-27", recency_half_life_days=90).authors[0]
    assert later.activity == pytest.approx((0.5 + 1.0) / 2)  # 90 days later: recency halves
    bursty = [
        post(created_at=d)
        for d in ("2024-05-01", "2024-05-01T01:00", "2024-05-01T02:00", "2024-05-29")
    ]
    assert rank_kocs(bursty, now="2024-05-29").authors[0].activity < 0.75
    assert a.last_post_at.startswith("2024-05-29")


def test_activity_with_two_dated_posts_shows_no_regularity():
    rows = [post(created_at="2024-05-01"), post(created_at="2024-05-02"), post()]
    a = rank_kocs(rows, now="2024-05-02").authors[0]
    assert a.activity == pytest.approx(0.5)
    assert any("too few dated posts" in r for r in a.reasons)


def test_now_defaults_to_newest_post_in_the_input():
    rows = [post("a", created_at="2024-01-01")] * 3 + [post("b", created_at="2024-06-01")] * 3
    ranking = rank_kocs(rows)
    assert ranking.settings["now"].startswith("2024-06-01")
    assert by_id(ranking)["b"].factors["activity"] > by_id(ranking)["a"].factors["activity"]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-05-01T00:00:00Z", 1714521600.0),
        ("2024-05-01", 1714521600.0),
        ("2024-05-01 08:00:00+08:00", 1714521600.0),
        (1714521600, 1714521600.0),
        (1714521600000, 1714521600.0),
        ("1714521600", 1714521600.0),
        (datetime(2024, 5, 1), 1714521600.0),
        (date(2024, 5, 1), 1714521600.0),
        (None, None),
        ("", None),
        (float("nan"), None),
        ("2024/5/1", 1714521600.0),
        ("2024-5-1 8:00+08:00", 1714521600.0),
        ("2024年5月1日", 1714521600.0),
        ("2024年5月1日 08:00", 1714550400.0),
        (np.int64(1714521600), 1714521600.0),
    ],
)
def test_parse_timestamp(value, expected):
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value", ["yesterday", True, [2024], "2024-13-01", "05/01/2024", "01.05.2024 10:00"])
def test_parse_timestamp_rejects(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


# -- scoring and ranking ----------------------------------------------------------
def test_score_is_the_weighted_mean_of_known_factors():
    rows = [
        post(p=0.1, seeding=0.5, followers=5000, likes=100, created_at=f"2024-05-0{d}")
        for d in (1, 3, 5, 7)
    ]
    w = KocWeights(1, 2, 3, 4, 5)
    a = rank_kocs(rows, weights=w).authors[0]
    expected = sum(getattr(w, k) * a.factors[k] for k in FACTORS) / 15
    assert a.score == pytest.approx(expected)
    assert all(0.0 <= a.factors[k] <= 1.0 for k in FACTORS)


def test_ranks_top_and_tie_break():
    rows = [post(author, p=0.1) for author in ("b", "a", "c") for _ in range(3)]
    ranking = rank_kocs(rows, top=2)
    assert [(a.rank, a.author_id) for a in ranking.authors] == [(1, "a"), (2, "b")]
    assert ranking.n_ranked == 3
    assert rank_kocs(rows, top=0).authors == []


def test_reasons_cover_every_factor_and_records_serialise():
    rows = [
        post(p=0.1, followers=23_000, likes=500, created_at=f"2024-05-{d:02d}")
        for d in range(1, 15)
    ]
    ranking = rank_kocs(rows)
    a = ranking.authors[0]
    assert len(a.reasons) == len(FACTORS)
    text = " | ".join(a.reasons)
    assert "100% of 14 posts read genuine (lower bound" in text
    assert "followers 23k inside KOC band 1k–100k" in text
    assert "interactions per follower" in text and "last post 0 days before 2024-05-14" in text
    records = json.loads(json.dumps(ranking.to_records()))
    assert records[0]["author_id"] == "a" and records[0]["top_post_ids"] == a.top_post_ids


# -- bad input and options --------------------------------------------------------
@pytest.mark.parametrize(
    "bad, field",
    [
        ({"p_promotion": None}, "p_promotion"),
        ({"p_promotion": "x"}, "p_promotion"),
        ({"p_promotion": 1.5}, "p_promotion"),
        ({"p_promotion": True}, "p_promotion"),
        ({"seeding": -0.1}, "seeding"),
        ({"label": "ad"}, "label"),
        ({"followers": -3}, "followers"),
        ({"likes": "many"}, "likes"),
        ({"created_at": "yesterday"}, "created_at"),
    ],
)
def test_bad_rows_name_post_and_field(bad, field):
    rows = [post(), post(), post(**bad) if "p_promotion" not in bad else {**post(), **bad}]
    with pytest.raises(RecordError) as err:
        rank_kocs(rows)
    assert err.value.field == field and err.value.line == 3
    assert str(err.value).startswith(f"post 3, field '{field}'")


def test_missing_score_hints_at_scoring():
    with pytest.raises(RecordError, match="run kocscope score first"):
        rank_kocs([{"author_id": "a", "text": "unscored"}])


def test_non_mapping_row():
    with pytest.raises(RecordError, match="expected a mapping"):
        rank_kocs(["just text"])  # type: ignore[list-item]


@pytest.mark.parametrize("band", [(10, 5), (-1, None), ("1", 10), (None, float("inf")), (1, 2, 3)])
def test_invalid_band(band):
    with pytest.raises(ValueError):
        rank_kocs([], followers=band)


@pytest.mark.parametrize(
    "text, band",
    [
        ("1000:100000", (1000, 100000)),
        (":5k", (None, 5000)),
        ("1k:", (1000, None)),
        (":", (None, None)),
        ("2.5k:1m", (2500, 1_000_000)),
        ("1_000:10,000", (1000, 10000)),
    ],
)
def test_parse_band(text, band):
    assert parse_band(text) == band


@pytest.mark.parametrize("text", ["1000", "a:b", "1:2:3", "100:10", "-5:10", ""])
def test_parse_band_rejects(text):
    with pytest.raises(ValueError):
        parse_band(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_posts": 0},
        {"confidence": 1.0},
        {"confidence": 0},
        {"prior": (0, 1)},
        {"top": -1},
        {"band_softness": 0},
        {"engagement_half": -1},
        {"now": "someday"},
    ],
)
def test_invalid_options(kwargs):
    with pytest.raises(ValueError):
        rank_kocs([], **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top": "5"}, "top must be an integer >= 0 or None, got '5'"),
        ({"top": 2.5}, "top must be an integer"),
        ({"confidence": "0.9"}, "confidence must be a number in (0, 1), got '0.9'"),
        ({"prior": 5}, "prior must be two positive pseudo-counts"),
        ({"top_posts": "3"}, "top_posts must be an integer >= 0, got '3'"),
        ({"band_softness": True}, "band_softness must be a positive number, got True"),
        ({"confidence": True}, "confidence must be a number in (0, 1), got True"),
        ({"prior": (True, 1.0)}, "prior must be two positive pseudo-counts"),
    ],
)
def test_options_of_the_wrong_type_say_which(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        rank_kocs([post()] * 3, **kwargs)


def test_weights_must_be_koc_weights():
    with pytest.raises(TypeError, match="weights must be a KocWeights, got dict"):
        rank_kocs([post()] * 3, weights={"seeding": 1.0})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "weights",
    [
        {"seeding": -1},
        {"activity": float("nan")},
        dict.fromkeys(("authenticity", "seeding", "follower_fit", "engagement", "activity"), 0),
    ],
)
def test_invalid_weights(weights):
    with pytest.raises(ValueError):
        KocWeights(**weights)


def test_dated_posts_stay_utc():
    a = rank_kocs([post(created_at="2024-05-01T23:30:00-02:00")] * 3).authors[0]
    assert a.last_post_at == datetime(2024, 5, 2, 1, 30, tzinfo=timezone.utc).isoformat()


def test_numpy_numbers_are_options_too():
    import numpy as np

    rows = [{"id": f"p{i}", "author_id": "a", "p_promotion": 0.1, "label": "genuine", "seeding": 0.5} for i in range(3)]
    plain = rank_kocs(rows, confidence=0.8, band_softness=0.5)
    from_numpy = rank_kocs(rows, confidence=np.float32(0.8), band_softness=np.float64(0.5))
    assert [a.score for a in from_numpy.authors] == pytest.approx([a.score for a in plain.authors])
