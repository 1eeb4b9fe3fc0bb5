"""evaluate(): slices, intervals, worst errors, JSON round trip; write_report(): files, escaping, atomicity."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from kocscope.models.base import sigmoid
from kocscope.training.calibration import choose_threshold, fit_calibration
from kocscope.training.evaluation import OTHER_VALUES, EvaluationResult, evaluate
from kocscope.training.metrics import classification_metrics, expected_calibration_error
from kocscope.training.report import write_report
from paths import ZHIHU  # tests/ is on sys.path under pytest

NAN = float("nan")


def _corpus():
    """Eight posts: two languages, three length buckets, one topic column with a gap."""
    texts = [
        "短" * 50,
        "long promo " * 30,
        "<script>alert('x')</script> 好物推荐",
        "b" * 600,
        "评测" * 150,
        "c" * 2500,
        "d" * 10,
        "e" * 450,
    ]
    langs = ["zh", "en", "mixed", "en", "zh", "en", None, "zh"]
    y = [0, 1, 0, 1, 1, 0, 0, 1]
    p = [0.1, 0.9, 0.95, 0.3, 0.7, 0.6, 0.2, 0.05]
    topics = ["beauty", "tech", "beauty", "tech", "beauty", None, "tech", "beauty"]
    return texts, langs, y, p, topics


def test_evaluate_overall_and_slices():
    texts, langs, y, p, topics = _corpus()
    seeding_true = [0.0, 1.0, NAN, 0.5, 0.75, NAN, 0.25, 1.0]
    seeding_pred = [0.1, 0.9, 0.5, 0.5, 0.5, 0.2, 0.3, 0.6]
    r = evaluate(
        texts,
        langs,
        y,
        p,
        0.5,
        seeding_true=seeding_true,
        seeding_pred=seeding_pred,
        groups={"topic": topics},
        ids=[f"post-{i}" for i in range(8)],
        n_bootstrap=0,
    )
    assert r.metrics == classification_metrics(y, p, 0.5)
    assert [s.value for s in r.by_language] == ["zh", "en", "mixed", "(missing)"]
    zh = r.by_language[0]
    assert zh.metrics["n"] == 3 and zh.metrics["confusion"] == {"tn": 1, "fp": 0, "fn": 1, "tp": 1}
    mixed = r.by_language[2]
    assert mixed.metrics["roc_auc"] is None and mixed.metrics["recall"] is None  # one genuine post
    assert mixed.seeding == {"n": 0, "mae": None, "spearman": None}
    lengths = {s.value: s.metrics["n"] for s in r.by_length}
    # 50, 330, 39, 600, 300, 2500, 10, 450 characters
    assert lengths == {"<200": 3, "200-499": 3, "500-999": 1, ">=2000": 1}
    assert [s.value for s in r.by_group["topic"]] == ["beauty", "tech", "(missing)"]
    assert r.by_group["topic"][0].metrics["n"] == 4
    assert r.seeding["n"] == 6
    assert r.seeding["mae"] == pytest.approx(np.mean([0.1, 0.1, 0.0, 0.25, 0.05, 0.4]))
    assert r.intervals == {k: None for k in r.intervals}


def test_worst_errors_sorted_with_excerpts():
    texts, langs, y, p, _ = _corpus()
    r = evaluate(
        texts,
        langs,
        y,
        p,
        0.5,
        ids=[f"post-{i}" for i in range(8)],
        excerpt_chars=20,
        n_bootstrap=0,
    )
    assert [e.id for e in r.false_positives] == ["post-2", "post-5"]  # p .95 then .6
    assert [e.id for e in r.false_negatives] == ["post-7", "post-3"]  # p .05 then .3
    fp = r.false_positives[0]
    assert (fp.label, fp.predicted, fp.lang, fp.row) == ("genuine", "promotion", "mixed", 2)
    assert fp.text == texts[2][:20] + "…"
    assert r.false_negatives[0].text == texts[7][:20] + "…"
    only_lengths = evaluate([len(t) for t in texts], langs, y, p, 0.5, n_worst=1, n_bootstrap=0)
    assert len(only_lengths.false_positives) == 1 and only_lengths.false_positives[0].text is None
    assert only_lengths.false_positives[0].id is None


def test_rare_group_values_are_pooled():
    n = 60
    rng = np.random.default_rng(0)
    authors = [f"a{i % 12}" if i < 48 else f"rare{i}" for i in range(n)]
    r = evaluate(
        [100] * n,
        ["zh"] * n,
        rng.integers(0, 2, n),
        rng.random(n),
        0.5,
        groups={"author": authors},
        max_group_values=12,
        n_bootstrap=0,
    )
    values = [s.value for s in r.by_group["author"]]
    assert len(values) == 13 and values[-1] == OTHER_VALUES
    assert r.by_group["author"][-1].metrics["n"] == 12
    assert sum(s.metrics["n"] for s in r.by_group["author"]) == n


def test_bootstrap_intervals_bracket_the_estimate_and_are_seeded():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    p = np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1)
    a = evaluate([100] * n, ["en"] * n, y, p, 0.5, n_bootstrap=100, seed=3)
    b = evaluate([100] * n, ["en"] * n, y, p, 0.5, n_bootstrap=100, seed=3)
    assert a.intervals == b.intervals
    for key in ("precision", "recall", "f1", "roc_auc", "pr_auc"):
        lo, hi = a.intervals[key]
        assert lo < a.metrics[key] < hi and hi - lo < 0.2, key
    single = evaluate(
        [100] * 5, ["en"] * 5, [0] * 5, [0.1, 0.2, 0.3, 0.6, 0.7], 0.5, n_bootstrap=50
    )
    assert single.intervals["roc_auc"] is None and single.intervals["recall"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"langs": ["zh"] * 3}, "langs has 3 entries but y_true has 8"),
        ({"groups": {"topic": ["a"]}}, r"groups\['topic'\] has 1 entries"),
        ({"seeding_true": [0.5] * 8}, "without seeding_pred"),
        ({"texts_or_lengths": [10] * 7 + [-1]}, r"texts_or_lengths\[7\] = -1"),
        ({"threshold": 2.0}, "threshold"),
    ],
)
def test_evaluate_bad_inputs(kwargs, message):
    texts, langs, y, p, _ = _corpus()
    args = {
        "texts_or_lengths": texts,
        "langs": langs,
        "y_true": y,
        "p_promotion": p,
        "threshold": 0.5,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        evaluate(**args)


def test_to_dict_is_plain_json_and_round_trips():
    texts, langs, y, p, topics = _corpus()
    r = evaluate(
        texts,
        langs,
        y,
        p,
        0.5,
        seeding_true=[0.5] * 8,
        seeding_pred=[0.4] * 8,
        groups={"topic": topics},
        n_bootstrap=20,
    )
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert EvaluationResult.from_dict(json.loads(text)) == r
    with pytest.raises(ValueError, match="not an evaluation result"):
        EvaluationResult.from_dict({"threshold": 0.5})


@pytest.fixture()
def report_dir(tmp_path):
    texts, langs, y, p, topics = _corpus()
    topics[0] = "<b>topic</b>"
    result = evaluate(
        texts,
        langs,
        y,
        p,
        0.5,
        groups={"topic": topics},
        ids=["post-0", "post-1", "<img src=x onerror=alert(1)>"]
        + [f"post-{i}" for i in range(3, 8)],
        n_bootstrap=20,
    )
    files = write_report(
        result,
        tmp_path / "report",
        title="Val <script>",
        model_info={"kind": "lexical", "lr": np.float32(0.5)},
    )
    return result, files, tmp_path / "report"


def test_report_writes_every_file(report_dir):
    _, files, out = report_dir
    expected = {
        "metrics.json",
        "report.html",
        "pr_curve.svg",
        "reliability.svg",
        "confusion.svg",
        "score_distribution.svg",
    }
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    if has_mpl:
        expected |= {"pr_curve.png", "reliability.png", "confusion.png"}
    assert set(files) == expected
    assert {p.name for p in out.iterdir()} == expected  # no temp files left behind
    for name in expected:
        assert files[name] == out / name and files[name].stat().st_size > 0
    for name in ("pr_curve.svg", "reliability.svg", "confusion.svg", "score_distribution.svg"):
        ET.parse(out / name)  # well-formed standalone SVG
    html = (out / "report.html").read_text(encoding="utf-8")
    assert ("PNG copies were written" in html) == has_mpl
    assert ("matplotlib is not installed" in html) == (not has_mpl)
    assert "stroke-dasharray" in (out / "reliability.svg").read_text(
        encoding="utf-8"
    )  # the diagonal


def test_report_escapes_user_text_and_stays_offline(report_dir):
    _, _, out = report_dir
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert (
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    )  # the false-positive excerpt, escaped
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>topic</b>" not in html and "&lt;b&gt;topic&lt;/b&gt;" in html
    assert "Val &lt;script&gt;" in html
    assert not re.search(r"<[^>]*\s(src|href)=", html)  # no tag loads anything
    for marker in ("<link", "@import", "url("):
        assert marker not in html
    for section in (
        "Headline metrics",
        "By language",
        "By length",
        "By topic",
        "Most confident mistakes",
        "Confusion matrix",
    ):
        assert section in html


def test_metrics_json_round_trips(report_dir):
    result, files, _ = report_dir
    data = json.loads(files["metrics.json"].read_text(encoding="utf-8"))
    assert data["title"] == "Val <script>"
    assert data["model_info"] == {"kind": "lexical", "lr": 0.5}
    assert EvaluationResult.from_dict(data) == result
    assert not any(isinstance(v, float) and math.isnan(v) for v in data["metrics"].values())


def test_report_overwrites_in_place(report_dir, tmp_path):
    result, files, out = report_dir
    before = files["metrics.json"].read_text(encoding="utf-8")
    again = write_report(result, out, title="second run")
    assert json.loads(again["metrics.json"].read_text(encoding="utf-8"))["title"] == "second run"
    assert before != again["metrics.json"].read_text(encoding="utf-8")
    assert {p.name for p in out.iterdir()} == set(files)




@pytest.mark.integration
def test_real_corpus_calibrate_on_half_evaluate_on_the_other(tmp_path):
    """Balanced class weights shift logits off the base rate; Platt on one half of val must
    lower ECE on the other half, and the whole report must come out on real posts."""
    if not (ZHIHU / "train.jsonl").is_file():
        pytest.skip("zhihu16k corpus not present")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def load(name):
        with open(ZHIHU / name, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]

    train, val = load("train.jsonl"), load("val.jsonl")
    vec = TfidfVectorizer(
        analyzer="char", ngram_range=(1, 2), max_features=50_000, sublinear_tf=True
    )
    x_train = vec.fit_transform([r["text"] for r in train])
    model = LogisticRegression(C=4, class_weight="balanced", max_iter=2000)
    model.fit(x_train, [r["label"] for r in train])
    logits = model.decision_function(vec.transform([r["text"] for r in val]))
    y = np.array([r["label"] for r in val])
    order = np.random.default_rng(0).permutation(len(val))
    fit_rows, test_rows = order[: len(val) // 2], order[len(val) // 2 :]

    a, b = fit_calibration(logits[fit_rows], y[fit_rows], "platt")
    choice = choose_threshold(y[fit_rows], sigmoid(a * logits[fit_rows] + b))
    p_test = sigmoid(a * logits[test_rows] + b)
    ece_raw = expected_calibration_error(y[test_rows], sigmoid(logits[test_rows]))
    ece_platt = expected_calibration_error(y[test_rows], p_test)
    rows = [val[i] for i in test_rows]
    result = evaluate(
        [r["text"] for r in rows],
        ["zh"] * len(rows),
        y[test_rows],
        p_test,
        choice.threshold,
        groups={"topic": [r["topic"] for r in rows]},
        ids=[r["id"] for r in rows],
    )
    files = write_report(result, tmp_path, title="zhihu16k val (second half)")
    m = result.metrics
    print(
        f"\nzhihu16k val half B (n={m['n']}): ECE raw {ece_raw:.4f} -> Platt {ece_platt:.4f}; "
        f"threshold {choice.threshold:.3f} (F1 rule on half A); F1 {m['f1']:.3f} {result.intervals['f1']}, "
        f"ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m['pr_auc']:.3f}"
    )
    print("F1 by length:", {s.value: (s.metrics["n"], s.metrics["f1"]) for s in result.by_length})
    assert ece_platt < ece_raw
    assert m["roc_auc"] > 0.9  # a char-bigram baseline separates this corpus well
    assert len(result.by_group["topic"]) == 10
    assert files["report.html"].stat().st_size > 10_000


@pytest.mark.parametrize(
    ("texts", "y", "p"),
    [([], [], []), (["a", "b"], [0, 0], [0.1, 0.9]), (["a"], [1], [0.2])],
    ids=["empty", "genuine-only", "one-promotion"],
)
def test_degenerate_sets_still_report(tmp_path, texts, y, p):
    result = evaluate(texts, ["en"] * len(texts), y, p, 0.5, n_bootstrap=20)
    assert result.metrics["roc_auc"] is None and result.intervals["roc_auc"] is None
    files = write_report(result, tmp_path)
    assert (
        EvaluationResult.from_dict(json.loads(files["metrics.json"].read_text("utf-8"))) == result
    )
    ET.parse(files["pr_curve.svg"])
