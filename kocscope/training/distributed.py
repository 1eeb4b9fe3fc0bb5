"""Data-parallel training under ``torchrun`` (or any launcher that sets its variables).

torchrun starts one process per GPU and tells each who it is through ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``. The trainer reads them
here, joins the process group (NCCL on CUDA, gloo on CPU) and uses the few
collectives below: every rank trains on its share of each global batch, the
gradients are summed, and rank 0 alone evaluates, decides and writes. Without
those variables :data:`SINGLE` stands in and every collective is a no-op, so
the single-process trainer runs exactly as before.

This module imports torch only when a process group is really started, so the
CLI can ask :func:`is_main_process` without paying for torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from kocscope.training.training_args import ConfigError

__all__ = ["SINGLE", "Distributed", "LaunchEnv", "data_parallel", "is_main_process", "launch_env"]

T = TypeVar("T")

# Ranks wait at barriers while rank 0 embeds the whole corpus (heads-only cache)
# or writes the bundle and report, which can take long on a large corpus; a rank
# that dies is caught by torchrun (it stops the others), not by this timeout.
COLLECTIVE_TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class LaunchEnv:
    """Who this process is, as the launcher said."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(
                f"environment variable {name} is missing: WORLD_SIZE is set, so kocscope expects a "
                "torchrun-style launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)"
            )
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a whole number") from None


def launch_env() -> LaunchEnv | None:
    """The launcher's description of this process, or None when running alone
    (no ``WORLD_SIZE``, or a world of one)."""
    if "WORLD_SIZE" not in os.environ:
        return None
    world = _env_int("WORLD_SIZE")
    if world < 1:
        raise ConfigError(f"environment variable WORLD_SIZE={world} must be at least 1")
    if world == 1:
        return None
    rank = _env_int("RANK")
    local_rank = _env_int("LOCAL_RANK")
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if not 0 <= rank < world:
        raise ConfigError(
            f"environment variable RANK={rank} is outside 0..{world - 1} (WORLD_SIZE)"
        )
    if not 0 <= local_rank < local_world:
        raise ConfigError(
            f"environment variable LOCAL_RANK={local_rank} is outside 0..{local_world - 1} (LOCAL_WORLD_SIZE)"
        )
    return LaunchEnv(rank, world, local_rank, local_world)


def is_main_process() -> bool:
    """True except on the ranks > 0 of a launched job: only rank 0 prints results."""
    env = launch_env()
    return env is None or env.rank == 0


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel job, with the collectives the trainer needs.

    ``backend`` is None for a single process; then every collective returns its input.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's disjoint share of a global batch (every ``world_size``-th item): a
        pure function of the batch, so shards cover it exactly and sizes differ by at most one."""
        return list(items[self.rank :: self.world_size])

    def _comm(self, tensor: Any) -> Any:
        """NCCL talks CUDA tensors only, gloo CPU ones."""
        import torch

        device = (
            torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        )
        return tensor.to(device)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as td

            td.barrier()

    def all_reduce_sum(self, tensor: Any) -> Any:
        """Element-wise sum over ranks, on the tensor's own device."""
        if not self.active:
            return tensor
        import torch.distributed as td

        buffer = self._comm(tensor)
        td.all_reduce(buffer, op=td.ReduceOp.SUM)
        return buffer.to(tensor.device)

    def broadcast(self, tensor: Any) -> Any:
        """Rank 0's value of ``tensor`` on every rank (same shape and dtype everywhere)."""
        if not self.active:
            return tensor
        import torch.distributed as td

        buffer = self._comm(tensor.contiguous())
        td.broadcast(buffer, src=0)
        return buffer.to(tensor.device)

    def all_gather(self, tensor: Any) -> list[Any]:
        """Every rank's ``tensor`` (same shape everywhere), in rank order, on the CPU."""
        if not self.active:
            return [tensor.cpu()]
        import torch
        import torch.distributed as td

        buffer = self._comm(tensor.contiguous())
        parts = [torch.empty_like(buffer) for _ in range(self.world_size)]
        td.all_gather(parts, buffer)
        return [p.cpu() for p in parts]


SINGLE = Distributed()


@contextmanager
def data_parallel(device: str = "auto") -> Iterator[Distributed]:
    """Join the launcher's process group for one training run and leave it afterwards.

    ``device`` is ``training.device``: CUDA ranks use NCCL and ``cuda:LOCAL_RANK``,
    CPU ranks gloo. A group the caller already started is used and left open.
    """
    env = launch_env()
    if env is None:
        yield SINGLE
        return
    import torch
    import torch.distributed as td

    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        if env.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={env.local_rank} but torch sees {torch.cuda.device_count()} CUDA device(s) "
                "on this node; start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(env.local_rank)
    created = not td.is_initialized()
    if created:
        td.init_process_group("nccl" if use_cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        yield Distributed(
            rank=env.rank,
            world_size=env.world_size,
            local_rank=env.local_rank,
            local_world_size=env.local_world_size,
            backend=str(td.get_backend()),
        )
    finally:
        if created:
            td.destroy_process_group()
