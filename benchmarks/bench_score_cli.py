"""End-to-end `kocscope score` on growing inputs: posts/s and peak memory.

Builds inputs of N rows by cycling the zhihu16k train posts, runs the CLI in a
child process for each size, and prints wall time, posts/s and the child's
peak RSS. Flat memory means the 100k run peaks no higher than the 10k run.

    .venv/bin/python benchmarks/bench_score_cli.py --sizes 10000 100000
    .venv/bin/python benchmarks/bench_score_cli.py --model runs/x/model --sizes 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_input(source: Path, n: int, out: Path) -> None:
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(out, "w", encoding="utf-8") as fh:
        for i, row in enumerate(islice(cycle(rows), n)):
            fh.write(json.dumps({"id": f"r{i}", "author_id": f"a{i % 997}", "text": row["text"]}, ensure_ascii=False) + "\n")


def run(input_path: Path, output: Path, model: str | None) -> dict:
    cmd = [sys.executable, "-m", "kocscope", "score", str(input_path), "-o", str(output), "--json"]
    if model:
        cmd += ["--model", model]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    # a fresh child per size: RUSAGE_CHILDREN reports the largest child so far, so run sizes ascending
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads(done.stdout)
    return {"rows": summary["read"], "wall_s": round(wall, 2), "posts_per_s_wall": round(summary["read"] / wall, 1),
            "posts_per_s_scoring": summary["posts_per_second"] and round(summary["posts_per_second"], 1),
            "peak_rss_mb": round(max(peak, before) / 1024, 1), "grew": peak > before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/zhihu16k/train.jsonl"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--model", default=None, help="bundle (default: the shipped default model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.sizes):
            src = Path(tmp) / f"in-{n}.jsonl"
            make_input(Path(args.data), n, src)
            print(json.dumps({"size_mb": round(os.path.getsize(src) / 2**20, 1), **run(src, Path(tmp) / f"out-{n}.jsonl", args.model)}))


if __name__ == "__main__":
    main()
