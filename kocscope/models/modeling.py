"""The transformer post model: a pretrained encoder with two small heads.

One encoder pass per post window feeds a promotion head (one logit, calibrated
by :class:`~kocscope.models.base.PostEstimator`) and a seeding head (sigmoid,
0-1). Posts are mean-pooled over their real tokens, the pooling e5 was trained
with. Fine-tuning touches only the heads, LoRA adapters or the top layers,
never the word-embedding table (96M of e5-small's 118M parameters): it keeps a
CPU step affordable, and the bundle ships only those tensors. The frozen base
is rebuilt from its spec and checked against the fingerprint recorded at save.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from kocscope.models.base import LABELS, ModelOutputs, PostEstimator
from kocscope.models.bundle import CONFIG_FILE, BundleError, read_bundle_config, save_bundle
from kocscope.models.long_text import STRATEGIES, LongTextConfig, Windows, make_windows
from kocscope.models.lora import apply_lora, lora_state_dict, merge_lora

ADAPTER_FILE = "adapter.safetensors"
RUNTIMES = ("auto", "torch", "onnx")  # auto: ONNX Runtime when the bundle carries a graph
LABEL_MAP = {name: i for i, name in enumerate(LABELS)}
FINETUNE_SCOPES = ("heads", "lora", "top_layers")
WINDOW_POOLINGS = ("max", "mean")
# Token budget of a scoring batch when batch_tokens is None. On 2 CPU cores, e5-small ran
# 1.3-2.3x faster in 1,024-token batches than in 16,384-token ones, short posts and long alike
# (benchmarks/README.md); a GPU wants big batches.
CPU_BATCH_TOKENS = 1024
ACCELERATOR_BATCH_TOKENS = 16384
_HEADS = ("promotion_head.", "seeding_head.")


class PostModule(nn.Module):
    """Encoder + mean pooling + promotion and seeding heads, pooled per post.

    ``window_pooling`` merges the windows of one post: ``"max"`` takes the
    highest promotion logit and seeding over its windows (a cue anywhere
    counts), ``"mean"`` averages the window embeddings before the heads.
    """

    def __init__(self, encoder: nn.Module, dropout: float, window_pooling: str) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.promotion_head = nn.Linear(hidden, 1)
        self.seeding_head = nn.Linear(hidden, 1)
        self.window_pooling = window_pooling

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden states over real tokens: padding adds exact zeros."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dropout(pooled)
        return self.promotion_head(h).squeeze(-1), torch.sigmoid(self.seeding_head(h).squeeze(-1))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        post_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-post promotion logit and seeding; ``post_index`` maps windows to posts."""
        return self.pool_heads(self.embed(input_ids, attention_mask), post_index)

    def pool_heads(
        self, pooled: torch.Tensor, post_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Heads on window embeddings, merged per post; separate from :meth:`forward` so
        training on cached embeddings (a frozen encoder) pools exactly as the model does."""
        if post_index is None:
            return self.heads(pooled)
        n_posts = int(post_index.max()) + 1
        if self.window_pooling == "mean":
            sums = pooled.new_zeros(n_posts, pooled.shape[1]).index_add(0, post_index, pooled)
            counts = torch.bincount(post_index, minlength=n_posts).to(pooled.dtype).unsqueeze(1)
            return self.heads(sums / counts)
        logits, seeding = self.heads(pooled)

        def window_max(values: torch.Tensor) -> torch.Tensor:
            return values.new_zeros(n_posts).scatter_reduce(
                0, post_index, values, "amax", include_self=False
            )

        return window_max(logits), window_max(seeding)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode without autograd; afterwards every submodule gets back its own mode,
    so a frozen encoder kept in eval mode during training stays so."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.inference_mode():
            yield module
    finally:
        for m, training in modes:
            m.training = training


def _special_ids(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ids the tokenizer's template puts before and after a text (e.g. <s> ... </s>)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return tuple(full[:i]), tuple(full[i + len(bare) :])
    raise ValueError(
        f"cannot find the text inside the tokenizer's template output {full} (bare text {bare})"
    )


def _encoder_layers(encoder: nn.Module) -> tuple[str, nn.ModuleList]:
    """The encoder's list of transformer layers, found by its length, so any architecture works."""
    n = int(encoder.config.num_hidden_layers)
    for name, sub in encoder.named_modules():
        if isinstance(sub, nn.ModuleList) and len(sub) == n:
            return name, sub
    raise ValueError(f"cannot find the {n} transformer layers of {type(encoder).__name__}")


def _load_encoder(path: Path) -> nn.Module:
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    # The load report lists pooler weights we drop on purpose, and a progress bar per
    # load is noise in batch scoring: keep both off the console.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        try:
            return AutoModel.from_pretrained(
                str(path), add_pooling_layer=False, dtype=torch.float32
            )
        except TypeError:  # architectures without a pooler do not take the argument
            return AutoModel.from_pretrained(str(path), dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _onnx_record(record: Any, root: Path) -> dict[str, Any] | None:
    """The config's ``runtime`` record, checked: None for a torch bundle."""
    if record is None:
        return None
    where = root / CONFIG_FILE
    name = record.get("onnx_file") if isinstance(record, dict) else None
    if not isinstance(name, str) or record.get("engine") != "onnxruntime":
        raise BundleError(
            f"{where}: field runtime must name engine 'onnxruntime' and an onnx_file, got {record!r}"
        )
    if Path(name).name != name or not (root / name).is_file():
        raise BundleError(f"{where}: field runtime.onnx_file {name!r} is not a file of the bundle")
    return record


class TransformerPostModel(ClassifierMixin, PostEstimator, BaseEstimator):
    """Multi-task post model on a pretrained encoder; see the module docstring.

    Learned state (set by :meth:`init_module`, training, or :meth:`from_pretrained`):
    ``module_`` (the torch module), ``tokenizer_``, ``long_text_config_``,
    ``adapter_names_`` (the trainable tensors, which are also what is saved),
    ``base_encoder_fingerprint_``, and optionally ``metrics_`` / ``training_data_``.
    Engine state: ``runtime_`` ("auto" until the first prediction resolves it),
    ``onnx_runtime_`` (the bundle's ONNX record from ``kocscope optimize``, or None)
    and ``onnx_encoder_`` (the ORT session used in place of the torch encoder).
    """

    kind = "transformer"

    def __init__(
        self,
        base_encoder: str = "bundled:multilingual-e5-small",
        max_length: int = 256,
        long_text: str = "head_tail",
        head_ratio: float = 0.25,
        window_stride: int | None = None,
        max_windows: int = 4,
        window_pooling: str = "max",
        text_prefix: str = "query: ",
        finetune: str = "lora",
        lora_r: int = 8,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.1,
        lora_targets: Sequence[str] = ("query", "value"),
        lora_layers: int | None = None,
        top_layers: int = 2,
        dropout: float = 0.1,
        batch_tokens: int | None = None,
        lexicon_version: str | None = None,
    ) -> None:
        self.base_encoder = base_encoder
        self.max_length = max_length
        self.long_text = long_text
        self.head_ratio = head_ratio
        self.window_stride = window_stride
        self.max_windows = max_windows
        self.window_pooling = window_pooling
        self.text_prefix = text_prefix
        self.finetune = finetune
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_targets = lora_targets
        self.lora_layers = lora_layers
        self.top_layers = top_layers
        self.dropout = dropout
        self.batch_tokens = batch_tokens
        self.lexicon_version = lexicon_version

    # -- building ---------------------------------------------------------------
    def _check_params(self) -> None:
        need = self._need

        need(
            isinstance(self.base_encoder, str) and bool(self.base_encoder),
            f"base_encoder must be a non-empty spec, got {self.base_encoder!r}",
        )
        need(
            isinstance(self.max_length, int) and self.max_length >= 4,
            f"max_length must be an int >= 4, got {self.max_length!r}",
        )
        need(
            self.long_text in STRATEGIES,
            f"long_text must be one of {STRATEGIES}, got {self.long_text!r}",
        )
        need(
            self.window_pooling in WINDOW_POOLINGS,
            f"window_pooling must be one of {WINDOW_POOLINGS}, got {self.window_pooling!r}",
        )
        need(
            self.finetune in FINETUNE_SCOPES,
            f"finetune must be one of {FINETUNE_SCOPES}, got {self.finetune!r}",
        )
        need(
            isinstance(self.text_prefix, str),
            f"text_prefix must be a string, got {self.text_prefix!r}",
        )
        need(
            isinstance(self.lora_r, int) and self.lora_r >= 1,
            f"lora_r must be an int >= 1, got {self.lora_r!r}",
        )
        need(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha!r}")
        need(
            0.0 <= self.lora_dropout < 1.0,
            f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}",
        )
        need(
            not isinstance(self.lora_targets, str)
            and len(self.lora_targets) > 0
            and all(isinstance(t, str) for t in self.lora_targets),
            f"lora_targets must be a non-empty list of layer names, got {self.lora_targets!r}",
        )
        need(
            self.lora_layers is None
            or (isinstance(self.lora_layers, int) and self.lora_layers >= 1),
            f"lora_layers must be None (all) or an int >= 1, got {self.lora_layers!r}",
        )
        need(
            isinstance(self.top_layers, int) and self.top_layers >= 1,
            f"top_layers must be an int >= 1, got {self.top_layers!r}",
        )
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout!r}")
        need(
            self.batch_tokens is None
            or (
                isinstance(self.batch_tokens, int)
                and not isinstance(self.batch_tokens, bool)
                and self.batch_tokens >= 1
            ),
            f"batch_tokens must be an int >= 1 or None (by device), got {self.batch_tokens!r}",
        )

    def init_module(self) -> TransformerPostModel:
        """Build a fresh module and tokenizer from ``base_encoder`` (heads randomly initialised)."""
        from kocscope.models.base_encoder import encoder_fingerprint, resolve_base_encoder

        self._check_params()
        path = resolve_base_encoder(self.base_encoder)
        self._build(Path(path), encoder_fingerprint(self.base_encoder))
        return self

    def _build(self, path: Path, fingerprint: str) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        encoder = _load_encoder(path)
        positions = getattr(encoder.config, "max_position_embeddings", None)
        if positions is not None and self.max_length > positions:
            raise ValueError(
                f"max_length {self.max_length} exceeds the {positions} positions of base encoder {self.base_encoder!r}"
            )
        special_prefix, special_suffix = _special_ids(tokenizer)
        text_prefix = (
            tuple(tokenizer(self.text_prefix, add_special_tokens=False)["input_ids"])
            if self.text_prefix
            else ()
        )
        self.long_text_config_ = LongTextConfig(
            strategy=self.long_text,
            max_length=self.max_length,
            head_ratio=self.head_ratio,
            stride=self.window_stride,
            max_windows=self.max_windows,
            special_prefix=special_prefix,
            special_suffix=special_suffix,
            text_prefix=text_prefix,
        )
        module = PostModule(encoder, self.dropout, self.window_pooling)
        self.adapter_names_ = self._apply_scope(module)
        self.module_ = module
        self.tokenizer_ = tokenizer
        self.base_encoder_fingerprint_ = fingerprint
        self.runtime_ = "auto"
        self.onnx_runtime_: dict[str, Any] | None = None
        self.onnx_encoder_: Any = None
        self.bundle_dir_: Path | None = None

    def _apply_scope(self, module: PostModule) -> tuple[str, ...]:
        """Set up the finetune scope; return the names of the trainable tensors."""
        names = [n for n, _ in module.named_parameters() if n.startswith(_HEADS)]
        layer_list_name, layer_list = _encoder_layers(module.encoder)
        n_layers = len(layer_list)
        if self.finetune == "lora":
            k = n_layers if self.lora_layers is None else self.lora_layers
            if k > n_layers:
                raise ValueError(f"lora_layers {k} exceeds the encoder's {n_layers} layers")
            # Applied on the layer list itself, so layer indices are its own whatever the nesting.
            apply_lora(
                layer_list,
                target_names=tuple(self.lora_targets),
                r=self.lora_r,
                alpha=self.lora_alpha,
                dropout=self.lora_dropout,
                layers=range(n_layers - k, n_layers),
            )
            names += [f"encoder.{layer_list_name}.{key}" for key in lora_state_dict(layer_list)]
        elif self.finetune == "top_layers":
            if self.top_layers > n_layers:
                raise ValueError(
                    f"top_layers {self.top_layers} exceeds the encoder's {n_layers} layers"
                )
            for i in range(n_layers - self.top_layers, n_layers):
                names += [
                    f"encoder.{layer_list_name}.{i}.{p}"
                    for p, _ in layer_list[i].named_parameters()
                ]
        trainable = set(names)
        for name, param in module.named_parameters():
            param.requires_grad_(name in trainable)
        return tuple(sorted(trainable))

    def _require_module(self) -> None:
        if getattr(self, "module_", None) is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "TransformerPostModel has no module yet: call init_module() (then train) or from_pretrained()"
            )

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The tensors training updates (heads + LoRA or top layers), in a stable order."""
        self._require_module()
        params = dict(self.module_.named_parameters())
        return [params[name] for name in self.adapter_names_]

    def merge_lora(self) -> list[str]:
        """Fold LoRA updates into the base weights for faster inference (no more training)."""
        self._require_module()
        return merge_lora(self.module_)

    # -- engine -----------------------------------------------------------------
    def set_runtime(self, runtime: str = "auto", threads: int | None = None) -> str:
        """Pick the engine that runs the encoder; returns "torch" or "onnx".

        "auto" is ONNX Runtime when the bundle was written by ``kocscope optimize``
        (what it was validated with), else torch. Resolved eagerly, so a missing
        onnxruntime shows at load time rather than mid-run.
        """
        self._require_module()
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        info = self.onnx_runtime_
        if runtime == "torch" or (runtime == "auto" and info is None):
            self.onnx_encoder_, self.runtime_ = None, "torch"
            return self.runtime_
        if info is None or self.bundle_dir_ is None:
            raise ValueError(
                "runtime 'onnx' needs a bundle written by kocscope optimize; "
                f"{self.bundle_dir_ or 'this model'} carries no ONNX graph"
            )
        from kocscope.inference.onnx_runtime import OnnxEncoder

        self.use_onnx(OnnxEncoder(self.bundle_dir_ / info["onnx_file"], threads=threads))
        return self.runtime_

    def use_onnx(self, encoder: Any) -> None:
        """Run the encoder through ``encoder.embed`` (an :class:`OnnxEncoder`) from now on."""
        self.onnx_encoder_, self.runtime_ = encoder, "onnx"

    def _forward_eval(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-post outputs on the chosen engine; heads and window pooling stay in torch,
        so both engines pool windows with the same code."""
        if self.runtime_ == "auto":
            self.set_runtime("auto")
        if self.onnx_encoder_ is None:
            return self.forward_batch(batch)
        pooled = self.onnx_encoder_.embed(
            batch["input_ids"].numpy(), batch["attention_mask"].numpy()
        )
        device = next(self.module_.parameters()).device
        return self.module_.pool_heads(
            torch.from_numpy(pooled).to(device), batch["post_index"].to(device)
        )

    # -- inputs -----------------------------------------------------------------
    def windows(self, texts: Sequence[str]) -> Windows:
        """Token-id windows of ``texts`` by the long-text strategy, with the post of each."""
        self._require_module()
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is a {type(text).__name__}, not a string")
        if not texts:
            return Windows()
        bodies = self.tokenizer_(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return make_windows(bodies, self.long_text_config_)

    def _collate(
        self, rows: Sequence[Sequence[int]], post_index: Sequence[int]
    ) -> dict[str, torch.Tensor]:
        pad = self.tokenizer_.pad_token_id
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), 0 if pad is None else int(pad), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "post_index": torch.tensor(post_index, dtype=torch.long),
        }

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Model inputs for ``texts`` by the long-text strategy: input_ids, attention_mask, post_index."""
        windows = self.windows(texts)
        if not windows.input_ids:
            raise ValueError("encode: no texts given")
        return self._collate(windows.input_ids, windows.post_index)

    def forward_batch(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-post (promotion logits, seeding) for an :meth:`encode` batch, with gradients."""
        self._require_module()
        device = next(self.module_.parameters()).device
        post_index = batch.get("post_index")
        return self.module_(
            batch["input_ids"].to(device),
            batch["attention_mask"].to(device),
            None if post_index is None else post_index.to(device),
        )

    def predict_outputs(self, texts: Sequence[str], batch_size: int | None = None) -> ModelOutputs:
        """Raw outputs; posts are sorted by length and batched by ``batch_tokens`` (or
        ``batch_size`` posts) so padding stays small, then put back in input order."""
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        windows = self.windows(texts)
        n = windows.n_posts
        logits = np.zeros(n, dtype=np.float32)
        seeding = np.zeros(n, dtype=np.float32)
        if n == 0:
            return ModelOutputs(logits=logits, seeding=seeding)
        per_post: list[list[list[int]]] = [[] for _ in range(n)]
        for row, post in zip(windows.input_ids, windows.post_index):
            per_post[post].append(row)
        with eval_mode(self.module_):
            for chunk, batch in self._sorted_batches(per_post, batch_size):
                out_logits, out_seeding = self._forward_eval(batch)
                logits[chunk] = out_logits.float().cpu().numpy()
                seeding[chunk] = out_seeding.float().cpu().numpy()
        return ModelOutputs(logits=logits, seeding=seeding)

    def embed_windows(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Pooled encoder output per token-id window (float32, CPU), batched like
        :meth:`predict_outputs`: the features heads-only training computes once."""
        self._require_module()
        module = self.module_
        out = torch.zeros(len(rows), int(module.encoder.config.hidden_size))
        if not rows:
            return out
        device = next(module.parameters()).device
        with eval_mode(module):
            for chunk, batch in self._sorted_batches([[list(r)] for r in rows], None):
                pooled = module.embed(
                    batch["input_ids"].to(device), batch["attention_mask"].to(device)
                )
                out[chunk] = pooled.float().cpu()
        return out

    def _sorted_batches(
        self, per_post: list[list[list[int]]], batch_size: int | None
    ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """Whole posts sorted by their longest window and batched by ``batch_tokens`` (or
        ``batch_size`` posts), so padding stays small: (post numbers, collated batch)."""
        longest = [max(len(r) for r in rows) for rows in per_post]
        order = sorted(range(len(per_post)), key=longest.__getitem__)
        for chunk in self._batches(order, per_post, longest, batch_size):
            rows = [r for post in chunk for r in per_post[post]]
            local = [j for j, post in enumerate(chunk) for _ in per_post[post]]
            yield chunk, self._collate(rows, local)

    def token_budget(self) -> int:
        """Rows x padded length of a scoring batch: ``batch_tokens``, or by device when None."""
        if self.batch_tokens is not None:
            return self.batch_tokens
        on_cpu = (
            getattr(self, "onnx_encoder_", None) is not None  # ONNX Runtime runs on the CPU here
            or next(self.module_.parameters()).device.type == "cpu"
        )
        return CPU_BATCH_TOKENS if on_cpu else ACCELERATOR_BATCH_TOKENS

    def _batches(
        self,
        order: list[int],
        per_post: list[list[list[int]]],
        longest: list[int],
        batch_size: int | None,
    ) -> list[list[int]]:
        budget = self.token_budget()
        batches: list[list[int]] = []
        current: list[int] = []
        n_rows = 0
        for post in order:
            rows = len(per_post[post])
            if current:
                full = (
                    len(current) >= batch_size
                    if batch_size
                    else (n_rows + rows) * longest[post] > budget
                )
                if full:
                    batches.append(current)
                    current, n_rows = [], 0
            current.append(post)
            n_rows += rows
        if current:
            batches.append(current)
        return batches

    # -- bundle -------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write the bundle: settings, calibration and only the trainable tensors."""
        from safetensors.torch import save_file

        self._require_module()
        params = self.get_params()
        params["lora_targets"] = list(params["lora_targets"])
        config: dict[str, Any] = {
            "kind": self.kind,
            **params,
            "base_encoder_fingerprint": self.base_encoder_fingerprint_,
            "label_map": LABEL_MAP,
            **self.calibration_config(),
        }
        if getattr(self, "metrics_", None):
            config["metrics"] = self.metrics_
        if getattr(self, "training_data_", None):
            config["training_data"] = self.training_data_
        state = dict(self.module_.named_parameters())
        tensors = {
            name: state[name].detach().to("cpu", copy=True).contiguous()
            for name in self.adapter_names_
        }

        def write(tmp: Path) -> None:
            # one metadata key: safetensors writes a map's keys in no fixed order, and the same
            # weights should give the same bytes (the bundle is hashed and kept in git)
            save_file(tensors, str(tmp / ADAPTER_FILE), metadata={"format": "pt"})

        return save_bundle(directory, config, write)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike[str],
        *,
        base_encoder: str | None = None,
        allow_base_mismatch: bool = False,
        runtime: str | None = None,
        threads: int | None = None,
    ) -> TransformerPostModel:
        """Load a bundle. ``base_encoder`` overrides the recorded spec (e.g. the encoder
        moved); ``allow_base_mismatch`` loads even when its fingerprint differs.
        ``runtime`` (see :meth:`set_runtime`) is resolved now when given, else at the
        first prediction; ``threads`` sets ONNX Runtime's intra-op threads."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from kocscope.models.base_encoder import (
            BaseEncoderError,
            encoder_fingerprint,
            resolve_base_encoder,
        )

        root = Path(directory)
        config = read_bundle_config(root, expected_kind=cls.kind)
        where = root / CONFIG_FILE
        names = list(cls().get_params())
        missing = [name for name in names if name not in config]
        if missing:
            raise BundleError(f"{where}: missing field(s) {', '.join(missing)}")
        params = {name: config[name] for name in names}
        if isinstance(params["lora_targets"], list):
            params["lora_targets"] = tuple(params["lora_targets"])
        if config.get("label_map") != LABEL_MAP:
            raise BundleError(
                f"{where}: field label_map is {config.get('label_map')!r}, expected {LABEL_MAP}"
            )
        recorded = config.get("base_encoder_fingerprint")
        if not isinstance(recorded, str):
            raise BundleError(f"{where}: missing field base_encoder_fingerprint")
        model = cls(**params)
        try:
            model._check_params()
        except ValueError as exc:
            raise BundleError(f"{where}: {exc}") from exc
        spec = base_encoder or model.base_encoder
        try:
            path = resolve_base_encoder(spec)
            fingerprint = encoder_fingerprint(spec)
        except (BaseEncoderError, OSError) as exc:
            raise BundleError(f"{where}: base encoder {spec!r} cannot be resolved: {exc}") from exc
        if fingerprint != recorded:
            message = (
                f"{root}: the bundle was trained on base encoder {model.base_encoder!r} with fingerprint "
                f"{recorded}, but {spec!r} resolves to fingerprint {fingerprint}"
            )
            if not allow_base_mismatch:
                raise BundleError(message + "; pass allow_base_mismatch=True to load it anyway")
            warnings.warn(message + "; loading anyway (allow_base_mismatch)", stacklevel=2)
        model.base_encoder = spec
        try:
            model._build(Path(path), fingerprint)
        except (ValueError, TypeError) as exc:  # settings the resolved encoder cannot take
            raise BundleError(f"{where}: {exc}") from exc
        adapter = root / ADAPTER_FILE
        try:
            tensors = load_file(str(adapter))
        except (OSError, SafetensorError) as exc:
            raise BundleError(f"{adapter}: unreadable adapter weights ({exc})") from exc
        model._load_adapter(tensors, adapter)
        if model.finetune == "lora":
            model.merge_lora()  # a loaded bundle scores: fold the adapters into the weights once
        model.load_calibration_config(config, where)
        model.onnx_runtime_ = _onnx_record(config.get("runtime"), root)
        model.bundle_dir_ = root
        if runtime is not None or threads is not None:
            model.set_runtime(runtime or "auto", threads)
        if config.get("metrics"):
            model.metrics_ = config["metrics"]
        if config.get("training_data"):
            model.training_data_ = config["training_data"]
        return model

    def _load_adapter(self, tensors: Mapping[str, torch.Tensor], source: Path) -> None:
        expected = set(self.adapter_names_)
        missing = sorted(expected - set(tensors))
        unexpected = sorted(set(tensors) - expected)
        if missing or unexpected:
            raise BundleError(
                f"{source}: adapter tensors do not fit finetune={self.finetune!r}: "
                f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)}), "
                f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)})"
            )
        params = dict(self.module_.named_parameters())
        with torch.no_grad():
            for name in self.adapter_names_:
                src, dst = tensors[name], params[name]
                if src.shape != dst.shape:
                    raise BundleError(
                        f"{source}: tensor {name} has shape {tuple(src.shape)}, the model expects {tuple(dst.shape)}"
                    )
                dst.copy_(src.to(dst.dtype))
