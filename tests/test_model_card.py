"""The generated card states how training went and compares a stack with its parts."""

from kocscope.models.model_card import render_card


def test_card_states_training_time_memory_and_device() -> None:
    card = render_card({"kind": "lexical", "training_run": {
        "timings_s": {"load_data": 30.0, "train": 90.0}, "device": "cpu", "threads": 2, "peak_memory_mb": 1500.0}})
    assert "## Training run" in card
    assert "on cpu, 2 threads: 2.0 min in all (load_data 30 s, train 90 s); peak memory 1,500 MB" in card
    assert card.index("## Training run") < card.index("## Settings")
    assert "## Training run" not in render_card({"kind": "lexical"})


def test_stack_card_says_where_each_component_trained() -> None:
    run = {"timings_s": {"combine": 60.0}, "device": "cpu", "components": {
        "lexical": {"device": "cpu", "train_seconds": 30.0, "reused": False},
        "transformer": {"device": "cuda", "train_seconds": 270.0, "reused": True}}}
    card = render_card({"kind": "stack", "training_run": run})
    assert ("Components: lexical trained on cpu in 0.5 min; transformer trained on cuda in 4.5 min "
            "(an earlier run, kept by --resume).") in card


def test_stack_card_compares_the_stack_with_each_component_alone() -> None:
    metrics = {"n": 10, "n_promotion": 4, "f1": 0.9, "macro_f1": 0.91, "roc_auc": 0.95, "pr_auc": 0.93, "ece": 0.02}
    card = render_card({"kind": "stack", "combiner": {"features": ["z:a"], "coef": [1.0], "intercept": 0.0},
                        "cross_fitted_metrics": {"all": metrics, "by_language": {"en": {**metrics, "f1": 0.5}},
                                                 "subsets": {"lexical": {**metrics, "f1": 0.7}}}})
    assert "| stack, all | 10 | 4 | 0.900 | 0.910 | 0.950 | 0.930 | 0.020 |" in card
    assert "| stack, lang `en` | 10 | 4 | 0.500 |" in card
    assert "| lexical alone, all | 10 | 4 | 0.700 |" in card
