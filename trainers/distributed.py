"""Data-parallel training over several processes (GPUs, or CPU processes for testing).

Launched by `torchrun --nproc-per-node N` or `accelerate launch --num_processes N` (both set
`RANK`, `WORLD_SIZE` and the rendezvous variables), every process runs the same `Trainer`:

* each rank collects its share of the iteration's task groups (whole groups, so every
  group-relative baseline stays within one rank) with its own env workers and its own copy of
  the policy;
* the trajectories are then shared (`gather`), so metrics and ARPO's replay buffer see them all;
* each rank computes the loss of its own rows, divided by the **global** token or row count of
  the minibatch, and the gradients are **summed** across ranks before every optimizer step
  (`sync_grads`): the update is the one a single process would make on the whole batch, and
  every rank's weights stay identical;
* rank 0 writes metrics and checkpoints.

One process (no launcher) is `Distributed.single()`: every call is then free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place among the data-parallel ranks."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def single(cls) -> Distributed:
        return cls()

    @classmethod
    def from_env(cls) -> Distributed:
        """Join the process group a launcher described in the environment (`WORLD_SIZE` > 1),
        with NCCL on GPUs and gloo on CPUs; one process otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls.single()
        import torch
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend=backend)
        return cls(dist.get_rank(), dist.get_world_size(), local_rank)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0

    def share(self, items: Sequence[Any]) -> list[Any]:
        """This rank's part of a list: items rank, rank + world, ..."""
        return list(items[self.rank :: self.world])

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over ranks (float64)."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return [float(v) for v in tensor.cpu()]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sync_grads(self, params: Iterable[Any]) -> None:
        """Sum the gradients of `params` over ranks (a missing gradient counts as zero), in
        one flat all-reduce."""
        if not self.enabled:
            return
        import torch
        import torch.distributed as dist

        params = [p for p in params if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def _device(self) -> Any:
        import torch
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
