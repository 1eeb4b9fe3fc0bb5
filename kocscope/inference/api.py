"""The library API: load a model bundle once, score posts from any caller.

``load_model()`` returns a ``KocscopeModel`` that wraps whichever estimator the
bundle holds (lexical, transformer or a stack of both) and turns raw outputs into ``PostScore``
results. One lock guards the estimator, so a single loaded model can be shared
by the threads of a service: fast tokenizers and torch modules are not safe to
drive from several threads at once. Another serialises ``load_model``: the
first import of transformers' lazy module is not thread-safe either.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Union

from kocscope.data.records import Post
from kocscope.data.text import HAN_CHARS, detect_lang
from kocscope.models.bundle import DEFAULT_MODEL_DIR

PostLike = Union[str, Post, Mapping[str, Any]]

SCORE_FIELDS = ("p_promotion", "authenticity", "label", "seeding", "lang")

# Sentences for --explain: a run up to and including Chinese or Latin sentence
# punctuation or a line break; a '.' ends one only before whitespace, the end or
# a Han character (Chinese typed with a half-width '.': 今天试了.效果一般), so
# 3.5, v1.2, example.com and "..." stay whole. Each is scored alone; the most
# promotional one is reported as the span that drove the decision.
_SENTENCE_RE = re.compile(rf"(?:[^。！？!?；;.\n]|\.(?!\s|$|[{HAN_CHARS}]))+[。！？!?；;.]*")
# At most this many sentences of a post are scored for --explain, to bound its
# cost: the first and the last half of them, because long advertorials put the
# disclosure, code or link at the end.
_MAX_EXPLAIN_SENTENCES = 48
DEFAULT_WINDOW = 512  # posts sorted by length together: big enough to pad little, small enough to stay flat
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class PostScore:
    """What the model says about one post (names as in labels.md).

    With ``explain=True``, ``cues`` lists the matched cues as dicts
    ``{"category", "text", "start", "end"}`` and ``evidence`` is the sentence
    that reads most promotional when scored alone,
    ``{"text", "start", "end", "p_promotion"}``. Their ``start``/``end`` offsets
    index the normalized text, ``kocscope.data.text.normalize(text)`` (what the
    model reads, also ``Post.text``), not the text as given: for any cue or
    evidence ``e``, ``normalize(text)[e["start"]:e["end"]] == e["text"]``.
    """

    id: str
    p_promotion: float
    authenticity: float
    label: str
    seeding: float
    lang: str
    # With explain=True (see the docstring: offsets index normalize(text)).
    cues: list[dict[str, Any]] | None = None
    evidence: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("cues", "evidence"):
            if out[key] is None:
                del out[key]
        return out


def as_post(item: PostLike) -> Post:
    """Accept what callers have at hand: a bare text, a record dict or a Post."""
    if isinstance(item, Post):
        return item
    if isinstance(item, str):
        return Post.from_dict({"text": item})  # so "" and "   " are refused as {"text": ""} is
    if isinstance(item, Mapping):
        return Post.from_dict(item)
    raise TypeError(f"cannot score a {type(item).__name__}: pass a str, a dict with 'text', or a Post")


class KocscopeModel:
    """A loaded bundle, ready to score. Build it with ``kocscope.load_model``."""

    def __init__(self, estimator: Any, path: str | os.PathLike[str] | None = None) -> None:
        self.estimator = estimator
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return self.estimator.kind

    @property
    def threshold(self) -> float:
        return self.estimator._threshold()

    def __repr__(self) -> str:
        return f"KocscopeModel(kind={self.kind!r}, path={str(self.path)!r}, threshold={self.threshold:.3f})"

    def score(self, items: Iterable[PostLike], batch_size: int | None = None, explain: bool = False) -> list[PostScore]:
        """Score posts given as texts, dicts or Posts; results keep input order."""
        _check_items(items)
        posts = [as_post(item) for item in items]
        return self.score_posts(posts, batch_size=batch_size, explain=explain)

    def score_iter(
        self, items: Iterable[PostLike], batch_size: int | None = None, explain: bool = False, window: int | None = None
    ) -> Iterator[PostScore]:
        """Score a stream with flat memory: ``window`` posts at a time (default
        512), which the estimator sorts by length so padding stays small.
        ``batch_size=None`` lets the model batch by its own token budget."""
        _check_items(items)
        window = window or DEFAULT_WINDOW
        stream = iter(items)
        while chunk := list(islice(stream, window)):
            yield from self.score(chunk, batch_size=batch_size, explain=explain)

    def score_posts(self, posts: Sequence[Post], batch_size: int | None = None, explain: bool = False) -> list[PostScore]:
        if not posts:
            return []
        texts = [post.model_text for post in posts]
        with self._lock:
            outputs = self.estimator.predict_outputs(texts, batch_size=batch_size)
            p = self.estimator.p_promotion(outputs.logits)
            labels = self.estimator.labels(p)
            bodies = [post.text for post in posts]
            evidence = self._evidence(bodies, batch_size) if explain else [None] * len(posts)
        cues = [_cues(post.text) for post in posts] if explain else [None] * len(posts)
        return [
            PostScore(
                id=post.id,
                p_promotion=float(p[i]),
                authenticity=float(1.0 - p[i]),
                label=str(labels[i]),
                seeding=float(outputs.seeding[i]),
                lang=post.lang or detect_lang(post.text),
                cues=cues[i],
                evidence=evidence[i],
            )
            for i, post in enumerate(posts)
        ]

    def _evidence(self, texts: Sequence[str], batch_size: int | None) -> list[dict[str, Any] | None]:
        """Per post, the sentence that reads most promotional when scored alone,
        among its first and last ``_MAX_EXPLAIN_SENTENCES // 2`` sentences."""
        spans: list[tuple[int, int, int, str]] = []  # (post, start, end, sentence)
        for i, text in enumerate(texts):
            for m in _explained_sentences(text):
                sentence = m.group().strip()
                start = m.start() + m.group().index(sentence)  # offsets of the stripped text
                spans.append((i, start, start + len(sentence), sentence))
        result: list[dict[str, Any] | None] = [None] * len(texts)
        if not spans:
            return result
        p = self.estimator.p_promotion(self.estimator.predict_outputs([s[3] for s in spans], batch_size=batch_size).logits)
        best: dict[int, int] = {}
        for j, (i, *_rest) in enumerate(spans):
            if i not in best or p[j] > p[best[i]]:
                best[i] = j
        for i, j in best.items():
            _, start, end, sentence = spans[j]
            result[i] = {"text": sentence, "start": start, "end": end, "p_promotion": float(p[j])}
        return result


def _explained_sentences(text: str) -> list[re.Match[str]]:
    """The non-blank sentences of ``text`` that --explain scores: all of them up
    to ``_MAX_EXPLAIN_SENTENCES``, else the first half and the last half of that
    many (the end of a long post is where a sponsorship disclosure sits)."""
    found = [m for m in _SENTENCE_RE.finditer(text) if m.group().strip()]
    if len(found) <= _MAX_EXPLAIN_SENTENCES:
        return found
    head = _MAX_EXPLAIN_SENTENCES // 2
    return found[:head] + found[len(found) - (_MAX_EXPLAIN_SENTENCES - head) :]


def _check_items(items: Iterable[PostLike]) -> None:
    """A bare str is iterable too: without this, each character would be scored as a post."""
    if isinstance(items, str):
        raise TypeError("items must be a sequence of posts, not one string; pass [text]")


def _cues(text: str) -> list[dict[str, Any]]:
    from kocscope.data.cues import find_cues

    return [
        {"category": cue.category, "text": cue.text, "start": cue.start, "end": cue.end} for cue in find_cues(text)
    ]


def load_model(
    path: str | os.PathLike[str] | None = None,
    *,
    device: str | None = None,
    runtime: str = "auto",
    threads: int | None = None,
) -> KocscopeModel:
    """Load a bundle directory, or the shipped default model when ``path`` is None.

    The bundle's manifest is verified before anything in it is parsed; nothing
    is unpickled and no code from the bundle runs. ``device`` ("cpu", "cuda",
    "cuda:1", or "auto" for a GPU when there is one) places a transformer; the
    lexical model always runs on the CPU. ``runtime`` picks a transformer's
    engine: "auto" runs a bundle written by ``kocscope optimize`` on ONNX Runtime
    (CPU; on a GPU, torch is faster, so "auto" keeps torch there), "torch" or
    "onnx" force one. ``threads``: ONNX Runtime's intra-op threads (default: the
    CPUs available).
    """
    from kocscope.models.bundle import BundleError, load_estimator

    with _LOAD_LOCK:  # two threads' first imports of transformers would race
        target = Path(path) if path is not None else DEFAULT_MODEL_DIR
        if path is None and not target.is_dir():
            raise BundleError(
                f"no default model is installed at {target}; pass a bundle directory (kocscope train writes one)"
            )
        estimator = load_estimator(target)
        module = getattr(estimator, "module_", None)
        if device and module is not None:
            import torch

            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                module.to(torch.device(device))
            except RuntimeError as exc:  # unknown device string, or CUDA asked for on a machine without it
                raise ValueError(f"cannot use device {device!r}: {exc}") from None
            if runtime == "auto" and device != "cpu":
                runtime = "torch"
        if hasattr(estimator, "set_runtime"):
            estimator.set_runtime(runtime, threads)
        elif runtime == "onnx":
            raise ValueError(f"{target}: a {estimator.kind} model has no ONNX Runtime engine; use --runtime auto")
        return KocscopeModel(estimator, target)
