"""Calibration of raw promotion logits and the choice of the decision threshold.

Both are fitted on validation rows after training and stored in the bundle via
``PostEstimator.set_calibration(a, b, threshold, method)``, where
``p_promotion = sigmoid(a * logit + b)``. Temperature scaling is ``a = 1 / T``,
``b = 0``: it only rescales confidence; Platt also moves the base rate, which
class weighting during training shifts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kocscope.training.metrics import as_labels, precision_recall_points

THRESHOLD_RULES = ("f1", "precision")


def _check_logits(
    logits: Sequence[float] | np.ndarray, y: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(logits, dtype=np.float64)
    labels = as_labels(y, "y")
    if x.ndim != 1 or x.shape != labels.shape:
        raise ValueError(
            f"logits and y must be 1-D with one entry per row, got shapes {x.shape} and {labels.shape}"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(
            f"logits[{int(np.flatnonzero(bad)[0])}] is not finite; calibration needs finite logits"
        )
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        only = "promotion" if n_pos else "genuine"
        raise ValueError(f"calibration needs both classes; all {labels.size} rows are {only}")
    return x, labels


def _fit_logistic(x: np.ndarray, y: np.ndarray, fit_bias: bool, l2: float) -> np.ndarray:
    """Newton's method on the (convex) penalised NLL of sigmoid(a * x + b).

    Two guards keep tiny or separable validation sets from yielding absurd
    slopes: Platt's smoothed targets ((N+ + 1) / (N+ + 2) and 1 / (N- + 2))
    instead of hard 0/1, and an L2 pull of ``l2`` pseudo-rows towards the
    identity map (a = 1, b = 0).
    """
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    feats = np.column_stack([x, np.ones_like(x)]) if fit_bias else x[:, None]
    prior = np.array([1.0, 0.0])[: feats.shape[1]]

    def loss(w: np.ndarray) -> float:
        z = feats @ w
        nll = t * np.logaddexp(0, -z) + (1 - t) * np.logaddexp(0, z)
        return float(nll.sum() + 0.5 * l2 * np.sum((w - prior) ** 2))

    w = prior.copy()
    current = loss(w)
    for _ in range(100):
        z = feats @ w
        s = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
        grad = feats.T @ (s - t) + l2 * (w - prior)
        hess = (feats * (s * (1 - s))[:, None]).T @ feats + (l2 + 1e-9) * np.eye(w.size)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-10:
            candidate = w - scale * step
            new = loss(candidate)
            if new <= current:
                break
            scale /= 2
        else:
            break
        w, improvement, current = candidate, current - new, new
        if improvement <= 1e-12 * max(1.0, abs(current)):
            break
    return w


def fit_platt(
    logits: Sequence[float] | np.ndarray, y: Sequence[int] | np.ndarray, l2: float = 1.0
) -> tuple[float, float]:
    """(a, b) minimising validation NLL of ``sigmoid(a * logit + b)``.

    Raises when the fitted slope is not positive: the logits then rank
    promotion below genuine, which usually means a swapped positive label.
    """
    x, labels = _check_logits(logits, y)
    a, b = _fit_logistic(x, labels, fit_bias=True, l2=l2)
    if a <= 0:
        raise ValueError(
            f"Platt fit gives slope a={a:.4g} <= 0: the logits rank promotion rows below genuine ones; "
            "check the positive label mapping, or the model has learnt nothing"
        )
    return float(a), float(b)


def fit_temperature(
    logits: Sequence[float] | np.ndarray, y: Sequence[int] | np.ndarray, l2: float = 1.0
) -> float:
    """Temperature T minimising validation NLL of ``sigmoid(logit / T)``; store it as ``a = 1 / T, b = 0``."""
    x, labels = _check_logits(logits, y)
    (a,) = _fit_logistic(x, labels, fit_bias=False, l2=l2)
    if a <= 0:
        raise ValueError(
            f"temperature fit gives 1/T={a:.4g} <= 0: the logits rank promotion rows below genuine ones; "
            "check the positive label mapping, or the model has learnt nothing"
        )
    return float(1.0 / a)


def fit_calibration(
    logits: Sequence[float] | np.ndarray, y: Sequence[int] | np.ndarray, method: str = "platt"
) -> tuple[float, float]:
    """``(a, b)`` for ``PostEstimator.set_calibration`` by method: "platt", "temperature" or "none"."""
    if method == "platt":
        return fit_platt(logits, y)
    if method == "temperature":
        return 1.0 / fit_temperature(logits, y), 0.0
    if method == "none":
        return 1.0, 0.0
    raise ValueError(f"calibration method must be 'platt', 'temperature' or 'none', got {method!r}")


@dataclass
class ThresholdChoice:
    """The decision threshold and what it achieved on the rows it was chosen on."""

    threshold: float
    rule: str
    precision: float
    recall: float
    f1: float
    n_flagged: int
    target_precision: float | None = None
    target_reached: bool | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_threshold(
    y: Sequence[int] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    rule: str = "f1",
    target_precision: float = 0.9,
) -> ThresholdChoice:
    """Pick the threshold on calibrated validation probabilities (flag when p >= threshold).

    ``f1``: maximise F1 of `promotion` (ties go to the higher threshold, which
    flags fewer authors). ``precision``: the lowest threshold whose precision
    reaches ``target_precision``, i.e. the most recall for users who must not
    accuse genuine authors; when no threshold reaches it, the one with the
    highest precision, and ``note`` says so.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    if rule == "precision" and not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be within (0, 1], got {target_precision}")
    pts = precision_recall_points(y, p)
    if not pts["tp"].size or pts["tp"][-1] == 0:
        raise ValueError("choosing a threshold needs at least one promotion row")
    target: float | None = None
    reached: bool | None = None
    note = ""
    if rule == "f1":
        k = int(np.argmax(pts["f1"]))
    else:
        target = float(target_precision)
        meets = np.flatnonzero(pts["precision"] >= target - 1e-12)
        reached = bool(meets.size)
        if reached:
            k = int(meets[-1])
        else:
            best = pts["precision"].max()
            n_rows = int(pts["tp"][-1] + pts["fp"][-1])
            k = int(np.flatnonzero(pts["precision"] == best)[-1])
            note = (
                f"target precision {target:.3f} is not reachable on these {n_rows} rows; "
                f"chose the threshold with the highest precision, {best:.3f} "
                f"(recall {pts['recall'][k]:.3f}, {int(pts['tp'][k] + pts['fp'][k])} rows flagged)"
            )
    return ThresholdChoice(
        threshold=float(pts["threshold"][k]),
        rule=rule,
        precision=float(pts["precision"][k]),
        recall=float(pts["recall"][k]),
        f1=float(pts["f1"][k]),
        n_flagged=int(pts["tp"][k] + pts["fp"][k]),
        target_precision=target,
        target_reached=reached,
        note=note,
    )
