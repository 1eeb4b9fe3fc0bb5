"""Saving and loading TransformerPostModel bundles: exact round trips and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import test_modeling
import torch
from test_modeling import build_tiny_encoder, long_text, make_model, train_steps

from kocscope.models.bundle import BundleError, load_estimator, save_bundle
from kocscope.models.modeling import ADAPTER_FILE, TransformerPostModel

tiny_encoder = test_modeling.tiny_encoder  # the shared session fixture

TEXTS = [
    "i love my cream",
    "buy now link code discount",
    "",
    long_text(70, "coupon"),
    "sponsored ad shoes",
]


def trained(base: str, **settings) -> TransformerPostModel:
    model = make_model(base, **settings)
    train_steps(model, steps=3, lr=1e-2)
    model.set_calibration(a=0.8, b=-0.3, threshold=0.42)
    return model


def assert_same_outputs(a: TransformerPostModel, b: TransformerPostModel) -> None:
    """Bit-identical, except that a loaded LoRA bundle has its adapters merged into the
    weights, which only reorders floating-point sums."""
    x, y = a.predict_outputs(TEXTS), b.predict_outputs(TEXTS)
    if "lora" in (a.finetune, b.finetune):
        np.testing.assert_allclose(x.logits, y.logits, rtol=0, atol=1e-5)
        np.testing.assert_allclose(x.seeding, y.seeding, rtol=0, atol=1e-5)
        return
    assert torch.equal(torch.from_numpy(x.logits), torch.from_numpy(y.logits))
    assert torch.equal(torch.from_numpy(x.seeding), torch.from_numpy(y.seeding))


@pytest.mark.parametrize(
    "settings",
    [
        {"finetune": "lora", "long_text": "windows", "window_pooling": "mean"},
        {"finetune": "heads", "long_text": "head"},
        {"finetune": "top_layers", "top_layers": 1, "long_text": "head_tail", "head_ratio": 0.5},
    ],
)
def test_round_trip_reproduces_outputs(tiny_encoder: str, tmp_path: Path, settings: dict) -> None:
    model = trained(tiny_encoder, **settings)
    model.metrics_ = {"f1": 0.5}
    model.save_pretrained(tmp_path / "bundle")
    loaded = TransformerPostModel.from_pretrained(tmp_path / "bundle")
    assert_same_outputs(model, loaded)
    assert loaded.get_params() == model.get_params()
    assert loaded.calibration_config() == model.calibration_config()
    np.testing.assert_array_equal(loaded.predict(TEXTS), model.predict(TEXTS))
    assert loaded.metrics_ == {"f1": 0.5}
    if settings["finetune"] == "lora":  # folded in at load, so scoring pays nothing for the adapters
        assert loaded.merge_lora() == []
    generic = load_estimator(tmp_path / "bundle")
    assert isinstance(generic, TransformerPostModel)
    assert_same_outputs(model, generic)


def test_config_records_what_the_model_needs(tiny_encoder: str, tmp_path: Path) -> None:
    model = trained(tiny_encoder, lexicon_version="lex-1")
    model.save_pretrained(tmp_path / "b")
    config = json.loads((tmp_path / "b" / "config.json").read_text(encoding="utf-8"))
    assert config["kind"] == "transformer" and config["label_map"] == {"genuine": 0, "promotion": 1}
    assert config["base_encoder"] == tiny_encoder and config["base_encoder_fingerprint"].startswith(
        "sha256:"
    )
    assert (
        config["finetune"] == "lora"
        and config["lora_r"] == 8
        and config["lora_targets"] == ["query", "value"]
    )
    assert (
        config["calibration"] == {"method": "platt", "a": 0.8, "b": -0.3}
        and config["threshold"] == 0.42
    )
    assert config["lexicon_version"] == "lex-1" and config["text_prefix"] == "query: "
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "README.md",
        ADAPTER_FILE,
        "config.json",
        "manifest.json",
    ]


def test_adapter_holds_only_trainable_tensors(tiny_encoder: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    model = trained(tiny_encoder, finetune="lora")
    model.save_pretrained(tmp_path / "b")
    keys = set(load_file(str(tmp_path / "b" / ADAPTER_FILE)))
    assert (
        keys
        == set(model.adapter_names_)
        == {n for n, p in model.module_.named_parameters() if p.requires_grad}
    )
    assert all("lora_" in k or k.startswith(("promotion_head.", "seeding_head.")) for k in keys)
    assert not any("embeddings" in k or k.endswith("query.base.weight") for k in keys)


def test_adapter_on_e5_small_dims_is_small(tmp_path: Path) -> None:
    """LoRA r=8 on query+value of all 12 layers + heads, at e5-small's sizes (vocab cut: it is frozen, not saved)."""
    base = build_tiny_encoder(
        tmp_path / "e5-shaped",
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    )
    model = TransformerPostModel(base_encoder=str(base), finetune="lora", lora_r=8).init_module()
    n_params = sum(p.numel() for p in model.trainable_parameters())
    assert n_params == 12 * 2 * (8 * 384 + 384 * 8) + 2 * (384 + 1) == 148_226
    model.save_pretrained(tmp_path / "b")
    size = (tmp_path / "b" / ADAPTER_FILE).stat().st_size
    assert 4 * n_params < size < 4 * n_params + 20_000  # fp32 tensors plus the safetensors header
    assert size < 1_000_000


def test_tampered_adapter_is_refused(tiny_encoder: str, tmp_path: Path) -> None:
    trained(tiny_encoder).save_pretrained(tmp_path / "b")
    adapter = tmp_path / "b" / ADAPTER_FILE
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 0xFF
    adapter.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{ADAPTER_FILE}: sha256 does not match"):
        TransformerPostModel.from_pretrained(tmp_path / "b")


def test_missing_adapter_is_refused(tiny_encoder: str, tmp_path: Path) -> None:
    trained(tiny_encoder).save_pretrained(tmp_path / "b")
    (tmp_path / "b" / ADAPTER_FILE).unlink()
    with pytest.raises(BundleError, match=f"missing file {ADAPTER_FILE}"):
        load_estimator(tmp_path / "b")


def test_wrong_kind_is_refused(tmp_path: Path) -> None:
    save_bundle(tmp_path / "lex", {"kind": "lexical"}, lambda tmp: None)
    with pytest.raises(BundleError, match="holds a 'lexical' model, not a 'transformer' model"):
        TransformerPostModel.from_pretrained(tmp_path / "lex")


def rewrite(bundle: Path, target: Path, edit_config=None, edit_tensors=None) -> Path:
    """A consistent bundle (fresh manifest) with edited contents: tests the checks past the sha256."""
    from safetensors.torch import load_file, save_file

    config = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    config.pop("format")
    tensors = load_file(str(bundle / ADAPTER_FILE))
    if edit_config:
        edit_config(config)
    if edit_tensors:
        edit_tensors(tensors)
    return save_bundle(target, config, lambda tmp: save_file(tensors, str(tmp / ADAPTER_FILE)))


def test_adapter_keys_are_checked_strictly(tiny_encoder: str, tmp_path: Path) -> None:
    trained(tiny_encoder).save_pretrained(tmp_path / "b")
    name = "promotion_head.weight"
    rewrite(tmp_path / "b", tmp_path / "missing", edit_tensors=lambda t: t.pop(name))
    with pytest.raises(
        BundleError, match=f"missing \\['{name}'\\] \\(1\\), unexpected \\[\\] \\(0\\)"
    ):
        TransformerPostModel.from_pretrained(tmp_path / "missing")
    rewrite(
        tmp_path / "b",
        tmp_path / "extra",
        edit_tensors=lambda t: t.update(
            {"encoder.embeddings.word_embeddings.weight": torch.zeros(2, 2)}
        ),
    )
    with pytest.raises(
        BundleError, match="unexpected \\['encoder.embeddings.word_embeddings.weight'\\]"
    ):
        TransformerPostModel.from_pretrained(tmp_path / "extra")
    rewrite(
        tmp_path / "b",
        tmp_path / "shape",
        edit_tensors=lambda t: t.update({name: torch.zeros(1, 3)}),
    )
    with pytest.raises(
        BundleError, match=f"tensor {name} has shape \\(1, 3\\), the model expects \\(1, 32\\)"
    ):
        TransformerPostModel.from_pretrained(tmp_path / "shape")
    rewrite(tmp_path / "b", tmp_path / "scope", edit_config=lambda c: c.update(finetune="heads"))
    with pytest.raises(BundleError, match="do not fit finetune='heads'"):
        TransformerPostModel.from_pretrained(tmp_path / "scope")


def test_bad_config_fields_are_refused(tiny_encoder: str, tmp_path: Path) -> None:
    trained(tiny_encoder).save_pretrained(tmp_path / "b")
    rewrite(tmp_path / "b", tmp_path / "nofield", edit_config=lambda c: c.pop("max_length"))
    with pytest.raises(BundleError, match="config.json: missing field\\(s\\) max_length"):
        TransformerPostModel.from_pretrained(tmp_path / "nofield")
    rewrite(
        tmp_path / "b", tmp_path / "badvalue", edit_config=lambda c: c.update(long_text="middle")
    )
    with pytest.raises(
        BundleError, match="config.json: TransformerPostModel: long_text must be one of"
    ):
        TransformerPostModel.from_pretrained(tmp_path / "badvalue")
    rewrite(
        tmp_path / "b",
        tmp_path / "labels",
        edit_config=lambda c: c.update(label_map={"promotion": 0, "genuine": 1}),
    )
    with pytest.raises(BundleError, match="field label_map"):
        TransformerPostModel.from_pretrained(tmp_path / "labels")
    rewrite(tmp_path / "b", tmp_path / "long", edit_config=lambda c: c.update(max_length=65))
    with pytest.raises(BundleError, match="config.json: max_length 65 exceeds the 64 positions"):
        TransformerPostModel.from_pretrained(tmp_path / "long")


def test_unresolvable_base_encoder_is_a_clear_error(tmp_path: Path) -> None:
    base = build_tiny_encoder(tmp_path / "enc")
    trained(str(base)).save_pretrained(tmp_path / "b")
    shutil.rmtree(base)
    with pytest.raises(BundleError, match=f"base encoder '{base}' cannot be resolved"):
        TransformerPostModel.from_pretrained(tmp_path / "b")


def test_base_encoder_fingerprint_mismatch(tiny_encoder: str, tmp_path: Path) -> None:
    model = trained(tiny_encoder)
    model.save_pretrained(tmp_path / "b")
    other = str(build_tiny_encoder(tmp_path / "other", seed=1))  # same shapes, other weights
    with pytest.raises(BundleError) as err:
        TransformerPostModel.from_pretrained(tmp_path / "b", base_encoder=other)
    message = str(err.value)
    assert (
        model.base_encoder_fingerprint_ in message and tiny_encoder in message and other in message
    )
    assert "allow_base_mismatch" in message
    with pytest.warns(UserWarning, match="loading anyway"):
        loaded = TransformerPostModel.from_pretrained(
            tmp_path / "b", base_encoder=other, allow_base_mismatch=True
        )
    assert (
        loaded.base_encoder == other
        and loaded.base_encoder_fingerprint_ != model.base_encoder_fingerprint_
    )


def test_moved_base_encoder_loads_by_override(tiny_encoder: str, tmp_path: Path) -> None:
    model = trained(tiny_encoder)
    model.save_pretrained(tmp_path / "b")
    moved = shutil.copytree(tiny_encoder, tmp_path / "moved")
    loaded = TransformerPostModel.from_pretrained(tmp_path / "b", base_encoder=str(moved))
    assert_same_outputs(model, loaded)


@pytest.mark.integration
def test_real_e5_small_round_trip(tmp_path: Path) -> None:
    model = TransformerPostModel(finetune="lora", lora_r=8, max_length=64).init_module()
    with torch.no_grad():
        model.module_.promotion_head.bias.fill_(0.25)
    model.save_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / ADAPTER_FILE).stat().st_size < 1_000_000
    loaded = load_estimator(tmp_path / "b")
    texts = ["这款面霜真的闭眼入，评论区上链接", "I returned the lamp, it broke after a week."]
    a, b = model.predict_outputs(texts), loaded.predict_outputs(texts)
    assert torch.equal(torch.from_numpy(a.logits), torch.from_numpy(b.logits))
