"""Heads-only training on cached window embeddings: the same model as the uncached path.

Uses the tiny random BERT and toy corpus of test_trainer (no real encoder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_trainer import (
    adapter,
    build_tiny_encoder,
    check_bundle_reproduces_its_metrics,
    make_config,
)

from kocscope.models.bundle import load_estimator
from kocscope.models.modeling import TransformerPostModel
from kocscope.training.dataset import load_training_data
from kocscope.training.embedding_cache import EmbeddingStore, embed_posts
from kocscope.training.trainer import fit_estimator, train
from kocscope.training.training_args import ConfigError

# max_length 8 leaves 4 text tokens a window, so the 6-word toy posts become 2 windows
WINDOWED = {"finetune": "heads", "long_text": "windows", "max_windows": 3, "max_length": 8}
LONG_TEXTS = [
    "i tried w1 w2 w3 w4 w5 coupon code",
    "my honest w7",
    " ".join(f"w{i}" for i in range(10, 21)) + " deal",
]


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def heads_config(tmp_path: Path, encoder: str, **settings: Any) -> Any:
    return make_config(
        tmp_path, "transformer", encoder=encoder, settings={**WINDOWED, **settings}, epochs=3
    )


def fit_both(tmp_path: Path, encoder: str, **settings: Any) -> tuple[Any, Any]:
    config = heads_config(tmp_path, encoder, **settings)
    data = load_training_data(config)
    cached = fit_estimator(config, data.train, data.validation, cache_embeddings=True)
    plain = fit_estimator(config, data.train, data.validation, cache_embeddings=False)
    return cached, plain


def trained_heads(fit: Any) -> dict[str, torch.Tensor]:
    params = dict(fit.estimator.module_.named_parameters())
    return {name: params[name].detach() for name in fit.estimator.adapter_names_}


@pytest.mark.parametrize(
    "settings",
    [
        {"dropout": 0.0, "window_pooling": "max"},
        {"dropout": 0.0, "window_pooling": "mean"},
        # dropout draws the same masks on both paths: same shapes, same RNG order
        {"dropout": 0.3, "window_pooling": "max"},
    ],
)
def test_cached_training_gives_the_uncached_model(
    tmp_path: Path, tiny_encoder: str, settings: dict[str, Any]
) -> None:
    cached, plain = fit_both(tmp_path, tiny_encoder, **settings)
    assert cached.steps == plain.steps == 15
    assert cached.embedding_cache["train"]["windows"] == 80  # 40 posts x 2 windows
    assert plain.embedding_cache is None
    a, b = trained_heads(cached), trained_heads(plain)
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0)
    fresh = TransformerPostModel(
        base_encoder=tiny_encoder, **{**WINDOWED, **settings}
    ).init_module()
    moved = any(not torch.allclose(a[n], dict(fresh.module_.named_parameters())[n]) for n in a)
    assert moved  # training changed the heads (the comparison is not of two untouched models)
    for ha, hb in zip(cached.history, plain.history):
        assert ha["val_loss"] == pytest.approx(hb["val_loss"], abs=1e-5)
    texts = LONG_TEXTS
    np.testing.assert_allclose(
        cached.estimator.predict_outputs(texts).logits,
        plain.estimator.predict_outputs(texts).logits,
        atol=1e-5,
    )


def test_frozen_encoder_stays_in_eval_mode_through_validation(tiny_encoder: str) -> None:
    model = TransformerPostModel(base_encoder=tiny_encoder, **WINDOWED).init_module()
    module = model.module_
    module.train()
    module.encoder.eval()
    model.predict_outputs(LONG_TEXTS)
    assert module.training and module.dropout.training and not module.encoder.training


def test_saved_bundle_scores_like_the_cached_heads(tmp_path: Path, tiny_encoder: str) -> None:
    config = heads_config(tmp_path, tiny_encoder, dropout=0.1)
    result = train(config, progress=False)
    check_bundle_reproduces_its_metrics(config, result)
    run = json.loads((result.bundle_path / "config.json").read_text(encoding="utf-8"))[
        "training_run"
    ]
    assert run["embedding_cache"]["validation"] == {
        "posts": 15,
        "windows": 30,
        "embedded": 30,
        "tokens": 30 * 8,  # every window is full: 4 text tokens, <s> </s> and "query :"
        "embedded_tokens": 30 * 8,
        "seconds": pytest.approx(run["embedding_cache"]["validation"]["seconds"]),
    }
    assert set(adapter(result.bundle_path)) == {
        "promotion_head.weight",
        "promotion_head.bias",
        "seeding_head.weight",
        "seeding_head.bias",
    }
    loaded = load_estimator(result.bundle_path)
    data = load_training_data(config)
    embeddings, _ = embed_posts(loaded, data.validation.texts)
    from_cache = embeddings.outputs(loaded.module_)
    scored = loaded.predict_outputs(data.validation.texts)
    np.testing.assert_allclose(from_cache.logits, scored.logits, atol=1e-5)
    np.testing.assert_allclose(from_cache.seeding, scored.seeding, atol=1e-5)

    again = train(config, progress=False)  # same output folder: every window comes from disk
    assert again.metrics == result.metrics
    run = json.loads((again.bundle_path / "config.json").read_text(encoding="utf-8"))[
        "training_run"
    ]
    assert run["embedding_cache"]["train"]["embedded"] == 0
    assert run["embedding_cache"]["validation"]["embedded"] == 0
    retrained = adapter(again.bundle_path)
    for name, tensor in adapter(result.bundle_path).items():
        assert torch.equal(tensor, retrained[name]), name


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_cached_outputs_match_predict_outputs(tiny_encoder: str, pooling: str) -> None:
    model = TransformerPostModel(
        base_encoder=tiny_encoder, **{**WINDOWED, "window_pooling": pooling}
    ).init_module()
    embeddings, info = embed_posts(model, LONG_TEXTS)
    assert info["windows"] == len(model.windows(LONG_TEXTS).input_ids) > len(LONG_TEXTS)
    got, want = embeddings.outputs(model.module_), model.predict_outputs(LONG_TEXTS)
    np.testing.assert_allclose(got.logits, want.logits, atol=1e-5)
    np.testing.assert_allclose(got.seeding, want.seeding, atol=1e-5)
    # a batch of posts in any order gives what encode + forward_batch gives
    posts = [2, 0]
    vectors, local = embeddings.batch(posts)
    with torch.no_grad():
        cached = model.module_.eval().pool_heads(vectors, local)
        direct = model.forward_batch(model.encode([LONG_TEXTS[i] for i in posts]))
    for x, y in zip(cached, direct):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_store_persists_and_strategies_share_windows(tmp_path: Path, tiny_encoder: str) -> None:
    logs: list[str] = []
    head = TransformerPostModel(base_encoder=tiny_encoder, **{**WINDOWED, "long_text": "head"})
    head.init_module()
    store = EmbeddingStore(tmp_path, head.base_encoder_fingerprint_, logs.append)
    first, info = embed_posts(head, LONG_TEXTS, store)
    assert info["embedded"] == info["windows"] == 3 and store.path.is_file()
    # the first window of "windows" is the head window; only the others are new
    windows = TransformerPostModel(base_encoder=tiny_encoder, **WINDOWED).init_module()
    reopened = EmbeddingStore(tmp_path, windows.base_encoder_fingerprint_, logs.append)
    assert len(reopened) == 3
    second, info = embed_posts(windows, LONG_TEXTS, reopened, log=logs.append)
    assert info["windows"] == 7 and info["embedded"] == 4
    heads_rows = second.offsets[:-1]
    torch.testing.assert_close(second.vectors[heads_rows], first.vectors, atol=1e-6, rtol=0)
    fresh, _ = embed_posts(windows, LONG_TEXTS)  # memory only: all computed again
    torch.testing.assert_close(second.vectors, fresh.vectors, atol=1e-5, rtol=0)
    assert [p.name for p in tmp_path.iterdir()] == [store.path.name]  # no temp files left
    assert logs[0] == "posts: 3 posts, 7 windows, 4 to embed"


def test_unusable_store_is_reported_and_rebuilt(tmp_path: Path, tiny_encoder: str) -> None:
    model = TransformerPostModel(base_encoder=tiny_encoder, **WINDOWED).init_module()
    fingerprint = model.base_encoder_fingerprint_
    embed_posts(model, LONG_TEXTS, EmbeddingStore(tmp_path, fingerprint))
    logs: list[str] = []
    other = EmbeddingStore(tmp_path, "sha256:" + "0" * 64, logs.append)
    assert len(other) == 0 and not logs  # another encoder: another file
    path = EmbeddingStore(tmp_path, fingerprint).path
    path.write_bytes(b"not safetensors")
    store = EmbeddingStore(tmp_path, fingerprint, logs.append)
    assert len(store) == 0
    assert len(logs) == 1 and str(path) in logs[0] and "unreadable embedding cache" in logs[0]
    _, info = embed_posts(model, LONG_TEXTS, store)
    assert info["embedded"] == info["windows"]
    assert len(EmbeddingStore(tmp_path, fingerprint)) == info["windows"]


def test_cache_needs_a_frozen_encoder(tmp_path: Path, tiny_encoder: str) -> None:
    config = heads_config(tmp_path, tiny_encoder, finetune="lora")
    data = load_training_data(config)
    with pytest.raises(ConfigError, match="cached embeddings need a frozen encoder.*'lora'"):
        fit_estimator(config, data.train, data.validation, cache_embeddings=True)
    config.training.cache_embeddings = True  # the config key asks the same as the argument
    with pytest.raises(ConfigError, match="cached embeddings need a frozen encoder.*'lora'"):
        fit_estimator(config, data.train, data.validation)
