"""What every kocscope estimator shares: raw outputs, calibration, decisions.

Each model kind (lexical, transformer) implements ``predict_outputs`` and the
bundle I/O; calibration and the decision threshold are applied here once, so
every kind turns raw scores into ``p_promotion`` and labels the same way.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

LABELS = ("genuine", "promotion")


@dataclass
class ModelOutputs:
    """Raw model outputs for a batch of texts, before calibration."""

    logits: np.ndarray  # promotion logit per text, shape (n,)
    seeding: np.ndarray  # seeding strength per text in [0, 1], shape (n,)


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list; a bare str is refused, since iterating it would score each character."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


class PostEstimator:
    """Mixin: calibrated probabilities and labels from ``predict_outputs``.

    Calibration is Platt-style, ``p = sigmoid(a * logit + b)``; temperature
    scaling is the case ``b = 0``. A bias term matters because class weighting
    during training shifts the logits away from the true base rate.
    """

    kind: ClassVar[str] = ""
    calibration_: dict[str, float]
    threshold_: float

    @property
    def classes_(self) -> np.ndarray:
        """sklearn's order of ``predict_proba`` columns and ``predict`` values: fixed label names."""
        return np.array(LABELS)

    def predict_outputs(self, texts: Sequence[str], batch_size: int | None = None) -> ModelOutputs:
        raise NotImplementedError

    def _need(self, ok: bool, what: str) -> None:
        """A settings check: every kind reports a bad parameter the same way."""
        if not ok:
            raise ValueError(f"{type(self).__name__}: {what}")

    # -- calibration state -------------------------------------------------
    def _calibration(self) -> tuple[float, float]:
        cal = getattr(self, "calibration_", None) or {}
        return float(cal.get("a", 1.0)), float(cal.get("b", 0.0))

    def _threshold(self) -> float:
        return float(getattr(self, "threshold_", 0.5))

    def set_calibration(self, a: float = 1.0, b: float = 0.0, threshold: float = 0.5, method: str = "platt") -> None:
        """Refuses what would silently break every decision: a NaN slope, a threshold of 2."""
        values = {"calibration a": a, "calibration b": b, "threshold": threshold}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1] (a probability), got {threshold!r}")
        self.calibration_ = {"method": method, "a": float(a), "b": float(b)}
        self.threshold_ = float(threshold)

    def calibration_config(self) -> dict[str, Any]:
        a, b = self._calibration()
        method = (getattr(self, "calibration_", None) or {}).get("method", "none")
        return {"calibration": {"method": method, "a": a, "b": b}, "threshold": self._threshold()}

    def load_calibration_config(self, config: dict[str, Any], source: Any = "config.json") -> None:
        """Calibration and threshold from a bundle's config; ``source`` names the file in errors."""
        from kocscope.models.bundle import BundleError

        cal = config.get("calibration") or {}
        try:
            if not isinstance(cal, dict):
                raise ValueError(f"calibration must be an object, got {cal!r}")
            self.set_calibration(
                cal.get("a", 1.0), cal.get("b", 0.0), config.get("threshold", 0.5), cal.get("method", "none")
            )
        except ValueError as exc:
            raise BundleError(f"{source}: {exc}") from exc

    # -- decisions ------------------------------------------------------------
    def p_promotion(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities; a non-finite logit (damaged weights or base encoder) is an
        error, never a NaN that reads as "not promotion" below every threshold."""
        from kocscope.models.bundle import BundleError

        a, b = self._calibration()
        z = np.asarray(logits, dtype=np.float64)
        bad = ~np.isfinite(z)
        if bad.any():
            raise BundleError(
                f"the {self.kind or 'model'} model gave non-finite scores for {int(bad.sum())} of {z.size} posts: "
                "its weights or its base encoder are damaged (kocscope base-model build --force rebuilds the encoder)"
            )
        return sigmoid(a * z + b)

    def labels(self, p_promotion: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(p_promotion) >= self._threshold(), LABELS[1], LABELS[0])

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        p = self.p_promotion(self.predict_outputs(texts).logits)
        return np.column_stack([1.0 - p, p])

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.labels(self.p_promotion(self.predict_outputs(texts).logits))

    def predict_seeding(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_outputs(texts).seeding
