"""Data-parallel training: `kocscope train` under torchrun (2 CPU processes, gloo).

The torchrun runs launch the real CLI in subprocesses on a tiny BERT whose own
dropout is off (and the model's dropout too), so a 2-rank run must end with the
weights of a single-process run up to float rounding: the shards of a global
batch add up to the whole batch. Each launch takes some seconds (two processes
importing torch), so there are few of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny_models  # tests/ is on sys.path under pytest
import torch
import yaml
from safetensors.torch import load_file
from test_trainer import VOCAB, interrupt_at_training_batch, write_corpus

from kocscope.inference.api import load_model
from kocscope.training.distributed import (
    SINGLE,
    Distributed,
    LaunchEnv,
    is_main_process,
    launch_env,
)
from kocscope.training.trainer import _batch_loss, train
from kocscope.training.training_args import ConfigError, TrainingConfig, load_config

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# --- launch environment and shards -------------------------------------------------------------


def test_launch_env_reads_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    assert launch_env() is None and is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1: a plain run
    assert launch_env() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match="environment variable RANK is missing"):
        launch_env()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert launch_env() == LaunchEnv(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert not is_main_process()
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match=r"RANK=4 is outside 0\.\.3"):
        launch_env()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ConfigError, match="RANK='one' is not a whole number"):
        launch_env()


def test_shards_split_every_batch_exactly() -> None:
    for world in range(1, 5):
        ranks = [Distributed(rank=r, world_size=world) for r in range(world)]
        for size in range(12):
            batch = list(range(100, 100 + size))
            shards = [d.shard(batch) for d in ranks]
            assert sorted(i for s in shards for i in s) == batch
            assert max(map(len, shards)) - min(map(len, shards)) <= 1
            assert shards == [d.shard(batch) for d in ranks]  # deterministic


def test_single_process_collectives_are_identities() -> None:
    t = torch.arange(4.0)
    assert SINGLE.all_reduce_sum(t) is t and SINGLE.broadcast(t) is t
    assert torch.equal(SINGLE.all_gather(t)[0], t)
    SINGLE.barrier()


@pytest.mark.parametrize("seeding_loss", ["mse", "bce"])
def test_shard_losses_add_up_to_the_batch_loss(seeding_loss: str) -> None:
    """With class weights and grades on only some rows, the ranks' parts must sum to
    the single-process loss of the batch: mean BCE (pos_weight) + weight * mean over graded."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    n = 11
    logits = torch.randn(n, generator=gen, requires_grad=True)
    seeding = torch.rand(n, generator=gen, requires_grad=True)
    y = (torch.rand(n, generator=gen) < 0.3).float()
    grades = torch.rand(n, generator=gen)
    grades[[1, 2, 6, 9]] = float("nan")
    pos_weight = torch.tensor(2.5)
    tr = TrainingConfig(seeding_weight=0.7, seeding_loss=seeding_loss)  # type: ignore[arg-type]
    graded = torch.isfinite(grades)
    seed_ref = (
        F.mse_loss(seeding[graded], grades[graded])
        if seeding_loss == "mse"
        else F.binary_cross_entropy(seeding[graded].clamp(1e-6, 1 - 1e-6), grades[graded])
    )
    expected = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight) + 0.7 * seed_ref
    counts = {"n_rows": n, "n_graded": int(graded.sum())}
    whole = _batch_loss(logits, seeding, y, grades, tr, pos_weight, **counts)
    assert torch.allclose(whole, expected, atol=1e-6)
    grad_whole = torch.autograd.grad(expected, [logits, seeding])
    for world in (2, 3):
        parts = []
        for rank in range(world):
            idx = Distributed(rank=rank, world_size=world).shard(list(range(n)))
            parts.append(
                _batch_loss(
                    logits[idx], seeding[idx], y[idx], grades[idx], tr, pos_weight, **counts
                )
            )
        assert torch.allclose(sum(parts), expected, atol=1e-6)
        grad_parts = torch.autograd.grad(sum(parts), [logits, seeding])
        for a, b in zip(grad_parts, grad_whole):
            assert torch.allclose(a, b, atol=1e-7)


# --- torchrun end to end ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Corpus, a dropout-free tiny encoder and one config per finetune scope."""
    root = tmp_path_factory.mktemp("ddp")
    encoder = tiny_models.build_tiny_encoder(
        root / "encoder",
        VOCAB,
        hidden_size=16,
        intermediate_size=32,
        hidden_dropout_prob=0,
        attention_probs_dropout_prob=0,
    )
    write_corpus(root / "data")  # 40 training rows, 15 validation rows
    for name, settings in {
        "lora": {"finetune": "lora", "lora_r": 2, "lora_dropout": 0.0},
        "heads": {"finetune": "heads"},
        "lexical": {"n_features": 2**12, "n_word_features": 2**10},
    }.items():
        transformer = name != "lexical"
        config = {
            "data": {
                "train": "data/train.jsonl",
                "validation": "data/val.jsonl",
                "seeding_column": "grade",
            },
            "model": {
                "kind": "transformer" if transformer else "lexical",
                "settings": {
                    **(
                        {"base_encoder": str(encoder), "max_length": 16, "dropout": 0.0}
                        if transformer
                        else {}
                    ),
                    **settings,
                },
            },
            # batch 7: the last batch of each epoch (5 rows) splits 3 + 2, and the
            # ranks' shards hold different numbers of graded rows
            "training": {
                "epochs": 2,
                "batch_size": 7,
                "lr": 5e-3,
                "threads": 1,
                "eval_every_steps": 3,
                "checkpoint_every_steps": 2,
                "early_stopping_patience": 0,
            },
        }
        (root / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def torchrun(workdir: Path, *args: str) -> dict[str, Any]:
    """`kocscope train --json` under torchrun with 2 CPU processes; the parsed result."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + ["-m", "kocscope", "train", "--json", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout  # rank 0 alone prints
    return json.loads(lines[0])


def single(workdir: Path, name: str, out: str) -> Any:
    return train(load_config(workdir / f"{name}.yaml", [f"output={workdir / out}"]), progress=False)


def assert_close_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.allclose(tensor, b[name], rtol=1e-5, atol=1e-6), (
            name,
            float((tensor - b[name]).abs().max()),
        )


def no_leftovers(folder: Path) -> None:
    """Atomic writers leave no temp files or staging folders behind."""
    assert not [p for p in folder.rglob(".*")], list(folder.rglob(".*"))


@pytest.mark.parametrize("name", ["lora", "heads"])
def test_torchrun_two_ranks_match_one_process(workdir: Path, name: str) -> None:
    reference = single(workdir, name, f"single-{name}")
    result = torchrun(workdir, "--config", f"{name}.yaml", "-o", f"ddp-{name}")
    out = workdir / f"ddp-{name}"
    bundle = Path(result["bundle_path"])
    assert bundle == out / "model"

    # the same steps, decisions and (up to rounding) numbers as one process
    assert result["steps"] == reference.steps == 12
    assert result["best_step"] == reference.best_step
    assert [h["step"] for h in result["history"]] == [h["step"] for h in reference.history]
    assert np.allclose(
        [h["val_loss"] for h in result["history"]],
        [h["val_loss"] for h in reference.history],
        atol=1e-6,
    )
    assert np.allclose(
        [h["train_loss"] for h in result["history"]],
        [h["train_loss"] for h in reference.history],
        atol=1e-6,
    )
    assert_close_tensors(
        load_file(str(bundle / "adapter.safetensors")),
        load_file(str(reference.bundle_path / "adapter.safetensors")),
    )

    # one bundle, loadable and scoring; rank 0 wrote everything once
    config = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    assert config["training_run"]["world_size"] == 2
    scores = load_model(bundle).score(["buy code discount w1 w2", "i tried my honest w3 w4"])
    assert len(scores) == 2 and all(0.0 <= s.p_promotion <= 1.0 for s in scores)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model", "report", "checkpoint", "train_config.json", "train_result.json"]
        + (["embedding_cache"] if name == "heads" else [])
    )
    if name == "heads":  # rank 0 alone wrote the cache
        assert len(list((out / "embedding_cache").iterdir())) == 1
    rng = load_file(str(out / "checkpoint" / "rng.safetensors"))
    assert "torch_cpu_rank1" in rng  # rank 1's dropout RNG, for an exact --resume
    assert not torch.equal(rng["torch_cpu_rank1"], rng["torch_cpu"])
    no_leftovers(out)


def test_torchrun_resumes_a_checkpoint_and_lands_on_the_same_weights(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single-process run dies mid-epoch; two ranks resume its checkpoint (every rank
    reads it) and end where an uninterrupted single-process run ends."""
    reference = single(workdir, "lora", "resume-reference")
    with monkeypatch.context() as patch:
        interrupt_at_training_batch(patch, call=9)  # dies in step 9; last checkpoint at step 8
        with pytest.raises(KeyboardInterrupt):
            single(workdir, "lora", "resume-cut")
    state = json.loads((workdir / "resume-cut/checkpoint/state.json").read_text(encoding="utf-8"))
    assert state["loop"]["step"] == 8 and state["loop"]["batch"] == 2  # mid second epoch
    result = torchrun(workdir, "--config", "lora.yaml", "-o", "resume-cut", "--resume")
    assert result["resumed_from_step"] == 8 and result["steps"] == reference.steps
    assert result["best_step"] == reference.best_step
    assert_close_tensors(
        load_file(str(Path(result["bundle_path"]) / "adapter.safetensors")),
        load_file(str(reference.bundle_path / "adapter.safetensors")),
    )


def test_torchrun_lexical_trains_on_rank_0_only(workdir: Path) -> None:
    reference = single(workdir, "lexical", "single-lexical")
    result = torchrun(workdir, "--config", "lexical.yaml", "-o", "ddp-lexical")
    assert result["metrics"] == reference.metrics
    assert result["threshold"] == reference.threshold
    bundle = Path(result["bundle_path"])
    run = json.loads((bundle / "config.json").read_text(encoding="utf-8"))["training_run"]
    assert run["world_size"] == 1  # a lexical fit is one process's work
    assert load_model(bundle).score(["buy code discount w1"])[0].label in ("genuine", "promotion")
    no_leftovers(workdir / "ddp-lexical")
