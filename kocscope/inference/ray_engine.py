"""Scale-out scoring on a Ray cluster, under the local engine's data contract.

Ray Data's own JSON/CSV readers parse differently from kocscope's and lose line
numbers, so rows would be accepted, rejected and reported differently. Here Ray
Data only distributes shard descriptors: a byte range of a JSON Lines file cut
just after a newline, a run of Parquet row groups, or a whole CSV or gzip file
(neither can be cut safely), each with the number of its first line. A
``map_batches`` actor pool loads the bundle once per worker, reads each shard
with kocscope's readers, validates and scores it as ``score_files`` does, and
writes one output shard; the driver merges the small per-shard summaries and
the rejects in input order.

The output is a directory of shards ``part-00000.<format>``, ... whose names
sort in input order, plus ``_kocscope_score.json`` (the run's summary). It is
built in a hidden sibling folder and renamed into place only when every shard
is done. Workers open the inputs and write the shards themselves, so every
node must reach them at the same absolute paths (one machine, or a shared
filesystem). Ray is imported only here, and only when a run starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from itertools import islice, pairwise
from pathlib import Path, PurePosixPath
from typing import Any

from kocscope.data.io import (
    BATCH_ROWS,
    STDIO,
    PostReader,
    RawRow,
    RecordWriter,
    default_rejects_path,
    detect_format,
    iter_rows,
    read_posts,
    replace_dir,
)
from kocscope.data.records import RecordError, SchemaError
from kocscope.inference.api import DEFAULT_MODEL_DIR, DEFAULT_WINDOW, KocscopeModel
from kocscope.inference.scoring import (
    Counts,
    ScoreSummary,
    check_output_paths,
    output_row,
    remove_stale_rejects,
    validate_window,
)

DEFAULT_BLOCK_BYTES = 32 << 20  # shard size: minutes of transformer work per task, not hours
MARKER_FILE = "_kocscope_score.json"
SHARD_PREFIX = "part-"
SHARD_FORMATS = ("jsonl", "jsonl.gz", "csv", "csv.gz", "parquet")
LOCAL_OBJECT_STORE_BYTES = 256 << 20  # only shard descriptors, summaries and a bundle travel through it
_REJECTS_DIR = ".rejects"
_STOP_FILE = ".stop"  # created in the work folder when the run has already failed
_MARKER_FORMAT = 1


class RayUnavailable(RuntimeError):
    """Ray is not installed: the ray engine is the optional extra ``kocscope[ray]``."""


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # the extra is ray[data]: Ray Data is a separate install
    except ImportError as exc:
        raise RayUnavailable(
            f"the ray engine needs Ray with Ray Data ({exc}); install it with: pip install 'kocscope[ray]'"
        ) from None
    return ray


# -- shards ------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """One task. ``path`` is the name the user gave (rejects and errors show it),
    ``location`` the absolute path workers open; ``first_line`` numbers the first
    row as the whole file would (a row number for Parquet)."""

    index: int
    path: str
    location: str
    kind: str  # "bytes": [start, stop) of a JSON Lines file; "row_groups": Parquet groups [start, stop); "file"
    start: int = 0
    stop: int = 0
    first_line: int = 1


def plan_shards(paths: Sequence[str | os.PathLike[str]], *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> list[Shard]:
    """Cut the inputs into shards of about ``block_bytes``, in input order.

    Plain JSON Lines are cut just after a newline (the driver reads each file
    once to count lines, so rejects keep their real line numbers); Parquet at
    row-group boundaries (from the footer); CSV and gzip files stay whole,
    since a quoted cell may hold a newline and gzip cannot be entered midway.
    Every file gives at least one shard, so an empty file still counts.
    """
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be positive, got {block_bytes}")
    shards: list[Shard] = []
    for name in map(str, paths):
        location = os.path.abspath(name)
        form = detect_format(name)
        if form.kind == "parquet":
            kind, spans = "row_groups", _parquet_spans(location, name, block_bytes)
        elif form.kind == "jsonl" and not form.gzip:
            kind, spans = "bytes", _jsonl_spans(location, block_bytes)
        else:
            kind, spans = "file", [(0, 0, 1)]
        for start, stop, first in spans:
            shards.append(Shard(len(shards), name, location, kind, start, stop, first))
    return shards


def _jsonl_spans(path: str, block_bytes: int) -> list[tuple[int, int, int]]:
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as fh:
        while cuts[-1] + block_bytes < size:
            fh.seek(cuts[-1] + block_bytes - 1)  # -1: a newline right at the target ends this span
            while (piece := fh.readline(1 << 20)) and not piece.endswith(b"\n"):
                pass
            if fh.tell() >= size:
                break
            cuts.append(fh.tell())
        cuts.append(size)
        spans, line = [], 1
        for i, (start, stop) in enumerate(pairwise(cuts)):
            spans.append((start, stop, line))
            if i < len(cuts) - 2:  # the last span's length in lines is never needed
                line += _count_newlines(fh, start, stop)
    return spans


def _count_newlines(fh: Any, start: int, stop: int) -> int:
    fh.seek(start)
    count, left = 0, stop - start
    while left > 0 and (block := fh.read(min(left, 1 << 22))):
        count += block.count(b"\n")
        left -= len(block)
    return count


def _parquet_spans(location: str, name: str, block_bytes: int) -> list[tuple[int, int, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(location).metadata
    except (pa.ArrowException, OSError) as exc:
        raise RecordError("not a readable Parquet file", source=name, detail=str(exc)) from exc
    spans: list[tuple[int, int, int]] = []
    start, first, size, rows = 0, 1, 0, 0
    for group in range(meta.num_row_groups):
        size += meta.row_group(group).total_byte_size
        rows += meta.row_group(group).num_rows
        if size >= block_bytes:
            spans.append((start, group + 1, first))
            start, first, size, rows = group + 1, first + rows, 0, 0
    if start < meta.num_row_groups or not spans:
        spans.append((start, meta.num_row_groups, first))
    return spans


def shard_rows(shard: Shard, reader: PostReader, encoding: str = "utf-8") -> Iterator[RawRow]:
    """The shard's rows, numbered and named as in the user's whole file."""
    if shard.kind == "row_groups":
        yield from _row_group_rows(shard, reader.source)
    elif shard.kind == "bytes":
        yield from _byte_range_rows(shard, reader.source, encoding)
    else:
        yield from _placed(iter_rows(shard.location, encoding=encoding, on_header=reader.check_columns),
                           reader.source, 0)


def _placed(rows: Iterator[RawRow], source: str, offset: int) -> Iterator[RawRow]:
    for row in rows:
        error = row.error
        if error is not None:
            error = error.located(source, error.line + offset if error.line else None, error.unit)
        yield RawRow(row.line + offset, row.data, row.raw, error)


def _byte_range_rows(shard: Shard, source: str, encoding: str) -> Iterator[RawRow]:
    """The range is copied to a local file so the ordinary JSON Lines reader
    reads it: same parsing, same rejects. A range that does not start the file
    gets a leading blank line (skipped, not counted), so its first line is not
    taken for the file's first line, the only one whose BOM is stripped."""
    pad = 1 if shard.start > 0 else 0
    with tempfile.TemporaryDirectory(prefix="kocscope-shard-") as tmp:
        copy = Path(tmp) / "shard.jsonl"
        with open(shard.location, "rb") as src, open(copy, "wb") as dst:
            dst.write(b"\n" * pad)
            src.seek(shard.start)
            left = shard.stop - shard.start
            while left > 0:
                block = src.read(min(left, 1 << 22))
                if not block:
                    raise OSError(f"{source}: shorter than when the run was planned; was it changed during the run?")
                dst.write(block)
                left -= len(block)
        yield from _placed(iter_rows(copy, encoding=encoding, fmt="jsonl"), source, shard.first_line - 1 - pad)


def _row_group_rows(shard: Shard, source: str) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    number = shard.first_line - 1
    try:
        parquet = pq.ParquetFile(shard.location)
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=range(shard.start, shard.stop)):
            for row in batch.to_pylist():
                number += 1
                yield RawRow(number, row, row)
    except (pa.ArrowException, OSError) as exc:
        raise RecordError("corrupt Parquet data", source=source, line=number + 1, unit="row", detail=str(exc)) from exc


# -- workers -------------------------------------------------------------------------
@dataclass
class ShardResult(Counts):
    """What one shard gave; ``error`` is the problem that stops the run, if any."""

    index: int = 0
    rejects_file: str | None = None
    error: dict[str, Any] | None = None


def _error_payload(exc: BaseException) -> dict[str, Any]:
    """An error as plain data: Ray pickles exceptions by message only, losing field and line."""
    from kocscope.models.bundle import BundleError

    if isinstance(exc, RecordError):
        return {"type": "schema" if isinstance(exc, SchemaError) else "record", "explanation": exc.explanation,
                "source": exc.source, "line": exc.line, "field": exc.field, "unit": exc.unit}
    for kind, cls in (("bundle", BundleError), ("os", OSError), ("value", ValueError)):
        if isinstance(exc, cls):
            return {"type": kind, "message": str(exc)}
    return {"type": "other", "message": f"{type(exc).__name__}: {exc}"}


def _rebuild_error(payload: Mapping[str, Any]) -> Exception:
    from kocscope.models.bundle import BundleError

    kind = payload["type"]
    if kind in ("record", "schema"):
        cls = SchemaError if kind == "schema" else RecordError
        return cls(payload["explanation"], source=payload["source"], line=payload["line"], field=payload["field"],
                   unit=payload["unit"])
    if kind == "os":
        return OSError(f"{payload['message']} (on a Ray worker: every node must reach the inputs and the output "
                       "folder at the same paths)")
    if kind == "bundle":
        return BundleError(f"a Ray worker could not load the model: {payload['message']}")
    return (ValueError if kind == "value" else RuntimeError)(f"on a Ray worker: {payload['message']}")


class ShardScorer:
    """The Ray Data actor: loads the bundle once, then scores one shard per call.

    ``settings`` holds what ``score_files_ray`` resolved; ``bundle`` is None (load
    ``settings['model']``, a path every node can read, or the installed default
    model) or ``[ObjectRef]`` of ``{relative path: bytes}`` shipped by the driver.
    """

    def __init__(self, settings: Mapping[str, Any], bundle: list[Any] | None = None) -> None:
        from kocscope.inference.api import load_model

        self.settings = dict(settings)
        self.failure: dict[str, Any] | None = None  # reported with each shard: a dead actor's error is text only
        device, options = self.settings.get("device"), self.settings.get("load_options") or {}
        try:
            if bundle:
                import ray

                self.model = load_shipped_bundle(ray.get(bundle[0]), device=device, options=options)
            else:
                self.model = load_model(self.settings.get("model"), device=device, **options)
        except Exception as exc:  # noqa: BLE001  (whatever stops the load is the run's error, reported per shard)
            self.failure = _error_payload(exc)
            return
        threads = self.settings.get("threads")
        if threads and self.model.kind != "lexical":
            import torch

            torch.set_num_threads(threads)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np

        shards = [Shard(**json.loads(item)) for item in batch["shard"]]
        results = [ShardResult(index=shard.index, error=self.failure) if self.failure else self.score(shard)
                   for shard in shards]
        return {"result": np.array([json.dumps(asdict(r), ensure_ascii=False) for r in results])}

    def score(self, shard: Shard) -> ShardResult:
        """Validate and score the shard in windows like ``score_files``; write its part files."""
        s = self.settings
        result = ShardResult(index=shard.index)
        work = Path(s["work_dir"])
        part = work / shard_name(shard.index, s["digits"], s["format"])
        rejects_part = work / _REJECTS_DIR / f"{part.name}.rejects.jsonl"
        try:
            reader = read_posts(shard.location, encoding=s["encoding"], on_error=s["on_error"],
                                column_map=s["column_map"])
            reader.source = shard.path
            with ExitStack() as stack:
                out = stack.enter_context(RecordWriter(part))
                bad: RecordWriter | None = None
                rows = shard_rows(shard, reader, s["encoding"])
                while chunk := list(islice(rows, DEFAULT_WINDOW)):
                    if (work / _STOP_FILE).exists():  # an earlier shard failed: nothing here will be kept
                        return result
                    checked = validate_window(reader, chunk, s["on_error"], result.reasons)
                    if checked.error is not None:
                        result.error = _error_payload(checked.error)
                        return result
                    if checked.rejects and bad is None:
                        bad = stack.enter_context(RecordWriter(rejects_part, "jsonl"))
                        result.rejects_file = str(rejects_part)
                    for record in checked.rejects:
                        bad.write(record)  # type: ignore[union-attr]
                    scores = self.model.score_posts(checked.posts, batch_size=s["batch_size"], explain=s["explain"])
                    result.tally(checked, scores)
                    for post, score in zip(checked.posts, scores):
                        out.write(output_row(post, score))
        except (RecordError, OSError) as exc:
            result.error = _error_payload(exc)
        return result


def load_shipped_bundle(
    files: Mapping[str, bytes], *, device: str | None = None, options: Mapping[str, Any] | None = None
) -> KocscopeModel:
    """Load a bundle that came as ``{relative path: bytes}``: written to a private
    temporary folder, verified against its manifest by ``load_model``, and the
    folder removed once loaded (the weights are in memory by then)."""
    from kocscope.inference.api import load_model
    from kocscope.models.bundle import BundleError

    folder = Path(tempfile.mkdtemp(prefix="kocscope-bundle-"))
    try:
        for name, data in files.items():
            parts = PurePosixPath(name).parts
            if not parts or name.startswith("/") or any(part in ("", ".", "..") for part in parts):
                raise BundleError(f"shipped bundle: file name {name!r} points outside the bundle")
            target = folder.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return load_model(folder, device=device, **(options or {}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bundle_files(path: str | os.PathLike[str] | None) -> dict[str, bytes]:
    """A bundle's files for ``ray.put``, verified here first so a bad bundle fails before Ray starts."""
    from kocscope.models.bundle import read_bundle_config

    root = Path(path) if path is not None else DEFAULT_MODEL_DIR
    read_bundle_config(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- output -----------------------------------------------------------------------------
def shard_name(index: int, digits: int, fmt: str) -> str:
    return f"{SHARD_PREFIX}{index:0{digits}d}.{fmt}"


def shard_format(output: str | os.PathLike[str], fmt: str | None = None) -> str:
    """Shard format: ``fmt``, else the output folder's extension (``scored.parquet/``), else JSON Lines."""
    if fmt is None:
        try:
            form = detect_format(output)
        except ValueError:
            return "jsonl"
        return form.kind + (".gz" if form.gzip else "")
    if fmt not in SHARD_FORMATS:
        raise ValueError(f"shard format must be one of {', '.join(SHARD_FORMATS)}; got {fmt!r}")
    return fmt


def _check_output(out_dir: Path) -> None:
    if out_dir.is_file():
        raise ValueError(f"{out_dir}: is a file; the ray engine writes a folder of shards (-o OUT_DIR)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER_FILE).is_file():
        raise ValueError(
            f"{out_dir}: the folder exists and is not the output of kocscope score --engine ray; "
            "choose another -o or remove it"
        )


# -- driver ------------------------------------------------------------------------------
@contextmanager
def ray_session(address: str | None, num_cpus: int | None, object_store_bytes: int) -> Iterator[Any]:
    """Connect to ``address`` or start a local Ray; leave a session the caller
    already opened alone, and shut down only one opened here."""
    if address is not None and num_cpus is not None:
        raise ValueError("num_cpus sizes a local Ray; a cluster given by address has its own")
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None:
        options.update(num_cpus=num_cpus, object_store_memory=object_store_bytes)
    ray.init(address=address, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


@contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[None]:
    """Our progress bar and summary replace Ray Data's bars and INFO logs."""
    context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    bars, level = context.enable_progress_bars, logger.level
    context.enable_progress_bars = False
    logger.setLevel(logging.ERROR)  # WARNING would announce that the bars are off
    try:
        yield
    finally:
        context.enable_progress_bars = bars
        logger.setLevel(level)


def score_files_ray(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    ship_model: bool = False,
    fmt: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    explain: bool = False,
    on_error: str = "raise",
    rejects_path: str | os.PathLike[str] | None = None,
    column_map: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    load_options: Mapping[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ScoreSummary:
    """Score posts files on Ray into the folder ``output``; the same rows, scores,
    rejects and summary as ``score_files``, in shards.

    ``address`` joins a running cluster (``"auto"``: the one this machine is
    part of); without it a local Ray with ``num_cpus`` CPUs is started and shut
    down after. ``model`` must be readable at that path on every node (the
    default model is, inside each installed kocscope) unless ``ship_model``
    sends the bundle's bytes through the object store. ``workers`` actors (default:
    one per ``threads`` CPUs, or per GPU with a ``cuda`` device) each load the
    bundle once (``load_options``: more keyword arguments for ``load_model``
    there). Under ``on_error='raise'`` the first bad row in input order raises
    its RecordError and nothing is written.
    """
    names = [str(p) for p in inputs]
    if not names:
        raise ValueError("no input files")
    if STDIO in names or str(output) == STDIO:
        raise ValueError("the ray engine reads and writes files that every worker can open, not stdin/stdout ('-')")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    for name in names:
        reader = read_posts(name, encoding=encoding, on_error=on_error, column_map=column_map)  # type: ignore[arg-type]
        if detect_format(name).kind != "jsonl":  # a header that does not fit fails now, as locally
            rows = iter_rows(name, encoding=encoding, on_header=reader.check_columns)
            next(rows, None)
            rows.close()
    out_dir = Path(output)
    form = shard_format(out_dir, fmt)
    _check_output(out_dir)
    if on_error == "skip" and rejects_path is None:
        rejects_path = default_rejects_path(out_dir)
    check_output_paths(names, out_dir, rejects_path)
    if rejects_path is not None and detect_format(rejects_path).kind != "jsonl":
        raise ValueError(f"{rejects_path}: rejects are written to a JSON Lines file; name it .jsonl")
    shipped = bundle_files(model) if ship_model else None
    kind = None
    if not ship_model:
        from kocscope.models.bundle import read_bundle_config

        kind = read_bundle_config(model if model is not None else DEFAULT_MODEL_DIR).get("kind")
    shards = plan_shards(names, block_bytes=block_bytes)
    store = LOCAL_OBJECT_STORE_BYTES + 2 * sum(map(len, (shipped or {}).values()))
    gpu = bool(device and device.startswith("cuda")) and kind != "lexical"  # a lexical model runs on CPUs
    summary = ScoreSummary(output=str(output))
    started = time.perf_counter()
    work = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:  # the work folder goes after a local Ray has stopped, so no worker can still write there
        with ray_session(address, num_cpus, store) as ray, _quiet_ray_data(ray):
            (work / _REJECTS_DIR).mkdir(parents=True)
            settings = {
                "model": os.path.abspath(model) if model is not None else None, "device": device,
                "threads": threads, "batch_size": batch_size, "explain": explain, "on_error": on_error,
                "column_map": dict(column_map or {}), "encoding": encoding, "work_dir": str(work.resolve()),
                "format": form, "digits": max(5, len(str(len(shards) - 1))), "load_options": dict(load_options or {}),
            }
            bundle = [ray.put(shipped)] if shipped is not None else None
            capacity = ray.cluster_resources().get("GPU" if gpu else "CPU", 0 if gpu else 1)
            if gpu and capacity < 1:  # Ray would wait for a GPU node forever
                raise ValueError(f"--device {device}: the Ray cluster has no GPU; use --device cpu or auto")
            size = workers or max(1, int(capacity // (1 if gpu else threads or 1)))
            data = ray.data.from_items([{"shard": json.dumps(asdict(s))} for s in shards],
                                       override_num_blocks=len(shards))
            data = data.map_batches(
                ShardScorer, fn_constructor_kwargs={"settings": settings, "bundle": bundle}, batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=min(size, len(shards)), max_tasks_in_flight_per_actor=1),
                num_cpus=threads or 1, num_gpus=1 if gpu else 0,
            )
            results = _collect(data, len(shards), work, on_progress)
            stop = min((r.index for r in results.values() if r.error), default=None)
            if stop is not None:
                raise _rebuild_error(results[stop].error)  # type: ignore[arg-type]
            for index in range(len(shards)):
                summary.add(results[index])
            summary.seconds = time.perf_counter() - started
            if summary.rejected:
                summary.rejects = str(rejects_path)
                with RecordWriter(rejects_path, "jsonl") as merged:  # type: ignore[arg-type]
                    for index in range(len(shards)):
                        if results[index].rejects_file:
                            for row in iter_rows(results[index].rejects_file, fmt="jsonl"):
                                merged.write(row.data)  # type: ignore[arg-type]
            shutil.rmtree(work / _REJECTS_DIR)
            marker = {"format": _MARKER_FORMAT, "engine": "ray", "inputs": names, "shards": len(shards),
                      "shard_format": form, "model": str(model) if model is not None else "default",
                      "summary": summary.to_dict()}
            (work / MARKER_FILE).write_text(json.dumps(marker, ensure_ascii=False, indent=2), encoding="utf-8")
            replace_dir(work, out_dir)
            if not summary.rejected:
                remove_stale_rejects(rejects_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _collect(data: Any, total: int, work: Path, on_progress: Callable[[int], None] | None) -> dict[int, ShardResult]:
    """Every shard's result. Once the first stopping error in input order is
    known (every shard before it is done), a stop file tells the workers to drop
    the rest; the run still waits for them, so no task is writing into the
    work folder when it is removed."""
    results: dict[int, ShardResult] = {}
    stop: int | None = None
    try:
        for row in data.iter_rows():
            result = ShardResult(**json.loads(row["result"]))
            results[result.index] = result
            if on_progress:
                on_progress(result.read)
            if result.error and (stop is None or result.index < stop):
                stop = result.index
            if stop is not None and all(i in results for i in range(stop)):
                (work / _STOP_FILE).touch()
    except Exception as exc:
        cause = getattr(exc, "cause", None)  # RayTaskError keeps the worker's own exception
        if isinstance(cause, Exception):
            raise cause from None
        raise
    missing = [i for i in range(total) if i not in results]
    if missing:
        raise RuntimeError(f"Ray returned no result for {len(missing)} shard(s), e.g. #{missing[0]}")
    return results
