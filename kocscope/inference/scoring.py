"""Batch scoring of post files: streaming, resumable, atomic.

Rows flow file by file in windows of ``window`` rows: each window is validated
(bad rows rejected or raised, per ``on_error``), scored in length-sorted
batches by the estimator, and appended, in input order, to a work file beside
the output. After every window the work files are flushed and a small
progress file records how far they are valid, so ``resume=True`` can truncate
them to that point, skip the rows already done, and go on: no row is scored
twice and none is lost. The output appears under its real name only when the
whole run has succeeded.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from kocscope.data.io import (
    STDIO,
    PostReader,
    RawRow,
    RecordWriter,
    default_rejects_path,
    detect_format,
    iter_rows,
    plain_value,
    read_posts,
    same_file,
)
from kocscope.data.records import Post, RecordError
from kocscope.inference.api import DEFAULT_WINDOW, KocscopeModel, PostScore, load_model

PROGRESS_FORMAT = 1


@dataclass
class Window:
    """One window of rows after validation: the posts to score and the reject
    records; ``error`` is the first bad row when the run must stop on it."""

    read: int
    posts: list[Post]
    rejects: list[dict[str, Any]]
    error: RecordError | None = None


@dataclass
class Counts:
    """Row counts of a run or of a part of one; ``read == scored + rejected`` always."""

    read: int = 0
    scored: int = 0
    rejected: int = 0
    promotion: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # rejects by kind

    def tally(self, window: Window, scores: Sequence[PostScore]) -> None:
        self.read += window.read
        self.rejected += len(window.rejects)
        self.scored += len(window.posts)
        self.promotion += sum(score.label == "promotion" for score in scores)

    def add(self, other: Counts) -> None:
        """Fold in the counts of another part of the run (a shard, say)."""
        self.read += other.read
        self.scored += other.scored
        self.rejected += other.rejected
        self.promotion += other.promotion
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count


@dataclass
class ScoreSummary(Counts):
    """What a scoring run did."""

    seconds: float = 0.0
    resumed_from: int = 0  # rows already done by an earlier, interrupted run
    output: str | None = None
    rejects: str | None = None

    @property
    def share_promotion(self) -> float | None:
        return self.promotion / self.scored if self.scored else None

    @property
    def posts_per_second(self) -> float | None:
        done = self.scored - self.resumed_from
        return done / self.seconds if self.seconds > 0 and done > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "scored": self.scored,
            "rejected": self.rejected,
            "share_promotion": self.share_promotion,
            "seconds": round(self.seconds, 3),
            "posts_per_second": self.posts_per_second,
            "resumed_from": self.resumed_from,
            "output": self.output,
            "rejects": self.rejects,
            "reasons": self.reasons,
        }


def output_row(post: Post, score: PostScore) -> dict[str, Any]:
    """Every input field passes through; the scores follow. An input field named
    like a score (a gold ``label`` column, say) is kept as ``input_<name>``, with
    more ``input_`` in front while that name is taken (re-scoring a scored file):
    nothing the user gave is dropped, and no score is shadowed."""
    scores = score.to_dict()
    del scores["id"]
    fields = post.to_dict()
    row = {"id": post.id}
    for name, value in fields.items():
        if name == "id":
            continue
        key = name
        while key in scores or (key != name and key in fields):
            key = f"input_{key}"
        row[key] = value
    row.update(scores)
    return row


def check_output_paths(
    inputs: Sequence[str], output: str | os.PathLike[str], rejects_path: str | os.PathLike[str] | None
) -> None:
    """Refuse a run that would write over one of its inputs, or put its rejects over its output;
    an output folder (the Ray engine's) replaces everything inside it, so nothing may lie there."""
    for name in inputs:
        if same_file(output, name) or _inside(name, output):
            raise ValueError(f"{output}: the output is also an input and would be overwritten; choose another -o")
        if rejects_path is not None and same_file(rejects_path, name):
            raise ValueError(f"{rejects_path}: the rejects file is also an input and would be overwritten")
    if rejects_path is not None and (same_file(rejects_path, output) or _inside(rejects_path, output)):
        raise ValueError(f"{rejects_path}: the rejects file would be the output or inside it; put it beside")


def _inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    if STDIO in (str(path), str(folder)):
        return False
    return Path(folder).resolve() in Path(path).resolve().parents


def validate_window(reader: PostReader, rows: Sequence[RawRow], on_error: str, reasons: dict[str, int]) -> Window:
    """Shared by every engine, so that all accept, reject and report rows alike;
    ``reasons`` counts the rejects by kind."""
    window = Window(len(rows), [], [])
    for row in rows:
        post, error = reader.validate(row)
        if error is None:
            window.posts.append(post)
        elif on_error == "raise":
            window.error = error
            return window
        else:
            reasons[error.key] = reasons.get(error.key, 0) + 1
            window.rejects.append({"source": reader.source, "line": row.line, "field": error.field,
                                   "reason": error.explanation, "raw": row.raw})
    return window


def score_records(
    records: Iterable[Mapping[str, Any] | Post], model: KocscopeModel | None = None, *, batch_size: int | None = None
) -> Iterator[dict[str, Any]]:
    """Score in-memory records (kocscope field names) and yield output rows.

    A bad record raises RecordError naming its position (1-based) in the input.
    """
    model = model or load_model()

    def posts() -> Iterator[Post]:
        for i, record in enumerate(records, start=1):
            try:
                yield record if isinstance(record, Post) else Post.from_dict(record)
            except RecordError as exc:
                raise exc.located("<records>", i, unit="record") from None

    stream = posts()
    while chunk := list(islice(stream, DEFAULT_WINDOW)):
        for post, score in zip(chunk, model.score_posts(chunk, batch_size=batch_size)):
            yield output_row(post, score)


# -- files -------------------------------------------------------------------------
@dataclass
class _WorkFiles:
    """The resumable state of a run writing to ``output``."""

    output: Path

    @property
    def partial(self) -> Path:
        return self.output.with_name(f".{self.output.name}.kocscope-partial.jsonl")

    @property
    def partial_rejects(self) -> Path:
        return self.output.with_name(f".{self.output.name}.kocscope-rejects.jsonl")

    @property
    def progress(self) -> Path:
        return self.output.with_name(f".{self.output.name}.kocscope-progress.json")

    def clear(self) -> None:
        for path in (self.partial, self.partial_rejects, self.progress):
            path.unlink(missing_ok=True)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def count_rows(path: str | os.PathLike[str]) -> int | None:
    """Rows in a file, for the progress bar's ETA: Parquet metadata, or a fast
    newline count (an upper bound for CSV rows with embedded newlines)."""
    if str(path) == STDIO:
        return None
    form = detect_format(path)
    if form.kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if form.gzip:
        return None
    lines = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            lines += block.count(b"\n")
    return max(0, lines - 1) if form.kind == "csv" else lines


def _run_key(inputs: Sequence[str], options: Mapping[str, Any]) -> str:
    """Identifies a run, so --resume refuses to mix outputs of different inputs or settings."""
    parts = []
    for name in inputs:
        stat = os.stat(name)
        parts.append([os.path.abspath(name), stat.st_size, int(stat.st_mtime)])
    blob = json.dumps({"inputs": parts, "options": dict(options)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def score_files(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    model: KocscopeModel | None = None,
    batch_size: int | None = None,
    window: int | None = None,
    explain: bool = False,
    on_error: str = "raise",
    rejects_path: str | os.PathLike[str] | None = None,
    column_map: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
    resume: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ScoreSummary:
    """Score posts files into ``output`` (format from its extension; ``-`` = stdout).

    ``on_progress(n)`` is called with the rows read in each window. Under
    ``on_error='skip'`` rejected rows go to ``rejects_path`` (default: beside
    the output, ``<output>.rejects.jsonl``; stdout output needs one named);
    under ``'raise'`` the first bad row stops the run with a RecordError and
    nothing is written. An output or rejects file that is also an input is refused.
    """
    names = [str(p) for p in inputs]
    if not names:
        raise ValueError("no input files")
    readers = [read_posts(name, encoding=encoding, on_error=on_error, column_map=column_map) for name in names]
    model = model or load_model()
    window = window or DEFAULT_WINDOW
    out_name = str(output)
    to_stdout = out_name == STDIO
    if resume and (to_stdout or STDIO in names):
        raise ValueError("--resume needs input and output files, not stdin/stdout")
    detect_format(output)  # a bad extension fails before any work
    if on_error == "skip" and rejects_path is None:
        if to_stdout:
            raise ValueError("with output to stdout ('-'), rejected rows need a --rejects file (or --on-error raise)")
        rejects_path = default_rejects_path(out_name)
    check_output_paths(names, out_name, rejects_path)
    summary = ScoreSummary(output=out_name, rejects=str(rejects_path) if rejects_path else None)
    options = {"model": str(model.path), "explain": explain, "on_error": on_error,
               "column_map": dict(column_map or {}), "encoding": encoding}
    work = None if to_stdout else _WorkFiles(Path(out_name))
    state = {"file": 0, "row": 0, "partial_bytes": 0, "rejects_bytes": 0, "summary": {}}
    key = _run_key(names, options) if work is not None and STDIO not in names else None
    if work is not None:
        work.output.parent.mkdir(parents=True, exist_ok=True)
        if resume and work.progress.is_file():
            saved = json.loads(work.progress.read_text(encoding="utf-8"))
            if saved.get("format") != PROGRESS_FORMAT or saved.get("key") != key:
                raise ValueError(
                    f"{out_name}: the interrupted run there used other inputs or settings; "
                    "run without --resume to start over"
                )
            state.update(saved["state"])
            for name, value in state["summary"].items():
                setattr(summary, name, value)
            summary.resumed_from = summary.scored
            summary.reasons = dict(summary.reasons)
        else:
            work.clear()
    started = time.perf_counter()
    with ExitStack() as stack:
        if work is not None:
            sink: _Sink = _WorkSink(work, state, key, rejects_path is not None)
        else:
            rejects_out = stack.enter_context(RecordWriter(rejects_path)) if rejects_path else None
            sink = _StdoutSink(stack.enter_context(RecordWriter(STDIO)), rejects_out)
        stack.callback(sink.close)
        first_file, first_row = state["file"], state["row"]
        if first_row and on_progress:
            on_progress(first_row)
        for index in range(first_file, len(names)):
            reader = readers[index]
            done = first_row if index == first_file else 0
            rows = islice(iter_rows(names[index], encoding=encoding, on_header=reader.check_columns), done, None)
            while chunk := list(islice(rows, window)):
                checked = validate_window(reader, chunk, on_error, summary.reasons)
                if checked.error is not None:
                    if work is not None:
                        stack.callback(work.clear)
                    raise checked.error
                scores = model.score_posts(checked.posts, batch_size=batch_size, explain=explain)
                summary.tally(checked, scores)
                done += len(chunk)
                rows_out = [output_row(post, score) for post, score in zip(checked.posts, scores)]
                sink.write(rows_out, checked.rejects, index, done, summary)
                if on_progress:
                    on_progress(len(chunk))
    if work is not None:
        _commit(work, rejects_path if summary.rejected else None)
    if not summary.rejected:
        remove_stale_rejects(rejects_path)
    if not summary.rejected:
        summary.rejects = None
    summary.seconds = time.perf_counter() - started
    return summary


class _Sink:
    def write(self, rows: list[dict[str, Any]], rejects: list[dict[str, Any]], file: int, row: int,
              summary: ScoreSummary) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _StdoutSink(_Sink):
    """Streams scored rows to stdout; rejects go to the rejects file when one is named."""

    def __init__(self, writer: RecordWriter, rejects: RecordWriter | None) -> None:
        self.writer, self.rejects = writer, rejects

    def write(self, rows, rejects, file, row, summary) -> None:  # type: ignore[override]
        for record in rows:
            self.writer.write(record)
        if self.rejects is not None:
            for record in rejects:
                self.rejects.write(record)


class _WorkSink(_Sink):
    """Appends to the work files and records, after each window, how far they are valid."""

    def __init__(self, work: _WorkFiles, state: dict[str, Any], key: str | None, with_rejects: bool) -> None:
        self.work, self.key = work, key
        self.out = _open_truncated(work.partial, state["partial_bytes"])
        self.rejects = _open_truncated(work.partial_rejects, state["rejects_bytes"]) if with_rejects else None

    def write(self, rows, rejects, file, row, summary) -> None:  # type: ignore[override]
        _append_jsonl(self.out, rows)
        if self.rejects is not None:
            _append_jsonl(self.rejects, rejects)
        state = {
            "file": file,
            "row": row,
            "partial_bytes": self.out.tell(),
            "rejects_bytes": self.rejects.tell() if self.rejects is not None else 0,
            "summary": {"read": summary.read, "scored": summary.scored, "rejected": summary.rejected,
                        "promotion": summary.promotion, "reasons": summary.reasons},
        }
        _write_json_atomic(self.work.progress, {"format": PROGRESS_FORMAT, "key": self.key, "state": state})

    def close(self) -> None:
        for fh in (self.out, self.rejects):
            if fh is not None:
                fh.close()


def _open_truncated(path: Path, size: int):
    """Open a work file for appending after cutting it back to its last valid byte."""
    fh = open(path, "a+b")
    fh.truncate(size)
    fh.seek(size)
    return fh


def _append_jsonl(fh, rows: Iterable[Mapping[str, Any]]) -> None:
    data = b"".join(
        json.dumps(row, ensure_ascii=False, default=plain_value).encode("utf-8") + b"\n" for row in rows
    )
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def _commit(work: _WorkFiles, rejects_path: str | os.PathLike[str] | None) -> None:
    """Give the finished work files their real names, converting the format if needed."""
    if detect_format(work.output).kind == "jsonl" and not detect_format(work.output).gzip:
        os.replace(work.partial, work.output)
    else:
        try:
            with RecordWriter(work.output) as out:
                for row in iter_rows(work.partial):
                    out.write(row.data)
        except ValueError as exc:  # a pass-through column Parquet cannot hold: no file, no leftovers
            work.clear()
            raise ValueError(
                f"{work.output}: {exc}; score to .jsonl or .csv, which keep such columns as they are"
            ) from exc
    if rejects_path is not None:
        os.replace(work.partial_rejects, rejects_path)
    work.clear()


def remove_stale_rejects(rejects_path: str | os.PathLike[str] | None) -> None:
    """A run without rejects must not leave an earlier run's rejects file beside its output."""
    if rejects_path is not None and str(rejects_path) != STDIO:
        Path(rejects_path).unlink(missing_ok=True)
