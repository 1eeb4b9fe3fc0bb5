"""Train a kocscope model from a TrainConfig: fit, calibrate, pick the threshold, evaluate, save.

Lexical models are one ``fit`` call. Transformer models train in a plain torch
loop: AdamW over the trainable tensors only, linear warm-up then linear decay,
BCE-with-logits for `promotion` (class weights or a class-balanced sampler)
plus a masked seeding loss on the rows that carry a grade, evaluation on the
validation rows every epoch (or every N steps) and early stopping on PR-AUC or
loss; the best evaluated state is kept. With ``finetune="heads"`` the frozen
encoder is a fixed feature extractor (eval mode, so no encoder dropout): the
window embeddings are computed once (``embedding_cache``, stored under
``<output>/embedding_cache/`` for repeated runs and ``--resume``) and every
epoch trains the heads on them, the same model as running the encoder per
batch, at a fraction of the cost.

Checkpoints (``<output>/checkpoint/``) are written at every evaluation (and
every ``checkpoint_every_steps``): the trainable tensors, the best tensors, the
AdamW state tensors and the RNG states in safetensors, everything else (step,
epoch, position in the epoch, history, optimizer hyper-parameters, a
fingerprint of config and data) in ``state.json``; nothing is pickled. The
learning-rate schedule is a pure function of the step, so it needs no state.
Data order is drawn per epoch from ``seed + epoch``, so ``resume`` continues
mid-epoch with the same batches an uninterrupted run would see: on CPU a
resumed run ends with the same weights as one that was never interrupted.
A resume refuses a checkpoint made with other settings or other data (content
hash). The checkpoint stays after a finished run; resuming that one only
redoes calibration, evaluation and saving.

Under ``torchrun`` (see ``kocscope.training.distributed``) the loop runs data
parallel: every rank draws the same global batches, trains on its own every
N-th row of each, and the gradients are summed over ranks. Each rank divides
its loss by the counts of the whole global batch (rows for the promotion loss,
graded rows for the seeding loss), so the summed gradient is the one a single
process computes on that batch: ``training.batch_size`` is the global batch
and N only changes floating-point rounding (and the dropout masks). Rank 0
alone evaluates, and its early-stopping decision is broadcast; it alone
writes the embedding cache (the others then read it), checkpoints (with every
rank's RNG state), the bundle and the report, while the others wait.

After training, calibration (Platt or temperature) and the threshold are fitted
on the validation rows, the model is evaluated there, and the bundle gets the
metrics, a description of the data, the resolved config (``train_config``),
timings and peak memory (``training_run``). Calibration, threshold and those
metrics share the validation rows, so the figures are optimistic; ``kocscope
evaluate`` on held-out data gives the unbiased ones.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kocscope.training.dataset import (
    DataError,
    LabelledData,
    load_labelled,
    load_training_data,
)
from kocscope.training.distributed import SINGLE, Distributed, data_parallel, is_main_process
from kocscope.training.training_args import (
    INIT_FROM_DEFAULT,
    ConfigError,
    DataConfig,
    TrainConfig,
    TrainingConfig,
    portable_paths,
)

if TYPE_CHECKING:  # pragma: no cover
    from kocscope.models.base import ModelOutputs
    from kocscope.training.calibration import ThresholdChoice
    from kocscope.training.evaluation import EvaluationResult

__all__ = [
    "FitOutcome",
    "TrainResult",
    "TrainingError",
    "calibrate",
    "check_output_folder",
    "evaluate_estimator",
    "evaluate_model",
    "fit_estimator",
    "make_estimator",
    "peak_memory_mb",
    "physical_cores",
    "train",
]

CHECKPOINT_DIR = "checkpoint"
EMBEDDING_CACHE_DIR = "embedding_cache"
CHECKPOINT_FORMAT = 1
STATE_FILE = "state.json"
MODEL_DIR = "model"
RESULT_FILE = "train_result.json"  # written last: the mark of a finished run
REPORT_DIR = "report"
# settings that may change between an interrupted run and its --resume (the data
# itself is compared by content, so moved files still resume)
_RESUME_FREE = {
    "data.train",
    "data.validation",
    "data.combiner_validation",  # the stack's, never a component's; its rows are not the components'
    "data.dataset",
    "data.encoding",
    "training.threads",
    "training.device",
    "training.checkpoint_every_steps",
    "training.gradient_checkpointing",
    "training.init_from",  # the weights themselves are compared by content (init_sha256)
    "calibration.method",
    "threshold.rule",
    "threshold.target_precision",
    "data.group_columns",
    "output",
}

Log = Callable[[str], None]


class TrainingError(RuntimeError):
    """Training could not finish: a checkpoint that does not fit, a model that learnt nothing."""


@dataclass
class FitOutcome:
    """A trained (not yet calibrated) estimator and how training went."""

    estimator: Any
    steps: int = 0
    epochs_completed: int = 0
    best_step: int | None = None
    stopped_early: bool = False
    resumed_from_step: int | None = None
    device: str = "cpu"
    history: list[dict[str, Any]] = field(default_factory=list)
    embedding_cache: dict[str, Any] | None = None  # per split: windows, tokens, seconds
    init_from: dict[str, Any] | None = None  # the bundle training went on from, its weights' sha256, its run


@dataclass
class TrainResult:
    """What ``train`` produced and measured."""

    bundle_path: Path
    output_dir: Path
    report_paths: dict[str, Path]
    metrics: dict[str, Any]  # validation metrics at the chosen threshold
    calibration: dict[str, Any]
    threshold: dict[str, Any]  # ThresholdChoice.to_dict()
    timings: dict[str, float]  # seconds per phase
    peak_memory_mb: float  # peak resident memory of the process (ru_maxrss)
    steps: int
    epochs_completed: int
    best_step: int | None
    stopped_early: bool
    resumed_from_step: int | None
    device: str
    history: list[dict[str, Any]]
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bundle_path"] = str(self.bundle_path)
        out["output_dir"] = str(self.output_dir)
        out["report_paths"] = {k: str(v) for k, v in self.report_paths.items()}
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainResult:
        """Back from :meth:`to_dict` (train_result.json): how ranks > 0 learn rank 0's result."""
        return cls(
            **{
                **raw,
                "bundle_path": Path(raw["bundle_path"]),
                "output_dir": Path(raw["output_dir"]),
                "report_paths": {k: Path(v) for k, v in raw["report_paths"].items()},
            }
        )


# --- small utilities -------------------------------------------------------------------


def physical_cores() -> int:
    """Physical cores this process may run on: torch threads on hyper-threads only contend."""
    cpus = (
        os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    )
    cores = set()
    for cpu in cpus:
        try:
            cores.add(
                Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
                .read_text()
                .strip()
            )
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def peak_memory_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if os.uname().sysname == "Darwin" else peak / 1024


def write_json(path: Path, payload: Any) -> Path:
    """Atomic JSON file (kocscope.html.write_page: temp file + os.replace)."""
    from kocscope.html import write_page

    return write_page(
        path,
        json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n",
    )


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def no_log(_: str) -> None:
    """Log sink when progress output is off."""


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op threads for a job (default: physical cores) and restore them after."""
    import torch

    previous = torch.get_num_threads()
    wanted = threads or physical_cores()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)


def stderr_log(enabled: bool) -> Log:
    """Log lines on stderr (above a progress bar when one is live); markup off, since
    file names and label values may hold [brackets]."""
    if not enabled:
        return no_log
    from rich.console import Console

    return Console(stderr=True, markup=False, highlight=False).print


# --- estimators ----------------------------------------------------------------------------


def make_estimator(kind: str, settings: dict[str, Any]) -> Any:
    """An unfitted estimator of ``kind`` with checked settings (ConfigError naming the setting)."""
    from kocscope.models.bundle import MODEL_KINDS

    if kind not in MODEL_KINDS:
        raise ConfigError(
            f"model.kind {kind!r} is unknown; choose one of {', '.join(sorted(MODEL_KINDS))}"
        )
    module, _, name = MODEL_KINDS[kind].partition(":")
    cls = getattr(import_module(module), name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ConfigError(
            f"model.settings: unknown setting(s) {', '.join(unknown)} for a {kind} model; "
            f"valid settings: {', '.join(valid)}"
        )
    estimator = cls(**settings)
    check = getattr(
        estimator, "_check_params", None
    )  # both model kinds validate their settings here
    if check is not None:
        try:
            check()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.settings: {exc}") from exc
    return estimator


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-row weights giving both classes the same total weight (mean weight 1)."""
    counts = np.bincount(y, minlength=2).astype(np.float64)
    return (len(y) / (2.0 * counts))[y]


# --- lexical -------------------------------------------------------------------------------


def _lexical_settings(config: TrainConfig) -> dict[str, Any]:
    """``training.class_imbalance`` decides the lexical model's class_weight, so the two cannot disagree."""
    settings = dict(config.model.settings)
    wanted = "balanced" if config.training.class_imbalance == "weights" else None
    if "class_weight" in settings and settings["class_weight"] != wanted:
        raise ConfigError(
            f"model.settings.class_weight={settings['class_weight']!r} contradicts "
            f"training.class_imbalance={config.training.class_imbalance!r}; set only training.class_imbalance"
        )
    settings["class_weight"] = wanted
    return settings


def _fit_lexical(
    estimator: Any, config: TrainConfig, train_data: LabelledData, log: Log
) -> FitOutcome:
    """One fit: class weights come from the model's class_weight; "sampling" is a balanced resample."""
    tr = config.training
    texts, y, seeding = train_data.texts, train_data.y, train_data.seeding
    if tr.class_imbalance == "sampling":
        rng = np.random.default_rng(tr.seed)
        probs = _balanced_weights(y)
        idx = np.sort(rng.choice(len(y), size=len(y), replace=True, p=probs / probs.sum()))
        texts, y, seeding = [texts[i] for i in idx], y[idx], seeding[idx]
        if y.min() == y.max():
            raise TrainingError(
                "the balanced resample drew a single class; use more data or class_imbalance=weights"
            )
    log(f"fitting the lexical model on {len(texts):,} posts")
    estimator.fit(texts, y, seeding=seeding)
    return FitOutcome(estimator=estimator, steps=1, epochs_completed=1, device="cpu")


# --- transformer: checkpoint I/O ---------------------------------------------------------------


def _data_fingerprint(*parts: LabelledData) -> str:
    """sha256 over texts, labels and grades: a resume must see the same rows in the same order."""
    h = hashlib.sha256()
    for data in parts:
        h.update(str(len(data)).encode())
        for text, label, grade in zip(data.texts, data.y.tolist(), data.seeding.tolist()):
            h.update(text.encode("utf-8", "surrogatepass"))
            h.update(f"\x1f{label}\x1f{grade!r}\x1e".encode())
    return h.hexdigest()


def _config_fingerprint(config: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in _flatten(config.to_dict()).items() if k not in _RESUME_FREE}


def _optimizer_state(optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """AdamW state split into tensors (for safetensors) and plain values (for JSON)."""
    import torch

    state = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: Any, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        idx, _, key = name.partition(".")
        state.setdefault(int(idx), {})[key] = value
    groups = [
        {**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_state(device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    tensors = {
        "torch_cpu": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "python_state": torch.tensor(py_state[1], dtype=torch.int64),
    }
    if device.type == "cuda":
        tensors["torch_cuda"] = torch.cuda.get_rng_state(device)
    meta = {
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], py_state[2]],
    }
    return tensors, meta


def _rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """Torch seed of rank > 0, so ranks draw their own dropout masks."""
    return seed + 1_000_003 * rank + step


def _rank_rng_states(device: Any, dist: Distributed) -> dict[str, Any]:
    """The torch RNG states of ranks > 0, gathered for rank 0's checkpoint (a collective)."""
    import torch

    if not dist.active:
        return {}
    states = {"torch_cpu": dist.all_gather(torch.get_rng_state())}
    if device.type == "cuda":
        states["torch_cuda"] = dist.all_gather(torch.cuda.get_rng_state(device))
    return {
        f"{name}_rank{rank}": state
        for name, per_rank in states.items()
        for rank, state in enumerate(per_rank)
        if rank
    }


def _restore_rng(
    tensors: dict[str, Any],
    meta: dict[str, Any],
    device: Any,
    rank: int = 0,
    fallback_seed: int = 0,
) -> None:
    """Restore the RNG states; rank > 0 takes its own torch state, or (checkpoint written
    by fewer ranks) ``fallback_seed``."""
    import torch

    suffix = f"_rank{rank}" if rank else ""
    if f"torch_cpu{suffix}" in tensors:
        torch.set_rng_state(tensors[f"torch_cpu{suffix}"])
    else:
        torch.manual_seed(fallback_seed)
    if device.type == "cuda" and f"torch_cuda{suffix}" in tensors:
        torch.cuda.set_rng_state(tensors[f"torch_cuda{suffix}"], device)
    name, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state(
        (name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss)
    )
    version, gauss_next = meta["python"]
    random.setstate((version, tuple(int(v) for v in tensors["python_state"].tolist()), gauss_next))


@dataclass
class _LoopState:
    """Where the training loop is; everything here goes into state.json."""

    step: int = 0
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done in the current epoch
    best_metric: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # batch losses since the last evaluation


def _save_checkpoint(
    directory: Path,
    names: list[str],
    params: list[Any],
    best: dict[str, Any] | None,
    optimizer: Any,
    loop: _LoopState,
    device: Any,
    fingerprint: dict[str, Any],
    rank_rng: dict[str, Any] | None = None,
) -> None:
    """Write the checkpoint folder atomically (temp folder, then swapped in); ``rank_rng``
    holds the RNG states of ranks > 0 under data-parallel training."""
    from safetensors.torch import save_file

    from kocscope.data.io import replace_dir
    from kocscope.models.bundle import sha256_file

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_file(
            {n: p.detach().to("cpu").contiguous() for n, p in zip(names, params)},
            str(tmp / "trainable.safetensors"),
        )
        if best is not None:
            save_file(best, str(tmp / "best.safetensors"))
        opt_tensors, opt_meta = _optimizer_state(optimizer)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        rng_tensors, rng_meta = _rng_state(device)
        save_file({**rng_tensors, **(rank_rng or {})}, str(tmp / "rng.safetensors"))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        state = {
            "format": CHECKPOINT_FORMAT,
            "loop": asdict(loop),
            "trainable": names,
            "optimizer": opt_meta,
            "rng": rng_meta,
            "fingerprint": fingerprint,
            "files": files,
        }
        (tmp / STATE_FILE).write_text(
            json.dumps(state, ensure_ascii=False, indent=1, allow_nan=False), encoding="utf-8"
        )
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_checkpoint(
    directory: Path, fingerprint: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """state.json and the tensors of a checkpoint, verified against its checksums and the config."""
    from safetensors.torch import load_file

    from kocscope.models.bundle import sha256_file

    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise TrainingError(
            f"{directory}: no checkpoint to resume from; run without --resume to start afresh"
        )
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        files: dict[str, str] = state["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"{state_path}: unreadable checkpoint state ({exc})") from exc
    if state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(
            f"{state_path}: checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}"
        )
    for name, digest in files.items():
        path = directory / Path(name).name
        if not path.is_file() or sha256_file(path) != digest:
            raise TrainingError(
                f"{path}: missing or changed since the checkpoint was written; cannot resume"
            )
    recorded = state["fingerprint"]
    changed = sorted(
        k for k in set(recorded) | set(fingerprint) if recorded.get(k) != fingerprint.get(k)
    )
    if changed:
        detail = "; ".join(
            f"{k}: was {recorded.get(k)!r}, now {fingerprint.get(k)!r}" for k in changed[:6]
        )
        raise TrainingError(
            f"{directory}: the checkpoint was made with other settings or data ({detail}); "
            "resume with the same config and data, or run without --resume to start afresh"
        )
    tensors = {Path(name).stem: load_file(str(directory / name)) for name in files}
    return state, tensors


# --- transformer: the loop -------------------------------------------------------------------


def _pick_device(requested: str, dist: Distributed = SINGLE) -> Any:
    """The training device; a data-parallel CUDA rank gets ``cuda:LOCAL_RANK``."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "training.device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'"
        )
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        # TF32 matmuls: several times the fp32 rate on Ampere and later, well inside fine-tuning noise
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if requested == "cuda" and dist.active:
        return torch.device("cuda", dist.local_rank)
    return torch.device(requested)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to zero at ``total`` (0-based step)."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _epoch_order(n: int, y: np.ndarray, epoch: int, seed: int, sampling: bool) -> list[int]:
    """Row order of one epoch, a function of (seed, epoch) only, so resume can replay it."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if sampling:
        weights = torch.as_tensor(_balanced_weights(y), dtype=torch.float64)
        return torch.multinomial(weights, n, replacement=True, generator=gen).tolist()
    return torch.randperm(n, generator=gen).tolist()


def _validation_scores(
    out: ModelOutputs, val: LabelledData, seeding_weight: float
) -> dict[str, float | None]:
    """Unweighted validation loss and PR-AUC of the raw logits (the early-stopping signals)."""
    from sklearn.metrics import average_precision_score

    logits = out.logits.astype(np.float64)
    y = val.y.astype(np.float64)
    loss = float(np.mean(np.logaddexp(0.0, logits) - y * logits))
    graded = np.isfinite(val.seeding)
    if graded.any() and seeding_weight > 0:
        loss += seeding_weight * float(np.mean((out.seeding[graded] - val.seeding[graded]) ** 2))
    pr_auc = (
        float(average_precision_score(val.y, logits)) if 0 < val.n_promotion < len(val) else None
    )
    return {"val_loss": loss, "val_pr_auc": pr_auc}


def _progress_bar(total: int, enabled: bool) -> Any:
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def _batch_loss(
    logits: Any,
    seeding: Any,
    y: Any,
    grades: Any,
    tr: TrainingConfig,
    pos_weight: Any,
    n_rows: int,
    n_graded: int,
) -> Any:
    """BCE-with-logits on `promotion` plus the weighted seeding loss on the rows with a grade.

    The sums are divided by the counts of the whole global batch (``n_rows``,
    ``n_graded``), not of these rows: a data-parallel rank holds only its shard,
    and the ranks' parts must add up to the loss of the whole batch.
    """
    import torch
    import torch.nn.functional as F

    y, grades = y.to(logits.device), grades.to(logits.device)
    loss = (
        F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight, reduction="sum")
        / n_rows
    )
    graded = torch.isfinite(grades)
    if tr.seeding_weight > 0 and bool(graded.any()):
        pred, true = seeding[graded], grades[graded]
        if tr.seeding_loss == "mse":
            seed_loss = F.mse_loss(pred, true, reduction="sum")
        else:
            seed_loss = F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), true, reduction="sum")
        loss = loss + tr.seeding_weight * seed_loss / n_graded
    return loss


def _reduce_gradients(params: list[Any], loss: Any, dist: Distributed) -> float:
    """Sum the trainable gradients and loss parts over ranks (one all-reduce); returns the
    loss of the global batch. A rank with an empty shard (``loss`` None) adds zeros."""
    import torch

    if not dist.active:
        return float(loss.detach())
    parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    own = loss.detach() if loss is not None else torch.zeros((), device=params[0].device)
    flat = dist.all_reduce_sum(torch.cat([*(g.float() for g in parts), own.float().reshape(1)]))
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
        offset += p.numel()
    return float(flat[-1])


def _check_same_run(dist: Distributed, fingerprint: dict[str, Any]) -> None:
    """Every rank must see the same data, settings and encoder (each loads them itself,
    on several nodes from its own disk), or the shards would not add up to one batch."""
    import torch

    if not dist.active:
        return
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).digest()
    mine = torch.frombuffer(bytearray(digest), dtype=torch.uint8)
    differing = [r for r, d in enumerate(dist.all_gather(mine)) if not torch.equal(d, mine)]
    if differing:
        raise TrainingError(
            f"rank {dist.rank} sees other training data, settings or base encoder than rank(s) "
            f"{', '.join(map(str, differing))}; every rank must read the same files"
        )


# transformer settings a continued run must share with the model it starts from: they decide
# which tensors exist and what the trained weights mean (lengths, windows, dropout may change)
_INIT_SHARED = ("finetune", "lora_r", "lora_alpha", "lora_targets", "lora_layers", "top_layers", "text_prefix")


def init_bundle(spec: str) -> Path:
    """The transformer bundle folder that ``training.init_from`` names."""
    from kocscope.models.bundle import DEFAULT_MODEL_DIR, BundleError, read_bundle_config

    root = DEFAULT_MODEL_DIR if spec == INIT_FROM_DEFAULT else Path(spec)
    try:
        config = read_bundle_config(root)
        if config["kind"] == "stack":
            names = [
                c.get("name")
                for c in config.get("components") or []
                if isinstance(c, dict) and c.get("kind") == "transformer"
            ]
            if len(names) != 1:
                raise ConfigError(
                    f"training.init_from: {root} is a stack with {len(names)} transformer components; "
                    "name the folder of the one to go on training"
                )
            root = root / str(names[0])
            config = read_bundle_config(root)
    except BundleError as exc:
        raise ConfigError(f"training.init_from: {exc}") from exc
    if config["kind"] != "transformer":
        raise ConfigError(
            f"training.init_from: {root} holds a {config['kind']!r} model; only a transformer's training goes on"
        )
    return root


def _init_settings(spec: str) -> dict[str, Any]:
    """The model settings a run that goes on from ``spec`` takes from it unless its config sets them."""
    from kocscope.models.bundle import read_bundle_config

    saved = read_bundle_config(init_bundle(spec))
    return {key: saved[key] for key in ("base_encoder", *_INIT_SHARED) if key in saved}


def _warm_start(estimator: Any, spec: str, log: Log) -> dict[str, Any]:
    """Load the trained tensors of ``spec`` into the fresh module; returns the bundle and their
    sha256 (the start is part of what a --resume or a reused stack component must match)."""
    from safetensors.torch import load_file

    from kocscope.models.bundle import BundleError, read_bundle_config, sha256_file
    from kocscope.models.modeling import ADAPTER_FILE

    root = init_bundle(spec)
    saved = read_bundle_config(root)
    ours = estimator.get_params()
    differ = [
        f"{key} {saved.get(key)!r} (this run: {ours[key]!r})"
        for key in _INIT_SHARED
        if json.dumps(saved.get(key)) != json.dumps(list(ours[key]) if key == "lora_targets" else ours[key])
    ]
    if differ:
        raise ConfigError(
            f"training.init_from: {root} was trained with other model settings: {'; '.join(differ)}; "
            "set these model settings as it has them"
        )
    if saved.get("base_encoder_fingerprint") != estimator.base_encoder_fingerprint_:
        raise ConfigError(
            f"training.init_from: {root} was trained on base encoder {saved.get('base_encoder')!r} "
            f"(fingerprint {saved.get('base_encoder_fingerprint')}), this run's {estimator.base_encoder!r} "
            f"has fingerprint {estimator.base_encoder_fingerprint_}"
        )
    try:
        estimator._load_adapter(load_file(str(root / ADAPTER_FILE)), root / ADAPTER_FILE)
    except BundleError as exc:
        raise ConfigError(f"training.init_from: {exc}") from exc
    digest = sha256_file(root / ADAPTER_FILE)
    log(f"starting from the trained weights of {root} (sha256 {digest[:12]})")
    earlier = saved.get("training_run") or {}
    total = (earlier.get("timings_s") or {}).get("train")
    return {
        "bundle": str(root),
        "adapter_sha256": digest,
        # how the starting model was trained, for the card: the whole model's cost spans both runs
        **({"device": earlier["device"], "train_seconds": total} if earlier.get("device") and total else {}),
    }


def _train_transformer(
    estimator: Any,
    config: TrainConfig,
    train_data: LabelledData,
    val: LabelledData,
    *,
    checkpoint_dir: Path | None,
    resume: bool,
    progress: bool,
    log: Log,
    cache_embeddings: bool | None = None,
    cache_dir: Path | None = None,
    dist: Distributed = SINGLE,
) -> FitOutcome:
    import torch

    from kocscope.models.base_encoder import BaseEncoderError

    tr = config.training
    device = _pick_device(tr.device, dist)
    torch.manual_seed(tr.seed)
    np.random.seed(tr.seed % 2**32)
    random.seed(tr.seed)
    try:
        estimator.init_module()
    except BaseEncoderError as exc:
        raise ConfigError(f"model.settings.base_encoder: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.settings: {exc}") from exc
    init_from = _warm_start(estimator, tr.init_from, log) if tr.init_from else None
    module = estimator.module_.to(device)
    if dist.rank:  # after the seeded initialisation: each rank its own dropout masks
        torch.manual_seed(_rank_seed(tr.seed, dist.rank))
    frozen = estimator.finetune == "heads"
    if tr.gradient_checkpointing:
        if frozen:
            raise ConfigError(
                "training.gradient_checkpointing needs a fine-tuned encoder (finetune lora or top_layers); "
                "finetune=heads computes no gradients through the encoder"
            )
        module.encoder.activation_checkpointing_enable()
    if cache_embeddings is None:
        cache_embeddings = config.training.cache_embeddings
    if cache_embeddings is None:
        cache_embeddings = frozen
    elif cache_embeddings and not frozen:
        raise ConfigError(
            f"cached embeddings need a frozen encoder (finetune='heads'), not finetune={estimator.finetune!r}"
        )
    params = list(estimator.trainable_parameters())
    name_of = {id(p): n for n, p in module.named_parameters()}
    names = [name_of[id(p)] for p in params]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": tr.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=tr.lr)

    n = len(train_data)
    per_epoch = math.ceil(n / tr.batch_size)
    total = (
        per_epoch * tr.epochs if tr.max_steps is None else min(per_epoch * tr.epochs, tr.max_steps)
    )
    warmup = round(tr.warmup * total)
    n_pos = train_data.n_promotion
    pos_weight = (
        torch.tensor((n - n_pos) / n_pos, device=device)
        if tr.class_imbalance == "weights"
        else None
    )
    targets = torch.as_tensor(train_data.y, dtype=torch.float32)
    grades = torch.as_tensor(train_data.seeding, dtype=torch.float32)
    higher_is_better = tr.early_stopping_metric == "pr_auc"
    metric_key = "val_pr_auc" if higher_is_better else "val_loss"
    fingerprint = {
        **_config_fingerprint(config),
        "data_sha256": _data_fingerprint(train_data, val),
        # the encoder's weights, not only its name: a folder rebuilt in place is another encoder
        "base_encoder_fingerprint": estimator.base_encoder_fingerprint_,
        **({"init_sha256": init_from["adapter_sha256"]} if init_from else {}),
    }
    _check_same_run(dist, fingerprint)

    cache_info: dict[str, Any] | None = None
    if cache_embeddings:
        from kocscope.training.embedding_cache import EmbeddingStore, embed_posts

        if not dist.is_main:
            dist.barrier()  # rank 0 fills the store on disk first, alone
        store = EmbeddingStore(cache_dir, estimator.base_encoder_fingerprint_, log)
        if not dist.is_main:
            # read rank 0's file, never write it; a rank that cannot see it (no shared
            # disk between nodes) embeds the corpus itself, in memory
            store.path = None
        train_emb, train_info = embed_posts(
            estimator, train_data.texts, store, log=log, what="train"
        )
        val_emb, val_info = embed_posts(estimator, val.texts, store, log=log, what="validation")
        if dist.is_main:
            dist.barrier()
        cache_info = {"train": train_info, "validation": val_info}
        train_emb, val_emb = train_emb.to(device), val_emb.to(device)

        def forward(idx: list[int]) -> Any:
            return module.pool_heads(*train_emb.batch(idx))

        def val_outputs() -> ModelOutputs:
            return val_emb.outputs(module)
    else:

        def forward(idx: list[int]) -> Any:
            return estimator.forward_batch(estimator.encode([train_data.texts[i] for i in idx]))

        def val_outputs() -> ModelOutputs:
            return estimator.predict_outputs(val.texts)

    loop = _LoopState()
    best: dict[str, Any] | None = None
    resumed_from = None
    if resume and checkpoint_dir is not None:
        state, tensors = _load_checkpoint(checkpoint_dir, fingerprint)
        if state["trainable"] != names:
            raise TrainingError(
                f"{checkpoint_dir}: the checkpoint holds other trainable tensors than this model"
            )
        with torch.no_grad():
            for name, p in zip(names, params):
                p.copy_(tensors["trainable"][name].to(p.dtype))
        best = tensors.get("best") or None
        _restore_optimizer(optimizer, tensors["optimizer"], state["optimizer"])
        loop = _LoopState(**state["loop"])
        _restore_rng(
            tensors["rng"],
            state["rng"],
            device,
            dist.rank,
            _rank_seed(tr.seed, dist.rank, loop.step),
        )
        resumed_from = loop.step
        log(
            f"resuming from {checkpoint_dir} at step {loop.step} (epoch {loop.epoch + 1}, batch {loop.batch})"
        )

    if dist.active:  # one start for all ranks, as DistributedDataParallel does
        with torch.no_grad():
            for p in params:
                p.copy_(dist.broadcast(p.detach()))

    def checkpoint() -> None:
        if checkpoint_dir is not None:
            rank_rng = _rank_rng_states(device, dist)  # every rank takes part
            if dist.is_main:
                _save_checkpoint(
                    checkpoint_dir,
                    names,
                    params,
                    best,
                    optimizer,
                    loop,
                    device,
                    fingerprint,
                    rank_rng,
                )

    def evaluate_now(train_loss: float | None, candidate: bool = True) -> bool:
        """Score validation (rank 0), track the best state; True when early stopping says stop.

        Rank 0's verdict is broadcast, so every rank keeps the same best state and
        stops at the same step.
        """
        nonlocal best
        scores = _validation_scores(val_outputs(), val, tr.seeding_weight) if dist.is_main else {}
        value = scores.get(metric_key)
        improved = value is not None and (
            loop.best_metric is None
            or (value > loop.best_metric if higher_is_better else value < loop.best_metric)
        )
        if dist.active:
            improved = bool(dist.broadcast(torch.tensor([int(improved)]))[0])
        improved = improved and candidate
        if improved:
            loop.best_metric, loop.best_step, loop.bad_evals = value, loop.step, 0
            best = {
                nm: p.detach().to("cpu", copy=True).contiguous() for nm, p in zip(names, params)
            }
        elif candidate:
            loop.bad_evals += 1
        if not dist.is_main:
            return tr.early_stopping_patience > 0 and loop.bad_evals >= tr.early_stopping_patience
        entry = {
            "step": loop.step,
            "epoch": round(loop.step / per_epoch, 4),
            "train_loss": train_loss,
            "lr": optimizer.param_groups[0]["lr"],
            **scores,
            "best": improved,
        }
        loop.history.append(entry)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if v is not None)
        log(
            f"step {loop.step} (epoch {entry['epoch']:.2f}): {shown}{' (best so far)' if improved else ''}"
        )
        return tr.early_stopping_patience > 0 and loop.bad_evals >= tr.early_stopping_patience

    if init_from is not None and loop.step == 0:
        # the starting weights' scores, for the record: the history shows what the new data
        # changed. Not a candidate for the best state: a run that goes on from a model is
        # asked to learn something (its validation may not be where the new data should help)
        evaluate_now(None, candidate=False)
    module.train()
    if frozen:  # a fixed feature extractor, exactly what the embedding cache holds
        module.encoder.eval()
    started = time.perf_counter()
    first_step = loop.step
    with _progress_bar(total, progress and not loop.finished) as bar:
        task = (
            bar.add_task("training", total=total, completed=loop.step, loss="-", rate="")
            if bar
            else None
        )
        while not loop.finished and loop.step < total:
            order = _epoch_order(
                n, train_data.y, loop.epoch, tr.seed, tr.class_imbalance == "sampling"
            )
            batches = [order[i : i + tr.batch_size] for i in range(0, n, tr.batch_size)]
            for b in range(loop.batch, len(batches)):
                idx = batches[b]
                lr = tr.lr * _lr_factor(loop.step, total, warmup)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                part = dist.shard(idx)
                loss = None
                if part:  # a short last batch may leave a rank without rows
                    loss = _batch_loss(
                        *forward(part),
                        targets[part],
                        grades[part],
                        tr,
                        pos_weight,
                        n_rows=len(idx),
                        n_graded=int(torch.isfinite(grades[idx]).sum()),
                    )
                    loss.backward()
                batch_loss = _reduce_gradients(params, loss, dist)
                if not math.isfinite(batch_loss):
                    raise TrainingError(
                        f"the training loss is {batch_loss} at step {loop.step + 1}; lower training.lr "
                        f"(now {tr.lr:g}) or check the data"
                    )
                if tr.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, tr.grad_clip)
                optimizer.step()
                loop.step += 1
                loop.batch = b + 1
                loop.losses.append(batch_loss)
                if bar is not None:
                    rate = (
                        (loop.step - first_step)
                        * tr.batch_size
                        / max(time.perf_counter() - started, 1e-9)
                    )
                    recent = f"{np.mean(loop.losses[-20:]):.4f}"
                    bar.update(task, completed=loop.step, loss=recent, rate=f"{rate:.1f} posts/s")
                epoch_done = loop.batch == len(batches)
                if epoch_done:
                    loop.epoch, loop.batch = loop.epoch + 1, 0
                budget_done = loop.step >= total
                due = (
                    epoch_done
                    if tr.eval_every_steps is None
                    else loop.step % tr.eval_every_steps == 0
                )
                evaluated = False
                if due or budget_done:
                    train_loss = float(np.mean(loop.losses)) if loop.losses else None
                    loop.losses = []
                    stop = evaluate_now(train_loss)
                    evaluated = True
                    if stop:
                        loop.stopped_early = True
                        log(
                            f"early stopping: no better {metric_key} for {tr.early_stopping_patience} evaluations"
                        )
                    loop.finished = stop or budget_done
                if evaluated or (
                    tr.checkpoint_every_steps and loop.step % tr.checkpoint_every_steps == 0
                ):
                    checkpoint()
                if loop.finished or epoch_done:
                    break
    if best is not None:
        current = dict(module.named_parameters())
        with torch.no_grad():
            for name in names:
                current[name].copy_(best[name].to(current[name].device, current[name].dtype))
    module.eval()
    return FitOutcome(
        estimator=estimator,
        steps=loop.step,
        epochs_completed=loop.epoch,
        best_step=loop.best_step,
        stopped_early=loop.stopped_early,
        resumed_from_step=resumed_from,
        device=str(device),
        history=loop.history,
        embedding_cache=cache_info,
        init_from=init_from,
    )


def fit_estimator(
    config: TrainConfig,
    train_data: LabelledData,
    val: LabelledData,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    log: Log = no_log,
    cache_embeddings: bool | None = None,
    cache_dir: Path | None = None,
    dist: Distributed = SINGLE,
) -> FitOutcome:
    """Train the configured model kind; ``val`` drives early stopping (transformer only).

    ``cache_embeddings`` (default: when ``finetune="heads"``) trains the heads on
    window embeddings computed once, kept on disk under ``cache_dir`` if given.
    ``dist`` (from :func:`~kocscope.training.distributed.data_parallel`) trains a
    transformer data parallel; every rank must call this with the same arguments
    and all end with the same weights (the history is kept on rank 0 only).
    A lexical model ignores it: it is one process's fit.
    """
    lexical = config.model.kind == "lexical"
    settings = _lexical_settings(config) if lexical else dict(config.model.settings)
    if not lexical and config.training.init_from:
        settings = {**_init_settings(config.training.init_from), **settings}
    estimator = make_estimator(config.model.kind, settings)
    if lexical:
        return _fit_lexical(estimator, config, train_data, log)
    return _train_transformer(
        estimator,
        config,
        train_data,
        val,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
        log=log,
        cache_embeddings=cache_embeddings,
        cache_dir=cache_dir,
        dist=dist,
    )


# --- after training ---------------------------------------------------------------------------


def calibrate(
    estimator: Any, val: LabelledData, config: TrainConfig
) -> tuple[ModelOutputs, ThresholdChoice]:
    """Fit calibration and the threshold on validation; returns the raw validation outputs too."""
    from kocscope.training.calibration import choose_threshold, fit_platt, fit_temperature

    outputs = estimator.predict_outputs(val.texts)
    method = config.calibration.method
    try:
        if method == "platt":
            a, b = fit_platt(outputs.logits, val.y)
        else:
            a, b = 1.0 / fit_temperature(outputs.logits, val.y), 0.0
        estimator.set_calibration(a, b, 0.5, method)
        choice = choose_threshold(
            val.y,
            estimator.p_promotion(outputs.logits),
            config.threshold.rule,
            config.threshold.target_precision,
        )
    except ValueError as exc:
        raise TrainingError(f"calibration on the validation rows failed: {exc}") from exc
    estimator.set_calibration(a, b, choice.threshold, method)
    return outputs, choice


def evaluate_estimator(
    estimator: Any,
    data: LabelledData,
    *,
    outputs: ModelOutputs | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate a calibrated estimator on labelled rows (all slices, seeding where graded)."""
    from kocscope.training.evaluation import evaluate

    if outputs is None:
        outputs = estimator.predict_outputs(data.texts)
    p = estimator.p_promotion(outputs.logits)
    graded = data.n_graded > 0
    return evaluate(
        data.texts,
        data.langs,
        data.y,
        p,
        float(estimator.calibration_config()["threshold"]),
        seeding_true=data.seeding if graded else None,
        seeding_pred=outputs.seeding if graded else None,
        groups=data.groups or None,
        ids=data.ids,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


def _save_with_record(estimator: Any, target: Path, extra: dict[str, Any]) -> Path:
    """Save the bundle, adding ``extra`` fields to its config.json (with paths near the working
    folder made relative: the bundle travels).

    The models' save_pretrained knows nothing of training runs, so the bundle is
    saved to a staging folder and re-packed with save_bundle (new manifest and
    model card, atomic rename).
    """
    from kocscope.models.bundle import (
        CARD_FILE,
        CONFIG_FILE,
        MANIFEST_FILE,
        read_bundle_config,
        save_bundle,
    )

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging.", dir=target.parent))
    extra = portable_paths(extra)
    try:
        staged = estimator.save_pretrained(staging / "bundle")
        staged = Path(staged) if staged is not None else staging / "bundle"
        config = read_bundle_config(staged)
        config.pop("format", None)
        config.update(extra)

        def copy_files(tmp: Path) -> None:
            for path in staged.iterdir():
                if path.is_file() and path.name not in (CONFIG_FILE, MANIFEST_FILE, CARD_FILE):
                    shutil.copy2(path, tmp / path.name)

        return save_bundle(target, config, copy_files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_output_folder(path: str | os.PathLike[str] | None, option: str = "output") -> None:
    """A file where the output folder should go fails at the end of a long run: fail first."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise ConfigError(f"{option} {path}: is a file, not a folder; name a folder for the results")


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train, calibrate, evaluate and save a model as ``config`` says; see the module docstring.

    Under torchrun every rank calls this; a transformer trains data parallel, a
    lexical model on rank 0 alone. Rank 0 writes everything, the other ranks wait
    for it and return the same result, read back from ``train_result.json``.
    """
    if not config.output:
        raise ConfigError("no output folder: set `output` in the config or pass --output")
    check_output_folder(config.output)
    if is_main_process():
        # written last, so a folder without it holds a run that did not finish (an earlier
        # run's model/ or report/ may sit beside a newer one's until this run completes)
        (Path(config.output) / RESULT_FILE).unlink(missing_ok=True)
    if config.model.kind == "stack":  # components, then the combiner: kocscope.training.stacking
        from kocscope.training.stacking import train_stack

        return train_stack(config, resume=resume, progress=progress)
    out = Path(config.output)
    with data_parallel(config.training.device) as dist:
        result = None
        if dist.is_main or config.model.kind != "lexical":
            result = _train_run(config, out, resume, progress and dist.is_main, dist)
        dist.barrier()  # rank 0's files are complete
        if result is None:
            result = TrainResult.from_dict(
                json.loads((out / RESULT_FILE).read_text(encoding="utf-8"))
            )
    return result


def _train_run(
    config: TrainConfig, out: Path, resume: bool, progress: bool, dist: Distributed
) -> TrainResult | None:
    """One rank's share of :func:`train`; None on ranks > 0, which write nothing."""
    from kocscope.training.report import write_report

    log = stderr_log(progress)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # ranks on one node share its cores
    threads = config.training.threads or max(1, physical_cores() // dist.local_world_size)
    with torch_threads(threads):
        data = load_training_data(config)
        timings["load_data"] = time.perf_counter() - t0
        log(f"data: {data.summary()}")
        if dist.active:
            log(
                f"data parallel: {dist.world_size} ranks ({dist.backend}); "
                + (
                    "a lexical model fits in one process: rank 0 trains it, the others wait"
                    if config.model.kind == "lexical"
                    else f"each takes its share of every batch of {config.training.batch_size}"
                )
            )
        if resume and config.model.kind == "lexical":
            log("note: a lexical model trains in one step; --resume simply fits it again")
        t = time.perf_counter()
        fit = fit_estimator(
            config,
            data.train,
            data.validation,
            checkpoint_dir=out / CHECKPOINT_DIR,
            resume=resume and config.model.kind != "lexical",
            progress=progress,
            log=log,
            cache_dir=out / EMBEDDING_CACHE_DIR,
            dist=dist,
        )
        timings["train"] = time.perf_counter() - t
        if not dist.is_main:
            return None
        t = time.perf_counter()
        estimator = fit.estimator
        outputs, choice = calibrate(estimator, data.validation, config)
        timings["calibrate"] = time.perf_counter() - t
        t = time.perf_counter()
        result = evaluate_estimator(
            estimator, data.validation, outputs=outputs, seed=config.training.seed
        )
        timings["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    calibration = estimator.calibration_config()["calibration"]
    estimator.metrics_ = result.metrics
    estimator.training_data_ = data.summary()
    peak = peak_memory_mb()
    run = {
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "peak_memory_mb": round(peak, 1),
        "device": fit.device,
        "threads": threads,
        "world_size": dist.world_size if config.model.kind != "lexical" else 1,
        "steps": fit.steps,
        "epochs_completed": fit.epochs_completed,
        "best_step": fit.best_step,
        "stopped_early": fit.stopped_early,
        "resumed_from_step": fit.resumed_from_step,
        "history": fit.history,
        "embedding_cache": fit.embedding_cache,
        "init_from": fit.init_from,
        "threshold_choice": choice.to_dict(),
        "data": data.describe(),
        "metrics_note": "calibration, threshold and metrics all use the validation rows: optimistic estimates",
    }
    bundle = _save_with_record(
        estimator, out / MODEL_DIR, {"train_config": config.to_dict(), "training_run": run}
    )
    timings["save"] = time.perf_counter() - t
    t = time.perf_counter()
    model_info = {
        "kind": config.model.kind,
        "bundle": str(bundle),
        "calibration": calibration,
        "threshold": choice.to_dict(),
        "training data": data.summary(),
        "note": run["metrics_note"],
    }
    paths = write_report(
        result,
        out / REPORT_DIR,
        title=f"kocscope {config.model.kind} model: validation",
        model_info=model_info,
    )
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    config.save(out / "train_config.json")
    train_result = TrainResult(
        bundle_path=bundle,
        output_dir=out,
        report_paths=paths,
        metrics=result.metrics,
        calibration=calibration,
        threshold=choice.to_dict(),
        timings={k: round(v, 3) for k, v in timings.items()},
        peak_memory_mb=round(peak_memory_mb(), 1),
        steps=fit.steps,
        epochs_completed=fit.epochs_completed,
        best_step=fit.best_step,
        stopped_early=fit.stopped_early,
        resumed_from_step=fit.resumed_from_step,
        device=fit.device,
        history=fit.history,
        data=data.describe(),
    )
    write_json(out / RESULT_FILE, train_result.to_dict())
    return train_result


# --- evaluating a saved model ----------------------------------------------------------------


def evaluate_model(
    model_dir: str | os.PathLike[str],
    data: str | os.PathLike[str] | Sequence[str],
    data_config: DataConfig,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    n_bootstrap: int = 200,
    seed: int | None = None,
) -> tuple[EvaluationResult, dict[str, Path]]:
    """Score labelled posts with any saved bundle; write metrics.json, report.html and figures to ``out_dir``.

    ``seed`` of the bootstrap intervals: by default the bundle's training seed, so evaluating
    it on its own validation rows gives back the intervals of its training report.
    """
    from kocscope.models.bundle import load_estimator, read_bundle_config
    from kocscope.training.report import write_report

    check_output_folder(out_dir, "--output")
    config = read_bundle_config(model_dir)
    if seed is None:
        seed = int(((config.get("train_config") or {}).get("training") or {}).get("seed", 0))
    estimator = load_estimator(model_dir)
    labelled, mapping = load_labelled(data, data_config)
    if not len(labelled):
        raise DataError("no labelled rows to evaluate")
    result = evaluate_estimator(estimator, labelled, n_bootstrap=n_bootstrap, seed=seed)
    paths: dict[str, Path] = {}
    if out_dir is not None:
        info = {
            "kind": config.get("kind"),
            "bundle": str(model_dir),
            "calibration": estimator.calibration_config(),
            "data": ", ".join(labelled.sources),
            "labels": mapping.to_dict(),
        }
        paths = write_report(
            result, out_dir, title=f"kocscope evaluation: {Path(model_dir).name}", model_info=info
        )
    return result, paths
