"""The kocscope model bundle: one directory format for every trained model.

Layout::

    config.json     kind, settings, label map, calibration, threshold ...
    *.safetensors   weights (never pickle)
    *.json          vocabularies and other plain data
    README.md       generated model card
    <name>/         sub-folders, e.g. the component bundles of a stack
    manifest.json   sha256 of every other file, sub-folders included

A bundle is written into a temporary sibling folder and renamed into place, so
an interrupted save never leaves a half bundle that loads. Loading checks every
file against the manifest before any of it is parsed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kocscope.data.io import replace_dir

BUNDLE_FORMAT = 1
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
# the model shipped inside the package: what scoring uses when no model is named
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"

# kind -> "module:Class"; the class provides from_pretrained(directory)
MODEL_KINDS = {
    "lexical": "kocscope.models.lexical:LexicalModel",
    "transformer": "kocscope.models.modeling:TransformerPostModel",
    "stack": "kocscope.models.stacking:StackedModel",
}


class BundleError(RuntimeError):
    """A bundle that is missing, incomplete, tampered with or of the wrong kind."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_bundle(
    directory: str | os.PathLike[str],
    config: dict[str, Any],
    write_files: Callable[[Path], None],
    card: str | None = None,
) -> Path:
    """Write a bundle atomically; ``write_files(tmp)`` writes the model's own files."""
    target = Path(directory)
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_files(tmp)
        full = {"format": BUNDLE_FORMAT, **config}
        (tmp / CONFIG_FILE).write_text(json.dumps(full, ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8")
        if card is None:
            from kocscope.models.model_card import render_card

            card = render_card(full)
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        readable_by_all(tmp)
        files = {name: sha256_file(tmp / name) for name in _member_files(tmp)}
        manifest = {"format": BUNDLE_FORMAT, "files": files}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def check_replaceable(target: Path) -> None:
    """Saving replaces the whole folder: only an earlier bundle or an empty folder may go."""
    if not target.exists():
        return
    if target.is_dir() and ((target / MANIFEST_FILE).is_file() or not any(target.iterdir())):
        return
    what = "a folder that is not a kocscope bundle" if target.is_dir() else "a file"
    raise FileExistsError(
        f"{target}: is {what}; saving a bundle replaces the whole folder, so it only overwrites "
        "an earlier bundle or an empty folder. Choose another path or remove it first."
    )


def _member_files(root: Path) -> list[str]:
    """Every file under ``root`` as a relative POSIX path: the names a manifest lists."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def readable_by_all(folder: Path) -> None:
    """mkdtemp and some writers create 0700/0600; a bundle is shared data, so honour the umask instead."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        if path.is_dir():
            os.chmod(path, 0o777 & ~umask)
        elif path.is_file():
            os.chmod(path, 0o666 & ~umask)


def read_bundle_config(directory: str | os.PathLike[str], expected_kind: str | None = None) -> dict[str, Any]:
    """Verify a bundle against its manifest and return its config."""
    root = Path(directory)
    if not root.is_dir():
        raise BundleError(f"{root}: not a model bundle directory (it does not exist or is a file)")
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{root}: missing {MANIFEST_FILE}; not a kocscope bundle, or an incomplete save")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed: dict[str, str] = manifest["files"]
        if not isinstance(listed, dict):
            raise TypeError(f"'files' must be an object of file name -> sha256, got {type(listed).__name__}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    _check_format(manifest.get("format"), manifest_path)
    for name, digest in listed.items():
        parts = name.split("/") if isinstance(name, str) else [""]
        if any(part in ("", ".", "..") or "\\" in part for part in parts):
            raise BundleError(f"{manifest_path}: file name {name!r} points outside the bundle")
        path = root / name
        if not path.is_file():
            raise BundleError(f"{root}: missing file {name} listed in the manifest")
        if sha256_file(path) != digest:
            raise BundleError(f"{path}: sha256 does not match the manifest; the file was changed or corrupted")
    unlisted = [name for name in _member_files(root) if name not in listed and name != MANIFEST_FILE]
    if unlisted:
        raise BundleError(f"{root}: files not in the manifest: {', '.join(unlisted)}")
    if CONFIG_FILE not in listed:
        raise BundleError(f"{root}: the manifest does not list {CONFIG_FILE}")
    try:
        config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BundleError(f"{root / CONFIG_FILE}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise BundleError(f"{root / CONFIG_FILE}: must hold a JSON object, got {type(config).__name__}")
    _check_format(config.get("format"), root / CONFIG_FILE)
    kind = config.get("kind")
    if kind not in MODEL_KINDS:
        raise BundleError(f"{root / CONFIG_FILE}: unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    if expected_kind is not None and kind != expected_kind:
        raise BundleError(f"{root}: bundle holds a {kind!r} model, not a {expected_kind!r} model")
    return config


def _check_format(value: Any, where: Path) -> None:
    """A bundle from a newer kocscope may hold what this one misreads: refuse it by name."""
    if value != BUNDLE_FORMAT:
        raise BundleError(
            f"{where}: bundle format {value!r}; this kocscope reads format {BUNDLE_FORMAT} "
            "(a bundle written by a newer kocscope needs that version)"
        )


def load_estimator(directory: str | os.PathLike[str]) -> Any:
    """Load whichever estimator kind the bundle holds."""
    from importlib import import_module

    config = read_bundle_config(directory)
    module, _, cls = MODEL_KINDS[config["kind"]].partition(":")
    return getattr(import_module(module), cls).from_pretrained(directory)
