"""ONNX Runtime engine for transformer bundles, with optional dynamic int8 weights.

``kocscope optimize`` exports the bundle's encoder and mean pooling (the part
that costs: heads are two tiny linear layers and stay in torch, so window
pooling is exactly the torch code) to one ONNX file with dynamic batch and
sequence axes, fuses its BERT blocks into ONNX Runtime's fused kernels,
optionally quantizes its MatMul weights to int8 (``quantize_dynamic``), and
writes a new bundle only after the optimized path agrees with the torch reference on a fixed set of posts: F1 may move by at
most 0.5 points. The bundle records the runtime it was validated with and
the agreement figures, so a user can see what the speed cost.

ONNX files are protobuf data, not code; nothing here unpickles anything.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kocscope.data.records import RecordError

if TYPE_CHECKING:
    from kocscope.models.base import ModelOutputs
    from kocscope.models.modeling import TransformerPostModel

ONNX_FILE = "encoder.onnx"
OPSET = 18
QUANTIZATIONS = ("none", "dynamic-int8")
MAX_F1_CHANGE_POINTS = 0.5
INPUT_NAMES = ("input_ids", "attention_mask")
INSTALL_HINT = "pip install 'kocscope[onnx]'"


class AgreementError(RuntimeError):
    """The optimized path disagrees with the torch reference beyond the tolerance."""

    def __init__(self, message: str, agreement: Agreement) -> None:
        super().__init__(message)
        self.agreement = agreement


def require_onnxruntime(purpose: str) -> Any:
    """onnxruntime, or an ImportError that says how to get it or avoid it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs onnxruntime, which is not installed: {INSTALL_HINT}, "
            "or run the torch engine instead (runtime='torch', CLI --runtime torch)"
        ) from exc
    return onnxruntime


def cpu_threads() -> int:
    """CPUs this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxEncoder:
    """An ORT session that computes pooled window embeddings, in place of
    ``PostModule.embed``; intra-op threads default to the CPUs available."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        ort = require_onnxruntime(f"the ONNX graph {path}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        self.path = Path(path)
        self.threads = options.intra_op_num_threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ValueError(f"{path}: ONNX Runtime cannot load the graph ({exc})") from exc
        names = tuple(i.name for i in self.session.get_inputs())
        if sorted(names) != sorted(INPUT_NAMES):
            raise ValueError(f"{path}: graph inputs are {names}, expected {INPUT_NAMES}")

    def embed(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {
            "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
            "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
        }
        return self.session.run(None, feed)[0]


# -- export and quantization ---------------------------------------------------------


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_encoder(model: TransformerPostModel, path: str | os.PathLike[str]) -> Path:
    """Write encoder + mean pooling as one ONNX file (dynamic batch and sequence axes).

    LoRA adapters are merged into the weights first (in place: ``model`` can no
    longer be trained), so the graph carries no adapter branches. The graph is
    traced by the TorchScript exporter with the encoder's eager attention, the
    layout ONNX Runtime's BERT fusions recognise: on e5-small that fused all 12
    attention blocks, which the dynamo exporter's graph did not allow.
    """
    import torch

    from kocscope.models.modeling import eval_mode

    model._require_module()
    model.merge_lora()
    module = model.module_

    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.post = module

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.post.embed(input_ids, attention_mask)

    vocab = int(module.encoder.config.vocab_size)
    # batch 2 and an uneven mask, so the trace holds a real padding mask
    ids = torch.arange(16, dtype=torch.long).reshape(2, 8) % vocab
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    target = Path(path)
    attention = module.encoder.config._attn_implementation
    # The exporter warns about traced shape checks and deprecation: not the user's business.
    with (
        eval_mode(module),
        torch.no_grad(),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        _quiet_logger("torch.onnx"),
    ):
        warnings.simplefilter("ignore")
        module.encoder.set_attn_implementation("eager")
        try:
            torch.onnx.export(
                Embed().eval(),
                (ids, mask),
                str(target),
                dynamo=False,
                input_names=list(INPUT_NAMES),
                output_names=["pooled"],
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES},
                opset_version=OPSET,
            )
        finally:
            module.encoder.set_attn_implementation(attention)
    return target


# Encoders whose exported graph ONNX Runtime's BERT fusions understand.
FUSABLE_MODEL_TYPES = ("bert", "roberta", "xlm-roberta")


def fuse_encoder(model: TransformerPostModel, path: str | os.PathLike[str]) -> dict[str, int]:
    """Rewrite an exported BERT-family graph in place with ONNX Runtime's fused kernels
    (bias + GELU, residual + LayerNorm, ...); return the count of each fused op.

    The session's own optimizer does not make these fusions; on e5-small and 64
    long posts they made the fp32 graph about 1.6x as fast as the torch engine
    (outputs within 1e-5). Other encoder types are left as exported (an empty dict).
    """
    require_onnxruntime("graph fusion")
    config = model.module_.encoder.config
    if config.model_type not in FUSABLE_MODEL_TYPES:
        return {}
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet_logger(""), contextlib.redirect_stdout(io.StringIO()):
        fused = optimize_model(
            str(path),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=1,
        )
        fused.save_model_to_file(str(path))
    return {op: n for op, n in fused.get_fused_operator_statistics().items() if n}


def quantize_int8(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> dict[str, Any]:
    """Dynamic int8 quantization: per-channel int8 weights, activations quantized per
    batch at run time. Returns what was quantized, for the bundle's record.

    Only MatMuls with a constant weight that keeps or widens the width are
    quantized. The narrowing ones (the FFN down-projections) read GELU outputs
    whose outliers a per-tensor activation scale crushes; on e5-small keeping
    them fp32 halved the logit error for a small part of the speed. The
    embedding table (Gather) stays fp32 too: it costs no compute.
    """
    require_onnxruntime("int8 quantization")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    weighted = [
        n for n in graph.node if n.op_type == "MatMul" and len(shapes.get(n.input[1], ())) == 2
    ]
    chosen = [n.name for n in weighted if shapes[n.input[1]][0] <= shapes[n.input[1]][1]]
    with _quiet_logger(""):  # "consider pre-processing" advice on the root logger, every call
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=chosen,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return {
        "weights": "int8 per channel",
        "activations": "uint8 per tensor, dynamic",
        "matmuls_quantized": len(chosen),
        "matmuls_kept_fp32": len(weighted) - len(chosen),
    }


# -- the agreement check ---------------------------------------------------------------


@dataclass
class CheckSet:
    """Posts the optimized path is compared on; ``y`` is 1/0 gold, -1 where unlabelled."""

    texts: list[str]
    ids: list[str]
    y: np.ndarray
    sources: list[str] = field(default_factory=list)

    @property
    def n_labelled(self) -> int:
        return int((self.y >= 0).sum())

    def require_both_classes(self) -> None:
        """F1 needs gold labels of both classes; checked before any slow work."""
        gold = self.y[self.y >= 0]
        if not len(gold) or gold.min() == gold.max():
            raise ValueError(
                f"{', '.join(self.sources)}: the check set needs gold labels of both classes "
                f"(found {self.n_labelled} labelled of {len(self.y)} posts) to measure the F1 change"
            )


def _label_value(value: Any, positive: str, negative: str, where: str, field_name: str) -> int:
    key = str(value).strip().lower()
    if key == positive.lower():
        return 1
    if key == negative.lower():
        return 0
    raise RecordError(
        f"{where}: field {field_name!r} is {value!r}; expected {positive!r} (promotion) or "
        f"{negative!r} (genuine); set --positive-label/--negative-label"
    )


def read_check_set(
    posts: Sequence[str | os.PathLike[str]],
    labels: str | os.PathLike[str] | None = None,
    *,
    label_field: str = "label",
    positive_label: str = "promotion",
    negative_label: str = "genuine",
    encoding: str = "utf-8",
) -> CheckSet:
    """Posts files, with gold labels from their own ``label_field`` or from a
    ``labels`` file of {"id", label_field} rows joined by post id (the layout of
    examples/posts.jsonl + posts_labels.jsonl). Bad rows raise RecordError; none is dropped."""
    from kocscope.data.io import iter_rows, read_posts

    gold: dict[str, int] = {}
    if labels is not None:
        for row in iter_rows(labels, encoding=encoding):
            where = f"{labels}, line {row.line}"
            if row.error is not None:
                raise RecordError(f"{where}: {row.error.explanation}")
            post_id = row.data.get("id")
            if isinstance(post_id, int) and not isinstance(post_id, bool):
                post_id = str(post_id)  # as posts' own numeric ids are read
            if not isinstance(post_id, str) or label_field not in row.data:
                raise RecordError(f"{where}: needs an 'id' and a {label_field!r} field")
            gold[post_id] = _label_value(
                row.data[label_field], positive_label, negative_label, where, label_field
            )
    texts: list[str] = []
    ids: list[str] = []
    y: list[int] = []
    for source in posts:
        for post in read_posts(source, encoding=encoding, on_error="raise"):
            texts.append(post.model_text)
            ids.append(post.id)
            own = post.extra.get(label_field)
            if own is not None and own != "":
                where = f"{source}, post {post.id}"
                y.append(_label_value(own, positive_label, negative_label, where, label_field))
            else:
                y.append(gold.get(post.id, -1))
    if labels is not None:
        unmatched = sorted(set(gold) - set(ids))
        if unmatched:
            raise RecordError(
                f"{labels}: {len(unmatched)} label row(s) match no post id in the check posts, "
                f"e.g. {unmatched[:5]}"
            )
    if not texts:
        raise ValueError(f"{', '.join(map(str, posts))}: no posts to check on")
    return CheckSet(
        texts=texts, ids=ids, y=np.asarray(y, dtype=np.int64), sources=[str(p) for p in posts]
    )


@dataclass
class Agreement:
    """How far an optimized path is from the torch reference on one check set.

    F1 is that of the `promotion` class at the bundle's threshold against gold
    labels; the change is optimized minus reference, in points (0-100 scale).
    """

    n_posts: int
    n_labelled: int
    f1_reference: float
    f1_optimized: float
    f1_change_points: float
    labels_flipped: int
    label_flip_share: float
    max_abs_p_diff: float
    mean_abs_p_diff: float
    max_abs_seeding_diff: float
    max_abs_logit_diff: float
    tolerance_f1_points: float
    passed: bool
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_outputs(
    estimator: TransformerPostModel,
    reference: ModelOutputs,
    optimized: ModelOutputs,
    check: CheckSet,
    tolerance_f1_points: float = MAX_F1_CHANGE_POINTS,
) -> Agreement:
    """The agreement figures; F1 needs labelled posts of both classes to mean anything."""
    from kocscope.training.metrics import classification_metrics

    check.require_both_classes()
    labelled = check.y >= 0
    p_ref = estimator.p_promotion(reference.logits)
    p_opt = estimator.p_promotion(optimized.logits)
    threshold = estimator._threshold()
    f1_ref = classification_metrics(check.y[labelled], p_ref[labelled], threshold)["f1"]
    f1_opt = classification_metrics(check.y[labelled], p_opt[labelled], threshold)["f1"]
    change = 100.0 * (f1_opt - f1_ref)
    flipped = int(((p_ref >= threshold) != (p_opt >= threshold)).sum())
    p_diff = np.abs(p_ref - p_opt)
    return Agreement(
        n_posts=len(check.y),
        n_labelled=check.n_labelled,
        f1_reference=float(f1_ref),
        f1_optimized=float(f1_opt),
        f1_change_points=float(change),
        labels_flipped=flipped,
        label_flip_share=flipped / len(check.y),
        max_abs_p_diff=float(p_diff.max()),
        mean_abs_p_diff=float(p_diff.mean()),
        max_abs_seeding_diff=float(np.abs(reference.seeding - optimized.seeding).max()),
        max_abs_logit_diff=float(np.abs(reference.logits - optimized.logits).max()),
        tolerance_f1_points=float(tolerance_f1_points),
        passed=bool(abs(change) <= tolerance_f1_points),
        sources=list(check.sources),
    )


# -- the optimized bundle ----------------------------------------------------------------


@dataclass
class OptimizeResult:
    """What ``optimize_bundle`` did: the runtime record written to config.json and the check."""

    bundle: Path
    runtime: dict[str, Any]
    agreement: Agreement
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "runtime": self.runtime,
            "agreement": self.agreement.to_dict(),
            "seconds": self.seconds,
        }


def optimize_bundle(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    check: CheckSet,
    *,
    int8: bool = True,
    threads: int | None = None,
    force: bool = False,
    tolerance_f1_points: float = MAX_F1_CHANGE_POINTS,
) -> OptimizeResult:
    """Export, optionally quantize, check against torch, then write a new bundle at ``output``.

    A stack has each transformer component optimized in its sub-folder and is
    checked whole: its own labels are what users get. Raises AgreementError
    (nothing written) when F1 on ``check`` moves by more than
    ``tolerance_f1_points`` and ``force`` is off. The source bundle is not touched.
    """
    from kocscope.models.bundle import check_replaceable, load_estimator, read_bundle_config, save_bundle

    ort = require_onnxruntime("kocscope optimize")
    check.require_both_classes()
    root, target = Path(source), Path(output)
    mine, theirs = root.resolve(), target.resolve()
    if mine == theirs or mine in theirs.parents or theirs in mine.parents:
        raise ValueError(
            f"{target}: write the optimized bundle to a new folder outside its source {root}, "
            "not over it, inside it or around it"
        )
    check_replaceable(target)  # before the export, not after it
    config = read_bundle_config(root)
    if config.get("kind") not in ("transformer", "stack"):
        raise ValueError(
            f"{root}: a {config.get('kind')!r} bundle has no encoder to optimize; "
            "kocscope optimize takes a transformer bundle or a stack with one"
        )
    model = load_estimator(root)
    model.set_runtime("torch")
    names = [n for n, c in getattr(model, "components", {}).items() if c.kind == "transformer"]
    if config["kind"] == "stack" and not names:
        raise ValueError(f"{root}: this stack has no transformer component to optimize")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    reference = model.predict_outputs(check.texts)
    seconds["reference"] = time.perf_counter() - started
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.onnx.", dir=target.parent))
    try:
        started = time.perf_counter()
        if config["kind"] == "transformer":
            graphs = {"": _onnx_graph(model, work, int8, threads)}
        else:
            graphs = {name: _onnx_graph(model.components[name], work / name, int8, threads) for name in names}
        seconds["export"] = time.perf_counter() - started
        started = time.perf_counter()
        optimized = model.predict_outputs(check.texts)
        seconds["optimized"] = time.perf_counter() - started
        agreement = compare_outputs(model, reference, optimized, check, tolerance_f1_points)
        checked = {
            "engine": "onnxruntime",
            "onnxruntime_version": ort.__version__,
            "agreement": agreement.to_dict(),
            "forced": bool(force and not agreement.passed),
        }
        if not agreement.passed and not force:
            raise AgreementError(
                f"{root}: the optimized path moves F1 by {agreement.f1_change_points:+.2f} points "
                f"(tolerance {tolerance_f1_points}) on {agreement.n_labelled} labelled posts "
                f"({agreement.labels_flipped} labels flipped, max |p diff| "
                f"{agreement.max_abs_p_diff:.4f}); nothing written (--force writes it anyway)",
                agreement,
            )
        if config["kind"] == "transformer":
            graph, record = graphs[""]
            runtime = {**record, **checked}
            bundle = save_bundle(
                target, _with_runtime(config, runtime), lambda tmp: _write_component(root, graph, tmp)
            )
        else:
            runtime = {**checked, "components": {name: record for name, (_, record) in graphs.items()}}

            def write(tmp: Path) -> None:
                for name in model.component_names:
                    if name not in graphs:
                        shutil.copytree(root / name, tmp / name)
                        continue
                    graph, record = graphs[name]
                    # each optimized component records the check of the whole stack it was made for
                    sub = _with_runtime(read_bundle_config(root / name), {**record, **checked})
                    save_bundle(tmp / name, sub, lambda t, n=name, g=graph: _write_component(root / n, g, t))

            bundle = save_bundle(target, _with_runtime(config, runtime), write)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return OptimizeResult(bundle=bundle, runtime=runtime, agreement=agreement, seconds=seconds)


def _onnx_graph(
    model: TransformerPostModel, work: Path, int8: bool, threads: int | None
) -> tuple[Path, dict[str, Any]]:
    """Export, fuse and optionally quantize one transformer's encoder under ``work``, switch
    the model to it, and return the graph with its runtime record (agreement not included)."""
    import onnx
    import torch

    work.mkdir(parents=True, exist_ok=True)
    graph = export_encoder(model, work / "fp32.onnx")
    fused = fuse_encoder(model, graph)
    quantized: dict[str, Any] = {}
    if int8:
        quantized = quantize_int8(graph, work / "int8.onnx")
        graph = work / "int8.onnx"
    model.use_onnx(OnnxEncoder(graph, threads=threads))
    return graph, {
        "onnx_file": ONNX_FILE,
        "onnx_version": onnx.__version__,
        "exported_with": f"torch {torch.__version__} (torch.onnx TorchScript exporter, eager attention)",
        "opset": OPSET,
        "fused_ops": fused,
        "quantization": QUANTIZATIONS[1] if int8 else QUANTIZATIONS[0],
        **({"quantized": quantized} if quantized else {}),
    }


def _with_runtime(config: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    """A bundle's settings with its runtime record replaced (``format`` is save_bundle's)."""
    return {**{k: v for k, v in config.items() if k not in ("format", "runtime")}, "runtime": runtime}


def _write_component(source: Path, graph: Path, tmp: Path) -> None:
    """An optimized transformer bundle's own files: its adapter and the graph."""
    from kocscope.models.modeling import ADAPTER_FILE

    shutil.copyfile(source / ADAPTER_FILE, tmp / ADAPTER_FILE)
    shutil.copyfile(graph, tmp / ONNX_FILE)
