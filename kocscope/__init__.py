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
    "KocscopeModel": "kocscope.inference.api",
    "PostScore": "kocscope.inference.api",
    "BundleError": "kocscope.models.bundle",
    "rank_kocs": "kocscope.inference.kocs",
    "AuthorScore": "kocscope.inference.kocs",
    "KocRanking": "kocscope.inference.kocs",
    "KocWeights": "kocscope.inference.kocs",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from kocscope.data.io import read_posts, write_records
    from kocscope.data.records import Post, RecordError
    from kocscope.inference.api import KocscopeModel, PostScore, load_model
    from kocscope.inference.kocs import AuthorScore, KocRanking, KocWeights, rank_kocs
    from kocscope.models.bundle import BundleError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kocscope' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The lazy names are not in globals() until first used; list them for completion."""
    return list(__all__)
