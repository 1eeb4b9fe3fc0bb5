"""Long-text strategies: how a post longer than the encoder's window is fed to it.

Posts (Zhihu answers, blog reviews) often run past the encoder's window, and
the promotional cue (the coupon code, "thanks to the brand", 评论区上链接)
often sits at the end, where plain truncation would cut it off:

- ``head``: the first tokens only;
- ``head_tail``: the first ``head_ratio`` of the budget from the start, the rest
  from the end;
- ``windows``: several windows spread evenly from start to end (at most
  ``stride`` tokens apart, at most ``max_windows`` of them), each a complete
  model input; the model pools them back into one post.

Every window is ``special_prefix + text_prefix + piece + special_suffix``, so
the encoder always sees a well-formed input (e.g. ``<s> query: ... </s>``).
A post that fits gives exactly the same single window under every strategy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

STRATEGIES = ("head", "head_tail", "windows")


@dataclass(frozen=True)
class LongTextConfig:
    """How to cut token sequences into model inputs of at most ``max_length`` tokens."""

    strategy: str = "head_tail"
    max_length: int = 256
    head_ratio: float = 0.25
    stride: int | None = None  # None: half the window's text budget
    max_windows: int = 4
    special_prefix: tuple[int, ...] = ()
    special_suffix: tuple[int, ...] = ()
    text_prefix: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"long_text strategy must be one of {STRATEGIES}, got {self.strategy!r}"
            )
        if self.budget < 1:
            raise ValueError(
                f"max_length {self.max_length} leaves no room for text after "
                f"{self.max_length - self.budget} special and prefix tokens"
            )
        if not 0.0 <= self.head_ratio <= 1.0:
            raise ValueError(f"head_ratio must be in [0, 1], got {self.head_ratio}")
        if self.stride is not None and not 1 <= self.stride <= self.budget:
            raise ValueError(
                f"window stride must be in [1, {self.budget}] (the text budget per window), got {self.stride}"
            )
        if self.max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {self.max_windows}")

    @property
    def budget(self) -> int:
        """Text tokens per window, after special tokens and the text prefix."""
        return (
            self.max_length
            - len(self.special_prefix)
            - len(self.special_suffix)
            - len(self.text_prefix)
        )

    def pieces(self, body: Sequence[int]) -> list[list[int]]:
        """The text pieces (without special tokens) that one post becomes."""
        body = list(body)
        budget = self.budget
        if len(body) <= budget or self.strategy == "head":
            return [body[:budget]]
        if self.strategy == "head_tail":
            head = round(budget * self.head_ratio)
            tail = budget - head
            return [body[:head] + (body[-tail:] if tail else [])]
        stride = self.stride or max(1, budget // 2)
        span = len(body) - budget  # last possible start
        n = min(self.max_windows, 1 + math.ceil(span / stride))
        if n == 1:
            return [body[:budget]]
        starts = [round(i * span / (n - 1)) for i in range(n)]
        return [body[s : s + budget] for s in starts]

    def wrap(self, piece: Sequence[int]) -> list[int]:
        return [*self.special_prefix, *self.text_prefix, *piece, *self.special_suffix]


@dataclass
class Windows:
    """Model inputs for a list of posts: one or more token windows per post."""

    input_ids: list[list[int]] = field(default_factory=list)
    post_index: list[int] = field(default_factory=list)  # which post each window belongs to

    @property
    def n_posts(self) -> int:
        return self.post_index[-1] + 1 if self.post_index else 0


def make_windows(bodies: Sequence[Sequence[int]], config: LongTextConfig) -> Windows:
    """Cut each post's token ids (no special tokens) into windows by ``config``."""
    out = Windows()
    for i, body in enumerate(bodies):
        for piece in config.pieces(body):
            out.input_ids.append(config.wrap(piece))
            out.post_index.append(i)
    return out
