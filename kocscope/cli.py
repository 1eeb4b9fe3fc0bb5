"""The ``kocscope`` command line: one verb per job.

Exit codes: 0 success, 1 the input had rejected rows (under ``--on-error raise``)
or the job failed on data, 2 usage errors (bad options, missing files).
Heavy libraries are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import sys
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
