"""Frozen-encoder features for heads-only training, computed once and reused.

With ``finetune="heads"`` the encoder never changes, so the pooled embedding of
each window is the same in every epoch; only the heads (and the dropout before
them) differ. The trainer therefore embeds the training and validation windows
once (eval mode, no autograd, the model's own length-sorted batching) and runs
the heads on those vectors: an epoch costs seconds instead of a forward pass
over the corpus.

:class:`EmbeddingStore` keeps the vectors on disk (safetensors), one file per
encoder fingerprint, each row keyed by the sha256 of the window's token ids.
The long-text settings (strategy, max_length, text prefix) only change the
token ids, so they need no key of their own: a changed setting simply misses,
and strategies share the windows they have in common (a short post is one
identical window under every strategy, and the first window of ``windows`` is
the ``head`` window). A store that cannot be read is reported and rebuilt: it
is derived data, never a reason to stop a training run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kocscope.models.base import ModelOutputs
from kocscope.models.modeling import TransformerPostModel, eval_mode

__all__ = ["EmbeddingStore", "PostEmbeddings", "embed_posts", "window_key"]

STORE_FORMAT = "1"
KEY_BYTES = 32
# Windows embedded between two writes of the store: an interrupted run loses at most this much.
SAVE_EVERY = 2048


def _no_log(_: str) -> None:
    """Log sink when nobody listens."""


def window_key(ids: Sequence[int]) -> bytes:
    """sha256 of a window's token ids: what its embedding depends on, besides the encoder."""
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).digest()


@dataclass
class PostEmbeddings:
    """Window vectors of a list of posts: a post's windows are contiguous, posts in order."""

    vectors: torch.Tensor  # (n_windows, hidden)
    post_index: torch.Tensor  # (n_windows,) post of each window
    offsets: torch.Tensor  # (n_posts + 1,) first window of each post, then n_windows

    @classmethod
    def from_windows(cls, vectors: torch.Tensor, post_index: Sequence[int]) -> PostEmbeddings:
        index = torch.as_tensor(post_index, dtype=torch.long)
        n_posts = int(index[-1]) + 1 if len(index) else 0
        counts = torch.bincount(index, minlength=n_posts)
        offsets = torch.zeros(n_posts + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(counts, 0)
        return cls(vectors=vectors, post_index=index.to(vectors.device), offsets=offsets)

    def to(self, device: Any) -> PostEmbeddings:
        return PostEmbeddings(self.vectors.to(device), self.post_index.to(device), self.offsets)

    def batch(self, posts: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors of these posts' windows and their post numbers within the batch, in the
        order ``encode`` gives for the same posts, so even the dropout masks line up."""
        bounds = self.offsets.tolist()
        rows = [r for p in posts for r in range(bounds[p], bounds[p + 1])]
        local = [j for j, p in enumerate(posts) for _ in range(bounds[p + 1] - bounds[p])]
        device = self.vectors.device
        return (
            self.vectors[torch.tensor(rows, device=device)],
            torch.tensor(local, dtype=torch.long, device=device),
        )

    def outputs(self, module: torch.nn.Module) -> ModelOutputs:
        """What ``predict_outputs`` returns for these posts, from the cached vectors."""
        with eval_mode(module):
            logits, seeding = module.pool_heads(self.vectors, self.post_index)
        return ModelOutputs(
            logits=logits.float().cpu().numpy(), seeding=seeding.float().cpu().numpy()
        )


class EmbeddingStore:
    """Window vectors of one encoder, keyed by :func:`window_key`; on disk under
    ``directory``, or in memory only when it is None."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        fingerprint: str,
        log: Callable[[str], None] = _no_log,
    ) -> None:
        self.fingerprint = fingerprint
        name = fingerprint.split(":")[-1][:32] or "encoder"
        self.path = None if directory is None else Path(directory) / f"windows-{name}.safetensors"
        self._log = log
        self._rows: dict[bytes, int] = {}
        self._vectors: list[torch.Tensor] = []
        self._keys: list[bytes] = []
        if self.path is not None and self.path.is_file():
            self._read(self.path)

    def __len__(self) -> int:
        return len(self._keys)

    def _read(self, path: Path) -> None:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                keys, vectors = fh.get_tensor("keys"), fh.get_tensor("vectors")
        except (OSError, SafetensorError, KeyError) as exc:
            self._log(f"{path}: unreadable embedding cache ({exc}); rebuilding it")
            return
        problem = None
        if (
            meta.get("format") != STORE_FORMAT
            or meta.get("encoder_fingerprint") != self.fingerprint
        ):
            problem = f"format {meta.get('format')!r} / encoder {meta.get('encoder_fingerprint')!r}"
        elif keys.dtype != torch.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
            problem = f"tensor keys has shape {tuple(keys.shape)} and dtype {keys.dtype}"
        elif vectors.ndim != 2 or vectors.shape[0] != keys.shape[0]:
            problem = f"tensor vectors has shape {tuple(vectors.shape)} for {keys.shape[0]} keys"
        if problem:
            self._log(f"{path}: embedding cache does not fit ({problem}); rebuilding it")
            return
        self._keys = [bytes(row) for row in keys.numpy()]
        self._rows = {key: i for i, key in enumerate(self._keys)}
        self._vectors = [vectors]

    def missing(self, keys: Sequence[bytes]) -> list[bytes]:
        """The distinct keys not stored yet, in first-seen order."""
        return [k for k in dict.fromkeys(keys) if k not in self._rows]

    def rows(self, keys: Sequence[bytes]) -> torch.Tensor:
        """Row numbers of stored ``keys`` in :meth:`vectors`."""
        return torch.tensor([self._rows[k] for k in keys], dtype=torch.long)

    def vectors(self) -> torch.Tensor:
        if len(self._vectors) > 1:
            self._vectors = [torch.cat(self._vectors)]
        return self._vectors[0] if self._vectors else torch.zeros(0, 0)

    def add(self, keys: Sequence[bytes], vectors: torch.Tensor) -> None:
        """Append vectors of keys from :meth:`missing` (one row per key)."""
        if len(keys) != len(vectors) or any(k in self._rows for k in keys):
            raise ValueError(
                "EmbeddingStore.add: needs one vector per key, for keys not stored yet"
            )
        for key in keys:
            self._rows[key] = len(self._keys)
            self._keys.append(key)
        self._vectors.append(vectors.detach().to("cpu", torch.float32))

    def save(self) -> Path | None:
        """Write the store atomically (temp file in the same folder, then os.replace)."""
        from safetensors.torch import save_file

        if self.path is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = torch.from_numpy(
            np.frombuffer(b"".join(self._keys), dtype=np.uint8).reshape(-1, KEY_BYTES).copy()
        )
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        try:
            save_file(
                {"keys": keys, "vectors": self.vectors().contiguous()},
                tmp,
                metadata={"format": STORE_FORMAT, "encoder_fingerprint": self.fingerprint},
            )
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path


def embed_posts(
    model: TransformerPostModel,
    texts: Sequence[str],
    store: EmbeddingStore | None = None,
    *,
    log: Callable[[str], None] = _no_log,
    what: str = "posts",
) -> tuple[PostEmbeddings, dict[str, Any]]:
    """Window vectors of ``texts`` (from ``store`` where present) and what it took.

    Missing windows are embedded longest-last in slices of ``SAVE_EVERY``, the
    store saved after each, so an interrupted run resumes where it stopped.
    """
    started = time.perf_counter()
    if store is None:
        store = EmbeddingStore(None, model.base_encoder_fingerprint_)
    windows = model.windows(texts)
    keys = [window_key(ids) for ids in windows.input_ids]
    ids_of = dict(zip(keys, windows.input_ids))
    todo = sorted(store.missing(keys), key=lambda k: len(ids_of[k]))
    log(f"{what}: {len(texts):,} posts, {len(keys):,} windows, {len(todo):,} to embed")
    for start in range(0, len(todo), SAVE_EVERY):
        part = todo[start : start + SAVE_EVERY]
        store.add(part, model.embed_windows([ids_of[k] for k in part]))
        store.save()
        done = start + len(part)
        rate = done / max(time.perf_counter() - started, 1e-9)
        log(f"{what}: embedded {done:,}/{len(todo):,} windows ({rate:.1f}/s)")
    embeddings = PostEmbeddings.from_windows(store.vectors()[store.rows(keys)], windows.post_index)
    info = {
        "posts": len(texts),
        "windows": len(keys),
        "embedded": len(todo),
        "tokens": sum(len(ids) for ids in windows.input_ids),
        "embedded_tokens": sum(len(ids_of[k]) for k in todo),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return embeddings, info
