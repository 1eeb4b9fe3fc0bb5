"""Low-rank adapters (LoRA) for the encoder's linear layers, self-contained.

Fine-tuning only a rank-r update ``W + (alpha / r) * B @ A`` keeps training
memory low on a CPU and makes the shipped adapter a few hundred KB instead of
the whole encoder. ``B`` starts at zero, so a fresh adapter leaves the encoder's
outputs exactly as they were: training starts from the pretrained model.

Matching rule for ``target_names``: a Linear layer named
``encoder.layer.3.attention.self.query`` has layer index 3 (the first numeric
component of its name) and *local path* ``attention.self.query`` (what follows
the index). A target matches when it equals the local path, or, for a target
without dots, the last component. So ``"query"`` picks every query projection,
while ``"output.dense"`` picks the FFN output but not ``attention.output.dense``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r = int(r)
        self.alpha = float(alpha)
        self.scaling = self.alpha / self.r
        self.dropout = nn.Dropout(dropout)
        ref = base.weight
        self.lora_A = nn.Parameter(
            torch.empty(r, base.in_features, dtype=ref.dtype, device=ref.device)
        )
        self.lora_B = nn.Parameter(
            torch.zeros(base.out_features, r, dtype=ref.dtype, device=ref.device)
        )
        # Same init as nn.Linear for A; B = 0 makes the initial update exactly zero.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            if self.training and torch.is_grad_enabled():
                raise RuntimeError(
                    "this LoRA layer was merged for inference and cannot be trained; reload the model to train"
                )
            return self.base(x)
        update = (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T
        return self.base(x) + update * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight, so inference costs one matmul."""
        if not self.merged:
            self.base.weight += (self.lora_B @ self.lora_A) * self.scaling
            self.merged = True

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def _layer_and_local(name: str) -> tuple[int | None, str]:
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return int(part), ".".join(parts[i + 1 :])
    return None, name


def _matches(local: str, targets: Sequence[str]) -> bool:
    last = local.rsplit(".", 1)[-1]
    return any(local == t or ("." not in t and last == t) for t in targets)


def apply_lora(
    module: nn.Module,
    target_names: Sequence[str] = ("query", "value"),
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    layers: Iterable[int] | None = None,
) -> list[str]:
    """Wrap every matching ``nn.Linear`` of ``module`` in a ``LoRALinear``; return their names.

    ``layers`` limits the wrapping to those layer indices (None: all layers).
    Raises ValueError when nothing matches (TypeError when a match is not a
    Linear layer), so a typo in a target name or an
    encoder with other layer names fails loudly instead of training nothing.
    """
    targets = tuple(target_names)
    if not targets:
        raise ValueError("apply_lora: target_names is empty")
    wanted = None if layers is None else set(layers)
    chosen: list[str] = []
    for name, sub in module.named_modules():
        index, local = _layer_and_local(name)
        if not name or not _matches(local, targets):
            continue
        if wanted is not None and index not in wanted:
            continue
        if isinstance(sub, LoRALinear):
            raise TypeError(f"apply_lora: {name} already carries a LoRA adapter")
        if not isinstance(sub, nn.Linear):
            raise TypeError(
                f"apply_lora: {name} matches {targets} but is a {type(sub).__name__}, not nn.Linear"
            )
        chosen.append(name)
    if not chosen:
        linear = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)][:6]
        raise ValueError(
            f"apply_lora: no nn.Linear matches targets {list(targets)}"
            + (f" in layers {sorted(wanted)}" if wanted is not None else "")
            + f"; linear layers look like: {linear}"
        )
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(
            parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout)
        )
    return chosen


def lora_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors (A and B) of ``module`` by their qualified names."""
    return {
        f"{name}.{key}" if name else key: tensor
        for name, sub in module.named_modules()
        if isinstance(sub, LoRALinear)
        for key, tensor in (("lora_A", sub.lora_A), ("lora_B", sub.lora_B))
    }


def merge_lora(module: nn.Module) -> list[str]:
    """Merge every LoRA layer of ``module`` into its base weight; return their names.

    A and B stay in place, so a merged model still saves the same adapter; it
    can no longer be trained.
    """
    merged = []
    for name, sub in module.named_modules():
        if isinstance(sub, LoRALinear) and not sub.merged:
            sub.merge()
            merged.append(name)
    return merged
