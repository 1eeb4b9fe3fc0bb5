"""Calibration fits recover known distortions and lower held-out ECE; threshold rules do what they promise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kocscope.models.base import PostEstimator, sigmoid
from kocscope.training.calibration import (
    ThresholdChoice,
    choose_threshold,
    fit_calibration,
    fit_platt,
    fit_temperature,
)
from kocscope.training.metrics import classification_metrics, expected_calibration_error


def _distorted(n: int, seed: int, scale: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(true_logit); the model reports scale * true_logit + shift."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < sigmoid(true_logit)).astype(int)
    return scale * true_logit + shift, y


def test_temperature_recovers_known_temperature():
    logits, y = _distorted(20_000, seed=0, scale=3.0, shift=0.0)
    assert fit_temperature(logits, y) == pytest.approx(3.0, rel=0.06)
    logits, y = _distorted(20_000, seed=1, scale=0.5, shift=0.0)  # underconfident
    assert fit_temperature(logits, y) == pytest.approx(0.5, rel=0.06)


def test_platt_recovers_slope_and_bias():
    logits, y = _distorted(20_000, seed=2, scale=3.0, shift=1.0)
    a, b = fit_platt(logits, y)
    # inverse of z -> 3 z + 1 is a = 1/3, b = -1/3
    assert a == pytest.approx(1 / 3, rel=0.06)
    assert b == pytest.approx(-1 / 3, abs=0.08)


def test_calibration_lowers_held_out_ece():
    logits, y = _distorted(8_000, seed=3, scale=3.0, shift=1.0)
    fit_idx, test_idx = np.arange(4_000), np.arange(4_000, 8_000)
    before = expected_calibration_error(y[test_idx], sigmoid(logits[test_idx]))
    a, b = fit_platt(logits[fit_idx], y[fit_idx])
    after_platt = expected_calibration_error(y[test_idx], sigmoid(a * logits[test_idx] + b))
    t = fit_temperature(logits[fit_idx], y[fit_idx])
    after_temp = expected_calibration_error(y[test_idx], sigmoid(logits[test_idx] / t))
    assert before > 0.08
    assert after_platt < 0.03 and after_platt < before / 3
    assert after_temp < before / 2  # cannot undo the shift, still much better


def test_fits_plug_into_the_estimator_mixin():
    logits, y = _distorted(4_000, seed=4, scale=2.0, shift=0.5)
    a, b = fit_platt(logits, y)
    est = PostEstimator()
    est.set_calibration(a, b, threshold=0.5, method="platt")
    assert np.allclose(est.p_promotion(logits), sigmoid(a * logits + b))


def test_tiny_separable_set_gives_finite_moderate_slope():
    # perfectly separable: a plain maximum-likelihood fit sends the slope to infinity
    # (Platt's smoothed targets alone still give a = 6.7 on these 4 rows)
    a, b = fit_platt([-0.2, -0.1, 0.1, 0.2], [0, 0, 1, 1])
    assert 0 < a < 3 and abs(b) < 0.5
    t = fit_temperature([-0.2, -0.1, 0.1, 0.2], [0, 0, 1, 1])
    assert 0.05 < t < 20


def test_inverted_logits_are_reported():
    logits, y = _distorted(2_000, seed=5, scale=-2.0, shift=0.0)
    with pytest.raises(ValueError, match="positive label"):
        fit_platt(logits, y)
    with pytest.raises(ValueError, match="positive label"):
        fit_temperature(logits, y)


@pytest.mark.parametrize(
    ("logits", "y", "message"),
    [
        ([0.1, 0.2], [1, 1], "both classes"),
        ([0.1, float("inf")], [0, 1], r"logits\[1\] is not finite"),
        ([0.1, 0.2, 0.3], [0, 1], "one entry per row"),
        ([0.1, 0.2], [0, 3], r"y\[1\] = 3"),
    ],
)
def test_calibration_bad_inputs(logits, y, message):
    with pytest.raises(ValueError, match=message):
        fit_platt(logits, y)


# scores .9 .8 .7 .6 .4 .3 .2 .1 with labels P P P G P G G G: flagging the top five
# (threshold between .4 and .3) gives F1 8/9, the best of all cuts
TOY_P = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]
TOY_Y = [0, 0, 0, 1, 0, 1, 1, 1]


def test_f1_rule_picks_the_best_cut():
    choice = choose_threshold(TOY_Y, TOY_P)
    assert choice.rule == "f1"
    assert choice.threshold == pytest.approx(0.35)
    assert choice.f1 == pytest.approx(8 / 9)
    assert (choice.precision, choice.recall, choice.n_flagged) == (pytest.approx(0.8), 1.0, 5)
    assert choice.target_precision is None and choice.note == ""


def test_f1_rule_is_optimal_against_brute_force():
    rng = np.random.default_rng(6)
    for _ in range(5):
        y = rng.integers(0, 2, 300)
        p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
        choice = choose_threshold(y, p)
        # every possible flagged set is {p >= s} for some score s: try them all
        best = max(2 * np.sum((p >= s) & (y == 1)) / (np.sum(p >= s) + y.sum()) for s in p)
        assert choice.f1 == pytest.approx(best)
        assert classification_metrics(y, p, choice.threshold)["f1"] == pytest.approx(choice.f1)


def test_precision_rule_takes_lowest_threshold_meeting_target():
    choice = choose_threshold(TOY_Y, TOY_P, rule="precision", target_precision=0.75)
    assert choice.target_reached is True
    assert choice.threshold == pytest.approx(
        0.35
    )  # precision .8, recall 1; lower cuts drop below .75
    choice = choose_threshold(TOY_Y, TOY_P, rule="precision", target_precision=0.9)
    assert choice.threshold == pytest.approx(0.65)  # top three, all promotion
    assert (choice.precision, choice.recall) == (1.0, pytest.approx(0.75))
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 2_000)
    p = np.clip(0.35 * y + rng.random(2_000) * 0.65, 0, 1)
    choice = choose_threshold(y, p, rule="precision", target_precision=0.9)
    m = classification_metrics(y, p, choice.threshold)
    assert m["precision"] >= 0.9 and m["precision"] == pytest.approx(choice.precision)
    # any lower threshold (one more row flagged) falls short: this is the most recall at >= 90 %
    lower = np.sort(p[p < choice.threshold])[-1]
    assert classification_metrics(y, p, float(lower))["precision"] < 0.9


def test_unreachable_precision_is_reported_and_best_precision_chosen():
    # the top-scored post is genuine, so no cut reaches precision 1
    p = [0.95, 0.9, 0.8, 0.5, 0.3]
    y = [0, 1, 1, 0, 1]
    choice = choose_threshold(y, p, rule="precision", target_precision=0.99)
    assert choice.target_reached is False
    assert "not reachable" in choice.note and "0.990" in choice.note
    assert choice.precision == pytest.approx(2 / 3)  # the top three
    assert choice.threshold == pytest.approx(0.65)
    json.dumps(choice.to_dict())


def test_choose_threshold_bad_inputs():
    with pytest.raises(ValueError, match="rule"):
        choose_threshold(TOY_Y, TOY_P, rule="recall")
    with pytest.raises(ValueError, match="target_precision"):
        choose_threshold(TOY_Y, TOY_P, rule="precision", target_precision=1.5)
    with pytest.raises(ValueError, match="at least one promotion"):
        choose_threshold([0, 0], [0.2, 0.4])
    assert isinstance(choose_threshold([1], [0.3]), ThresholdChoice)


def test_fit_calibration_dispatches_by_method():
    logits, y = _distorted(4_000, seed=8, scale=2.0, shift=0.5)
    assert fit_calibration(logits, y, "platt") == fit_platt(logits, y)
    a, b = fit_calibration(logits, y, "temperature")
    assert (a, b) == (pytest.approx(1 / fit_temperature(logits, y)), 0.0)
    assert fit_calibration(logits, y, "none") == (1.0, 0.0)
    with pytest.raises(ValueError, match="'platt', 'temperature' or 'none'"):
        fit_calibration(logits, y, "isotonic")
