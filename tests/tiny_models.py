"""Tiny random encoders for unit tests, so no test needs the 470 MB real one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def build_tiny_encoder(path: Path, vocab: Sequence[str], seed: int = 0, **config: int) -> Path:
    """A random 2-layer BERT plus a word-level fast tokenizer (XLM-R style ``<s> $A </s>``) in ``path``.

    ``vocab`` must start with ``<s>``, ``<pad>``, ``</s>``, ``<unk>`` (ids 0-3, as in XLM-R).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        cls_token="<s>",
        sep_token="</s>",
    ).save_pretrained(str(path))
    settings = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "pad_token_id": 1,
        **config,
    }
    torch.manual_seed(seed)
    BertModel(BertConfig(**settings), add_pooling_layer=False).save_pretrained(str(path))
    return path
