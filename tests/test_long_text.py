"""Long-text strategies on plain token id lists (no model needed)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kocscope.models.long_text import STRATEGIES, LongTextConfig, make_windows

BOS, EOS, Q = 0, 2, 7  # <s>, </s>, one text-prefix token


def config(**kw) -> LongTextConfig:
    base = {
        "max_length": 12,
        "special_prefix": (BOS,),
        "special_suffix": (EOS,),
        "text_prefix": (Q,),
    }
    return LongTextConfig(**{**base, **kw})


def body(n: int) -> list[int]:
    return list(range(100, 100 + n))


def test_budget_leaves_room_for_special_and_prefix_tokens() -> None:
    assert config().budget == 9


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_text_that_fits_gives_the_same_single_window(strategy: str) -> None:
    out = make_windows([body(9), []], config(strategy=strategy))
    assert out.input_ids == [[BOS, Q, *body(9), EOS], [BOS, Q, EOS]]
    assert out.post_index == [0, 1] and out.n_posts == 2


def test_head_truncates() -> None:
    assert make_windows([body(30)], config(strategy="head")).input_ids == [[BOS, Q, *body(9), EOS]]


def test_head_tail_keeps_start_and_end_by_ratio() -> None:
    b = body(30)
    assert config(strategy="head_tail", head_ratio=1 / 3).pieces(b) == [b[:3] + b[-6:]]
    assert config(strategy="head_tail", head_ratio=0.0).pieces(b) == [b[-9:]]
    assert config(strategy="head_tail", head_ratio=1.0).pieces(b) == [b[:9]]


def test_windows_slide_by_stride_and_end_at_the_last_token() -> None:
    b = body(25)
    pieces = config(strategy="windows", stride=4, max_windows=10).pieces(b)
    starts = [b.index(p[0]) for p in pieces]
    assert starts == [0, 4, 8, 12, 16]  # 1 + ceil((25 - 9) / 4) windows, spread evenly to the end
    assert all(len(p) == 9 for p in pieces) and pieces[-1][-1] == b[-1]


def test_windows_capped_spread_evenly_over_the_whole_post() -> None:
    b = body(100)
    pieces = config(strategy="windows", stride=3, max_windows=3).pieces(b)
    assert [b.index(p[0]) for p in pieces] == [0, 46, 91]
    out = make_windows([body(5), b], config(strategy="windows", stride=3, max_windows=3))
    assert out.post_index == [0, 1, 1, 1]
    assert out.input_ids[-1] == [BOS, Q, *b[-9:], EOS]


def test_default_stride_is_half_the_budget() -> None:
    c = config(strategy="windows", max_length=13, max_windows=10)  # budget 10
    assert [p[0] - 100 for p in c.pieces(body(30))] == [0, 5, 10, 15, 20]


def test_single_window_cap_degenerates_to_head() -> None:
    assert config(strategy="windows", max_windows=1).pieces(body(30)) == [body(9)]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"strategy": "middle"}, "strategy must be one of"),
        ({"max_length": 3}, "no room for text"),
        ({"head_ratio": 1.5}, "head_ratio"),
        ({"stride": 0}, "stride must be in \\[1, 9\\]"),
        ({"stride": 10}, "stride"),
        ({"max_windows": 0}, "max_windows"),
    ],
)
def test_bad_settings_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        config(**kw)


@given(
    n=st.integers(0, 200),
    max_length=st.integers(4, 40),
    strategy=st.sampled_from(STRATEGIES),
    ratio=st.floats(0, 1),
    max_windows=st.integers(1, 6),
    stride_frac=st.floats(0.01, 1),
)
def test_invariants(
    n: int, max_length: int, strategy: str, ratio: float, max_windows: int, stride_frac: float
) -> None:
    c = config(max_length=max_length, strategy=strategy, head_ratio=ratio, max_windows=max_windows)
    c = config(
        max_length=max_length,
        strategy=strategy,
        head_ratio=ratio,
        max_windows=max_windows,
        stride=max(1, int(c.budget * stride_frac)),
    )
    b, budget = body(n), c.budget
    pieces = c.pieces(b)
    windows = make_windows([b], c).input_ids
    assert 1 <= len(pieces) <= max_windows and all(len(w) <= max_length for w in windows)
    assert all(w[:2] == [BOS, Q] and w[-1] == EOS for w in windows)
    if n <= budget:
        assert pieces == [b]
    elif strategy == "head":
        assert pieces == [b[:budget]]
    elif strategy == "head_tail":
        (piece,) = pieces
        h = round(budget * ratio)
        assert len(piece) == budget and piece[:h] == b[:h] and piece[h:] == b[n - (budget - h) :]
    else:
        starts = [p[0] - 100 for p in pieces]
        assert (
            starts[0] == 0
            and starts == sorted(set(starts))
            and all(len(p) == budget for p in pieces)
        )
        assert len(pieces) == min(max_windows, 1 + math.ceil((n - budget) / c.stride))
        if len(pieces) > 1:
            assert pieces[-1][-1] == b[-1]
        if len(pieces) < max_windows:
            assert all(y - x <= c.stride for x, y in itertools.pairwise(starts))
