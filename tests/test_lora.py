"""The self-written LoRA: zero start, matching rule, state dict, merging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kocscope.models.lora import LoRALinear, apply_lora, lora_state_dict, merge_lora


def tiny_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    return BertModel(config, add_pooling_layer=False).eval()


def randomize_b(module: nn.Module) -> None:
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, LoRALinear):
                sub.lora_B.normal_(std=0.5)


def test_fresh_lora_linear_is_the_base_layer() -> None:
    torch.manual_seed(0)
    base = nn.Linear(8, 5)
    x = torch.randn(3, 8)
    want = base(x)
    layer = LoRALinear(base, r=2, alpha=4.0)
    assert torch.equal(layer(x), want)
    assert torch.count_nonzero(layer.lora_B) == 0 and torch.count_nonzero(layer.lora_A) > 0
    assert layer.scaling == 2.0
    assert not base.weight.requires_grad and not base.bias.requires_grad


def test_lora_linear_adds_the_scaled_low_rank_update() -> None:
    torch.manual_seed(1)
    layer = LoRALinear(nn.Linear(6, 4), r=3, alpha=6.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(2, 6)
    want = layer.base(x) + 2.0 * x @ (layer.lora_B @ layer.lora_A).T
    torch.testing.assert_close(layer(x), want)
    layer(x).sum().backward()
    assert (
        layer.lora_A.grad is not None
        and layer.lora_B.grad is not None
        and layer.base.weight.grad is None
    )


def test_lora_linear_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="rank r"):
        LoRALinear(nn.Linear(2, 2), r=0, alpha=1.0)
    with pytest.raises(ValueError, match="dropout"):
        LoRALinear(nn.Linear(2, 2), r=1, alpha=1.0, dropout=1.0)


def test_apply_lora_wraps_query_and_value_of_chosen_layers() -> None:
    model = tiny_bert()
    names = apply_lora(model, r=2, alpha=4.0, layers=[1, 2])
    assert names == [
        f"encoder.layer.{i}.attention.self.{t}" for i in (1, 2) for t in ("query", "value")
    ]
    assert isinstance(model.encoder.layer[2].attention.self.value, LoRALinear)
    assert not isinstance(model.encoder.layer[0].attention.self.query, LoRALinear)
    assert not isinstance(model.encoder.layer[1].attention.self.key, LoRALinear)
    assert set(lora_state_dict(model)) == {f"{n}.lora_{m}" for n in names for m in "AB"}


def test_target_rule_tells_ffn_output_from_attention_output() -> None:
    model = tiny_bert()
    names = apply_lora(model, target_names=("output.dense",), layers=[0])
    assert names == ["encoder.layer.0.output.dense"]
    model = tiny_bert()
    names = apply_lora(
        model, target_names=("attention.output.dense", "intermediate.dense", "key"), layers=[2]
    )
    assert names == [
        f"encoder.layer.2.{n}"
        for n in ("attention.self.key", "attention.output.dense", "intermediate.dense")
    ]


def test_apply_lora_fails_loudly() -> None:
    model = tiny_bert()
    with pytest.raises(ValueError, match="no nn.Linear matches targets \\['q_lin'\\]"):
        apply_lora(model, target_names=("q_lin",))
    with pytest.raises(ValueError, match="in layers \\[7\\]"):
        apply_lora(model, layers=[7])
    with pytest.raises(TypeError, match="not nn.Linear"):
        apply_lora(model, target_names=("LayerNorm",))
    apply_lora(model)
    with pytest.raises(TypeError, match="already carries"):
        apply_lora(model)


def test_fresh_adapters_leave_the_encoder_unchanged() -> None:
    ids = torch.randint(0, 50, (2, 7))
    model = tiny_bert()
    with torch.no_grad():
        before = model(input_ids=ids).last_hidden_state
        apply_lora(model, target_names=("query", "key", "value", "dense"), r=4, alpha=8.0)
        after = model(input_ids=ids).last_hidden_state
    assert torch.equal(before, after)


def test_merge_equals_unmerged_and_keeps_the_adapter() -> None:
    ids = torch.randint(0, 50, (3, 9))
    model = tiny_bert()
    apply_lora(model, target_names=("query", "value", "intermediate.dense"), r=4, alpha=8.0)
    randomize_b(model)
    saved = {k: v.detach().clone() for k, v in lora_state_dict(model).items()}
    with torch.no_grad():
        unmerged = model(input_ids=ids).last_hidden_state
        assert len(merge_lora(model)) == 9
        merged = model(input_ids=ids).last_hidden_state
    plain = tiny_bert()(input_ids=ids).last_hidden_state
    assert not torch.equal(unmerged, plain)  # the update matters
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=0)
    assert all(torch.equal(v, saved[k]) for k, v in lora_state_dict(model).items())
    assert merge_lora(model) == []  # merging twice would add the update twice


def test_merged_layer_refuses_to_train() -> None:
    layer = LoRALinear(nn.Linear(4, 4), r=2, alpha=2.0)
    layer.merge()
    layer.train()
    with pytest.raises(RuntimeError, match="merged"):
        layer(torch.randn(1, 4))
    with torch.no_grad():
        assert layer(torch.randn(1, 4)).shape == (1, 4)
