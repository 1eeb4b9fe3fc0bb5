"""The lexical model: hashed character n-grams, words and cues under linear heads.

Why a linear model on surface features: it trains in under a minute on 10k
posts on CPU, scores thousands of posts a second, explains itself through cues, and is the bar the
transformer has to clear (its logit and cue features can also feed it).

Features, all stateless apart from the IDF weights learned in ``fit``:

* character n-grams of the normalized, lowercased text, hashed into
  ``n_features`` columns by a vectorised hash over the whole batch (no Python
  loop per character), plus the n-grams of the last ``tail_fraction`` of the
  text in a second hash namespace: advertorials often reveal themselves at the
  end ("感谢品牌方...", links, codes);
* word tokens from :func:`kocscope.data.tokenize.tokenize`, hashed into
  ``n_word_features`` columns. ``word_tokens="non_chinese"`` (the default) keeps
  jieba out: Chinese runs are left to the character n-grams and only English and
  other alphabetic words, hashtags, emoji and URL/@/number placeholders become
  words. Measured on Zhihu (benchmarks/zhihu_lexical.py, bench_lexical.py):
  jieba words ("all") gave no gain beyond noise over character 1-3-grams on val
  (ROC-AUC 0.979 vs 0.975, F1 0.78 vs 0.79) yet cut scoring of median-length
  posts from ~5,500 to ~1,900 posts/s on one core;
* cue features from :func:`kocscope.data.cues.find_cues`: per category
  log(1 + count) and whether a cue starts in the last ``tail_fraction`` of the
  text, plus log length as one feature among many (length is a strong confound
  in the Zhihu corpus; the benchmark reports metrics per length bucket).

Sparse blocks get sublinear TF x IDF and unit L2 norm per block. Heads: L2
logistic regression for `promotion`; ridge regression for seeding strength
(grade / 4, clipped to [0, 1]) on the rows that carry a grade. Without graded
rows the seeding head is a fixed cue prior (see :func:`cue_prior_seeding`), and
the bundle records which one it holds (``seeding_head``: "ridge" / "cue_prior").
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from kocscope.data.cues import CUE_CATEGORIES, find_cues
from kocscope.data.text import HAN_RE, normalize
from kocscope.data.tokenize import tokenize
from kocscope.models.base import LABELS, ModelOutputs, PostEstimator, check_texts
from kocscope.models.bundle import CONFIG_FILE, BundleError, read_bundle_config, save_bundle

WEIGHTS_FILE = "lexical.safetensors"
LABEL_MAP = {"0": LABELS[0], "1": LABELS[1]}
WORD_TOKEN_MODES = ("none", "non_chinese", "all")
SEEDING_HEADS = ("ridge", "cue_prior")
# Fewer graded rows than this cannot fit a ridge head worth more than the prior.
MIN_GRADED_ROWS = 10
# log length is divided by log(1 + this), so a post of this many characters reads 1.0.
_LENGTH_SCALE = math.log1p(10_000)

# 64-bit mixing constants (golden ratio, splitmix64); the hash is part of the
# model format: changing them changes every feature column.
_MUL = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_TAIL_SALT = np.uint64(0x94D049BB133111EB)
_SHIFT = np.uint64(29)
_HIGH = np.uint64(32)
_HAN_RUN_RE = re.compile(HAN_RE.pattern + "+")

# The cue prior for seeding strength, in labels.md grades (0-4). No cue: 0.5,
# between "pushes nothing" and "named in passing", since no cue says which.
_PRIOR_GRADE = {
    "none": 0.5,
    "experience": 2.0,  # positive experience, implicit recommendation
    "recommendation": 3.0,  # explicit recommendation
    "push": 4.0,  # recommendation plus where-to-buy cues, or three recommendation cues
    "dissuasion": 0.0,  # 拔草 outnumbers recommendation
}


def cue_prior_seeding(cue_counts: np.ndarray) -> np.ndarray:
    """Seeding strength in [0, 1] from cue counts per category (columns in CUE_CATEGORIES order).

    Used when no training row has a seeding grade: a rule a reader can check
    beats a head fitted on nothing. See the grade table in labels.md.
    """
    counts = np.asarray(cue_counts, dtype=np.float64)
    col = {name: counts[:, i] for i, name in enumerate(CUE_CATEGORIES)}
    grade = np.full(len(counts), _PRIOR_GRADE["none"])
    grade[col["experience"] > 0] = _PRIOR_GRADE["experience"]
    grade[col["recommendation"] > 0] = _PRIOR_GRADE["recommendation"]
    push = (col["recommendation"] > 0) & ((col["affiliate"] > 0) | (col["recommendation"] >= 3))
    grade[push] = _PRIOR_GRADE["push"]
    grade[col["dissuasion"] > col["recommendation"]] = _PRIOR_GRADE["dissuasion"]
    return grade / 4.0


def dense_feature_names(use_cues: bool = True) -> list[str]:
    """Names of the dense feature columns, which come last in :meth:`LexicalModel.transform`."""
    names = ["log_length"]
    if use_cues:
        names += [f"cue_count:{c}" for c in CUE_CATEGORIES] + [
            f"cue_tail:{c}" for c in CUE_CATEGORIES
        ]
    return names


def char_ngram_counts(
    texts: Sequence[str], ngram_range: tuple[int, int], n_features: int, tail_fraction: float = 0.0
) -> sp.csr_matrix:
    """Hashed character n-gram counts, one row per text, for the whole batch at once.

    The texts are concatenated into one array of code points; the hash of each
    n-gram grows one character per order, and n-grams that would cross from one
    text into the next are dropped. When ``tail_fraction`` > 0, the n-grams that
    start in the last ``tail_fraction`` of their text are counted a second time
    under a salted hash, so the model can weigh "at the end" separately.
    """
    lo, hi = ngram_range
    n_docs = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n_docs)
    total = int(lengths.sum())
    if total == 0:
        return sp.csr_matrix((n_docs, n_features), dtype=np.float64)
    # UTF-32 gives one unit per code point, so string offsets stay array offsets
    codes = np.frombuffer(
        "".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32
    ).astype(np.uint64)
    doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) - starts[doc]
    tail_start = np.ceil(lengths * (1.0 - tail_fraction)).astype(np.int64)
    size = np.uint64(n_features)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    h = np.zeros(total, dtype=np.uint64)
    for order in range(1, hi + 1):
        m = total - order + 1
        if m <= 0:
            break
        h = h[:m] * _MUL + codes[order - 1 :]  # uint64 arithmetic wraps, by design
        h ^= h >> _SHIFT
        if order < lo:
            continue
        inside = doc[:m] == doc[order - 1 :]
        d = doc[:m][inside]
        mixed = h[inside] * _MIX
        rows.append(d)
        cols.append((mixed >> _HIGH) % size)
        if tail_fraction > 0:
            late = pos[:m][inside] >= tail_start[d]
            rows.append(d[late])
            cols.append((((mixed[late] ^ _TAIL_SALT) * _MIX) >> _HIGH) % size)
    # One key per (text, column). Each block above is already ordered by text, so
    # a stable sort (timsort) only merges a handful of runs: about twice as fast as
    # scipy's per-row index sort, and it yields the CSR layout directly.
    keys = np.concatenate([d * n_features + c.astype(np.int64) for d, c in zip(rows, cols)])
    keys.sort(kind="stable")
    last = np.flatnonzero(np.r_[keys[1:] != keys[:-1], True])
    unique = keys[last]
    counts = np.diff(np.r_[-1, last]).astype(np.float64)
    indptr = np.r_[0, np.cumsum(np.bincount(unique // n_features, minlength=n_docs))]
    return sp.csr_matrix((counts, unique % n_features, indptr), shape=(n_docs, n_features))


def _tfidf_rows(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear TF x IDF with unit L2 norm per row: long posts do not get louder features."""
    from sklearn.preprocessing import normalize as l2_rows

    weighted = counts.copy()
    weighted.data = (1.0 + np.log(weighted.data)) * idf[weighted.indices].astype(np.float64)
    return l2_rows(weighted, copy=False)


def _smooth_idf(counts: sp.csr_matrix) -> np.ndarray:
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return (np.log((1.0 + counts.shape[0]) / (1.0 + df)) + 1.0).astype(np.float32)


class LexicalModel(ClassifierMixin, PostEstimator, BaseEstimator):
    """Linear `promotion` and seeding heads on hashed n-grams, words and cues.

    Learned state (set by :meth:`fit` or :meth:`from_pretrained`): ``char_idf_``,
    ``word_idf_`` (None when ``word_tokens="none"``), ``coef_``, ``intercept_``,
    ``seeding_head_`` ("ridge" or "cue_prior"), ``seeding_coef_`` /
    ``seeding_intercept_`` (ridge only), ``lexicon_version_``, plus the mixin's
    calibration. Weights are float32 and scoring reads only them, so a reloaded
    bundle scores bit-identically.
    """

    kind = "lexical"

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 3),
        word_tokens: str = "non_chinese",
        n_features: int = 2**20,
        n_word_features: int = 2**18,
        tail_fraction: float = 0.2,
        use_cues: bool = True,
        C: float = 16.0,
        class_weight: str | None = "balanced",
        seeding_alpha: float = 1.0,
        max_iter: int = 2000,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        self.ngram_range = ngram_range
        self.word_tokens = word_tokens
        self.n_features = n_features
        self.n_word_features = n_word_features
        self.tail_fraction = tail_fraction
        self.use_cues = use_cues
        self.C = C
        self.class_weight = class_weight
        self.seeding_alpha = seeding_alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.seed = seed

    # -- settings -------------------------------------------------------------
    def _check_params(self) -> None:
        need = self._need

        rng = self.ngram_range
        need(
            isinstance(rng, (tuple, list))
            and len(rng) == 2
            and all(isinstance(v, int) for v in rng)
            and 1 <= rng[0] <= rng[1] <= 8,
            f"ngram_range must be (min, max) with 1 <= min <= max <= 8, got {rng!r}",
        )
        need(
            self.word_tokens in WORD_TOKEN_MODES,
            f"word_tokens must be one of {WORD_TOKEN_MODES}, got {self.word_tokens!r}",
        )
        for name in ("n_features", "n_word_features"):
            value = getattr(self, name)
            need(
                isinstance(value, int) and 16 <= value <= 2**26,
                f"{name} must be an int in [16, 2**26], got {value!r}",
            )
        need(
            isinstance(self.tail_fraction, (int, float)) and 0.0 <= self.tail_fraction < 1.0,
            f"tail_fraction must be in [0, 1), got {self.tail_fraction!r}",
        )
        need(
            isinstance(self.use_cues, bool),
            f"use_cues must be true or false, got {self.use_cues!r}",
        )
        for name in ("C", "seeding_alpha"):
            value = getattr(self, name)
            need(
                isinstance(value, (int, float)) and value > 0,
                f"{name} must be a number > 0, got {value!r}",
            )
        need(
            self.class_weight in ("balanced", None),
            f"class_weight must be 'balanced' or None, got {self.class_weight!r}",
        )
        for name in ("max_iter", "batch_size"):
            value = getattr(self, name)
            need(
                isinstance(value, int) and value >= 1, f"{name} must be an int >= 1, got {value!r}"
            )
        need(isinstance(self.seed, int), f"seed must be an int, got {self.seed!r}")

    def _require_fitted(self) -> None:
        if getattr(self, "coef_", None) is None:
            raise NotFittedError(
                "this LexicalModel is not fitted yet; call fit() or from_pretrained() first"
            )

    # -- features -------------------------------------------------------------
    def _raw_features(
        self, texts: Sequence[str], need_cues: bool
    ) -> tuple[sp.csr_matrix, sp.csr_matrix | None, np.ndarray, np.ndarray]:
        """Char counts, word counts, dense features and cue counts (n, categories) of a batch."""
        clean = [normalize(t) for t in texts]
        chars = char_ngram_counts(
            [t.lower() for t in clean],
            tuple(self.ngram_range),
            self.n_features,
            float(self.tail_fraction),
        )
        words = None
        if self.word_tokens != "none":
            from sklearn.feature_extraction import FeatureHasher

            if self.word_tokens == "all":
                tokens = [tokenize(t) for t in clean]
            else:
                tokens = [tokenize(_HAN_RUN_RE.sub(" ", t)) for t in clean]
            hasher = FeatureHasher(self.n_word_features, input_type="string", alternate_sign=False)
            words = hasher.transform(tokens).astype(np.float64).tocsr()
        lengths = np.fromiter(map(len, clean), dtype=np.float64, count=len(clean))
        k = len(CUE_CATEGORIES)
        counts = np.zeros((len(clean), k))
        late = np.zeros((len(clean), k))
        if need_cues:
            index = {name: i for i, name in enumerate(CUE_CATEGORIES)}
            for row, text in enumerate(clean):
                cut = (
                    math.ceil(len(text) * (1.0 - self.tail_fraction))
                    if self.tail_fraction > 0
                    else len(text) + 1
                )
                for cue in find_cues(text):
                    counts[row, index[cue.category]] += 1
                    if cue.start >= cut:
                        late[row, index[cue.category]] = 1.0
        dense = [np.log1p(lengths)[:, None] / _LENGTH_SCALE]
        if self.use_cues:
            dense += [np.log1p(counts), late]
        return chars, words, np.hstack(dense), counts

    def _weighted(
        self, chars: sp.csr_matrix, words: sp.csr_matrix | None, dense: np.ndarray
    ) -> sp.csr_matrix:
        blocks = [_tfidf_rows(chars, self.char_idf_)]
        if words is not None:
            blocks.append(_tfidf_rows(words, self.word_idf_))
        blocks.append(sp.csr_matrix(dense))
        return sp.hstack(blocks, format="csr")

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The weighted feature matrix the heads see: char block, word block, then dense_feature_names()."""
        self._require_fitted()
        texts = check_texts(texts)
        parts = []
        for i in range(0, len(texts), self.batch_size):
            chars, words, dense, _ = self._raw_features(
                texts[i : i + self.batch_size], self.use_cues
            )
            parts.append(self._weighted(chars, words, dense))
        if not parts:
            return sp.csr_matrix((0, self._n_columns()))
        return sp.vstack(parts, format="csr")

    def _n_columns(self) -> int:
        words = 0 if self.word_tokens == "none" else self.n_word_features
        return self.n_features + words + len(dense_feature_names(self.use_cues))

    # -- training -------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        y: Sequence[int] | np.ndarray,
        seeding: Sequence[float] | np.ndarray | None = None,
        sample_weight: Sequence[float] | np.ndarray | None = None,
    ) -> LexicalModel:
        """Learn IDF weights and both heads. ``y``: 1 = promotion; ``seeding``: grade / 4, NaN where ungraded.

        ``sample_weight`` multiplies ``class_weight`` (sklearn semantics): pass
        balanced weights or class_weight="balanced", not both. A refit resets
        calibration to identity, since the old one belongs to other logits.
        """
        from sklearn.linear_model import LogisticRegression, Ridge

        from kocscope.data.cues import LEXICON_VERSION
        from kocscope.training.metrics import as_labels

        self._check_params()
        texts = check_texts(texts)
        labels = as_labels(y, "y")
        if labels.shape[0] != len(texts):
            raise ValueError(f"y has {labels.shape[0]} labels for {len(texts)} texts")
        n_pos = int(labels.sum())
        if n_pos in (0, len(labels)):
            only = LABELS[1] if n_pos else LABELS[0]
            raise ValueError(f"fit needs both classes; all {len(labels)} rows are {only}")
        grades = _check_seeding(seeding, len(texts))
        weights = _check_weights(sample_weight, len(texts))

        chars, words, dense, _ = self._raw_features(texts, self.use_cues)
        self.char_idf_ = _smooth_idf(chars)
        self.word_idf_ = _smooth_idf(words) if words is not None else None
        features = self._weighted(chars, words, dense)

        promotion = LogisticRegression(
            C=float(self.C),
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            random_state=self.seed,
        )
        promotion.fit(features, labels, sample_weight=weights)
        self.coef_ = promotion.coef_.ravel().astype(np.float32)
        self.intercept_ = np.asarray(promotion.intercept_, dtype=np.float32).reshape(1)

        graded = ~np.isnan(grades)
        n_graded = int(graded.sum())
        if n_graded >= MIN_GRADED_ROWS:
            ridge = Ridge(alpha=float(self.seeding_alpha), random_state=self.seed)
            ridge.fit(
                features[graded],
                grades[graded],
                sample_weight=None if weights is None else weights[graded],
            )
            self.seeding_head_ = "ridge"
            self.seeding_coef_ = np.asarray(ridge.coef_, dtype=np.float32).ravel()
            self.seeding_intercept_ = np.asarray(ridge.intercept_, dtype=np.float32).reshape(1)
        else:
            if n_graded:
                warnings.warn(
                    f"only {n_graded} row(s) carry a seeding grade (< {MIN_GRADED_ROWS}); "
                    "using the cue prior for seeding strength instead of a fitted head",
                    stacklevel=2,
                )
            self.seeding_head_ = "cue_prior"
            self.seeding_coef_ = self.seeding_intercept_ = None
        self.lexicon_version_ = str(LEXICON_VERSION)
        self.set_calibration(1.0, 0.0, 0.5, "none")
        return self

    # -- scoring --------------------------------------------------------------
    def predict_outputs(self, texts: Sequence[str], batch_size: int | None = None) -> ModelOutputs:
        """Raw promotion logits and seeding strength, scored ``batch_size`` posts at a time."""
        self._require_fitted()
        texts = check_texts(texts)
        step = self.batch_size if batch_size is None else batch_size
        if not isinstance(step, int) or step < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {step!r}")
        ridge = self.seeding_head_ == "ridge"
        need_cues = self.use_cues or not ridge
        coef = self.coef_.astype(np.float64)
        seeding_coef = self.seeding_coef_.astype(np.float64) if ridge else None
        logits = np.empty(len(texts))
        seeding = np.empty(len(texts))
        for i in range(0, len(texts), step):
            chars, words, dense, counts = self._raw_features(texts[i : i + step], need_cues)
            features = self._weighted(chars, words, dense)
            logits[i : i + step] = features @ coef + float(self.intercept_[0])
            if ridge:
                seeding[i : i + step] = np.clip(
                    features @ seeding_coef + float(self.seeding_intercept_[0]), 0.0, 1.0
                )
            else:
                seeding[i : i + step] = cue_prior_seeding(counts)
        return ModelOutputs(logits=logits, seeding=seeding)

    # -- bundle ---------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write the bundle: settings and calibration in config.json, float32 weights in safetensors."""
        from safetensors.numpy import save_file

        self._require_fitted()
        params = self.get_params()
        params["ngram_range"] = list(params["ngram_range"])
        config: dict[str, Any] = {
            "kind": self.kind,
            **params,
            "label_map": LABEL_MAP,
            "weights_file": WEIGHTS_FILE,
            "seeding_head": self.seeding_head_,
            "lexicon_version": self.lexicon_version_,
            "dense_features": dense_feature_names(self.use_cues),
            **self.calibration_config(),
        }
        if getattr(self, "metrics_", None):
            config["metrics"] = self.metrics_
        if getattr(self, "training_data_", None):
            config["training_data"] = self.training_data_
        tensors = {"char_idf": self.char_idf_, "coef": self.coef_, "intercept": self.intercept_}
        if self.word_idf_ is not None:
            tensors["word_idf"] = self.word_idf_
        if self.seeding_head_ == "ridge":
            tensors["seeding_coef"] = self.seeding_coef_
            tensors["seeding_intercept"] = self.seeding_intercept_

        def write(tmp: Path) -> None:
            save_file(
                {k: np.ascontiguousarray(v) for k, v in tensors.items()},
                str(tmp / WEIGHTS_FILE),
                metadata={"kind": self.kind},
            )

        return save_bundle(directory, config, write)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> LexicalModel:
        """Load a bundle saved by :meth:`save_pretrained`; the manifest is checked first."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        root = Path(directory)
        config = read_bundle_config(root, expected_kind=cls.kind)
        where = root / CONFIG_FILE
        names = list(cls().get_params())
        missing = [
            name for name in names + ["seeding_head", "lexicon_version"] if name not in config
        ]
        if missing:
            raise BundleError(f"{where}: missing field(s) {', '.join(missing)}")
        if config.get("label_map") != LABEL_MAP:
            raise BundleError(
                f"{where}: field label_map is {config.get('label_map')!r}, expected {LABEL_MAP}"
            )
        params = {name: config[name] for name in names}
        if isinstance(params["ngram_range"], list):
            params["ngram_range"] = tuple(params["ngram_range"])
        model = cls(**params)
        try:
            model._check_params()
        except ValueError as exc:
            raise BundleError(f"{where}: {exc}") from exc
        head = config["seeding_head"]
        if head not in SEEDING_HEADS:
            raise BundleError(
                f"{where}: field seeding_head is {head!r}, expected one of {SEEDING_HEADS}"
            )
        path = root / WEIGHTS_FILE
        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise BundleError(f"{path}: unreadable weights ({exc})") from exc
        n_words = 0 if model.word_tokens == "none" else model.n_word_features
        expected = {"char_idf": model.n_features, "coef": model._n_columns(), "intercept": 1}
        if n_words:
            expected["word_idf"] = n_words
        if head == "ridge":
            expected.update(seeding_coef=model._n_columns(), seeding_intercept=1)
        if set(tensors) != set(expected):
            raise BundleError(
                f"{path}: holds tensors {sorted(tensors)}, expected {sorted(expected)} for these settings"
            )
        for name, size in expected.items():
            arr = tensors[name]
            if arr.dtype != np.float32 or arr.shape != (size,):
                raise BundleError(
                    f"{path}: tensor {name} is {arr.dtype}{list(arr.shape)}, expected float32[{size}]"
                )
            if not np.isfinite(arr).all():
                raise BundleError(f"{path}: tensor {name} holds non-finite values")
        model.char_idf_ = tensors["char_idf"]
        model.word_idf_ = tensors.get("word_idf")
        model.coef_ = tensors["coef"]
        model.intercept_ = tensors["intercept"]
        model.seeding_head_ = head
        model.seeding_coef_ = tensors.get("seeding_coef")
        model.seeding_intercept_ = tensors.get("seeding_intercept")
        model.lexicon_version_ = str(config["lexicon_version"])
        _warn_on_lexicon_change(model.lexicon_version_, root)
        model.load_calibration_config(config, where)
        if config.get("metrics"):
            model.metrics_ = config["metrics"]
        if config.get("training_data"):
            model.training_data_ = config["training_data"]
        return model


def _warn_on_lexicon_change(saved: str, root: Path) -> None:
    from kocscope.data.cues import LEXICON_VERSION

    if saved != LEXICON_VERSION:
        warnings.warn(
            f"{root}: the model was trained with cue lexicon {saved}, this install has {LEXICON_VERSION}; "
            "cue features may differ from training, so re-check its metrics",
            stacklevel=3,
        )


def _check_seeding(seeding: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray:
    if seeding is None:
        return np.full(n, np.nan)
    values = np.asarray(seeding, dtype=np.float64)
    if values.shape != (n,):
        raise ValueError(f"seeding must have one value per text ({n}), got shape {values.shape}")
    bad = ~np.isnan(values) & ((values < 0) | (values > 1) | ~np.isfinite(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"seeding[{i}] = {float(values[i])!r}: seeding strength must be grade / 4 in [0, 1], or NaN when ungraded"
        )
    return values


def _check_weights(sample_weight: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(
            f"sample_weight must have one value per text ({n}), got shape {weights.shape}"
        )
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"sample_weight[{i}] = {float(weights[i])!r}: weights must be finite and >= 0"
        )
    return weights
