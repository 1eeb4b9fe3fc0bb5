"""The trainer on tiny corpora: end to end, reproducible, resumable, and strict about bad input.

The transformer runs use a random 2-layer BERT (hidden 16) with a word-level
tokenizer built here, so no test needs the real encoder.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kocscope.models.bundle import load_estimator, read_bundle_config
from kocscope.training.dataset import DataError, load_labelled
from kocscope.training.trainer import (
    TrainingError,
    _lr_factor,
    evaluate_estimator,
    fit_estimator,
    train,
)
from kocscope.training.training_args import ConfigError, TrainConfig, config_from_dict

import tiny_models  # tests/ is on sys.path under pytest
from paths import ZHIHU  # tests/ is on sys.path under pytest

PROMO = ["buy", "link", "code", "discount", "sponsored", "coupon", "gifted", "deal"]
GENUINE = ["i", "my", "tried", "honest", "meh", "love", "week", "returned"]
FILLER = [f"w{i}" for i in range(40)]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "query", ":"]
VOCAB = SPECIALS + PROMO + GENUINE + FILLER


def build_tiny_encoder(path: Path) -> str:
    return str(tiny_models.build_tiny_encoder(path, VOCAB, hidden_size=16, intermediate_size=32))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def make_rows(n: int, seed: int, every: int = 3, prefix: str = "p") -> list[dict[str, Any]]:
    """Promotion posts use promo words, genuine ones genuine words, both padded with filler;
    a quarter of the rows carry no seeding grade."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        promo = i % every == 0
        words = rng.sample(PROMO if promo else GENUINE, 2) + rng.sample(FILLER, 4)
        rng.shuffle(words)
        grade = None if i % 4 == 3 else (rng.randint(2, 4) if promo else rng.randint(0, 2))
        out.append(
            {
                "id": f"{prefix}{i}",
                "text": " ".join(words),
                "label": "promotion" if promo else "genuine",
                "grade": grade,
                "topic": rng.choice(["beauty", "tech"]),
            }
        )
    return out


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def write_corpus(folder: Path, n_train: int = 40, n_val: int = 15) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return (
        write_jsonl(folder / "train.jsonl", make_rows(n_train, seed=1)),
        write_jsonl(folder / "val.jsonl", make_rows(n_val, seed=2, prefix="v")),
    )


def make_config(
    folder: Path,
    kind: str,
    *,
    encoder: str | None = None,
    out: str = "run",
    settings: dict[str, Any] | None = None,
    **training: Any,
) -> TrainConfig:
    train_path, val_path = write_corpus(folder / "data")
    model_settings: dict[str, Any] = {}
    if kind == "transformer":
        model_settings = {
            "base_encoder": encoder,
            "max_length": 16,
            "finetune": "lora",
            "lora_r": 2,
            "dropout": 0.1,
        }
    model_settings.update(settings or {})
    return config_from_dict(
        {
            "data": {
                "train": [train_path],
                "validation": val_path,
                "seeding_column": "grade",
                "group_columns": ["topic"],
            },
            "model": {"kind": kind, "settings": model_settings},
            "training": {
                "epochs": 2,
                "batch_size": 8,
                "lr": 5e-3,
                "threads": 1,
                "early_stopping_patience": 0,
                **training,
            },
            "output": str(folder / out),
        }
    )


def adapter(bundle: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(bundle / "adapter.safetensors"))


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


# --- end to end ---------------------------------------------------------------------------


def test_gradient_checkpointing_trains_the_same_weights(
    tmp_path: Path, tiny_encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers.modeling_utils

    plain = train(make_config(tmp_path, "transformer", encoder=tiny_encoder, out="plain"), progress=False)
    calls = []
    checkpoint = transformers.modeling_utils.checkpoint

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counted)
    saving = train(
        make_config(tmp_path, "transformer", encoder=tiny_encoder, out="ckpt", gradient_checkpointing=True),
        progress=False,
    )
    assert calls  # the encoder layers did run through activation checkpointing
    # recomputation replays dropout with the saved RNG state, so only float order may differ
    a, b = adapter(plain.bundle_path), adapter(saving.bundle_path)
    assert a.keys() == b.keys() and len(a) > 2
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="gradient_checkpointing needs a fine-tuned encoder"):
        train(
            make_config(tmp_path, "transformer", encoder=tiny_encoder, out="heads",
                        settings={"finetune": "heads"}, gradient_checkpointing=True),
            progress=False,
        )


def assert_same_metrics(got: dict[str, Any], saved: dict[str, Any]) -> None:
    """Equal metrics, floats to 1e-6: a loaded LoRA bundle has its adapters merged into
    the weights, which moves probabilities by about 1e-9."""
    assert got.keys() == saved.keys()
    for key, value in saved.items():
        assert got[key] == (pytest.approx(value, abs=1e-6) if isinstance(value, float) else value), key


def check_bundle_reproduces_its_metrics(config: TrainConfig, result: Any) -> None:
    loaded = load_estimator(result.bundle_path)
    val, _ = load_labelled(config.data.validation, config.data)
    again = evaluate_estimator(loaded, val)
    assert_same_metrics(again.metrics, result.metrics)
    bundle_config = read_bundle_config(result.bundle_path)
    assert bundle_config["metrics"] == result.metrics
    assert bundle_config["train_config"] == config.to_dict()
    run = bundle_config["training_run"]
    assert run["peak_memory_mb"] > 0 and run["timings_s"]["train"] > 0
    assert run["data"]["validation"]["rows"] == len(val)
    out = Path(config.output)
    assert json.loads((out / "train_config.json").read_text(encoding="utf-8")) == config.to_dict()
    report = json.loads((out / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert report["metrics"] == result.metrics
    assert "topic" in report["by_group"]
    assert (out / "report" / "report.html").is_file()
    assert (
        json.loads((out / "train_result.json").read_text(encoding="utf-8"))["steps"] == result.steps
    )


def test_transformer_end_to_end(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(tmp_path, "transformer", encoder=tiny_encoder, eval_every_steps=3)
    result = train(config, progress=False)
    assert result.steps == 10  # 40 rows / batch 8 = 5 steps x 2 epochs
    assert [h["step"] for h in result.history] == [3, 6, 9, 10]
    assert result.metrics["n"] == 15 and result.metrics["roc_auc"] is not None
    assert result.device == "cpu"
    check_bundle_reproduces_its_metrics(config, result)
    assert (Path(config.output) / "checkpoint" / "state.json").is_file()
    # only the trainable tensors ship: LoRA and heads, never the frozen base
    assert all(
        "lora" in k or k.startswith(("promotion_head", "seeding_head"))
        for k in adapter(result.bundle_path)
    )


def test_transformer_learns_the_toy_task(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(
        tmp_path,
        "transformer",
        encoder=tiny_encoder,
        epochs=6,
        lr=2e-2,
        settings={"finetune": "top_layers"},
    )
    result = train(config, progress=False)
    assert result.metrics["roc_auc"] >= 0.9


def test_same_seed_same_model(tmp_path: Path, tiny_encoder: str) -> None:
    first = train(make_config(tmp_path / "a", "transformer", encoder=tiny_encoder), progress=False)
    second = train(make_config(tmp_path / "b", "transformer", encoder=tiny_encoder), progress=False)
    assert first.metrics == second.metrics
    assert [h["val_loss"] for h in first.history] == [h["val_loss"] for h in second.history]
    assert_same_tensors(adapter(first.bundle_path), adapter(second.bundle_path))
    other = train(
        make_config(tmp_path / "c", "transformer", encoder=tiny_encoder, seed=99), progress=False
    )
    assert [h["val_loss"] for h in other.history] != [h["val_loss"] for h in first.history]


# --- checkpoints and resume ------------------------------------------------------------------


def interrupt_at_training_batch(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Raise KeyboardInterrupt when the training loop encodes its ``call``-th batch
    (validation scoring does not go through ``encode``)."""
    from kocscope.models.modeling import TransformerPostModel

    original = TransformerPostModel.encode
    calls = {"n": 0}

    def encode(self: Any, texts: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, texts)

    monkeypatch.setattr(TransformerPostModel, "encode", encode)


def test_resume_continues_and_matches_an_uninterrupted_run(
    tmp_path: Path, tiny_encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"eval_every_steps": 4, "checkpoint_every_steps": 3}
    reference = train(
        make_config(tmp_path / "ref", "transformer", encoder=tiny_encoder, **settings),
        progress=False,
    )

    config = make_config(tmp_path / "cut", "transformer", encoder=tiny_encoder, **settings)
    with monkeypatch.context() as patch:
        interrupt_at_training_batch(
            patch, call=8
        )  # dies in step 8; checkpoints exist for steps 3, 4, 6
        with pytest.raises(KeyboardInterrupt):
            train(config, progress=False)
    state = json.loads(
        (Path(config.output) / "checkpoint" / "state.json").read_text(encoding="utf-8")
    )
    assert (state["loop"]["step"], state["loop"]["epoch"], state["loop"]["batch"]) == (6, 1, 1)
    assert not (Path(config.output) / "model").exists()

    resumed = train(config, resume=True, progress=False)
    assert resumed.resumed_from_step == 6 and resumed.steps == reference.steps == 10
    assert resumed.history == reference.history
    assert resumed.metrics == reference.metrics
    assert_same_tensors(adapter(resumed.bundle_path), adapter(reference.bundle_path))


def test_resume_refuses_other_settings_and_missing_checkpoints(
    tmp_path: Path, tiny_encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, "transformer", encoder=tiny_encoder, eval_every_steps=2)
    with pytest.raises(TrainingError, match="no checkpoint to resume from"):
        train(config, resume=True, progress=False)
    with monkeypatch.context() as patch:
        interrupt_at_training_batch(patch, call=4)
        with pytest.raises(KeyboardInterrupt):
            train(config, progress=False)
    changed = make_config(
        tmp_path, "transformer", encoder=tiny_encoder, eval_every_steps=2, lr=1e-3
    )
    with pytest.raises(TrainingError, match=r"training.lr: was 0.005, now 0.001"):
        train(changed, resume=True, progress=False)
    (Path(config.output) / "checkpoint" / "trainable.safetensors").write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="changed since the checkpoint was written"):
        train(config, resume=True, progress=False)


def test_resume_refuses_an_encoder_rebuilt_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same folder, other weights: adapters trained on the old encoder mean nothing on the new one."""
    encoder = tiny_models.build_tiny_encoder(tmp_path / "enc", VOCAB, hidden_size=16, intermediate_size=32)
    config = make_config(tmp_path / "run", "transformer", encoder=str(encoder), eval_every_steps=2)
    with monkeypatch.context() as patch:
        interrupt_at_training_batch(patch, call=4)
        with pytest.raises(KeyboardInterrupt):
            train(config, progress=False)
    tiny_models.build_tiny_encoder(tmp_path / "enc", VOCAB, seed=7, hidden_size=16, intermediate_size=32)
    with pytest.raises(TrainingError, match="base_encoder_fingerprint: was"):
        train(config, resume=True, progress=False)


def test_early_stopping_keeps_the_best_state(tmp_path: Path, tiny_encoder: str) -> None:
    # a learning rate far below float32 resolution: nothing changes, so nothing improves
    config = make_config(
        tmp_path,
        "transformer",
        encoder=tiny_encoder,
        lr=1e-20,
        epochs=3,
        eval_every_steps=1,
        early_stopping_patience=2,
    )
    result = train(config, progress=False)
    assert result.stopped_early and result.steps == 3 and result.best_step == 1
    assert [h["best"] for h in result.history] == [True, False, False]


def test_sampling_and_bce_seeding_loss(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(
        tmp_path,
        "transformer",
        encoder=tiny_encoder,
        class_imbalance="sampling",
        seeding_loss="bce",
        max_steps=3,
    )
    from kocscope.training.dataset import load_training_data

    data = load_training_data(config)
    fit = fit_estimator(config, data.train, data.validation)
    assert fit.steps == 3 and len(fit.history) == 1
    assert np.isfinite(fit.history[0]["val_loss"])


def test_lr_schedule_warms_up_then_decays() -> None:
    factors = [_lr_factor(s, total=10, warmup=2) for s in range(10)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == 1.0 and factors[-1] == pytest.approx(1 / 8)
    assert all(a >= b for a, b in itertools.pairwise(factors[1:]))


# --- going on from a trained model (training.init_from) --------------------------------------


def test_init_from_starts_where_the_saved_model_ended(tmp_path: Path, tiny_encoder: str) -> None:
    first = train(make_config(tmp_path / "a", "transformer", encoder=tiny_encoder), progress=False)
    # a learning rate far below float32 resolution: the run ends with the weights it started from
    still = dict(lr=1e-20, epochs=1, early_stopping_patience=0)
    went_on = train(
        make_config(tmp_path / "b", "transformer", encoder=tiny_encoder, init_from=str(first.bundle_path), **still),
        progress=False,
    )
    assert_same_tensors(adapter(went_on.bundle_path), adapter(first.bundle_path))
    # the starting weights were scored first, for the record, but only trained states are candidates
    assert [h["step"] for h in went_on.history] == [0, 5] and went_on.best_step == 5
    assert [h["best"] for h in went_on.history] == [False, True]
    fresh = train(make_config(tmp_path / "c", "transformer", encoder=tiny_encoder, **still), progress=False)
    assert not torch.equal(adapter(fresh.bundle_path)["promotion_head.weight"], adapter(first.bundle_path)["promotion_head.weight"])
    record = json.loads((went_on.bundle_path / "config.json").read_text(encoding="utf-8"))["training_run"]
    assert record["init_from"]["bundle"] == str(first.bundle_path)
    assert len(record["init_from"]["adapter_sha256"]) == 64
    assert record["init_from"]["device"] == "cpu" and record["init_from"]["train_seconds"] > 0
    card = (went_on.bundle_path / "README.md").read_text(encoding="utf-8")
    assert f"going on from run/model (sha256 {record['init_from']['adapter_sha256'][:12]}), itself trained on cpu in " in card
    # with a real learning rate it goes on learning from there: its first score is the saved model's best
    more = train(
        make_config(tmp_path / "d", "transformer", encoder=tiny_encoder, init_from=str(first.bundle_path), epochs=1),
        progress=False,
    )
    saved_best = next(h for h in first.history if h["step"] == first.best_step)
    assert more.history[0]["step"] == 0
    assert more.history[0]["val_pr_auc"] == pytest.approx(saved_best["val_pr_auc"], abs=1e-6)
    assert more.history[1]["step"] == 5 and more.history[1]["val_loss"] != more.history[0]["val_loss"]


def test_init_from_supplies_the_model_settings_the_config_leaves_out(tmp_path: Path, tiny_encoder: str) -> None:
    first = train(
        make_config(tmp_path / "a", "transformer", encoder=tiny_encoder, max_steps=1, settings={"lora_r": 3}),
        progress=False,
    )
    config = make_config(tmp_path / "b", "transformer", encoder=tiny_encoder, init_from=str(first.bundle_path), max_steps=1)
    for key in ("lora_r", "finetune", "base_encoder"):
        del config.model.settings[key]
    went_on = train(config, progress=False)
    saved = read_bundle_config(went_on.bundle_path)
    assert (saved["lora_r"], saved["finetune"], saved["max_length"]) == (3, "lora", 16)


def test_init_from_refuses_what_does_not_fit(tmp_path: Path, tiny_encoder: str) -> None:
    first = train(make_config(tmp_path / "a", "transformer", encoder=tiny_encoder, max_steps=1), progress=False)
    other_rank = make_config(
        tmp_path / "b", "transformer", encoder=tiny_encoder, init_from=str(first.bundle_path), settings={"lora_r": 4}
    )
    with pytest.raises(ConfigError, match=r"training.init_from: .* other model settings: lora_r 2 \(this run: 4\)"):
        train(other_rank, progress=False)
    lexical = train(make_config(tmp_path / "lex", "lexical", settings=SMALL_LEXICAL), progress=False)
    with pytest.raises(ConfigError, match=r"holds a 'lexical' model; only a transformer's training goes on"):
        train(make_config(tmp_path / "c", "transformer", encoder=tiny_encoder, init_from=str(lexical.bundle_path)), progress=False)
    with pytest.raises(ConfigError, match=r"training.init_from: .*nowhere: not a model bundle directory"):
        train(make_config(tmp_path / "d", "transformer", encoder=tiny_encoder, init_from=str(tmp_path / "nowhere")), progress=False)
    with pytest.raises(ConfigError, match=r"training.init_from continues a transformer's training"):
        make_config(tmp_path / "e", "lexical", init_from=str(first.bundle_path))


# --- bad input fails before training -------------------------------------------------------------


def test_unknown_model_setting_lists_valid_ones(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(tmp_path, "transformer", encoder=tiny_encoder, settings={"lora_rank": 4})
    with pytest.raises(
        ConfigError,
        match=r"unknown setting\(s\) lora_rank for a transformer model; valid settings: .*lora_r",
    ):
        train(config, progress=False)


def test_invalid_model_setting_value(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(
        tmp_path, "transformer", encoder=tiny_encoder, settings={"long_text": "middle"}
    )
    with pytest.raises(ConfigError, match="model.settings: .*long_text must be one of"):
        train(config, progress=False)


def test_bad_labels_stop_before_any_training(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(tmp_path, "transformer", encoder=tiny_encoder)
    rows = make_rows(40, seed=1)
    rows[5]["label"] = "unsure"
    write_jsonl(Path(config.data.train[0]), rows)
    with pytest.raises(DataError, match="'unsure': 1"):
        train(config, progress=False)
    assert not Path(config.output).exists()


def test_output_folder_is_required(tmp_path: Path, tiny_encoder: str) -> None:
    config = make_config(tmp_path, "transformer", encoder=tiny_encoder)
    config.output = None
    with pytest.raises(ConfigError, match="no output folder"):
        train(config, progress=False)


# --- lexical ----------------------------------------------------------------------------------

SMALL_LEXICAL = {"n_features": 2**12, "n_word_features": 2**10}


def test_lexical_end_to_end(tmp_path: Path) -> None:
    config = make_config(tmp_path, "lexical", settings=SMALL_LEXICAL)
    result = train(config, progress=False)
    assert result.steps == 1 and result.history == []
    assert result.metrics["roc_auc"] >= 0.9  # the toy task is separable by its words
    check_bundle_reproduces_its_metrics(config, result)
    assert read_bundle_config(result.bundle_path)["class_weight"] == "balanced"


def test_lexical_class_imbalance_settings(tmp_path: Path) -> None:
    sampled = train(
        make_config(tmp_path / "s", "lexical", settings=SMALL_LEXICAL, class_imbalance="sampling"),
        progress=False,
    )
    assert read_bundle_config(sampled.bundle_path)["class_weight"] is None
    clash = make_config(tmp_path / "c", "lexical", settings={**SMALL_LEXICAL, "class_weight": None})
    with pytest.raises(
        ConfigError, match="class_weight=None contradicts training.class_imbalance='weights'"
    ):
        train(clash, progress=False)
    bad = make_config(tmp_path / "b", "lexical", settings={"ngram_range": [3, 1]})
    with pytest.raises(ConfigError, match="model.settings: .*ngram_range"):
        train(bad, progress=False)


# --- real corpus and real encoder (integration) ----------------------------------------------------

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "train_config.yaml"


def zhihu_sample(source: Path, n_pos: int, n_neg: int, target: Path) -> str:
    """A few real posts copied into a temp file (never into the repo)."""
    rows = [
        json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    picked = [r for r in rows if r["label"] == 1][:n_pos] + [r for r in rows if r["label"] == 0][
        :n_neg
    ]
    return write_jsonl(
        target, [{k: r[k] for k in ("id", "topic", "label", "text")} for r in picked]
    )


@pytest.mark.integration
def test_example_config_reads_the_zhihu_corpus() -> None:
    from kocscope.training.dataset import load_training_data
    from kocscope.training.training_args import load_config

    if not ZHIHU.is_dir():
        pytest.skip(f"{ZHIHU} is not there")
    data = load_training_data(load_config(EXAMPLE_CONFIG))
    assert (len(data.train), data.train.n_promotion) == (10_747, 1_357)
    assert (len(data.validation), data.validation.n_promotion) == (1_530, 190)
    assert len(set(data.train.groups["topic"])) == 10


@pytest.mark.integration
def test_transformer_on_the_bundled_encoder(tmp_path: Path) -> None:
    if not ZHIHU.is_dir():
        pytest.skip(f"{ZHIHU} is not there")
    train_path = zhihu_sample(ZHIHU / "train.jsonl", 8, 16, tmp_path / "train.jsonl")
    val_path = zhihu_sample(ZHIHU / "val.jsonl", 6, 10, tmp_path / "val.jsonl")
    config = config_from_dict(
        {
            "data": {
                "train": [train_path],
                "validation": val_path,
                "positive_label": 1,
                "group_columns": ["topic"],
            },
            "model": {
                "kind": "transformer",
                "settings": {"max_length": 64, "finetune": "lora", "lora_layers": 2},
            },
            "training": {"epochs": 1, "batch_size": 8, "max_steps": 2, "lr": 1e-3},
            "output": str(tmp_path / "run"),
        }
    )
    result = train(config, progress=False)
    assert result.steps == 2 and result.metrics["n"] == 16
    check_bundle_reproduces_its_metrics(config, result)
