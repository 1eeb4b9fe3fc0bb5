"""Transformer scoring throughput: kocscope's engine vs a plain transformers loop.

Both paths run the same bundle on the same posts in one process, one after the
other. The reference feeds posts in input order, in fixed batches padded to the
longest, through AutoTokenizer + the module (what a first script would do);
kocscope's engine sorts by length inside a window and batches by token budget.
Outputs must agree within 1e-4.

    .venv/bin/python benchmarks/bench_transformer.py --data ../shared/data/zhihu16k/val.jsonl --n 512
    .venv/bin/python benchmarks/bench_transformer.py --model path/to/bundle   # a trained bundle

Without --model it builds an untrained LoRA bundle on the bundled e5-small with
long_text="head" (throughput does not depend on the trained values).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch


def load_texts(path: str, n: int) -> list[str]:
    from kocscope.data.io import read_posts

    texts = []
    for post in read_posts(path):
        texts.append(post.model_text)
        if len(texts) == n:
            break
    return texts


def reference_loop(model, texts: list[str], batch_size: int) -> np.ndarray:
    """Input order, fixed batches, padding to the longest, no_grad."""
    tok, module = model.tokenizer_, model.module_
    prefix = model.text_prefix or ""
    module.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = [prefix + t for t in texts[i : i + batch_size]]
            enc = tok(batch, padding=True, truncation=True, max_length=model.max_length, return_tensors="pt")
            logits, _ = module(enc["input_ids"], enc["attention_mask"])
            out.append(logits.numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/zhihu16k/val.jsonl"))
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=32, help="reference loop batch size")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from kocscope.models.modeling import TransformerPostModel

    if args.model:
        from kocscope.models.bundle import load_estimator

        model = load_estimator(args.model)
        if model.long_text != "head":
            sys.exit("the reference loop truncates the head; use a bundle with long_text='head'")
    else:
        model = TransformerPostModel(long_text="head", max_length=args.max_length).init_module()
    texts = load_texts(args.data, args.n)
    lengths = [len(model.tokenizer_(model.text_prefix + t, truncation=True, max_length=model.max_length)["input_ids"]) for t in texts]
    model.predict_outputs(texts[:8])  # warm-up: first-call allocations

    t0 = time.perf_counter()
    ref = reference_loop(model, texts, args.batch_size)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = model.predict_outputs(texts).logits
    t_ours = time.perf_counter() - t0

    report = {
        "posts": len(texts),
        "tokens_mean": float(np.mean(lengths)),
        "tokens_p50": float(np.median(lengths)),
        "max_length": model.max_length,
        "threads": torch.get_num_threads(),
        "reference_posts_per_s": len(texts) / t_ref,
        "kocscope_posts_per_s": len(texts) / t_ours,
        "speedup": t_ref / t_ours,
        "max_abs_logit_diff": float(np.max(np.abs(ref - ours))),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
