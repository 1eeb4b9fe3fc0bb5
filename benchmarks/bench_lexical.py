"""Scoring speed and memory of the lexical model on Zhihu posts; prints figures, not a test.

Fits a model on the first --fit-rows train posts (scoring cost does not depend
on how many rows trained it), saves and reloads it, then scores in a fresh
subprocess per measurement so each peak RSS is that run's own:

* posts of median Zhihu length (within 10% of the median, repeated to 10k rows),
  per word_tokens mode;
* the whole train split (its real length mix);
* 10k and 100k rows (train texts repeated) to show how time and memory scale.

Reports wall-clock and CPU posts/s (CPU time is steadier on a shared machine;
the load average is printed too) and peak RSS with the RSS before scoring.

    .venv/bin/python benchmarks/bench_lexical.py [--data DIR] [--fit-rows 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def memory_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc: unlike ru_maxrss, the high-water mark
    starts afresh at exec, so it is not the parent's (Linux only)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(bundle: Path, data: Path, which: str, rows: int, batch_size: int) -> None:
    """Score one workload and print one JSON line of figures."""
    import numpy as np

    from kocscope.models.lexical import LexicalModel

    texts = [row["text"] for row in read_rows(data / "train.jsonl")]
    if which == "median":
        median = float(np.median([len(t) for t in texts]))
        texts = [t for t in texts if abs(len(t) - median) <= 0.1 * median]
    if rows:
        texts = (texts * (rows // len(texts) + 1))[
            :rows
        ]  # repeats share str objects: input memory stays flat
    model = LexicalModel.from_pretrained(bundle)
    model.predict_outputs(texts[:64])  # load jieba / the lexicon outside the timing
    rss_before = memory_mb("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset VmHWM to the current RSS: the peak below is the scoring's own
    wall, cpu = time.perf_counter(), time.process_time()
    model.predict_outputs(texts, batch_size=batch_size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        json.dumps(
            {
                "posts": len(texts),
                "mean_chars": float(np.mean([len(t) for t in texts])),
                "posts_per_s_wall": len(texts) / wall,
                "posts_per_s_cpu": len(texts) / cpu,
                "seconds": wall,
                "rss_before_mb": rss_before,
                "peak_rss_mb": memory_mb("VmHWM"),
            }
        )
    )


def run_child(bundle: Path, data: Path, which: str, rows: int, batch_size: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(bundle),
        "--data",
        str(data),
        "--which",
        which,
        "--rows",
        str(rows),
        "--batch-size",
        str(batch_size),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/zhihu16k")
    parser.add_argument("--fit-rows", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--which", default="all", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.which, args.rows, args.batch_size)
        return

    import numpy as np

    from kocscope.models.lexical import LexicalModel

    rows = read_rows(args.data / "train.jsonl")
    lengths = np.array([len(r["text"]) for r in rows])
    print(
        f"zhihu16k train: {len(rows)} posts, median {np.median(lengths):.0f} chars, mean {lengths.mean():.0f}"
    )
    print(
        f"cpus {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}, batch_size {args.batch_size}\n"
    )
    fit = rows[: args.fit_rows]
    texts, y = [r["text"] for r in fit], [r["label"] for r in fit]
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for mode in ("non_chinese", "all", "none"):
            bundle = Path(tmp) / mode
            LexicalModel(word_tokens=mode).fit(texts, y).save_pretrained(bundle)
            runs.append((f"median-length posts, word_tokens={mode}", bundle, "median", 10_000))
        default = Path(tmp) / "non_chinese"
        runs += [
            ("train split as is, word_tokens=non_chinese", default, "all", 0),
            ("10k rows (repeated), word_tokens=non_chinese", default, "all", 10_000),
            ("100k rows (repeated), word_tokens=non_chinese", default, "all", 100_000),
        ]
        for name, bundle, which, n in runs:
            r = run_child(bundle, args.data, which, n, args.batch_size)
            print(
                f"{name:48s} {r['posts']:7d} posts (mean {r['mean_chars']:4.0f} chars)  "
                f"{r['posts_per_s_wall']:6.0f} posts/s wall, {r['posts_per_s_cpu']:6.0f} cpu  "
                f"{r['seconds']:6.1f} s  RSS {r['rss_before_mb']:5.0f} -> peak {r['peak_rss_mb']:5.0f} MB"
            )
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
