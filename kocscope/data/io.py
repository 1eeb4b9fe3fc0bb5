"""Streaming readers and writers for post files: JSON Lines, CSV, Parquet.

Files are read one line (or one Parquet batch) at a time, so memory stays flat
however large the export (for Parquet it is bounded by the file's row-group
size, which pyarrow reads whole; ours are 10,000 rows). Every row read is
either accepted or rejected with a reason, never dropped silently
(``ReadStats.read == accepted + rejected``).
Outputs are written to a temporary file beside the target and renamed into
place, so an interrupted run never leaves a half-written file behind.

Conventions, the same for every format:

* ``-`` means stdin (reading) or stdout (writing), as JSON Lines.
* Blank rows are skipped and not counted as rows: in JSON Lines a line of only
  ASCII whitespace; in CSV a row whose cells are all empty or whitespace
  (spreadsheets pad exports with ``,,,`` rows).
* Line numbers are physical lines, 1-based; a CSV row spanning several lines
  is reported at its first line (or at its undecodable line). Parquet and
  datasets have rows, not lines.
* CSV is parsed strictly (a stray quote is a rejected row, not a silently
  merged one); cells stay strings, and the post fields parse them.
* Only encodings that write a newline as the byte 0x0A are accepted (UTF-8,
  GBK, GB18030, Big5, ...), since lines are split on bytes before decoding;
  that is what lets one undecodable line be rejected alone.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import gzip
import json
import math
import os
import re
import sys
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from kocscope.data.records import KNOWN_FIELDS, OPTIONAL_FIELDS, Post, RecordError, SchemaError

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import pyarrow as pa

STDIO = "-"
REJECTS_SUFFIX = ".rejects.jsonl"  # score's default rejects file: <output>.rejects.jsonl
STDIN_NAME = "<stdin>"
DATASET_NAME = "<dataset>"
# A longer "line" is almost always a JSON array saved as .jsonl; reading it
# whole could exhaust memory, so it is skipped in chunks and rejected.
MAX_LINE_BYTES = 16 << 20
BATCH_ROWS = 10_000  # Parquet read batch and written row group
FIRST_ERRORS = 5
_GBK_HINT = (
    "if this is a GBK/GB18030 export, pass --encoding gb18030 (data.encoding: gb18030 in a "
    "training config, encoding='gb18030' in Python)"
)
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89abcdefABCDEF]")

OnError = Literal["raise", "skip"]
Kind = Literal["jsonl", "csv", "parquet"]
_EXTENSIONS: dict[str, Kind] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


# -- formats ---------------------------------------------------------------------
@dataclass(frozen=True)
class FileFormat:
    kind: Kind
    gzip: bool = False


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> FileFormat:
    """Format from the file name (``.jsonl``, ``.csv``, ``.parquet``, optionally
    ``.jsonl.gz``/``.csv.gz``), or from ``fmt`` when the name says nothing useful."""
    if str(path) == STDIO:
        if fmt not in (None, "jsonl"):
            raise ValueError(f"stdin/stdout ('-') carry JSON Lines only, not {fmt}")
        return FileFormat("jsonl")
    name = Path(path).name.lower()
    compressed = name.endswith(".gz")
    suffix = Path(name[:-3] if compressed else name).suffix
    kind = fmt if fmt is not None else _EXTENSIONS.get(suffix)
    if kind not in ("jsonl", "csv", "parquet"):
        wanted = (
            "fmt must be 'jsonl', 'csv' or 'parquet'"
            if fmt is not None
            else (
                f"unknown file type {suffix or '(no extension)'!r}; use .jsonl, .csv or .parquet "
                "(or .jsonl.gz, .csv.gz)"
            )
        )
        raise ValueError(f"{path}: {wanted}")
    if compressed and kind == "parquet":
        raise ValueError(f"{path}: Parquet is compressed inside the file; drop the .gz")
    return FileFormat(kind, compressed)  # type: ignore[arg-type]


def default_rejects_path(output: str | os.PathLike[str]) -> Path:
    """Where score puts rejected rows when not told: beside the output."""
    return Path(output).with_name(Path(output).name + REJECTS_SUFFIX)


def is_rejects_file(path: str | os.PathLike[str]) -> bool:
    """A rejects file holds bad rows with their reasons, not posts: readers of scored folders skip it."""
    return Path(path).name.endswith(REJECTS_SUFFIX)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two names reach one file (links and relative paths included); stdin/stdout never do."""
    if STDIO in (str(a), str(b)):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return Path(a).resolve() == Path(b).resolve()


def folder_files(directory: str | os.PathLike[str]) -> list[str]:
    """The posts files of a folder in name order: the shards of ``score --engine
    ray`` sort in input order. Hidden and ``_`` files (run markers) and rejects
    files are skipped."""
    root = Path(directory)
    files = []
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.name.startswith((".", "_")) or is_rejects_file(path):
            continue
        try:
            detect_format(path)
        except ValueError:
            continue
        files.append(str(path))
    if not files:
        raise ValueError(f"{directory}: no .jsonl, .csv or .parquet files in this folder")
    return files


def check_encoding(encoding: str) -> str:
    """Canonical codec name; rejects encodings whose newline is not the byte 0x0A."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    if name == "utf-8-sig":  # a leading BOM is stripped anyway
        return "utf-8"
    if "\n".encode(name) != b"\n":
        raise ValueError(
            f"encoding {encoding!r} is not supported (lines are split on byte 0x0A); "
            "convert the file to UTF-8"
        )
    return name


def _source_name(path: str | os.PathLike[str]) -> str:
    return STDIN_NAME if str(path) == STDIO else str(path)


# -- raw rows ------------------------------------------------------------------------
@dataclass
class RawRow:
    """One input row before validation. ``data`` is None when the row itself is
    unreadable (bad bytes, bad JSON, wrong field count), and ``error`` says why.
    ``raw`` is what a rejects file shows: the line's text, or the row's values."""

    line: int
    data: dict[str, Any] | None
    raw: Any
    error: RecordError | None = None


HeaderCheck = Callable[[Sequence[str]], None]


def iter_rows(
    path: str | os.PathLike[str],
    *,
    encoding: str = "utf-8",
    fmt: str | None = None,
    on_header: HeaderCheck | None = None,
) -> Iterator[RawRow]:
    """Every non-blank row of a file, readable or not, in order.

    Row problems come back inside ``RawRow.error`` so callers decide whether to
    stop; problems with the whole file (unreadable Parquet, corrupt gzip, a bad
    CSV header) are raised. ``on_header(columns)`` is called with the column
    names of CSV and Parquet files before any row, so a missing column fails
    once, up front, instead of on every row.
    """
    form = detect_format(path, fmt)
    source = _source_name(path)
    if form.kind == "parquet":
        yield from _parquet_rows(path, source, on_header)
        return
    encoding = check_encoding(encoding)
    with _open_binary(path, form) as fh:
        lines = _byte_lines(fh, source, encoding, form.gzip)
        if form.kind == "jsonl":
            yield from _jsonl_rows(lines, source, encoding)
        else:
            yield from _csv_rows(lines, source, encoding, on_header)


@contextmanager
def _open_binary(path: str | os.PathLike[str], form: FileFormat) -> Iterator[IO[bytes]]:
    if str(path) == STDIO:
        yield sys.stdin.buffer
        return
    with gzip.open(path, "rb") if form.gzip else open(path, "rb") as fh:
        yield fh


def _byte_lines(
    fh: IO[bytes], source: str, encoding: str, compressed: bool
) -> Iterator[bytes | None]:
    """Raw lines; None stands for a line over MAX_LINE_BYTES, skipped unread."""
    number = 0
    while True:
        number += 1
        try:
            line = fh.readline(MAX_LINE_BYTES + 1)
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (chunk := fh.readline(1 << 20)) and not chunk.endswith(b"\n"):
                    pass
                yield None
                continue
        except (OSError, EOFError, zlib.error) as exc:
            if not compressed:
                raise
            raise RecordError(
                "corrupt or truncated gzip data", source=source, line=number, detail=str(exc)
            ) from exc
        if not line:
            return
        if number == 1 and encoding == "utf-8" and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        yield line


def _too_long(source: str, line: int) -> RecordError:
    return RecordError(
        f"line longer than {MAX_LINE_BYTES} bytes",
        source=source,
        line=line,
        hint="JSON Lines needs one object per line; is this a JSON array?",
    )


def _decode(line: bytes, encoding: str, source: str, number: int) -> str:
    try:
        return line.decode(encoding)
    except UnicodeDecodeError as exc:
        utf8 = encoding == "utf-8"
        raise RecordError(
            "not valid UTF-8" if utf8 else f"not valid {encoding}",
            source=source,
            line=number,
            detail=f"byte 0x{line[exc.start]:02x} at offset {exc.start}",
            hint=_GBK_HINT if utf8 else None,
        ) from None


def _jsonl_rows(lines: Iterator[bytes | None], source: str, encoding: str) -> Iterator[RawRow]:
    for number, line in enumerate(lines, 1):
        if line is None:
            yield RawRow(number, None, "", _too_long(source, number))
        elif line.strip():
            yield _json_row(line, number, source, encoding)


def _json_row(line: bytes, number: int, source: str, encoding: str) -> RawRow:
    def rejected(raw: str, reason: str, **details: Any) -> RawRow:
        return RawRow(number, None, raw, RecordError(reason, source=source, line=number, **details))

    try:
        text = _decode(line, encoding, source, number).rstrip("\r\n")
    except RecordError as exc:
        return RawRow(number, None, line.decode(encoding, "backslashreplace").rstrip("\r\n"), exc)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return rejected(text, "malformed JSON", detail=f"{exc.msg} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:  # int too long, nesting too deep
        return rejected(text, "malformed JSON", detail=str(exc) or type(exc).__name__)
    if not isinstance(data, dict):
        return rejected(text, "must be a JSON object", got=data)
    if _SURROGATE_ESCAPE_RE.search(text):
        bad_key = _unpaired_surrogate_key(data)
        if bad_key is not None:
            return rejected(text, "holds an unpaired UTF-16 surrogate escape", field=bad_key)
    return RawRow(number, data, text)


def _unpaired_surrogate_key(data: dict[str, Any]) -> str | None:
    """The first field whose name or value holds a lone surrogate: JSON can
    escape one, but no UTF-8 output could ever write it back."""
    for key, value in data.items():
        try:
            json.dumps({key: value}, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return key.encode("utf-8", "backslashreplace").decode("ascii")
    return None


def _csv_rows(
    lines: Iterator[bytes | None], source: str, encoding: str, on_header: HeaderCheck | None
) -> Iterator[RawRow]:
    bad: dict[int, RecordError] = {}  # undecodable lines of the row being parsed
    physical: list[str] = []  # text of the row being parsed, for rejects
    consumed = 0

    def decoded() -> Iterator[str]:
        nonlocal consumed
        for number, line in enumerate(lines, 1):
            consumed = number
            if line is None:
                bad[number] = _too_long(source, number)
                text = "\n"
            else:
                try:
                    text = _decode(line, encoding, source, number)
                except RecordError as exc:
                    bad[number] = exc
                    text = line.decode(encoding, "backslashreplace")
            physical.append(text)
            yield text

    reader = csv.reader(decoded(), strict=True)
    header: list[str] | None = None
    while True:
        physical.clear()
        start = consumed + 1
        try:
            cells = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as exc:
            cells, error = (
                [],
                RecordError("malformed CSV", source=source, line=start, detail=str(exc)),
            )
        raw = "".join(physical).rstrip("\r\n")
        if bad:
            error = bad[min(bad)]
            bad.clear()
        if error is None and all(not cell.strip() for cell in cells):
            continue
        if header is None:
            if error is not None:
                raise error  # without a header no row can be read
            header = [cell.strip() for cell in cells]
            duplicates = sorted({name for name in header if header.count(name) > 1})
            if duplicates:
                raise SchemaError(
                    f"duplicate column names in the header: {', '.join(map(repr, duplicates))}",
                    source=source,
                    line=start,
                )
            _check_header(on_header, header, source, start)
            continue
        if error is None and len(cells) != len(header):
            error = RecordError(
                f"has {len(cells)} fields but the header has {len(header)}",
                source=source,
                line=start,
            )
        yield (
            RawRow(start, None, raw, error)
            if error
            else RawRow(start, dict(zip(header, cells, strict=True)), raw)
        )


def _check_header(
    on_header: HeaderCheck | None, columns: Sequence[str], source: str, line: int | None
) -> None:
    if on_header is None:
        return
    try:
        on_header(columns)
    except RecordError as exc:
        raise exc.located(source, line) from None


def _parquet_rows(
    path: str | os.PathLike[str], source: str, on_header: HeaderCheck | None
) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise RecordError("not a readable Parquet file", source=source, detail=str(exc)) from exc
    columns = parquet.schema_arrow.names
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise SchemaError(
            f"duplicate column names: {', '.join(map(repr, duplicates))}", source=source
        )
    if columns:  # a file with no columns at all is an empty output, like a CSV without header
        _check_header(on_header, columns, source, None)
    number = 0
    batches = parquet.iter_batches(batch_size=BATCH_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise RecordError(
                "corrupt Parquet data", source=source, line=number + 1, unit="row", detail=str(exc)
            ) from exc
        for row in batch.to_pylist():
            number += 1
            yield RawRow(number, row, row)


# -- posts -----------------------------------------------------------------------------
@dataclass
class ReadStats:
    """What a read did. ``read == accepted + rejected`` at every moment; a row
    that stops a read under ``on_error='raise'`` counts as rejected."""

    source: str
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    rejects_path: Path | None = None

    def reject(self, error: RecordError) -> None:
        self.rejected += 1
        self.reasons[error.key] += 1
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append(error.message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reasons": dict(self.reasons.most_common()),
            "first_errors": list(self.first_errors),
            "rejects_path": str(self.rejects_path) if self.rejects_path else None,
        }


def resolve_column_map(
    column_map: Mapping[str, str] | None = None,
    *,
    text_column: str | None = None,
    id_column: str | None = None,
    author_column: str | None = None,
) -> dict[str, str]:
    """Merge ``column_map`` (kocscope field -> your column) with the shortcuts."""
    merged = dict(column_map or {})
    for ours, theirs in (("text", text_column), ("id", id_column), ("author_id", author_column)):
        if theirs is None:
            continue
        if merged.get(ours, theirs) != theirs:
            raise ValueError(
                f"column_map maps {ours!r} to {merged[ours]!r} but {ours}_column says {theirs!r}"
            )
        merged[ours] = theirs
    unknown = sorted(set(merged) - set(KNOWN_FIELDS))
    if unknown:
        raise ValueError(
            f"column_map keys must be post fields ({', '.join(KNOWN_FIELDS)}); "
            f"got {', '.join(unknown)}"
        )
    for ours, theirs in merged.items():
        if not isinstance(theirs, str) or not theirs:
            raise ValueError(f"column_map[{ours!r}] must be a column name, got {theirs!r}")
    sources = list(merged.values())
    repeated = sorted({name for name in sources if sources.count(name) > 1})
    if repeated:
        raise ValueError(f"column_map uses column(s) {', '.join(repeated)} for more than one field")
    return {ours: theirs for ours, theirs in merged.items() if ours != theirs}


class PostReader:
    """Validated posts from a row source, with ``stats`` filled as it goes.

    Iterating again re-reads the file and starts fresh stats (stdin can be read
    once). Under ``on_error='skip'`` rejected rows go to ``rejects_path`` (JSON
    Lines: source, line, field, reason, raw), written atomically when the read
    completes; a read abandoned half-way writes no rejects file.
    """

    def __init__(
        self,
        rows: Callable[[HeaderCheck], Iterator[RawRow]],
        *,
        source: str,
        unit: str = "line",
        on_error: OnError = "raise",
        rejects_path: str | os.PathLike[str] | None = None,
        column_map: Mapping[str, str] | None = None,
        keep_original: bool = True,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if rejects_path is not None and (
            str(rejects_path) == STDIO or detect_format(rejects_path).kind != "jsonl"
        ):
            raise ValueError(
                f"{rejects_path}: rejects are written to a JSON Lines file; name it .jsonl"
            )
        self._rows = rows
        self.source = source
        self.unit = unit
        self.on_error = on_error
        self.rejects_path = Path(rejects_path) if rejects_path is not None else None
        self.column_map = dict(column_map or {})
        self.keep_original = keep_original
        self._renames = {theirs: ours for ours, theirs in self.column_map.items()}
        self.stats = ReadStats(source)

    def check_columns(self, columns: Sequence[str]) -> None:
        """Raise SchemaError when the columns cannot give posts under this mapping."""
        present = set(columns)
        text_source = self.column_map.get("text", "text")
        listed = ", ".join(columns) or "none"
        if text_source not in present:
            raise SchemaError(
                f"no column {text_source!r} for the post text",
                detail=f"columns: {listed}",
                hint="name the text column with --text-column (text_column=)",
            )
        for ours, theirs in self.column_map.items():
            if theirs not in present:
                raise SchemaError(
                    f"no column {theirs!r} (mapped to {ours!r})", detail=f"columns: {listed}"
                )
            if ours in present and ours not in self._renames:
                raise SchemaError(
                    f"column {ours!r} clashes with column {theirs!r} mapped to {ours!r}; rename one"
                )

    def __iter__(self) -> Iterator[Post]:
        stats = self.stats = ReadStats(self.source)
        writer = None
        if self.on_error == "skip" and self.rejects_path is not None:
            stats.rejects_path = self.rejects_path
            writer = RecordWriter(self.rejects_path, "jsonl")
        with writer if writer is not None else nullcontext():
            for row in self._rows(self.check_columns):
                stats.read += 1
                post, error = self.validate(row)
                if error is None:
                    stats.accepted += 1
                    yield post  # type: ignore[misc]
                    continue
                stats.reject(error)
                if self.on_error == "raise":
                    raise error
                if writer is not None:
                    writer.write(
                        {
                            "source": self.source,
                            "line": row.line,
                            "field": error.field,
                            "reason": error.explanation,
                            "raw": row.raw,
                        }
                    )

    def validate(self, row: RawRow) -> tuple[Post | None, RecordError | None]:
        """The row as a Post, or the located error; stats are left alone, so
        callers that batch rows themselves (batch scoring) can keep their own."""
        if row.error is not None:
            return None, row.error
        assert row.data is not None
        try:
            data = self._rename(row.data)
            return Post.from_dict(data, keep_original=self.keep_original), None
        except RecordError as exc:
            return None, exc.located(self.source, row.line, self.unit)

    def _rename(self, data: dict[str, Any]) -> dict[str, Any]:
        if not self._renames:
            return data
        for ours, theirs in self.column_map.items():
            if ours in data and ours not in self._renames:
                raise RecordError(
                    f"clashes with field {theirs!r} mapped to {ours!r}; rename one", field=ours
                )
        text_source = self.column_map.get("text")
        if text_source is not None and text_source not in data:
            raise RecordError("is missing", field="text", detail=f"no field {text_source!r}")
        return {self._renames.get(key, key): value for key, value in data.items()}


def read_posts(
    path: str | os.PathLike[str],
    *,
    encoding: str = "utf-8",
    on_error: OnError = "raise",
    rejects_path: str | os.PathLike[str] | None = None,
    column_map: Mapping[str, str] | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    author_column: str | None = None,
    keep_original: bool = True,
    fmt: str | None = None,
) -> PostReader:
    """Posts from a .jsonl / .csv / .parquet file (``.gz`` for the first two),
    or JSON Lines from stdin with ``-``.

    Options are checked now (missing file, unknown type or encoding: OSError or
    ValueError), rows as they are read: ``on_error='raise'`` raises the first
    RecordError, ``'skip'`` counts it, writes it to ``rejects_path`` if given,
    and goes on. ``column_map`` maps kocscope field names to yours, e.g.
    ``{"text": "content", "author_id": "user"}``; the shortcuts
    ``text_column``/``id_column``/``author_column`` do the same.
    """
    form = detect_format(path, fmt)
    if form.kind != "parquet":
        encoding = check_encoding(encoding)
    if str(path) != STDIO:
        target = Path(path)
        if not target.exists():
            raise FileNotFoundError(f"{path}: no such file")
        if target.is_dir():
            raise IsADirectoryError(f"{path}: is a directory, not a posts file")
        if rejects_path is not None and same_file(rejects_path, target):
            raise ValueError(f"{rejects_path}: the rejects file would overwrite the input")
    mapping = resolve_column_map(
        column_map, text_column=text_column, id_column=id_column, author_column=author_column
    )
    return PostReader(
        lambda check: iter_rows(path, encoding=encoding, fmt=form.kind, on_header=check),
        source=_source_name(path),
        unit="row" if form.kind == "parquet" else "line",
        on_error=on_error,
        rejects_path=rejects_path,
        column_map=mapping,
        keep_original=keep_original,
    )


# -- writers -------------------------------------------------------------------------
def plain_value(value: Any) -> Any:
    """Python value for a JSON or CSV cell: numpy scalars/arrays (model outputs)
    and date-times are converted, everything JSON knows is kept."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "tolist"):  # numpy without importing it
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, bytes):  # Parquet binary columns passing through
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(
        f"cannot write a value of type {type(value).__name__}; "
        "convert it to str, number, list or dict"
    )


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=plain_value)
    return _csv_cell(plain_value(value))


class _Sink:
    """One output format; writes into ``tmp`` and finishes it on commit."""

    def __init__(self, tmp: Path | None, form: FileFormat) -> None:
        self.tmp = tmp
        self.form = form

    def write(self, record: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Complete the temporary file (headers, buffered rows, footer)."""

    def close(self) -> None:
        """Release handles; the caller deletes or renames the file."""


class _JsonlSink(_Sink):
    def __init__(self, tmp: Path | None, form: FileFormat) -> None:
        super().__init__(tmp, form)
        self.fh: IO[bytes] | None = None
        if tmp is not None:
            self.fh = gzip.open(tmp, "wb", compresslevel=6) if form.gzip else open(tmp, "wb")
        elif hasattr(sys.stdout, "buffer"):
            sys.stdout.flush()  # keep earlier text output in front of ours
            self.fh = sys.stdout.buffer

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=plain_value) + "\n"
        if self.fh is None:  # a text-only stdout (notebooks)
            sys.stdout.write(line)
        else:
            self.fh.write(line.encode("utf-8"))

    def close(self) -> None:
        if self.tmp is not None:
            assert self.fh is not None
            self.fh.close()
        elif self.fh is not None:
            self.fh.flush()
        else:
            sys.stdout.flush()


class _CsvSink(_Sink):
    """Columns are those of the first record; a later record's new fields are
    added at the end, and the file is re-written once at commit with the full
    header, so JSON Lines with varying fields still converts to CSV."""

    def __init__(self, tmp: Path, form: FileFormat) -> None:
        super().__init__(tmp, form)
        self.fh = self._open(tmp, "w")
        # RFC 4180 \r\n rows: with it as terminator, cells holding a lone \r get quoted too
        self.writer = csv.writer(self.fh)
        self.columns: list[str] = []
        self.header_width = 0
        self.index: dict[str, int] = {}

    def _open(self, path: Path, mode: str) -> IO[str]:
        if self.form.gzip:
            return gzip.open(path, mode + "t", encoding="utf-8", newline="", compresslevel=6)  # type: ignore[return-value]
        return open(path, mode, encoding="utf-8", newline="")

    def write(self, record: Mapping[str, Any]) -> None:
        for key in record:
            if key not in self.index:
                self.index[key] = len(self.columns)
                self.columns.append(str(key))
        if not self.header_width:
            self.writer.writerow(self.columns)
            self.header_width = len(self.columns)
        row = [""] * len(self.columns)
        for key, value in record.items():
            row[self.index[key]] = _csv_cell(value)
        self.writer.writerow(row)

    def finish(self) -> None:
        self.fh.close()
        if len(self.columns) == self.header_width:
            return
        assert self.tmp is not None
        wide = self.tmp.with_name(self.tmp.name + ".wide")
        try:
            with self._open(self.tmp, "r") as src, self._open(wide, "w") as dst:
                rows = csv.reader(src, strict=True)
                out = csv.writer(dst)
                next(rows)
                out.writerow(self.columns)
                pad = len(self.columns)
                for row in rows:
                    out.writerow(row + [""] * (pad - len(row)))
            os.replace(wide, self.tmp)
        finally:
            wide.unlink(missing_ok=True)

    def close(self) -> None:
        self.fh.close()


class _ParquetSink(_Sink):
    """Rows are buffered into batches; each batch goes to its own spool file
    beside the output, because a later batch may add columns or widen a type
    (a column null so far, ints then floats). At commit the batches are cast to
    the merged schema and written as row groups: memory holds one batch."""

    def __init__(self, tmp: Path, form: FileFormat, batch_rows: int) -> None:
        super().__init__(tmp, form)
        self.batch_rows = batch_rows
        self.rows: list[Mapping[str, Any]] = []
        self.parts: list[Path] = []
        self.schema: pa.Schema | None = None
        self.written = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self.rows.append(record)
        if len(self.rows) >= self.batch_rows:
            self._spool()

    def _spool(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = arrow_table(self.rows, first_record=self.written + 1)
        if self.schema is None:
            self.schema = table.schema
        else:
            try:
                self.schema = pa.unify_schemas(
                    [self.schema, table.schema], promote_options="permissive"
                )
            except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
                first, last = self.written + 1, self.written + len(self.rows)
                raise ValueError(
                    f"records {first}-{last} change a column's type ({exc}); Parquet needs "
                    "one type per column: write JSON Lines or make the types consistent"
                ) from exc
        assert self.tmp is not None
        part = self.tmp.with_name(f"{self.tmp.name}.part{len(self.parts):05d}")
        self.parts.append(part)
        pq.write_table(table, part)
        self.written += len(self.rows)
        self.rows = []

    def finish(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.rows:
            self._spool()
        assert self.tmp is not None
        schema = self.schema if self.schema is not None else pa.schema([])
        with pq.ParquetWriter(self.tmp, schema) as writer:
            for part in self.parts:
                writer.write_table(conform_table(pq.read_table(part), schema))
                part.unlink()

    def close(self) -> None:
        for part in self.parts:
            part.unlink(missing_ok=True)


def arrow_table(rows: Sequence[Mapping[str, Any]], first_record: int = 1) -> pa.Table:
    """Arrow table from dicts whose keys may differ: columns are the union in
    first-seen order, absent cells null. A column whose values mix types is
    an error naming the column, since Arrow cannot hold it."""
    import pyarrow as pa

    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    arrays = []
    for name in columns:
        try:
            arrays.append(pa.array([row.get(name) for row in rows]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            last = first_record + len(rows) - 1
            raise ValueError(
                f"records {first_record}-{last}: column {name!r} mixes value types ({exc}); "
                "Parquet and datasets need one type per column"
            ) from exc
    return pa.table(dict(zip(columns, arrays, strict=True)))


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table with exactly ``schema``'s columns, missing ones as nulls."""
    import pyarrow as pa

    arrays = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def replace_dir(src: Path, dst: Path) -> None:
    """Put the finished folder ``src`` in place of ``dst`` with renames only, so
    readers see the old folder or the new one, never a half-written one."""
    import shutil
    import tempfile

    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
        os.replace(dst, old / dst.name)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


class RecordWriter:
    """Write records one by one; the file appears, complete, only on success.

    Use as a context manager: records go to a temporary file in the target's
    folder, renamed over the target when the block exits normally and deleted
    when it raises. ``-`` streams JSON Lines to stdout (nothing to roll back).
    CSV cells holding lists or dicts are JSON-encoded; Parquet is written in
    row groups of ``batch_rows``.
    """

    def __init__(
        self, path: str | os.PathLike[str], fmt: str | None = None, *, batch_rows: int = BATCH_ROWS
    ) -> None:
        self.format = detect_format(path, fmt)
        self.path: Path | None = None if str(path) == STDIO else Path(path)
        self.batch_rows = batch_rows
        self.count = 0
        self._sink: _Sink | None = None
        self._tmp: Path | None = None

    def __enter__(self) -> RecordWriter:
        if self._sink is not None:
            raise RuntimeError("this RecordWriter is already open")
        if self.path is None:
            self._sink = _JsonlSink(None, self.format)
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.tmp")
        self._tmp.touch(exist_ok=False)  # honours the umask, unlike mkstemp's 0600
        try:
            kind = self.format.kind
            if kind == "jsonl":
                self._sink = _JsonlSink(self._tmp, self.format)
            elif kind == "csv":
                self._sink = _CsvSink(self._tmp, self.format)
            else:
                self._sink = _ParquetSink(self._tmp, self.format, self.batch_rows)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self

    def write(self, record: Mapping[str, Any] | Post) -> None:
        if self._sink is None:
            raise RuntimeError(
                "use RecordWriter in a with-block: `with RecordWriter(path) as out: out.write(...)`"
            )
        self._sink.write(record.to_dict() if isinstance(record, Post) else record)
        self.count += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        try:
            if exc_type is None:
                sink.finish()
                sink.close()
                if self._tmp is not None:
                    os.replace(self._tmp, self.path)  # type: ignore[arg-type]
        finally:
            sink.close()  # idempotent; after a failure it releases handles and spool files
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)  # gone already when the rename happened


def write_records(
    path: str | os.PathLike[str],
    records: Iterable[Mapping[str, Any] | Post],
    *,
    fmt: str | None = None,
) -> int:
    """Write records (dicts or Posts) atomically; returns how many were written."""
    with RecordWriter(path, fmt) as out:
        for record in records:
            out.write(record)
    return out.count


# -- Hugging Face datasets --------------------------------------------------------------
def posts_to_dataset(posts: Iterable[Post | Mapping[str, Any]]) -> datasets.Dataset:
    """An in-memory ``datasets.Dataset`` of ``Post.to_dict()`` rows.

    Columns are the union over all posts (absent cells null), merged batch by
    batch with the same rules as the Parquet writer. For data larger than
    memory, write Parquet with ``write_records`` and load that with datasets.
    """
    import datasets
    import pyarrow as pa

    tables: list[pa.Table] = []
    batch: list[Mapping[str, Any]] = []
    done = 0

    def flush() -> None:
        nonlocal batch, done
        tables.append(arrow_table(batch, first_record=done + 1))
        done += len(batch)
        batch = []

    for post in posts:
        batch.append(post.to_dict() if isinstance(post, Post) else post)
        if len(batch) >= BATCH_ROWS:
            flush()
    if batch:
        flush()
    if not tables:
        return datasets.Dataset(pa.table({}))
    try:
        schema = pa.unify_schemas([t.schema for t in tables], promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        raise ValueError(f"posts change a column's type between batches ({exc})") from exc
    return datasets.Dataset(pa.concat_tables([conform_table(t, schema) for t in tables]))


def posts_from_dataset(
    dataset: Any,
    *,
    on_error: OnError = "raise",
    rejects_path: str | os.PathLike[str] | None = None,
    column_map: Mapping[str, str] | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    author_column: str | None = None,
    keep_original: bool = True,
) -> PostReader:
    """Posts from a ``datasets.Dataset`` or ``IterableDataset`` (one split),
    validated exactly like file rows; errors name the 1-based row."""
    if isinstance(dataset, Mapping):
        raise ValueError(
            f"pass one split, e.g. dataset[{next(iter(dataset), 'train')!r}], not a DatasetDict"
        )

    def rows(check: HeaderCheck) -> Iterator[RawRow]:
        columns = getattr(dataset, "column_names", None)
        if columns is not None:
            _check_header(check, columns, DATASET_NAME, None)
        for number, row in enumerate(dataset, 1):
            yield RawRow(number, dict(row), row)

    mapping = resolve_column_map(
        column_map, text_column=text_column, id_column=id_column, author_column=author_column
    )
    return PostReader(
        rows,
        source=DATASET_NAME,
        unit="row",
        on_error=on_error,
        rejects_path=rejects_path,
        column_map=mapping,
        keep_original=keep_original,
    )


# -- summary -----------------------------------------------------------------------------
@dataclass
class PostsSummary:
    """What ``kocscope inspect`` reports about a posts file."""

    stats: ReadStats
    languages: dict[str, int]
    text_length: dict[str, int] | None  # p10/p50/p90/max characters of normalized text
    fields: dict[str, int]  # posts where each optional field is set
    with_disclosure: int  # posts with at least one disclosure cue

    @property
    def disclosure_share(self) -> float | None:
        return self.with_disclosure / self.stats.accepted if self.stats.accepted else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.stats.to_dict(),
            "languages": self.languages,
            "text_length": self.text_length,
            "fields": self.fields,
            "with_disclosure": self.with_disclosure,
            "disclosure_share": self.disclosure_share,
        }


def nearest_rank(counts: Mapping[int, int], q: float) -> int:
    """The q-quantile (nearest-rank) of values given as value -> count, so a
    summary of millions of posts holds one counter per distinct length."""
    total = sum(counts.values())
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise ValueError("no values")


def summarize_posts(posts: PostReader) -> PostsSummary:
    """Read every post once and summarize; raises what the reader raises."""
    from kocscope.data.cues import find_cues
    from kocscope.data.text import LANGS, detect_lang

    languages = dict.fromkeys(LANGS, 0)
    lengths: Counter[int] = Counter()
    fields = dict.fromkeys(OPTIONAL_FIELDS, 0)
    disclosed = 0
    for post in posts:
        languages[detect_lang(post.model_text)] += 1
        lengths[len(post.text)] += 1
        for name in OPTIONAL_FIELDS:
            if getattr(post, name) is not None:
                fields[name] += 1
        if any(cue.category == "disclosure" for cue in find_cues(post.model_text)):
            disclosed += 1
    quantiles = (
        {
            "p10": nearest_rank(lengths, 0.1),
            "p50": nearest_rank(lengths, 0.5),
            "p90": nearest_rank(lengths, 0.9),
            "max": max(lengths),
        }
        if lengths
        else None
    )
    return PostsSummary(posts.stats, languages, quantiles, fields, disclosed)
