"""KOC ranking: authors whose genuine content moves other consumers (labels.md section 3).

An author is judged on five factors, each in [0, 1]:

``authenticity``
    Lower bound (``confidence``, default 0.9 -> the 10% quantile) of the Beta
    posterior ``Beta(prior_genuine + sum(authenticity), prior_promotion + sum(p_promotion))``.
    Soft counts use every post's calibrated probability, and the bound (not the
    mean) means one or two lucky posts cannot outrank a long genuine record.
``seeding``
    Mean seeding strength over the author's posts labelled ``genuine``; 0 when
    none is genuine (seeding by promotion is what a KOC is *not*).
``follower_fit``
    1 inside the follower band, ``exp(-0.5 * (d / band_softness)**2)`` outside,
    with ``d`` the distance to the band in decades (log10). The default band
    1k-100k is the "waist": below it an account has too small an audience to
    move anyone, above it is a "head" account (celebrity, brand, agency) whose
    posts are commercial reach rather than consumer word of mouth. 10x above the
    band scores 0.14, 50x (5M vs 100k) scores 0.003. Either end may be None (open).
``engagement``
    Mean over posts of (likes + comments + collects + shares) / followers,
    mapped through ``rate / (rate + engagement_half)`` so a rate equal to
    ``engagement_half`` (default 3% interactions per follower) scores 0.5.
``activity``
    Mean of recency ``0.5 ** (days since last post / recency_half_life_days)``
    and regularity ``1 / (1 + cv)`` of the gaps between posts (cv = std/mean;
    0 with fewer than 3 dated posts: one or two posts show no regular posting).

The score is the weighted mean over the factors that can be computed::

    score = sum_k w_k * f_k / sum_{k known} w_k

``follower_fit``, ``engagement`` and ``activity`` are unknown when the export
lacks followers, engagement fields or ``created_at``; their weight is then
redistributed over the known factors, so an author is neither rewarded nor
penalised for what the export does not say. ``authenticity`` and ``seeding``
are always known.
"""

from __future__ import annotations

import heapq
import itertools
import math
import numbers
import os
import statistics
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from kocscope.data.records import RecordError, parse_count, parse_timestamp
from kocscope.models.base import LABELS

__all__ = [
    "DEFAULT_BAND",
    "AuthorScore",
    "KocRanking",
    "KocSkipped",
    "KocWeights",
    "ScoringUnavailable",
    "parse_band",
    "parse_timestamp",
    "post_key",
    "rank_kocs",
    "read_scored",
]

DEFAULT_BAND: tuple[float | None, float | None] = (1_000, 100_000)
ENGAGEMENT_FIELDS = ("likes", "comments", "collects", "shares")
FACTORS = ("authenticity", "seeding", "follower_fit", "engagement", "activity")
_DAY = 86_400.0


@dataclass(frozen=True)
class KocWeights:
    """Relative weight of each factor; only ratios matter (the score divides by the sum).

    Authenticity weighs most because it is what separates a KOC from a paid
    account; the defaults were picked on the simulated authors of
    ``tests/test_kocs_simulation.py`` (tuning seeds apart from the test seeds).
    """

    authenticity: float = 0.35
    seeding: float = 0.20
    follower_fit: float = 0.15
    engagement: float = 0.15
    activity: float = 0.15

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"weight {f.name!r} must be a finite number >= 0, got {v!r}")
        if sum(getattr(self, f.name) for f in fields(self)) <= 0:
            raise ValueError("at least one KOC weight must be > 0")


@dataclass
class AuthorScore:
    """One ranked author with every number that went into the score."""

    author_id: str
    rank: int
    score: float
    n_posts: int
    n_promotion: int
    share_promotion: float
    authenticity_mean: float
    authenticity_lower: float
    posterior_alpha: float
    posterior_beta: float
    seeding_genuine: float | None
    followers: float | None
    follower_fit: float | None
    engagement_rate: float | None
    activity: float | None
    last_post_at: str | None
    factors: dict[str, float | None]
    top_post_ids: list[str]
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KocSkipped:
    """What did not enter the ranking, so it is reported rather than silently lost."""

    posts_without_author: int = 0
    authors_below_min_posts: int = 0
    posts_of_authors_below_min_posts: int = 0
    # the same post id by the same author again (an export read twice, a repeated row): counted once
    duplicate_posts: int = 0


@dataclass
class KocRanking:
    """Authors sorted by score (rank 1 first), plus what was left out and the settings used."""

    authors: list[AuthorScore]
    skipped: KocSkipped
    n_posts: int
    n_ranked: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_records(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.authors]


# ---------------------------------------------------------------------------
# input parsing
# ---------------------------------------------------------------------------
def _real(value: Any) -> bool:
    """A finite number, numpy's included; True and False are not numbers here."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def parse_band(text: str) -> tuple[float | None, float | None]:
    """Parse ``MIN:MAX`` (either side may be empty for an open end, ``k``/``m`` suffixes allowed)."""
    if text.count(":") != 1:
        raise ValueError(f"follower band must look like MIN:MAX (e.g. 1000:100000, 5k:, :1m), got {text!r}")
    ends: list[float | None] = []
    for part in text.split(":"):
        part = part.strip().lower().replace("_", "").replace(",", "")
        if not part:
            ends.append(None)
            continue
        scale = {"k": 1e3, "m": 1e6}.get(part[-1], 1.0)
        number = part[:-1] if scale != 1.0 else part
        try:
            ends.append(float(number) * scale)
        except ValueError:
            raise ValueError(f"follower band end {part!r} in {text!r} is not a number") from None
    band = (ends[0], ends[1])
    _check_band(band)
    return band


def _check_band(band: tuple[float | None, float | None]) -> None:
    if not isinstance(band, (tuple, list)) or len(band) != 2:
        raise ValueError(f"follower band must be a (min, max) pair, got {band!r}")
    for end in band:
        if end is not None and (isinstance(end, bool) or not isinstance(end, (int, float)) or not math.isfinite(end) or end < 0):
            raise ValueError(f"follower band ends must be numbers >= 0 or None, got {band!r}")
    if band[0] is not None and band[1] is not None and band[0] > band[1]:
        raise ValueError(f"follower band minimum {band[0]:g} is above its maximum {band[1]:g}")


def _bad(index: int, name: str, reason: str, *got: Any) -> RecordError:
    """Errors name the post by position (``post 13``); readers that know file and line relocate them."""
    return RecordError(reason, line=index + 1, unit="post", field=name, **({"got": got[0]} if got else {}))


def _unit(row: Mapping[str, Any], name: str, index: int) -> float:
    """A required probability-like field in [0, 1]; numeric strings accepted because CSV has no types."""
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        hint = " (unscored posts: run kocscope score first)" if name == "p_promotion" else ""
        raise _bad(index, name, f"is missing{hint}")
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise _bad(index, name, "must be a number in [0, 1]", value)
    return number


def _count(row: Mapping[str, Any], name: str, index: int) -> float | None:
    value = row.get(name)
    if value is None:
        return None
    if type(value) is int and value >= 0:  # the common case, without parse_count's Decimal round trip
        return float(value)
    if isinstance(value, numbers.Real) and math.isnan(value):  # Parquet/pandas nulls
        return None
    try:
        number = parse_count(value, name)
    except RecordError as exc:
        raise _bad(index, name, exc.reason, value) from None
    return None if number is None else float(number)


@dataclass
class _Post:
    author_id: str | None
    post_id: str
    p_promotion: float
    genuine: bool
    seeding: float
    followers: float | None
    engagement: float | None
    time: float | None


def post_key(row: Mapping[str, Any], index: int) -> str:
    """The id a post is cited by: its ``id``, or ``#N`` (1-based position) when it has none."""
    post_id = row.get("id")
    return f"#{index + 1}" if post_id is None or post_id == "" else str(post_id)


def _parse_post(row: Mapping[str, Any], index: int) -> _Post:
    if not isinstance(row, Mapping):
        raise _bad(index, "(record)", f"expected a mapping of fields, got {type(row).__name__}")
    p = _unit(row, "p_promotion", index)
    seeding = _unit(row, "seeding", index)
    label = row.get("label")
    if label not in LABELS:
        raise _bad(index, "label", f"must be one of {', '.join(LABELS)}", label)
    counts = [_count(row, name, index) for name in ENGAGEMENT_FIELDS]
    known = [c for c in counts if c is not None]
    try:
        time = parse_timestamp(row.get("created_at"), "created_at")
    except RecordError as exc:
        raise exc.located(None, index + 1, "post") from None
    author = row.get("author_id")
    if isinstance(author, float) and math.isnan(author):
        author = None
    return _Post(
        author_id=None if author is None else (str(author).strip() or None),
        post_id=post_key(row, index),
        p_promotion=p,
        genuine=label == LABELS[0],
        seeding=seeding,
        followers=_count(row, "followers", index),
        engagement=sum(known) if known else None,
        time=time,
    )


# ---------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------
class _Author:
    """Running totals for one author; memory is a few numbers and the id per post."""

    __slots__ = ("engagement", "followers", "n", "n_genuine", "n_promotion", "post_ids", "seed_sum", "sum_auth", "sum_p", "times", "top")

    def __init__(self) -> None:
        self.n = self.n_promotion = self.n_genuine = 0
        self.sum_auth = self.sum_p = self.seed_sum = 0.0
        self.followers: list[tuple[float | None, float]] = []  # (time, followers)
        self.engagement: list[tuple[float, float | None]] = []  # (interactions, post followers)
        self.times: list[float] = []
        self.top: list[tuple[float, int, str]] = []  # min-heap of (authenticity*seeding, -seq, id)
        self.post_ids: set[str] = set()  # to count a post read twice once

    def add(self, post: _Post, keep_top: int) -> None:
        self.post_ids.add(post.post_id)
        self.n += 1
        self.sum_p += post.p_promotion
        self.sum_auth += 1.0 - post.p_promotion
        if post.genuine:
            self.n_genuine += 1
            self.seed_sum += post.seeding
            if keep_top > 0:
                item = ((1.0 - post.p_promotion) * post.seeding, -self.n, post.post_id)
                if len(self.top) < keep_top:
                    heapq.heappush(self.top, item)
                else:
                    heapq.heappushpop(self.top, item)
        else:
            self.n_promotion += 1
        if post.followers is not None:
            self.followers.append((post.time, post.followers))
        if post.engagement is not None:
            self.engagement.append((post.engagement, post.followers))
        if post.time is not None:
            self.times.append(post.time)

    def follower_count(self) -> float | None:
        """Latest count when posts are dated (audiences grow; today's size is what matters), else the median."""
        if not self.followers:
            return None
        dated = [(t, f) for t, f in self.followers if t is not None]
        if dated:
            return max(dated, key=lambda tf: tf[0])[1]
        return float(statistics.median(f for _, f in self.followers))

    def engagement_rate(self, author_followers: float | None) -> float | None:
        """Mean per-post rate; a post without its own follower count uses the author's."""
        rates = []
        for interactions, followers in self.engagement:
            base = followers if followers is not None else author_followers
            if base is not None and base > 0:
                rates.append(interactions / base)
        return sum(rates) / len(rates) if rates else None


def _follower_fit(followers: float, band: tuple[float | None, float | None], softness: float) -> float:
    lo, hi = band
    if lo is not None and followers < lo:
        decades = math.log10(lo / max(followers, 1.0)) if lo > 0 else 0.0
    elif hi is not None and followers > hi:
        decades = math.log10(followers / max(hi, 1.0))
    else:
        return 1.0
    return math.exp(-0.5 * (decades / softness) ** 2)


def _human(n: float) -> str:
    """23000 -> '23k', 5e6 -> '5M': follower counts read at a glance."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def _band_text(band: tuple[float | None, float | None]) -> str:
    lo, hi = band
    return f"{_human(lo) if lo is not None else '0'}–{_human(hi) if hi is not None else '∞'}"


@dataclass
class _Activity:
    value: float | None = None
    days_since: float | None = None
    regularity: float | None = None
    median_gap: float | None = None


def _activity(times: list[float], now: float | None, half_life_days: float) -> _Activity:
    if not times or now is None:
        return _Activity()
    ordered = sorted(times)
    days_since = max(now - ordered[-1], 0.0) / _DAY
    recency = 0.5 ** (days_since / half_life_days)
    if len(ordered) < 3:  # one or two posts show no regular posting yet
        return _Activity(recency / 2.0, days_since, 0.0)
    gaps = [(b - a) / _DAY for a, b in itertools.pairwise(ordered)]
    mean_gap = sum(gaps) / len(gaps)
    std_gap = math.sqrt(sum((g - mean_gap) ** 2 for g in gaps) / len(gaps))  # statistics.pstdev is exact, slow
    regularity = 0.0 if mean_gap <= 0 else 1.0 / (1.0 + std_gap / mean_gap)
    return _Activity((recency + regularity) / 2.0, days_since, regularity, float(statistics.median(gaps)))


def _reasons(
    score: AuthorScore,
    weights: KocWeights,
    band: tuple[float | None, float | None],
    activity: _Activity,
    now: float | None,
    typical: Mapping[str, float],
) -> list[str]:
    """Human-readable evidence, what sets the author apart first: factors ordered by their weighted
    distance from the typical (mean) value among ranked authors, so "inside the band" leads only
    where most authors are not, and a celebrity's follower count leads even with a high score."""
    n = score.n_posts
    texts: dict[str, str] = {
        "authenticity": (
            f"{1 - score.share_promotion:.0%} of {n} post{'s' if n != 1 else ''} read genuine "
            f"(lower bound {score.authenticity_lower:.2f})"
        ),
    }
    sg = score.seeding_genuine
    if sg is None:
        texts["seeding"] = "no post reads genuine, so no genuine seeding"
    else:
        strength = "strongly" if sg >= 0.6 else "moderately" if sg >= 0.35 else "weakly"
        texts["seeding"] = f"genuine posts seed {strength} ({sg:.2f})"
    if score.followers is None:
        texts["follower_fit"] = "followers not given (factor skipped)"
    else:
        lo, hi = band
        f_text = _human(score.followers)
        if hi is not None and score.followers > hi:
            texts["follower_fit"] = f"followers {f_text} above KOC band {_band_text(band)}: head account (fit {score.follower_fit:.2f})"
        elif lo is not None and score.followers < lo:
            texts["follower_fit"] = f"followers {f_text} below KOC band {_band_text(band)} (fit {score.follower_fit:.2f})"
        else:
            texts["follower_fit"] = f"followers {f_text} inside KOC band {_band_text(band)}"
    if score.engagement_rate is None:
        texts["engagement"] = "no engagement with follower counts given (factor skipped)"
    else:
        level = "audience responds" if (score.factors["engagement"] or 0) >= 0.5 else "low audience response"
        texts["engagement"] = f"{level}: {score.engagement_rate:.1%} interactions per follower per post"
    if score.activity is None:
        texts["activity"] = "no post dates given (factor skipped)"
    else:
        if activity.median_gap is None:
            rhythm = "too few dated posts to show regular posting"
        else:
            steady = "regular" if activity.regularity >= 0.5 else "irregular"
            rhythm = f"{steady} posting (median gap {activity.median_gap:.1f} days)"
        day = datetime.fromtimestamp(now, timezone.utc).date().isoformat() if now is not None else "now"
        texts["activity"] = f"last post {activity.days_since:.0f} days before {day}, {rhythm}"

    def pull(k: str) -> float:
        f = score.factors[k]
        return -1.0 if f is None else getattr(weights, k) * abs(f - typical.get(k, 0.5))

    return [texts[k] for k in sorted(FACTORS, key=pull, reverse=True)]  # stable: ties keep FACTORS order


def rank_kocs(
    scored_posts: Iterable[Mapping[str, Any]],
    *,
    min_posts: int = 3,
    followers: tuple[float | None, float | None] = DEFAULT_BAND,
    weights: KocWeights | None = None,
    prior: tuple[float, float] = (1.0, 1.0),
    confidence: float = 0.9,
    top: int | None = None,
    now: datetime | str | float | None = None,
    band_softness: float = 0.5,
    engagement_half: float = 0.03,
    recency_half_life_days: float = 90.0,
    top_posts: int = 3,
) -> KocRanking:
    """Rank authors as KOCs from scored posts (see the module docstring for the formula).

    ``followers`` is the KOC band (min, max), None for an open end; ``prior`` the
    (genuine, promotion) pseudo-counts of the authenticity posterior and
    ``confidence`` the level of its lower bound; ``top`` keeps the first N
    authors; ``now`` anchors recency and defaults to the newest ``created_at`` in
    the input, so re-running on an old export gives the same ranking.
    ``band_softness`` (decades), ``engagement_half`` and ``recency_half_life_days``
    shape the factor curves; ``top_posts`` is how many post ids to cite per author.
    Posts are streamed once; posts without ``author_id`` are counted in
    ``skipped``, never pooled into one fake author, and so is a post id repeated
    for the same author (an export read twice): only its first row counts.
    A bad post raises RecordError.
    """
    if weights is None:
        weights = KocWeights()
    elif not isinstance(weights, KocWeights):
        raise TypeError(f"weights must be a KocWeights, got {type(weights).__name__}; e.g. KocWeights(seeding=0.3)")
    if isinstance(min_posts, bool) or not isinstance(min_posts, int) or min_posts < 1:
        raise ValueError(f"min_posts must be an integer >= 1, got {min_posts!r}")
    _check_band(followers)
    if not _real(confidence) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if not isinstance(prior, (tuple, list)) or len(prior) != 2 or not all(_real(p) and p > 0 for p in prior):
        raise ValueError(f"prior must be two positive pseudo-counts (genuine, promotion), got {prior!r}")
    for name, value in (("band_softness", band_softness), ("engagement_half", engagement_half), ("recency_half_life_days", recency_half_life_days)):
        if not (_real(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
        raise ValueError(f"top must be an integer >= 0 or None, got {top!r}")
    if isinstance(top_posts, bool) or not isinstance(top_posts, int) or top_posts < 0:
        raise ValueError(f"top_posts must be an integer >= 0, got {top_posts!r}")
    try:
        now_ts = parse_timestamp(now)
    except ValueError as exc:
        raise ValueError(f"now: {exc}") from None

    authors: dict[str, _Author] = {}
    skipped = KocSkipped()
    n_posts = 0
    latest: float | None = None
    for index, row in enumerate(scored_posts):
        post = _parse_post(row, index)
        n_posts += 1
        if post.time is not None and (latest is None or post.time > latest):
            latest = post.time
        if post.author_id is None:
            skipped.posts_without_author += 1
            continue
        acc = authors.get(post.author_id)
        if acc is None:
            acc = authors[post.author_id] = _Author()
        if post.post_id in acc.post_ids:
            skipped.duplicate_posts += 1
            continue
        acc.add(post, top_posts)
    if now_ts is None:
        now_ts = latest

    kept = {a: acc for a, acc in authors.items() if acc.n >= min_posts}
    skipped.authors_below_min_posts = len(authors) - len(kept)
    skipped.posts_of_authors_below_min_posts = sum(acc.n for a, acc in authors.items() if acc.n < min_posts)

    ids = list(kept)
    alphas = [prior[0] + kept[a].sum_auth for a in ids]
    betas = [prior[1] + kept[a].sum_p for a in ids]
    lowers: list[float] = []
    if ids:
        from scipy.stats import beta as beta_dist  # lazy: scipy is only needed once authors exist

        lowers = [float(x) for x in beta_dist.ppf(1.0 - confidence, alphas, betas)]

    scored: list[tuple[AuthorScore, _Activity]] = []
    for author_id, alpha, beta, lower in zip(ids, alphas, betas, lowers):
        acc = kept[author_id]
        seeding_genuine = acc.seed_sum / acc.n_genuine if acc.n_genuine else None
        count = acc.follower_count()
        fit = None if count is None else _follower_fit(count, followers, band_softness)
        rate = acc.engagement_rate(count)
        activity = _activity(acc.times, now_ts, recency_half_life_days)
        factors: dict[str, float | None] = {
            "authenticity": lower,
            "seeding": seeding_genuine or 0.0,
            "follower_fit": fit,
            "engagement": None if rate is None else rate / (rate + engagement_half),
            "activity": activity.value,
        }
        known = [(getattr(weights, k), v) for k, v in factors.items() if v is not None]
        total = sum(w for w, _ in known)
        score = sum(w * v for w, v in known) / total if total > 0 else 0.0
        last = max(acc.times) if acc.times else None
        result = AuthorScore(
            author_id=author_id,
            rank=0,
            score=score,
            n_posts=acc.n,
            n_promotion=acc.n_promotion,
            share_promotion=acc.n_promotion / acc.n,
            authenticity_mean=acc.sum_auth / acc.n,
            authenticity_lower=lower,
            posterior_alpha=alpha,
            posterior_beta=beta,
            seeding_genuine=seeding_genuine,
            followers=count,
            follower_fit=fit,
            engagement_rate=rate,
            activity=activity.value,
            last_post_at=None if last is None else datetime.fromtimestamp(last, timezone.utc).isoformat(),
            factors=factors,
            top_post_ids=[pid for _, _, pid in sorted(acc.top, reverse=True)],
            reasons=[],
        )
        scored.append((result, activity))

    scored.sort(key=lambda r: (-r[0].score, -r[0].authenticity_lower, -r[0].n_posts, r[0].author_id))
    n_ranked = len(scored)
    typical = {}
    for k in FACTORS:
        known_values = [r.factors[k] for r, _ in scored if r.factors[k] is not None]
        if known_values:
            typical[k] = sum(known_values) / len(known_values)  # type: ignore[arg-type]
    if top is not None:
        scored = scored[:top]
    for rank, (result, activity) in enumerate(scored, start=1):
        result.rank = rank
        result.reasons = _reasons(result, weights, followers, activity, now_ts, typical)
    settings = {
        "min_posts": min_posts,
        "followers": list(followers),
        "weights": asdict(weights),
        "prior": list(prior),
        "confidence": confidence,
        "now": None if now_ts is None else datetime.fromtimestamp(now_ts, timezone.utc).isoformat(),
        "band_softness": band_softness,
        "engagement_half": engagement_half,
        "recency_half_life_days": recency_half_life_days,
    }
    return KocRanking([r for r, _ in scored], skipped, n_posts, n_ranked, settings)


class ScoringUnavailable(RuntimeError):
    """Unscored posts were given but the scoring engine cannot be loaded."""


def read_scored(
    paths: Iterable[str | os.PathLike[str]], *, encoding: str = "utf-8", model: str | os.PathLike[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of scored files (``kocscope score`` output, JSONL/CSV/Parquet) in order.

    Each row is checked as it is read, so a bad one raises RecordError naming
    file, line and field. A file whose first row has no ``p_promotion`` holds
    unscored posts: it is scored here first, with the bundle at ``model``
    (default: the shipped model).
    """
    from kocscope.data.io import detect_format, iter_rows

    for path in paths:
        unit = "row" if detect_format(path).kind == "parquet" else "line"
        rows = iter_rows(path, encoding=encoding)
        first = next(rows, None)
        if first is None:
            continue
        rows = itertools.chain([first], rows)
        if first.data is not None and "p_promotion" not in first.data:
            yield from _score_unscored(path, unit, rows, model)
            continue
        for raw in rows:
            if raw.error is not None:
                raise raw.error
            try:
                _parse_post(raw.data, raw.line - 1)
            except RecordError as exc:
                raise exc.located(str(path), raw.line, unit) from None
            yield raw.data


def _score_unscored(
    path: str | os.PathLike[str], unit: str, rows: Iterable[Any], model: str | os.PathLike[str] | None
) -> Iterator[dict[str, Any]]:
    try:
        from kocscope.inference.scoring import score_records
    except ImportError as exc:
        raise ScoringUnavailable(
            f"{path}: posts have no p_promotion and the scoring engine is not available ({exc}); "
            "score them first with kocscope score"
        ) from None
    if model is not None:
        from kocscope.inference.api import load_model

        model = load_model(model)
    line = 0

    def unscored() -> Iterator[dict[str, Any]]:
        nonlocal line
        for raw in rows:
            if raw.error is not None:
                raise raw.error
            line = raw.line
            yield raw.data

    try:
        yield from score_records(unscored(), model)
    except RecordError as exc:
        # the engine numbers records; the one it rejected is the one just read
        raise (exc if exc.source == str(path) else exc.located(str(path), line, unit)) from None
