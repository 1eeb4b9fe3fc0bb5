"""TransformerPostModel on a tiny random BERT: shapes, pooling, strategies, scopes, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kocscope.models.long_text import STRATEGIES
from kocscope.models.lora import LoRALinear
from kocscope.models.modeling import TransformerPostModel

import tiny_models  # tests/ is on sys.path under pytest

PROMO_WORDS = ["buy", "link", "code", "discount", "sponsored", "ad", "now", "coupon"]
GENUINE_WORDS = ["i", "my", "tried", "honest", "meh", "love", "week", "returned"]
PRODUCTS = ["cream", "phone", "shoes", "coffee", "book", "lamp"]
VOCAB = ["<s>", "<pad>", "</s>", "<unk>", "query", ":", *PROMO_WORDS, *GENUINE_WORDS, *PRODUCTS] + [
    f"w{i}" for i in range(300)
]


def build_tiny_encoder(path: Path, seed: int = 0, **config: int) -> Path:
    return tiny_models.build_tiny_encoder(path, VOCAB, seed, **config)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder")))


def make_model(base: str, seed: int = 0, **settings) -> TransformerPostModel:
    settings = {"max_length": 16, "dropout": 0.0, "lora_dropout": 0.0, **settings}
    torch.manual_seed(seed)
    return TransformerPostModel(base_encoder=base, **settings).init_module()


def long_text(n: int, last: str = "coupon") -> str:
    return " ".join(f"w{i % 300}" for i in range(n - 1)) + f" {last}"


def test_forward_shapes_and_ranges(tiny_encoder: str) -> None:
    model = make_model(tiny_encoder, long_text="windows", max_windows=3)
    texts = ["i love my cream", long_text(60), "buy now link"]
    batch = model.encode(texts)
    assert set(batch) == {"input_ids", "attention_mask", "post_index"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[1] <= 16
    assert batch["post_index"].tolist()[0] == 0 and batch["post_index"].tolist()[-1] == 2
    logits, seeding = model.forward_batch(batch)
    assert logits.shape == seeding.shape == (3,)
    assert torch.all((seeding >= 0) & (seeding <= 1))
    out = model.predict_outputs(texts)
    assert out.logits.shape == out.seeding.shape == (3,)
    assert model.predict_proba(texts).shape == (3, 2)
    assert set(model.predict(texts)) <= {"genuine", "promotion"}


def test_mean_pooling_ignores_padding(tiny_encoder: str) -> None:
    model = make_model(tiny_encoder, long_text="head")
    short = "i tried the coffee"
    alone = model.predict_outputs([short])
    # one batch of two: the short text is padded to the long one's length
    padded = model.predict_outputs([short, long_text(40)], batch_size=2)
    batch = model.encode([short, long_text(40)])
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # really padded
    np.testing.assert_allclose(padded.logits[0], alone.logits[0], atol=1e-5)
    np.testing.assert_allclose(padded.seeding[0], alone.seeding[0], atol=1e-5)
    model.module_.eval()
    with torch.no_grad():
        one = model.module_.embed(
            **{
                k: v[:1, : int(batch["attention_mask"][0].sum())]
                for k, v in batch.items()
                if k != "post_index"
            }
        )
        both = model.module_.embed(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(both[0], one[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_short_text_identical_under_every_strategy(tiny_encoder: str, pooling: str) -> None:
    text = "sponsored post buy the lamp now"
    outputs, inputs = [], []
    for strategy in STRATEGIES:
        model = make_model(tiny_encoder, long_text=strategy, window_pooling=pooling)
        inputs.append(model.encode([text]))
        outputs.append(model.predict_outputs([text]))
    for batch, out in zip(inputs[1:], outputs[1:]):
        assert all(torch.equal(batch[k], inputs[0][k]) for k in batch)
        assert torch.equal(torch.from_numpy(out.logits), torch.from_numpy(outputs[0].logits))
        assert torch.equal(torch.from_numpy(out.seeding), torch.from_numpy(outputs[0].seeding))


def test_head_input_matches_plain_tokenization(tiny_encoder: str) -> None:
    model = make_model(tiny_encoder, long_text="head")
    text = "i love my shoes"
    expected = model.tokenizer_("query: " + text)["input_ids"]
    assert model.encode([text])["input_ids"][0].tolist() == expected


def test_windows_and_head_tail_reach_the_end_of_a_long_text(tiny_encoder: str) -> None:
    text = long_text(80, last="coupon")
    head = make_model(tiny_encoder, long_text="head")
    coupon = head.tokenizer_.convert_tokens_to_ids("coupon")
    assert coupon not in head.encode([text])["input_ids"][0].tolist()
    for strategy in ("windows", "head_tail"):
        batch = make_model(tiny_encoder, long_text=strategy, max_windows=4).encode([text])
        last_window = batch["input_ids"][-1][batch["attention_mask"][-1].bool()].tolist()
        assert last_window[-2:] == [coupon, 2]  # the cue, then </s>
        assert len(last_window) == 16


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_window_pooling_merges_windows_per_post(tiny_encoder: str, pooling: str) -> None:
    model = make_model(tiny_encoder, long_text="windows", window_pooling=pooling, max_windows=3)
    batch = model.encode([long_text(50), "my lamp"])
    assert batch["post_index"].tolist() == [0, 0, 0, 1]
    module = model.module_.eval()
    with torch.no_grad():
        logits, seeding = model.forward_batch(batch)
        pooled = module.embed(batch["input_ids"], batch["attention_mask"])
        if pooling == "max":
            per_window = module.heads(pooled)
            want = [torch.stack([v[:3].max(), v[3]]) for v in per_window]
        else:
            want = list(module.heads(torch.stack([pooled[:3].mean(0), pooled[3]])))
    torch.testing.assert_close(logits, want[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(seeding, want[1], atol=1e-6, rtol=0)


def test_predict_outputs_keeps_input_order_across_batches(tiny_encoder: str) -> None:
    model = make_model(tiny_encoder, long_text="windows", max_windows=2)
    texts = [long_text(40), "my cream", long_text(25, "ad"), "buy", "", long_text(12)]
    singles = np.array([model.predict_outputs([t]).logits[0] for t in texts])
    for kwargs in ({}, {"batch_size": 1}, {"batch_size": 4}):
        np.testing.assert_allclose(
            model.predict_outputs(texts, **kwargs).logits, singles, atol=1e-5
        )
    model.batch_tokens = 20  # forces one post per batch by the token budget
    np.testing.assert_allclose(model.predict_outputs(texts).logits, singles, atol=1e-5)
    assert model.predict_outputs([]).logits.shape == (0,)


def test_token_budget_follows_the_device_unless_set(tiny_encoder: str) -> None:
    from kocscope.models.modeling import ACCELERATOR_BATCH_TOKENS, CPU_BATCH_TOKENS

    model = make_model(tiny_encoder)
    assert model.batch_tokens is None and model.token_budget() == CPU_BATCH_TOKENS
    model.module_.to("meta")  # any non-CPU device: a GPU wants big batches
    assert model.token_budget() == ACCELERATOR_BATCH_TOKENS
    model.batch_tokens = 300
    assert model.token_budget() == 300
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match="batch_tokens must be an int >= 1 or None"):
            make_model(tiny_encoder, batch_tokens=bad)


def _frozen_embeddings(model: TransformerPostModel) -> bool:
    return not model.module_.encoder.get_input_embeddings().weight.requires_grad


def test_heads_scope_trains_only_the_heads(tiny_encoder: str) -> None:
    model = make_model(tiny_encoder, finetune="heads")
    names = {n for n, p in model.module_.named_parameters() if p.requires_grad}
    assert names == {
        "promotion_head.weight",
        "promotion_head.bias",
        "seeding_head.weight",
        "seeding_head.bias",
    }
    assert len(model.trainable_parameters()) == 4 and _frozen_embeddings(model)


def test_lora_scope_trains_lora_and_heads_only(tiny_encoder: str) -> None:
    model = make_model(tiny_encoder, finetune="lora", lora_r=4, lora_layers=1)
    names = {n for n, p in model.module_.named_parameters() if p.requires_grad}
    lora = {n for n in names if "lora_" in n}
    assert lora == {
        f"encoder.encoder.layer.1.attention.self.{t}.lora_{m}"
        for t in ("query", "value")
        for m in "AB"
    }
    assert names - lora == {
        "promotion_head.weight",
        "promotion_head.bias",
        "seeding_head.weight",
        "seeding_head.bias",
    }
    assert set(model.adapter_names_) == names and _frozen_embeddings(model)
    assert not isinstance(model.module_.encoder.encoder.layer[0].attention.self.query, LoRALinear)


def test_top_layers_scope_unfreezes_top_k_layers(tiny_encoder: str) -> None:
    model = make_model(tiny_encoder, finetune="top_layers", top_layers=1)
    names = {n for n, p in model.module_.named_parameters() if p.requires_grad}
    encoder_names = {n for n in names if n.startswith("encoder.")}
    assert encoder_names and all(n.startswith("encoder.encoder.layer.1.") for n in encoder_names)
    assert not any(n.startswith("encoder.encoder.layer.0.") or "embeddings" in n for n in names)
    assert _frozen_embeddings(model)


def test_fresh_lora_leaves_outputs_unchanged(tiny_encoder: str) -> None:
    texts = ["i love my cream", "buy now link code"]
    plain = make_model(tiny_encoder, finetune="heads").predict_outputs(texts)
    lora = make_model(tiny_encoder, finetune="lora").predict_outputs(texts)
    assert torch.equal(torch.from_numpy(plain.logits), torch.from_numpy(lora.logits))


def toy_corpus(n: int = 16) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(n):
        promo = i % 2 == 0
        words = list(rng.choice(PROMO_WORDS if promo else GENUINE_WORDS, size=4)) + [
            str(rng.choice(PRODUCTS))
        ]
        texts.append(" ".join(words))
        labels.append(float(promo))
    y = torch.tensor(labels)
    return texts, y, y * 0.75


def train_steps(model: TransformerPostModel, steps: int = 20, lr: float = 2e-2) -> list[float]:
    texts, y, seed_target = toy_corpus()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
    model.module_.train()
    losses = []
    batch = model.encode(texts)
    for _ in range(steps):
        logits, seeding = model.forward_batch(batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, y
        ) + torch.nn.functional.mse_loss(seeding, seed_target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.module_.eval()
    return losses


@pytest.mark.parametrize(("finetune", "lr"), [("lora", 2e-2), ("top_layers", 5e-3)])
def test_training_smoke_lowers_the_loss(tiny_encoder: str, finetune: str, lr: float) -> None:
    model = make_model(tiny_encoder, finetune=finetune)
    frozen = model.module_.encoder.get_input_embeddings().weight.detach().clone()
    losses = train_steps(model, lr=lr)
    assert losses[-1] < 0.2 * losses[0]
    assert torch.equal(model.module_.encoder.get_input_embeddings().weight, frozen)
    texts, y, _ = toy_corpus()
    assert (model.predict(texts) == np.where(y.numpy() > 0, "promotion", "genuine")).mean() == 1.0


def test_merged_lora_predicts_like_unmerged(tiny_encoder: str) -> None:
    model = make_model(tiny_encoder, finetune="lora")
    train_steps(model, steps=5)
    texts = ["i love my cream", "buy now link code", long_text(30)]
    before = model.predict_outputs(texts)
    assert len(model.merge_lora()) == 4
    after = model.predict_outputs(texts)
    np.testing.assert_allclose(after.logits, before.logits, atol=1e-5)
    np.testing.assert_allclose(after.seeding, before.seeding, atol=1e-5)


def test_bad_inputs_and_settings_fail_clearly(tiny_encoder: str) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="init_module"):
        TransformerPostModel(base_encoder=tiny_encoder).predict_outputs(["x"])
    model = make_model(tiny_encoder)
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        model.predict_outputs(["ok", 3])
    with pytest.raises(TypeError, match="single string"):
        model.predict_outputs("just one")
    with pytest.raises(ValueError, match="batch_size"):
        model.predict_outputs(["ok"], batch_size=0)
    for bad, match in [
        ({"long_text": "middle"}, "long_text"),
        ({"finetune": "all"}, "finetune"),
        ({"window_pooling": "sum"}, "window_pooling"),
        ({"max_length": 100}, "exceeds the 64 positions"),
        ({"top_layers": 5, "finetune": "top_layers"}, "top_layers 5 exceeds"),
        ({"lora_targets": ("nope",)}, "no nn.Linear matches"),
        ({"max_length": 5, "text_prefix": "query: query: query:"}, "no room for text"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_model(tiny_encoder, **bad)


def test_get_params_round_trips_settings(tiny_encoder: str) -> None:
    from sklearn.base import clone

    model = TransformerPostModel(base_encoder=tiny_encoder, long_text="windows", lora_r=4)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "module_")
