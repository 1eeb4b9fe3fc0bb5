"""kocscope: genuine vs promotion, seeding strength, and KOC ranking for social posts.

Heavy modules (torch, transformers, datasets) load only when a model is
loaded or a command needs them, so ``import kocscope`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access (PEP 562)
_LAZY = {
    "Post": "kocscope.data.records",
    "RecordError": "kocscope.data.records",
    "read_posts": "kocscope.data.io",
    "write_records": "kocscope.data.io",
    "load_model": "kocscope.inference.api",
    "PostScore": "kocscope.inference.api",
    "rank_kocs": "kocscope.inference.kocs",
    "AuthorScore": "kocscope.inference.kocs",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from kocscope.data.io import read_posts, write_records
    from kocscope.data.records import Post, RecordError
    from kocscope.inference.api import PostScore
    from kocscope.inference.kocs import AuthorScore, rank_kocs
    from kocscope.inference.api import load_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kocscope' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
