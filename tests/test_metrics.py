"""Metrics against hand-computed values, scikit-learn cross-checks, and None for what a slice cannot define."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from kocscope.models.base import sigmoid
from kocscope.training.metrics import (
    LENGTH_BUCKETS,
    classification_metrics,
    ece_floor,
    expected_calibration_error,
    length_bucket,
    pr_curve,
    precision_recall_points,
    reliability_bins,
    roc_pr_auc,
    seeding_metrics,
)

Y = [0, 0, 1, 1, 0, 1]
P = [0.1, 0.2, 0.3, 0.8, 0.6, 0.9]


def test_classification_metrics_hand_computed():
    m = classification_metrics(Y, P, threshold=0.5)
    assert m["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert (m["n"], m["n_promotion"]) == (6, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(2 / 3)  # genuine F1 = 2*2 / (2*2 + 1 + 1)
    # promotion scores .3 .8 .9 vs genuine .1 .2 .6: 8 of 9 pairs ordered right
    assert m["roc_auc"] == pytest.approx(8 / 9)
    # ranked .9(P) .8(P) .6(G) .3(P): precisions at the hits 1, 1, 3/4
    assert m["pr_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.49 + 0.04 + 0.36 + 0.01) / 6)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.3, 0.8, 0.4, 0.9])))


def test_threshold_is_inclusive():
    m = classification_metrics([1, 0], [0.5, 0.49], threshold=0.5)
    assert m["confusion"] == {"tn": 1, "fp": 0, "fn": 0, "tp": 1}


def test_matches_sklearn_on_random_data():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500), 2)  # ties on purpose
    m = classification_metrics(y, p, threshold=0.4)
    pred = (p >= 0.4).astype(int)
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))


def test_weighted_ranking_metrics_match_sklearn():
    rng = np.random.default_rng(4)
    for n in (5, 40, 700):
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        p = np.round(rng.random(n), 1)
        w = rng.integers(0, 4, n).astype(float)
        w[:2] = 1
        roc, ap = roc_pr_auc(y, p, w)
        assert roc == pytest.approx(roc_auc_score(y, p, sample_weight=w))
        assert ap == pytest.approx(average_precision_score(y, p, sample_weight=w))


def test_single_class_slice_gives_none_not_fake_numbers():
    m = classification_metrics([0, 0, 0], [0.1, 0.2, 0.7], threshold=0.5)
    assert m["precision"] == 0.0  # one genuine post flagged: defined, and bad
    for key in ("recall", "f1", "macro_f1", "roc_auc", "pr_auc"):
        assert m[key] is None, key
    assert m["accuracy"] == pytest.approx(2 / 3)
    m = classification_metrics([1, 1], [0.9, 0.8], threshold=0.5)
    assert m["recall"] == 1.0 and m["precision"] == 1.0
    assert m["roc_auc"] is None and m["pr_auc"] is None and m["macro_f1"] is None


def test_nothing_flagged_precision_none_f1_zero():
    m = classification_metrics([0, 1, 1], [0.1, 0.2, 0.3], threshold=0.9)
    assert m["precision"] is None
    assert m["recall"] == 0.0
    assert m["f1"] == 0.0


def test_empty_slice():
    m = classification_metrics([], [], threshold=0.5)
    assert m["n"] == 0 and m["confusion"] == {"tn": 0, "fp": 0, "fn": 0, "tp": 0}
    assert all(
        m[k] is None
        for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "ece", "brier", "log_loss")
    )


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 2], [0.1, 0.2], r"y_true\[1\] = 2"),
        (["promotion", "ad"], [0.1, 0.2], r"y_true\[1\] = 'ad': labels must be 0 / 'genuine'"),
        ([0, 1], [0.1, float("nan")], r"p_promotion\[1\]"),
        ([0, 1], [0.1, 1.5], r"p_promotion\[1\] = 1.5"),
        ([0, 1, 1], [0.1, 0.2], "y_true has 3, p_promotion has 2"),
    ],
)
def test_bad_inputs_name_the_row(y, p, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y, p, threshold=0.5)


def test_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        classification_metrics([0, 1], [0.1, 0.9], threshold=1.5)


def test_ece_hand_computed_bins():
    # 5 uniform bins: {.1} gap .1; {.2,.3} mean .25 vs 1/2; {.6} gap .6; {.8,.9} mean .85 vs 1
    assert expected_calibration_error(Y, P, n_bins=5) == pytest.approx(
        (0.1 + 2 * 0.25 + 0.6 + 2 * 0.15) / 6
    )
    # ten posts at p = 0.3 of which three are promotion: exactly calibrated
    assert expected_calibration_error([1, 1, 1] + [0] * 7, [0.3] * 10) == pytest.approx(0.0)
    assert expected_calibration_error([], []) is None


def test_ece_calibrated_small_overconfident_large():
    rng = np.random.default_rng(0)
    q = rng.random(100_000)
    y = (rng.random(q.size) < q).astype(int)
    assert expected_calibration_error(y, q) < 0.01
    logit_q = np.log(q / (1 - q))
    overconfident = sigmoid(3 * logit_q)
    assert expected_calibration_error(y, overconfident) > 0.1


def test_ece_floor_is_what_sampling_noise_alone_gives():
    rng = np.random.default_rng(3)
    q = rng.random(130)
    # the ECE of calibrated labels drawn many times averages to the floor
    observed = [expected_calibration_error((rng.random(q.size) < q).astype(int), q) for _ in range(300)]
    assert ece_floor(q, draws=300) == pytest.approx(np.mean(observed), rel=0.1)
    assert ece_floor(q) > 0.05  # 130 rows: noise alone puts ECE above a 0.05 target
    assert ece_floor(rng.random(100_000), draws=5) < 0.01
    assert ece_floor([0.0, 1.0, 1.0]) == 0.0  # certain scores: nothing to draw
    assert ece_floor([]) is None
    assert classification_metrics([0, 1], [0.0, 1.0])["ece_floor"] == 0.0


def test_reliability_bins_cover_every_row():
    rng = np.random.default_rng(1)
    p = np.r_[0.0, 1.0, rng.random(98)]
    y = rng.integers(0, 2, 100)
    for strategy in ("uniform", "quantile"):
        bins = reliability_bins(y, p, n_bins=10, strategy=strategy)
        assert sum(b["count"] for b in bins) == 100
        assert all(b["lo"] <= b["mean_p"] <= b["hi"] for b in bins)
    quantile = reliability_bins(y, p, n_bins=10, strategy="quantile")
    assert max(b["count"] for b in quantile) - min(b["count"] for b in quantile) <= 2
    assert reliability_bins(y, p, n_bins=10)[-1]["hi"] == 1.0  # p == 1 lands in the last bin
    with pytest.raises(ValueError, match="strategy"):
        reliability_bins(y, p, strategy="log")


def test_precision_recall_points_and_curve():
    pts = precision_recall_points(Y, P)
    # six distinct scores -> six cuts, thresholds halfway between neighbours
    assert pts["threshold"].tolist() == pytest.approx([0.85, 0.7, 0.45, 0.25, 0.15, 0.1])
    assert pts["tp"].tolist() == [1, 2, 2, 3, 3, 3]
    for i, t in enumerate(pts["threshold"]):
        m = classification_metrics(Y, P, threshold=float(t))
        assert m["precision"] == pytest.approx(pts["precision"][i])
        assert m["recall"] == pytest.approx(pts["recall"][i])
    curve = pr_curve(Y, P)
    recalls = [c["recall"] for c in curve]
    assert recalls == sorted(recalls) and recalls[-1] == 1.0
    rng = np.random.default_rng(2)
    assert len(pr_curve(rng.integers(0, 2, 5000), rng.random(5000), max_points=50)) == 50
    assert pr_curve([0, 0], [0.2, 0.4]) == []


def test_seeding_metrics_skip_ungraded_rows():
    nan = float("nan")
    m = seeding_metrics([0.5, nan, 1.0, 0.0], [0.25, 0.9, 0.75, 0.5])
    assert m["n"] == 3
    assert m["mae"] == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    assert m["spearman"] == pytest.approx(0.5)  # ranks (2,3,1) vs (1,3,2)
    assert seeding_metrics([nan, nan], [0.1, 0.2]) == {"n": 0, "mae": None, "spearman": None}
    assert seeding_metrics([0.5, 0.5], [0.1, 0.2])["spearman"] is None  # constant truth: no ranking
    with pytest.raises(ValueError, match=r"seeding_true\[0\] = 4.0"):
        seeding_metrics([4.0], [0.5])
    with pytest.raises(ValueError, match="seeding_pred"):
        seeding_metrics([0.5, 0.25], [nan, 0.5])


def test_length_buckets_edges():
    cases = {
        0: "<200",
        199: "<200",
        200: "200-499",
        499: "200-499",
        500: "500-999",
        1000: "1000-1999",
        1999: "1000-1999",
        2000: ">=2000",
        10**6: ">=2000",
    }
    for n, bucket in cases.items():
        assert length_bucket(n) == bucket
    assert set(cases.values()) == set(LENGTH_BUCKETS)
    with pytest.raises(ValueError, match="length"):
        length_bucket(-1)
