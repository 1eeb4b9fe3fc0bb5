"""Transformer scoring throughput: kocscope's engines vs a plain transformers loop.

Every path runs the same model on the same posts in one process, one after the
other. The reference feeds posts in input order, in fixed batches padded to the
longest, through AutoTokenizer + the module (what a first script would do);
kocscope's engine sorts by length inside a window and batches by token budget,
on torch, on ONNX Runtime (fp32 graph) and on ONNX Runtime with dynamic int8
weights (what ``kocscope optimize`` writes). The torch and ORT fp32 engines must
agree with the reference within 1e-4; the int8 one is judged like the
optimize check: F1 change against the posts' gold labels (when the file has
them), labels flipped, probability differences.

    .venv/bin/python benchmarks/bench_transformer.py --data ../shared/data/zhihu16k/val.jsonl --n 512
    .venv/bin/python benchmarks/bench_transformer.py --model path/to/bundle   # a trained bundle

Without --model it builds an untrained LoRA bundle on the bundled e5-small with
long_text="head" (throughput does not depend on the trained values). A bundle
trained with another long-text strategy runs here with long_text="head", so the
reference loop's plain truncation feeds it the same tokens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def load_texts(path: str, n: int) -> tuple[list[str], np.ndarray]:
    """Model texts and gold labels (1 promotion, 0 genuine, -1 none) from a 'label' field."""
    from kocscope.data.io import read_posts

    texts, gold = [], []
    for post in read_posts(path):
        texts.append(post.model_text)
        label = str(post.extra.get("label", "")).strip().lower()
        gold.append(1 if label in ("1", "promotion") else 0 if label in ("0", "genuine") else -1)
        if len(texts) == n:
            break
    return texts, np.asarray(gold)


def agreement(model, ref: np.ndarray, logits: np.ndarray, gold: np.ndarray) -> dict:
    """The optimize check's figures, against the reference loop's logits."""
    from kocscope.training.metrics import classification_metrics

    thr = model._threshold()
    p_ref, p = model.p_promotion(ref), model.p_promotion(logits)
    out = {
        "max_abs_logit_diff": float(np.max(np.abs(ref - logits))),
        "max_abs_p_diff": float(np.max(np.abs(p_ref - p))),
        "mean_abs_p_diff": float(np.mean(np.abs(p_ref - p))),
        "labels_flipped": int(((p_ref >= thr) != (p >= thr)).sum()),
    }
    labelled = gold >= 0
    if labelled.any() and gold[labelled].max() == 1:
        f1 = classification_metrics(gold[labelled], p[labelled], thr)["f1"]
        f1_ref = classification_metrics(gold[labelled], p_ref[labelled], thr)["f1"]
        out["f1"] = f1
        out["f1_change_points"] = 100.0 * (f1 - f1_ref)
    return out


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
    parser.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime engines")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (slices of the posts)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from kocscope.models.modeling import TransformerPostModel

    if args.model:
        model = TransformerPostModel.from_pretrained(args.model, runtime="torch")
        if model.long_text != "head":
            model.long_text = "head"
            model.long_text_config_ = dataclasses.replace(model.long_text_config_, strategy="head")
    else:
        model = TransformerPostModel(long_text="head", max_length=args.max_length).init_module()
    texts, gold = load_texts(args.data, args.n)
    lengths = [len(model.tokenizer_(model.text_prefix + t, truncation=True, max_length=model.max_length)["input_ids"]) for t in texts]
    setup: dict = {}
    encoders = {}
    if not args.no_onnx:
        from kocscope.inference.onnx_runtime import OnnxEncoder, export_encoder, fuse_encoder, quantize_int8

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            fp32 = export_encoder(model, Path(tmp) / "fp32.onnx")  # merges LoRA: every path below runs merged
            setup["fused_ops"] = fuse_encoder(model, fp32)  # as kocscope optimize does
            setup["export_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            int8 = Path(tmp) / "int8.onnx"
            setup["int8"] = quantize_int8(fp32, int8)
            setup["quantize_s"] = time.perf_counter() - t0
            for name, graph in (("kocscope_ort_fp32", fp32), ("kocscope_ort_int8", int8)):
                encoders[name] = OnnxEncoder(graph, threads=torch.get_num_threads())
                setup[f"{name}_file_mb"] = graph.stat().st_size / 1e6

    def engine(encoder):
        def run(chunk: list[str]) -> np.ndarray:
            if encoder is None:
                model.set_runtime("torch")
            else:
                model.use_onnx(encoder)
            return model.predict_outputs(chunk).logits

        return run

    paths = {
        "reference": lambda chunk: reference_loop(model, chunk, args.batch_size),
        "kocscope_torch": engine(None),
        **{name: engine(enc) for name, enc in encoders.items()},
    }
    for run in paths.values():
        run(texts[:8])  # warm-up: first-call allocations
    # Interleaved rounds, each path on the same slice in rotating order, so a change
    # in the machine's load (it is shared) hits every path alike.
    seconds = dict.fromkeys(paths, 0.0)
    outputs = {name: np.zeros(len(texts), dtype=np.float32) for name in paths}
    names = list(paths)
    for r, idx in enumerate(np.array_split(np.arange(len(texts)), args.rounds)):
        chunk = [texts[i] for i in idx]
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            outputs[name][idx] = paths[name](chunk)
            seconds[name] += time.perf_counter() - t0
    ref, t_ref = outputs["reference"], seconds["reference"]
    engines = {name: (seconds[name], outputs[name]) for name in names[1:]}

    report = {
        "data": args.data,
        "posts": len(texts),
        "tokens_mean": float(np.mean(lengths)),
        "tokens_p50": float(np.median(lengths)),
        "max_length": model.max_length,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "reference_posts_per_s": len(texts) / t_ref,
        "reference": agreement(model, ref, ref, gold),
        **{
            name: {"posts_per_s": len(texts) / t, "speedup": t_ref / t, **agreement(model, ref, out, gold)}
            for name, (t, out) in engines.items()
        },
        **setup,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
